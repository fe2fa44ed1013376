//! Provisioning: the utility's offline ceremony that creates the trust anchor and one directory
//! per node, each holding that node's keychain (0700/0600), the anchor and a config.
//!
//! ```text
//! <out>/ca/keychain/        the root key (stays offline; only `amicn pki` opens it)
//! <out>/anchor.cert         the trust anchor (public)
//! <out>/nodes.json          index: node, role, identities
//! <out>/<node>/keychain/    the node's own keys and certificates; the KMS's also holds the
//!                           public certificates of the DR operator, operator, MDMS and pricing
//! <out>/<node>/anchor.cert
//! <out>/<node>/trust.toml   the trust rules: which key may sign which names
//! <out>/<node>/node.toml    the role's config (see examples/)
//! ```
//!
//! Keys are generated straight into the directory of the node that uses them; no secret key is
//! written anywhere else.

use std::path::{Path, PathBuf};

use amicn_kms::cert::Validity;
use amicn_kms::keychain::Keychain;
use amicn_tlv::Name;
use serde::Serialize;

use crate::error::{AmiError, Result};
use crate::names::AmiNames;
use crate::net::now_ms;
use crate::pki::{Credentials, Pki};

/// How long node certificates are valid by default (one year).
pub const NODE_CERT_VALIDITY_S: u64 = 365 * 24 * 3600;

/// One node of a provisioning run.
#[derive(Debug, Clone, Serialize)]
pub struct NodeEntry {
    /// Directory name under the output directory.
    pub node: String,
    /// `kms`, `mdms`, `pricing`, `dr`, `operator` or `meter`.
    pub role: String,
    /// Identities whose keys it holds (one, or many for a meter group).
    pub identities: Vec<String>,
    /// Meter ids (meter groups only).
    pub meters: Vec<u32>,
}

/// What `amicn pki` creates.
#[derive(Debug, Clone)]
pub struct ProvisionSpec {
    /// Utility prefix.
    pub utility: String,
    /// Output directory (created; must not already hold a CA).
    pub out: PathBuf,
    /// DR projects the utility runs.
    pub projects: Vec<String>,
    /// Meter groups: node name and the meter ids it simulates.
    pub meter_groups: Vec<(String, Vec<u32>)>,
    /// Certificate lifetime.
    pub validity_s: u64,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> AmiError + '_ {
    move |e| AmiError::State {
        path: path.to_path_buf(),
        why: e.to_string(),
    }
}

fn private_dir(p: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(p).map_err(io(p))?;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700)).map_err(io(p))
}

fn write_file(p: &Path, bytes: &[u8]) -> Result<()> {
    amicn_kms::keychain::write_atomic(p, bytes, 0o644)?;
    Ok(())
}

fn store(kc: &Keychain, c: &Credentials) -> Result<()> {
    kc.add_key(&c.key)?;
    kc.add_certificate(&c.cert)?;
    if kc.default_key()?.is_none() {
        kc.set_default_key(c.key.key_name())?;
    }
    Ok(())
}

fn node_config(role: &str, utility: &str, projects: &[String]) -> String {
    let mut s = format!(
        "# amicn {role} node, written by `amicn pki`. Paths are relative to this file.\n\
         role = \"{role}\"\nutility = \"{utility}\"\nkeychain = \"keychain\"\n\
         anchor = \"anchor.cert\"\nstate_dir = \"state\"\n\
         # forwarder = \"unix:///run/nfd/nfd.sock\"   # the local forwarder (default: NFD's)\n"
    );
    if role == "kms" || role == "dr" {
        let list: Vec<String> = projects.iter().map(|p| format!("\"{p}\"")).collect();
        s.push_str(&format!("projects = [{}]\n", list.join(", ")));
    }
    s
}

