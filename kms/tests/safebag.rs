//! SafeBag (`ndnsec export` / `ndnsec import`): the ndn-cxx vectors (ECDSA P-256 and RSA 2048,
//! passphrase `amicn-vector`, see `identity_vectors/ndn-cxx-keys/README.md`) import, their keys
//! sign Data their certificates verify, and amicn's own SafeBags round-trip and use the same
//! algorithms as ndn-cxx. python-ndn reads amicn's SafeBags when it is installed.
#![allow(clippy::unwrap_used, missing_docs)]

mod python_common;

use amicn_kms::Error;
use amicn_kms::cert::Certificate;
use amicn_kms::keychain::Keychain;
use amicn_kms::safebag::{MIN_SAFEBAG_ITERATIONS, PrivateKey, SafeBag};
use amicn_kms::signature::{sign_data, verify_data_key};
use amicn_kms::trust::{CertStore, TrustPolicy, Validator};
use amicn_tlv::{Data, Name};
use base64ct::{Base64, Encoding};
use bytes::Bytes;
use pkcs8::EncryptedPrivateKeyInfoRef;

const DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/identity_vectors/ndn-cxx-keys/"
);
const PASS: &[u8] = b"amicn-vector";
/// 2026-12-02, inside the vectors' ValidityPeriod (2026-12-01 .. 2046-11-26).
const NOW_MS: u64 = 1_796_256_000_000;

fn vector(file: &str) -> Vec<u8> {
    std::fs::read(format!("{DIR}{file}")).unwrap()
}

fn cert(k: &str) -> Certificate {
    let text: String = String::from_utf8(vector(&format!("{k}.cert.b64")))
        .unwrap()
        .split_whitespace()
        .collect();
    Certificate::decode(Bytes::from(Base64::decode_vec(&text).unwrap())).unwrap()
}

fn n(s: &str) -> Name {
    Name::from_uri(s).unwrap()
}

struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!(
            "amicn-safebag-{tag}-{}-{:x}",
            std::process::id(),
            rand_u64()
        ));
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

fn signed_by(key: &PrivateKey, name: &str) -> Data {
    let mut d = Data::new(n(name), Bytes::from_static(b"signed by an imported key"));
    Data::decode(sign_data(key.signer(), &mut d)).unwrap()
}

#[test]
fn ndnsec_vectors_import_and_their_keys_sign() {
    let dir = TempDir::new("import");
    let kc = Keychain::open(&dir.0).unwrap();
    for (k, alg, sig_type) in [("ecdsa", "ecdsa-p256", 3), ("rsa", "rsa", 1)] {
        let file = vector(&format!("{k}.safebag.b64"));
        let bag = SafeBag::decode(&file).unwrap();
        assert_eq!(bag.certificate(), &cert(k));
        // ndnsec export uses 2048 PBKDF2 iterations.
        assert_eq!(bag.iterations().unwrap(), 2048);
        let key_name = kc.import_safebag(&file, PASS).unwrap();
        assert_eq!(key_name, cert(k).key_name());
        let key = kc.private_key(&key_name).unwrap();
        assert_eq!(key.algorithm(), alg);
        assert_eq!(&key.public_key(), cert(k).key());
        assert_eq!(kc.certificate(&key_name).unwrap(), cert(k));
        // Ed25519-only callers get a clear refusal, not a corrupt-file error.
        assert!(matches!(kc.key(&key_name), Err(Error::NotEd25519 { .. })));

        // Data signed by the imported key verifies under the certificate ndn-cxx made, both
        // directly and through the validator with that certificate as the anchor.
        let data = signed_by(&key, &format!("/example/{k}/data/v=2"));
        assert_eq!(data.signature_info.sig_type, sig_type);
        verify_data_key(&data, cert(k).key()).unwrap();
        let policy = TrustPolicy::from_toml(&format!(
            "[[rule]]\nid = \"{k}\"\ndata = \"/example/{k}/data/...\"\nsigner = \"/example/{k}/KEY/...\"\n"
        ))
        .unwrap();
        let mut v = Validator::new(policy);
        v.add_anchor(cert(k)).unwrap();
        let ok = v.validate_data(&data, &CertStore::new(), NOW_MS).unwrap();
        assert_eq!(ok.chain, vec![cert(k).name().clone()]);
        // The other vector's key does not pass for this one.
        let other = if k == "ecdsa" { "rsa" } else { "ecdsa" };
        assert!(verify_data_key(&data, cert(other).key()).is_err());
    }
    assert_eq!(kc.keys().unwrap().len(), 2);
    // Reopened from disk, the stored keys still sign.
    let kc = Keychain::open(&dir.0).unwrap();
    let key = kc.private_key(&cert("ecdsa").key_name()).unwrap();
    verify_data_key(&signed_by(&key, "/example/ecdsa/x"), cert("ecdsa").key()).unwrap();
}

