//! `amicn key`: identities, certificates, export and import, backed by the `kms` keychain.
//! Also the signing and connection options the other NDN tools share.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use amicn_face::client::{Client, ClientOptions, TransportUri, resolve_transport};
use amicn_kms::cert::{Certificate, Validity};
use amicn_kms::keychain::{DEFAULT_EXPORT_ITERATIONS, Keychain};
use amicn_kms::safebag::{PrivateKey, SafeBag};
use amicn_producer::{DigestSigner, Ed25519Signer, Signer};
use amicn_tlv::Name;
use anyhow::{Context, bail};
use bytes::Bytes;
use clap::{Args, Subcommand};

/// Where the forwarder is.
#[derive(Debug, Clone, Args)]
pub(crate) struct ConnectArgs {
    /// Forwarder to connect to: `unix:///path`, `tcp://host[:port]`, `udp://host[:port]`.
    /// A UDP face is never local, so the forwarder refuses prefix registration over it (as
    /// over TCP from another host): tools that serve Data need `unix://` or loopback `tcp://`
    /// [default: AMICN_SOCKET, NDN_CLIENT_TRANSPORT, client.conf transport=, /run/nfd/nfd.sock]
    #[arg(long, value_name = "URI")]
    pub(crate) connect: Option<String>,
}

impl ConnectArgs {
    /// The transport chosen by flag or environment.
    pub(crate) fn uri(&self) -> anyhow::Result<TransportUri> {
        transport(self.connect.as_deref(), &|v| std::env::var(v).ok())
    }