/// Runs the ceremony (see the module documentation) and returns the node index.
pub fn provision(spec: &ProvisionSpec) -> Result<Vec<NodeEntry>> {
    let names = AmiNames::new(&spec.utility)?;
    let ca_dir = spec.out.join("ca");
    if ca_dir.join("keychain").join("default").exists() {
        return Err(AmiError::Config(format!(
            "{} already holds a CA; provision into a new directory",
            spec.out.display()
        )));
    }
    private_dir(&spec.out)?;
    private_dir(&ca_dir)?;
    let pki = Pki::new(&names)?;
    let ca = Keychain::open(ca_dir.join("keychain"))?;
    store(&ca, pki.root())?;
    let anchor = pki.anchor().to_wire();
    write_file(&spec.out.join("anchor.cert"), &anchor)?;
    let rules = pki.policy()?.to_toml();
    let now_s = now_ms() / 1000;
    let validity = Validity::starting_now(now_s.saturating_sub(60), spec.validity_s);
    let issue = |id: &Name| pki.issue_with_validity(id, validity);

    let mut index = Vec::new();
    let mut public_certs = Vec::new();
    let node_dir = |node: &str| -> Result<(PathBuf, Keychain)> {
        let d = spec.out.join(node);
        private_dir(&d)?;
        write_file(&d.join("anchor.cert"), &anchor)?;
        write_file(&d.join("trust.toml"), rules.as_bytes())?;
        let kc = Keychain::open(d.join("keychain"))?;
        Ok((d, kc))
    };
    let roles = [
        ("kms", "kms", names.kms()),
        ("mdms", "mdms", names.role("mdms")),
        ("pricing", "pricing", names.role("price")),
        ("dr", "dr", names.role("dr")),
        ("operator", "operator", names.role("operator")),
    ];
    let mut kms_keychain = None;
    for (node, role, identity) in roles {
        let (d, kc) = node_dir(node)?;
        let c = issue(&identity)?;
        store(&kc, &c)?;
        if role != "kms" {
            public_certs.push(c.cert.clone());
        } else {
            kms_keychain = Some(kc.clone());
        }
        write_file(
            &d.join("node.toml"),
            node_config(role, &spec.utility, &spec.projects).as_bytes(),
        )?;
        index.push(NodeEntry {
            node: node.into(),
            role: role.into(),
            identities: vec![identity.to_string()],
            meters: Vec::new(),
        });
    }
    // The KMS verifies signed commands and key requests without fetching: it is provisioned
    // with the service principals' public certificates.
    if let Some(kc) = kms_keychain {
        for c in &public_certs {
            kc.add_certificate(c)?;
        }
    }
    for (node, ids) in &spec.meter_groups {
        let (d, kc) = node_dir(node)?;
        let mut identities = Vec::with_capacity(ids.len());
        for &id in ids {
            let c = issue(&names.meter(id))?;
            store(&kc, &c)?;
            identities.push(names.meter(id).to_string());
        }
        write_file(
            &d.join("node.toml"),
            node_config("meter", &spec.utility, &spec.projects).as_bytes(),
        )?;
        index.push(NodeEntry {
            node: node.clone(),
            role: "meter".into(),
            identities,
            meters: ids.clone(),
        });
    }
    let json = serde_json::to_vec_pretty(&index).map_err(|e| AmiError::Config(e.to_string()))?;
    write_file(&spec.out.join("nodes.json"), &json)?;
    Ok(index)
}

/// Loads a node's default credentials from its keychain.
pub fn load_credentials(keychain: &Path) -> Result<Credentials> {
    let kc = Keychain::open(keychain)?;
    let name = kc.default_key()?.ok_or_else(|| {
        AmiError::Config(format!(
            "keychain {} has no default key",
            keychain.display()
        ))
    })?;
    let key = kc.key(&name)?;
    let cert = kc.certificate(&name)?;
    Ok(Credentials {
        key: std::sync::Arc::new(key),
        cert,
    })
}

/// Loads every meter identity of a meter group's keychain, ascending by meter id.
pub fn load_meter_credentials(
    keychain: &Path,
    names: &AmiNames,
) -> Result<Vec<(u32, Credentials)>> {
    let kc = Keychain::open(keychain)?;
    let mut out = Vec::new();
    let base = names
        .ami()
        .append_generic(bytes::Bytes::from_static(b"meter"));
    for key_name in kc.keys()? {
        if !base.is_prefix_of(&key_name) {
            continue;
        }
        let Some(id) = key_name
            .get(base.len())
            .and_then(|c| std::str::from_utf8(c.value()).ok()?.parse::<u32>().ok())
        else {
            continue;
        };
        let key = kc.key(&key_name)?;
        let cert = kc.certificate(&key_name)?;
        out.push((
            id,
            Credentials {
                key: std::sync::Arc::new(key),
                cert,
            },
        ));
    }
    out.sort_by_key(|(id, _)| *id);
    Ok(out)
}

/// Every certificate in a keychain (the KMS loads the service principals' from its own).
pub fn load_certificates(keychain: &Path) -> Result<Vec<amicn_kms::cert::Certificate>> {
    Ok(Keychain::open(keychain)?.certificates()?)
}

/// Reads a trust anchor certificate file.
pub fn load_anchor(path: &Path) -> Result<amicn_kms::cert::Certificate> {
    let b = std::fs::read(path).map_err(io(path))?;
    Ok(amicn_kms::cert::Certificate::decode(bytes::Bytes::from(b))?)
}