#[test]
fn wrong_passphrase_is_its_own_error() {
    for k in ["ecdsa", "rsa"] {
        let bag = SafeBag::decode(&vector(&format!("{k}.safebag.b64"))).unwrap();
        for pass in [&b"amicn-vectoR"[..], b"", b"amicn-vector "] {
            let e = bag.open(pass).unwrap_err();
            assert!(matches!(e, Error::WrongPassphrase), "{k} {pass:?}: {e}");
        }
        let dir = TempDir::new("wrongpass");
        let kc = Keychain::open(&dir.0).unwrap();
        assert!(matches!(
            kc.import_safebag(&vector(&format!("{k}.safebag.b64")), b"nope"),
            Err(Error::WrongPassphrase)
        ));
        assert!(
            kc.keys().unwrap().is_empty(),
            "nothing stored after a refusal"
        );
    }
}

#[test]
fn truncated_and_corrupt_safebags_are_refused_without_panic() {
    let file: String = String::from_utf8(vector("ecdsa.safebag.b64"))
        .unwrap()
        .split_whitespace()
        .collect();
    let wire = Base64::decode_vec(&file).unwrap();
    let before = amicn_kms::safebag::refused();
    for len in 0..wire.len() {
        let e = SafeBag::decode(&wire[..len]).unwrap_err();
        assert!(
            matches!(e, Error::BadSafeBag { .. }),
            "truncated to {len}: {e}"
        );
    }
    assert!(amicn_kms::safebag::refused() >= before + wire.len() as u64);
    // Trailing bytes after the SafeBag.
    let mut long = wire.clone();
    long.push(0);
    assert!(matches!(
        SafeBag::decode(&long),
        Err(Error::BadSafeBag { .. })
    ));
    // Base64 that is not base64.
    assert!(matches!(
        SafeBag::decode(b"gP0CKgb9!!!"),
        Err(Error::BadSafeBag { .. })
    ));
    // Every single-bit flip either fails to decode, fails to open, or (in bytes nothing
    // checks before the signature, such as the certificate's SignatureValue) still opens to
    // the same key. None panics.
    let good = SafeBag::decode(&wire).unwrap().open(PASS).unwrap();
    let mut refused = 0;
    for i in 0..wire.len() {
        let mut w = wire.clone();
        w[i] ^= 0x10;
        match SafeBag::decode(&w).and_then(|b| b.open(PASS)) {
            Err(_) => refused += 1,
            Ok(k) => assert_eq!(k.public_key(), good.public_key(), "flip at {i}"),
        }
    }
    assert!(refused > wire.len() / 2, "{refused} of {}", wire.len());
    // The encrypted key of one vector inside the other's certificate: the key does not belong.
    let ecdsa = SafeBag::decode(&vector("ecdsa.safebag.b64")).unwrap();
    let rsa = SafeBag::decode(&vector("rsa.safebag.b64")).unwrap();
    let mut inner = bytes::BytesMut::new();
    inner.extend_from_slice(&rsa.certificate().to_wire());
    amicn_tlv::encode_tlv(&mut inner, 129, ecdsa.encrypted_key());
    let mut spliced = bytes::BytesMut::new();
    amicn_tlv::encode_tlv(&mut spliced, 128, &inner);
    let e = SafeBag::decode(&spliced).unwrap().open(PASS).unwrap_err();
    assert!(matches!(e, Error::BadSafeBag { .. }), "{e}");
}

/// (PBES2, PBKDF2, PRF, cipher) object identifiers, the key size and the salt length.
fn algorithms(der: &[u8]) -> (String, String, String, String, usize, usize) {
    let info = EncryptedPrivateKeyInfoRef::try_from(der).unwrap();
    let scheme = &info.encryption_algorithm;
    let p = scheme.pbes2().unwrap();
    let kdf = p.kdf.pbkdf2().unwrap();
    (
        scheme.oid().to_string(),
        p.kdf.oid().to_string(),
        kdf.prf.oid().to_string(),
        p.encryption.oid().to_string(),
        p.encryption.key_size(),
        kdf.salt.as_ref().len(),
    )
}