    /// [`ConnectArgs::uri`] with the environment read through `env`.
    #[cfg(test)]
    pub(crate) fn uri_with(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<TransportUri> {
        transport(self.connect.as_deref(), env)
    }

    /// Connects to the forwarder.
    pub(crate) async fn client(&self) -> anyhow::Result<Client> {
        let uri = self.uri()?;
        Ok(Client::connect(&uri, ClientOptions::default()).await?)
    }
}

/// The forwarder every command talks to: the URI given on the command line, else the one
/// [`amicn_face::client::resolve_transport`] finds from `env` (AMICN_SOCKET,
/// NDN_CLIENT_TRANSPORT, client.conf `transport=`, the default socket and its fallbacks).
pub(crate) fn transport(
    flag: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<TransportUri> {
    Ok(match flag {
        Some(u) => u.parse()?,
        None => resolve_transport(env)?,
    })
}

/// How Data is signed.
#[derive(Debug, Clone, Args)]
pub(crate) struct SignArgs {
    /// Sign with DigestSha256 (integrity only, no key) instead of Ed25519
    #[arg(long)]
    pub(crate) digest: bool,
    /// Identity or key name to sign with [default: the keychain's default identity]
    #[arg(long, value_name = "NAME")]
    pub(crate) identity: Option<String>,
    #[command(flatten)]
    pub(crate) keychain: KeychainArgs,
}

/// Where keys live.
#[derive(Debug, Clone, Args)]
pub(crate) struct KeychainArgs {
    /// Keychain directory
    #[arg(long, env = "AMICN_KEYCHAIN", value_name = "DIR")]
    pub(crate) keychain: Option<PathBuf>,
}

impl KeychainArgs {
    /// Opens the keychain ($AMICN_KEYCHAIN, else ~/.amicn/keychain).
    pub(crate) fn open(&self) -> anyhow::Result<Keychain> {
        let dir = match &self.keychain {
            Some(d) => d.clone(),
            None => {
                let home = std::env::var_os("HOME").context("HOME is not set; pass --keychain")?;
                PathBuf::from(home).join(".amicn/keychain")
            }
        };
        Keychain::open(&dir).with_context(|| format!("opening keychain {}", dir.display()))
    }
}

/// A signer plus the certificate consumers will fetch to verify it.
pub(crate) struct SigningSetup {
    /// The signer.
    pub(crate) signer: Arc<dyn Signer>,
    /// Certificate Data wire (absent for DigestSha256).
    pub(crate) certificate: Option<Certificate>,
}

pub(crate) fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl SignArgs {
    /// Loads the signer: DigestSha256, the named identity, or the default one (created on first use).
    pub(crate) fn setup(&self) -> anyhow::Result<SigningSetup> {
        if self.digest {
            return Ok(SigningSetup {
                signer: Arc::new(DigestSigner),
                certificate: None,
            });
        }
        let kc = self.keychain.open()?;
        let key_name = match &self.identity {
            Some(id) => resolve_key(&kc, id)?,
            None => match kc.default_key()? {
                Some(k) => k,
                None => {
                    let id: Name = "/localhost/amicn".parse()?;
                    let (key, _) = kc.create_identity(&id, now_s(), 365 * 86400)?;
                    eprintln!(
                        "amicn: created default signing identity {} in {}",
                        key.key_name(),
                        kc.root().display()
                    );
                    key.key_name().clone()
                }
            },
        };
        let key = kc
            .private_key(&key_name)
            .with_context(|| format!("no secret key {key_name} in the keychain"))?;
        let cert = kc
            .certificate(&key_name)
            .with_context(|| format!("no certificate for {key_name}"))?;
        // Ed25519 keys sign through the producer's signer; imported ECDSA and RSA keys
        // (`amicn key import` of an ndnsec SafeBag) sign as themselves.
        let signer: Arc<dyn Signer> = match key {
            PrivateKey::Ed25519(k) => Arc::new(Ed25519Signer::from_seed(&k.seed(), key_name)),
            other => other.into_signer(),
        };
        Ok(SigningSetup {
            signer,
            certificate: Some(cert),
        })
    }
}

/// A key name from an identity or key name given on the command line.
pub(crate) fn resolve_key(kc: &Keychain, id: &str) -> anyhow::Result<Name> {
    let name: Name = id
        .parse()
        .with_context(|| format!("{id:?} is not an NDN name"))?;
    let keys = kc.keys()?;
    if keys.contains(&name) {
        return Ok(name);
    }
    let mut matching: Vec<Name> = keys
        .into_iter()
        .filter(|k| name.is_prefix_of(k) && k.len() == name.len() + 2)
        .collect();
    matching.sort();
    matching.pop().with_context(|| {
        format!("no key for identity {name} (create one with `amicn key create {name}`)")
    })
}

/// Manage signing identities and certificates.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  amicn key create /example-utility/mdms
  amicn key list
  amicn key cert /example-utility/mdms -o mdms.cert      # trust anchor for `amicn get --trust-anchor`
  amicn key issue --issuer /example-utility/root meter7.cert -o meter7-signed.cert
  amicn key export /example-utility/mdms --passphrase-env PASS > mdms.identity
  amicn key import mdms.identity --passphrase-env PASS
  amicn key export /example-utility/mdms --format safebag --passphrase-file pass.txt > mdms.safebag
  amicn key import alice.safebag --passphrase-file pass.txt   # from `ndnsec export`")]
pub(crate) struct KeyArgs {
    #[command(subcommand)]
    cmd: KeyCmd,
    #[command(flatten)]
    keychain: KeychainArgs,
    /// Machine-readable output
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum KeyCmd {
    /// Create an identity: an Ed25519 key and a self-signed certificate
    Create {
        /// Identity name, e.g. /example-utility/meter/7
        identity: String,
        /// Certificate validity in days
        #[arg(long, default_value_t = 365)]
        days: u64,
        /// Make it the default signing identity
        #[arg(long)]
        default: bool,
    },
    /// List keys (the default is marked with *)
    List,
    /// Show a key's certificate
    Show {
        /// Identity, key or certificate name
        name: String,
    },
    /// Write a key's certificate (Data wire format) to a file or stdout
    Cert {
        /// Identity, key or certificate name
        name: String,
        /// Output file
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Issue a certificate for another key, signed by one of ours
    Issue {
        /// Issuing identity or key name
        #[arg(long)]
        issuer: String,
        /// The subject's certificate file (usually self-signed)
        subject: PathBuf,
        /// Validity in days
        #[arg(long, default_value_t = 365)]
        days: u64,
        /// Output file (also added to the keychain)
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Export a key and certificate (secret encrypted when a passphrase is given)
    Export {
        /// Identity or key name
        name: String,
        /// `amicn`: amicn's own TOML export (Ed25519 keys). `safebag`: the `ndnsec export`
        /// format (base64 SafeBag, PBKDF2-HMAC-SHA256 + AES-256-CBC), which `ndnsec import`
        /// and `amicn key import` read; a passphrase is required
        #[arg(long, value_enum, default_value_t = ExportFormat::Amicn)]
        format: ExportFormat,
        /// PBKDF2 iterations protecting the key (at least 100000)
        #[arg(long, default_value_t = DEFAULT_EXPORT_ITERATIONS)]
        iterations: u32,
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },
    /// Import an exported identity, an `ndnsec export` SafeBag, a certificate file, or (with
    /// --certificate) a python-ndn private key file
    Import {
        /// File written by `amicn key export`, `ndnsec export` or `amicn key cert`; with
        /// --certificate, an unencrypted private key (python-ndn's `~/.ndn/ndnsec-key-file/*.privkey`,
        /// or PKCS#8 / SEC1 / PKCS#1 DER)
        file: PathBuf,
        /// The certificate of the private key in FILE (binary, or base64 as python-ndn and
        /// `ndnsec cert-dump` print it)
        #[arg(long, value_name = "CERT")]
        certificate: Option<PathBuf>,
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },
}

/// Export formats of `amicn key export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ExportFormat {
    /// amicn's TOML export
    Amicn,
    /// ndn-cxx SafeBag, base64 as `ndnsec export` writes it
    Safebag,
}

/// Where a passphrase comes from.
#[derive(Debug, Clone, Args)]
struct PassphraseArgs {
    /// Environment variable holding the passphrase
    #[arg(long, value_name = "VAR", conflicts_with = "passphrase_file")]
    passphrase_env: Option<String>,
    /// File holding the passphrase (one trailing newline is ignored)
    #[arg(long, value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
}

impl PassphraseArgs {
    fn get(&self) -> anyhow::Result<Option<String>> {
        if let Some(v) = &self.passphrase_env {
            return Ok(Some(
                std::env::var(v).with_context(|| format!("passphrase variable {v} is not set"))?,
            ));
        }
        if let Some(p) = &self.passphrase_file {
            let mut text = std::fs::read_to_string(p)
                .with_context(|| format!("reading passphrase file {}", p.display()))?;
            if text.ends_with('\n') {
                text.pop();
                if text.ends_with('\r') {
                    text.pop();
                }
            }
            return Ok(Some(text));
        }
        Ok(None)
    }
}

fn cert_json(cert: &Certificate) -> serde_json::Value {
    let v = cert.validity();
    serde_json::json!({
        "certificate": cert.name().to_string(),
        "key": cert.key_name().to_string(),
        "identity": cert.identity().to_string(),
        "signer": cert.signer().map(|s| s.to_string()),
        "self_signed": cert.is_self_signed(),
        "not_before": v.not_before,
        "not_after": v.not_after,
        "key_type": cert.key().algorithm(),
        "public_key": cert
            .public_key()
            .map(|k| hex::encode(k.to_bytes()))
            .unwrap_or_else(|| hex::encode(cert.key().to_spki())),
    })
}

/// Runs `amicn key`.
pub(crate) fn run(args: KeyArgs) -> anyhow::Result<()> {
    let kc = args.keychain.open()?;
    match args.cmd {
        KeyCmd::Create {
            identity,
            days,
            default,
        } => {
            let id: Name = identity
                .parse()
                .with_context(|| format!("{identity:?} is not an NDN name"))?;
            let (key, cert) = kc.create_identity(&id, now_s(), days.saturating_mul(86400))?;
            if default {
                kc.set_default_key(key.key_name())?;
            }
            if args.json {
                println!("{}", cert_json(&cert));
            } else {
                println!("{}", cert.name());
            }
        }
        KeyCmd::List => {
            let default = kc.default_key()?;
            let keys = kc.keys()?;
            if args.json {
                let list: Vec<_> = keys
                    .iter()
                    .map(|k| serde_json::json!({"key": k.to_string(), "default": Some(k) == default.as_ref()}))
                    .collect();
                println!("{}", serde_json::Value::Array(list));
            } else {
                for k in keys {
                    let mark = if Some(&k) == default.as_ref() {
                        "*"
                    } else {
                        " "
                    };
                    println!("{mark} {k}");
                }
            }
        }
        KeyCmd::Show { name } => {
            let cert = find_cert(&kc, &name)?;
            if args.json {
                println!("{}", cert_json(&cert));
            } else {
                let j = cert_json(&cert);
                if let Some(obj) = j.as_object() {
                    for (k, v) in obj {
                        println!(
                            "{k:>12}: {}",
                            v.as_str()
                                .map(str::to_owned)
                                .unwrap_or_else(|| v.to_string())
                        );
                    }
                }
            }
        }
        KeyCmd::Cert { name, output } => {
            let cert = find_cert(&kc, &name)?;
            write_out(output.as_ref(), &cert.to_wire())?;
        }
        KeyCmd::Issue {
            issuer,
            subject,
            days,
            output,
        } => {
            let issuer_key = kc.private_key(&resolve_key(&kc, &issuer)?)?;
            let wire = std::fs::read(&subject)
                .with_context(|| format!("reading {}", subject.display()))?;
            let subject_cert = Certificate::decode(Bytes::from(wire))
                .context("subject file is not a certificate")?;
            let issuer_identity = issuer_key
                .key_name()
                .prefix(issuer_key.key_name().len().saturating_sub(2));
            let issuer_id = issuer_identity
                .get(issuer_identity.len().wrapping_sub(1))
                .map(|c| c.value().to_vec())
                .unwrap_or_else(|| b"issuer".to_vec());
            let cert = Certificate::issue(
                &subject_cert.key_name(),
                subject_cert.key(),
                issuer_key.signer(),
                &issuer_id,
                now_s().saturating_mul(1000),
                Validity::starting_now(now_s(), days.saturating_mul(86400)),
            )?;
            kc.add_certificate(&cert)?;
            write_out(output.as_ref(), &cert.to_wire())?;
            if output.is_some() {
                eprintln!("issued {}", cert.name());
            }
        }
        KeyCmd::Export {
            name,
            format,
            iterations,
            passphrase,
        } => {
            let key = resolve_key(&kc, &name)?;
            let pass = passphrase.get()?;
            match format {
                ExportFormat::Amicn => {
                    let text = kc.export_identity(&key, pass.as_deref(), iterations)?;
                    print!("{text}");
                }
                ExportFormat::Safebag => {
                    let pass = pass.context(
                        "a SafeBag always holds an encrypted key: pass --passphrase-file or \
                         --passphrase-env",
                    )?;
                    let bag = kc.export_safebag(&key, pass.as_bytes(), iterations)?;
                    print!("{}", bag.to_base64());
                }
            }
        }
        KeyCmd::Import {
            file,
            certificate,
            passphrase,
        } => {
            let raw =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            if let Some(cert_path) = certificate {
                let wire = std::fs::read(&cert_path)
                    .with_context(|| format!("reading {}", cert_path.display()))?;
                let cert = Certificate::decode(certificate_bytes(wire))
                    .with_context(|| format!("{} is not a certificate", cert_path.display()))?;
                let key = kc
                    .import_private_key(&raw, &cert)
                    .with_context(|| format!("importing private key {}", file.display()))?;
                println!("{key}");
            } else if let Ok(cert) = Certificate::decode(Bytes::from(raw.clone())) {
                kc.add_certificate(&cert)?;
                println!("{}", cert.name());
            } else if SafeBag::decode(&raw).is_ok() {
                let pass = passphrase.get()?.context(
                    "the SafeBag's key is encrypted: pass --passphrase-file or --passphrase-env",
                )?;
                let key = kc
                    .import_safebag(&raw, pass.as_bytes())
                    .with_context(|| format!("importing SafeBag {}", file.display()))?;
                println!("{key}");
            } else {
                let text = String::from_utf8(raw)
                    .context("file is neither a certificate, a SafeBag nor an amicn export")?;
                let key = kc.import_identity(&text, passphrase.get()?.as_deref())?;
                println!("{key}");
            }
        }
    }
    Ok(())
}

fn find_cert(kc: &Keychain, name: &str) -> anyhow::Result<Certificate> {
    let n: Name = name
        .parse()
        .with_context(|| format!("{name:?} is not an NDN name"))?;
    if let Ok(c) = kc.certificate(&n) {
        return Ok(c);
    }
    let key = resolve_key(kc, name)?;
    Ok(kc.certificate(&key)?)
}

fn write_out(output: Option<&PathBuf>, bytes: &[u8]) -> anyhow::Result<()> {
    match output {
        Some(p) => std::fs::write(p, bytes).with_context(|| format!("writing {}", p.display())),
        None => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            out.write_all(bytes)?;
            out.flush()?;
            Ok(())
        }
    }
}

/// Reads a trust anchor certificate file (Data wire format, as `amicn key cert` writes).
pub(crate) fn read_anchor(path: &PathBuf) -> anyhow::Result<amicn_tlv::Data> {
    let wire =
        std::fs::read(path).with_context(|| format!("reading trust anchor {}", path.display()))?;
    let data = amicn_tlv::Data::decode(certificate_bytes(wire))
        .with_context(|| format!("{} is not an NDN certificate", path.display()))?;
    if data.meta_info.content_type != 2 {
        bail!(
            "{} is a Data packet but not a certificate (ContentType is not KEY)",
            path.display()
        );
    }
    Ok(data)
}

/// A certificate file's Data wire: binary as `amicn key cert` writes it, or base64 as
/// `ndnsec cert-dump` and python-ndn print it.
fn certificate_bytes(file: Vec<u8>) -> Bytes {
    use base64ct::{Base64, Encoding};
    // A Data TLV starts with type 6; base64 text never does.
    if file.first() == Some(&0x06) {
        return Bytes::from(file);
    }
    let text: Vec<u8> = file
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    match Base64::decode_vec(&String::from_utf8_lossy(&text)) {
        Ok(wire) => Bytes::from(wire),
        Err(_) => Bytes::from(file),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ndnsec_base64_certificates_are_read_as_anchors() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../kms/tests/identity_vectors/ndn-cxx-keys/"
        );
        for k in ["ecdsa", "rsa"] {
            let path = PathBuf::from(format!("{dir}{k}.cert.b64"));
            let data = read_anchor(&path).unwrap();
            let anchor = amicn_consumer::trust::TrustAnchor::from_certificate(&data).unwrap();
            assert_eq!(anchor.key_name.get(1).unwrap().value(), k.as_bytes());
        }
        // Not a certificate either way: a clear error.
        let bad = std::env::temp_dir().join(format!("amicn-not-a-cert-{}", std::process::id()));
        std::fs::write(&bad, b"not base64 !!").unwrap();
        assert!(read_anchor(&bad).is_err());
        let _ = std::fs::remove_file(&bad);
    }
}