#[test]
fn export_round_trips_and_matches_ndn_cxx_algorithms() {
    let src = TempDir::new("export-src");
    let kc = Keychain::open(&src.0).unwrap();
    let ecdsa = kc
        .import_safebag(&vector("ecdsa.safebag.b64"), PASS)
        .unwrap();
    let rsa = kc.import_safebag(&vector("rsa.safebag.b64"), PASS).unwrap();
    let (ed, _) = kc
        .create_identity(&n("/example/ed"), NOW_MS / 1000, 86400)
        .unwrap();
    let reference = SafeBag::decode(&vector("ecdsa.safebag.b64")).unwrap();
    let (pbes2, pbkdf2, prf, cipher, _, _) = algorithms(reference.encrypted_key());
    assert_eq!(
        (
            pbes2.as_str(),
            pbkdf2.as_str(),
            prf.as_str(),
            cipher.as_str()
        ),
        (
            "1.2.840.113549.1.5.13",
            "1.2.840.113549.1.5.12",
            "1.2.840.113549.2.9",
            "2.16.840.1.101.3.4.1.42"
        ),
        "the vector is PBES2 / PBKDF2 / hmacWithSHA256 / aes-256-cbc"
    );

    for key_name in [ecdsa, rsa, ed.key_name().clone()] {
        let bag = kc
            .export_safebag(&key_name, b"another passphrase", MIN_SAFEBAG_ITERATIONS + 1)
            .unwrap();
        assert_eq!(bag.iterations().unwrap(), MIN_SAFEBAG_ITERATIONS + 1);
        let (a, b, c, d, key_size, salt) = algorithms(bag.encrypted_key());
        assert_eq!((&a, &b, &c, &d), (&pbes2, &pbkdf2, &prf, &cipher));
        assert_eq!((key_size, salt), (32, 16));
        // Base64 with line breaks, as ndnsec writes it; the TLV form reads too.
        let text = bag.to_base64();
        assert!(text.lines().all(|l| l.len() <= 64));
        assert_eq!(SafeBag::decode(text.as_bytes()).unwrap(), bag);
        assert_eq!(SafeBag::decode(&bag.to_wire()).unwrap(), bag);

        let dst = TempDir::new("export-dst");
        let other = Keychain::open(&dst.0).unwrap();
        assert!(matches!(
            other.import_safebag(text.as_bytes(), PASS),
            Err(Error::WrongPassphrase)
        ));
        let back = other
            .import_safebag(text.as_bytes(), b"another passphrase")
            .unwrap();
        assert_eq!(back, key_name);
        let orig = kc.private_key(&key_name).unwrap();
        let copy = other.private_key(&key_name).unwrap();
        assert_eq!(copy.public_key(), orig.public_key());
        assert_eq!(*copy.to_pkcs8_der().unwrap(), *orig.to_pkcs8_der().unwrap());
        let d = signed_by(&copy, "/example/roundtrip");
        verify_data_key(&d, &orig.public_key()).unwrap();
    }

    // Too few iterations are refused on export (the floor is ndnsec's 2048 times ~50).
    let e = kc
        .export_safebag(&ed.key_name().clone(), b"p", MIN_SAFEBAG_ITERATIONS - 1)
        .unwrap_err();
    assert!(e.to_string().contains("below the minimum"), "{e}");
    assert!(
        kc.export_safebag(&ed.key_name().clone(), b"p", 2048)
            .is_err()
    );
}

fn have_python_ndn() -> bool {
    python_common::have_python_ndn("the SafeBag interop test")
}

#[test]
fn python_ndn_reads_amicn_safebags() {
    if !have_python_ndn() {
        return;
    }
    let dir = TempDir::new("python");
    let kc = Keychain::open(&dir.0).unwrap();
    let ecdsa = kc
        .import_safebag(&vector("ecdsa.safebag.b64"), PASS)
        .unwrap();
    let rsa = kc.import_safebag(&vector("rsa.safebag.b64"), PASS).unwrap();
    std::fs::create_dir_all(dir.0.join("out")).unwrap();
    for key_name in [ecdsa, rsa] {
        let bag = kc
            .export_safebag(&key_name, b"py passphrase", MIN_SAFEBAG_ITERATIONS)
            .unwrap();
        let path = dir.0.join("out/bag.b64");
        std::fs::write(&path, bag.to_base64()).unwrap();
        let out = std::process::Command::new("python3")
            .arg(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/identity_vectors/py_read_safebag.py"),
            )
            .arg(&path)
            .arg("py passphrase")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // python-ndn printed the certificate name it parsed and a Data it signed with the
        // decrypted key; amicn verifies that Data under the exported certificate.
        let mut lines = stdout.lines();
        assert_eq!(
            lines.next().unwrap(),
            hex::encode(bag.certificate().name().to_wire())
        );
        let data = Data::decode(Bytes::from(hex::decode(lines.next().unwrap()).unwrap())).unwrap();
        verify_data_key(&data, bag.certificate().key()).unwrap();
        assert!(data.name.to_string().starts_with("/python/signed"));
    }
}

#[test]
fn python_ndn_tpm_keys_import() {
    if !have_python_ndn() {
        return;
    }
    let dir = TempDir::new("tpm");
    std::fs::create_dir_all(dir.0.join("tpm")).unwrap();
    let out = std::process::Command::new("python3")
        .arg(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/identity_vectors/py_tpm_keys.py"),
        )
        .arg(dir.0.join("tpm"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kc = Keychain::open(dir.0.join("kc")).unwrap();
    let mut seen = Vec::new();
    for line in stdout.lines() {
        let mut parts = line.split(' ');
        let (label, key_file, cert_hex) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        let cert = Certificate::decode(Bytes::from(hex::decode(cert_hex).unwrap())).unwrap();
        let file = std::fs::read(key_file).unwrap();
        // Another key's certificate is refused.
        if let Some(other) = seen.last() {
            assert!(kc.import_private_key(&file, other).is_err());
        }
        let key_name = kc.import_private_key(&file, &cert).unwrap();
        assert_eq!(key_name, cert.key_name());
        let key = kc.private_key(&key_name).unwrap();
        assert_eq!(
            key.algorithm(),
            if label == "ec" { "ecdsa-p256" } else { "rsa" }
        );
        verify_data_key(&signed_by(&key, "/py/tpm/data"), cert.key()).unwrap();
        // And it leaves again as a SafeBag that reads back.
        let bag = kc
            .export_safebag(&key_name, b"p", MIN_SAFEBAG_ITERATIONS)
            .unwrap();
        assert_eq!(bag.open(b"p").unwrap().public_key(), *cert.key());
        seen.push(cert);
    }
    assert_eq!(seen.len(), 2, "{stdout}");
    assert!(PrivateKey::from_der_any(b"not a key", n("/x/KEY/k")).is_err());
}

/// `ndnsec import` decrypts the EncryptedKey with OpenSSL's PKCS#8 reader; the `openssl`
/// command uses the same code, so it stands in for ndnsec where ndn-cxx is not installed.
#[test]
fn openssl_decrypts_amicn_safebag_keys() {
    let have = std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        eprintln!("openssl not installed; skipping");
        return;
    }
    let dir = TempDir::new("openssl");
    let kc = Keychain::open(dir.0.join("kc")).unwrap();
    let ecdsa = kc
        .import_safebag(&vector("ecdsa.safebag.b64"), PASS)
        .unwrap();
    let rsa = kc.import_safebag(&vector("rsa.safebag.b64"), PASS).unwrap();
    let (ed, _) = kc
        .create_identity(&n("/example/ed"), NOW_MS / 1000, 86400)
        .unwrap();
    std::fs::write(dir.0.join("pass"), "openssl passphrase").unwrap();
    for key_name in [ecdsa, rsa, ed.key_name().clone()] {
        let bag = kc
            .export_safebag(&key_name, b"openssl passphrase", MIN_SAFEBAG_ITERATIONS)
            .unwrap();
        let enc = dir.0.join("key.p8");
        std::fs::write(&enc, bag.encrypted_key()).unwrap();
        let pass_arg = format!("file:{}", dir.0.join("pass").display());
        let out = std::process::Command::new("openssl")
            .args(["pkey", "-inform", "DER", "-in"])
            .arg(&enc)
            .args(["-passin", &pass_arg, "-pubout", "-outform", "DER"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{key_name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The public key OpenSSL derives from the decrypted private key is the certificate's.
        assert_eq!(out.stdout, bag.certificate().key().to_spki(), "{key_name}");
        // And the wrong passphrase fails there too.
        std::fs::write(dir.0.join("wrong"), "not it").unwrap();
        let wrong = format!("file:{}", dir.0.join("wrong").display());
        let out = std::process::Command::new("openssl")
            .args(["pkey", "-inform", "DER", "-in"])
            .arg(&enc)
            .args(["-passin", &wrong, "-pubout", "-outform", "DER"])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{key_name}");
    }
}
