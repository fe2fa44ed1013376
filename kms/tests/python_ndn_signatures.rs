//! Interop with python-ndn 0.5.2: amicn verifies the ECDSA- and RSA-signed certificates and Data
//! python-ndn makes, and python-ndn's own verifiers accept amicn's ECDSA- and Ed25519-signed
//! certificates and Data. Skipped when python-ndn is not installed, unless
//! `AMICN_REQUIRE_INTEROP=1` (as in `scripts/test`).
#![allow(clippy::unwrap_used, missing_docs)]

mod python_common;

use std::collections::HashMap;
use std::path::PathBuf;

use amicn_kms::Error;
use amicn_kms::cert::{Certificate, Validity};
use amicn_kms::identity::KeyPair;
use amicn_kms::signature::{EcdsaSigner, Signer, sign_data, verify_data_key};
use amicn_kms::trust::{CertStore, TrustPolicy, Validator};
use amicn_tlv::{Data, Name};
use bytes::Bytes;

fn have_python_ndn() -> bool {
    python_common::have_python_ndn("the python-ndn signature tests")
}

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/identity_vectors")
        .join(name)
}

fn run(args: &[&std::ffi::OsStr]) -> String {
    let out = std::process::Command::new("python3")
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn n(s: &str) -> Name {
    Name::from_uri(s).unwrap()
}

#[test]
fn amicn_verifies_python_ndn_ecdsa_and_rsa() {
    if !have_python_ndn() {
        return;
    }
    let out = run(&[script("py_sign_ecdsa_rsa.py").as_os_str()]);
    let packets: HashMap<&str, Bytes> = out
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k, Bytes::from(hex::decode(v.trim()).unwrap())))
        .collect();
    for (label, sig_type, algorithm) in [("ecdsa", 3, "ECDSA P-256"), ("rsa", 1, "RSA")] {
        let cert = Certificate::decode(packets[format!("{label}-cert").as_str()].clone()).unwrap();
        assert_eq!(cert.key().algorithm(), algorithm);
        assert_eq!(cert.data().signature_info.sig_type, sig_type);
        assert!(cert.is_self_signed());
        cert.verify_self_signature().unwrap();
        let wire = packets[format!("{label}-data").as_str()].clone();
        let data = Data::decode(wire.clone()).unwrap();
        assert_eq!(data.signature_info.sig_type, sig_type);
        verify_data_key(&data, cert.key()).unwrap();

        let policy = TrustPolicy::from_toml(&format!(
            "[[rule]]\nid = \"py\"\ndata = \"/py/{label}/data/...\"\nsigner = \"/py/{label}/KEY/...\"\n"
        ))
        .unwrap();
        let mut v = Validator::new(policy);
        v.add_anchor(cert.clone()).unwrap();
        let ok = v.validate_data(&data, &CertStore::new(), now_ms()).unwrap();
        assert_eq!(ok.chain, vec![cert.name().clone()]);

        let mut w = wire.to_vec();
        let at = w.windows(6).position(|x| x == b"signed").unwrap();
        w[at] ^= 1;
        let bad = Data::decode(Bytes::from(w)).unwrap();
        assert!(matches!(
            v.validate_data(&bad, &CertStore::new(), now_ms()),
            Err(Error::BadSignature { .. })
        ));
    }
}

#[test]
fn python_ndn_verifies_amicn_ecdsa_and_ed25519() {
    if !have_python_ndn() {
        return;
    }
    let now_s = now_ms() / 1000;
    let validity = Validity::starting_now(now_s - 60, 86_400);
    let ecdsa_key = n("/amicn/ecdsa/KEY/k1");
    let ecdsa = EcdsaSigner::generate(ecdsa_key.clone());
    let ecdsa_cert = Certificate::self_signed_by(&ecdsa, &ecdsa_key, 1, validity).unwrap();
    let ed = KeyPair::generate(&n("/amicn/ed25519"));
    let ed_cert = Certificate::self_signed(&ed, 1, validity).unwrap();
    let mut lines = String::new();
    for (label, signer, cert) in [
        ("ecdsa", &ecdsa as &dyn Signer, &ecdsa_cert),
        ("ed25519", &ed as &dyn Signer, &ed_cert),
    ] {
        let mut d = Data::new(
            n(&format!("/amicn/{label}/data/v=1")),
            Bytes::from(format!("signed by amicn {label}")),
        );
        let wire = sign_data(signer, &mut d);
        lines += &format!("{label}-cert {}\n", hex::encode(cert.to_wire()));
        lines += &format!("{label}-data {}\n", hex::encode(wire));
    }
    let mut rnd = [0u8; 8];
    rand::Rng::fill_bytes(&mut rand::rng(), &mut rnd);
    let file = std::env::temp_dir().join(format!("amicn-kms-sigs-{}.txt", hex::encode(rnd)));
    std::fs::write(&file, lines).unwrap();
    let out = run(&[script("py_verify_amicn.py").as_os_str(), file.as_os_str()]);
    let _ = std::fs::remove_file(&file);
    for line in [
        "ecdsa ok /amicn/ecdsa/data/v=1 3 signed by amicn ecdsa",
        "ecdsa tampered refused True",
        "ed25519 ok /amicn/ed25519/data/v=1 5 signed by amicn ed25519",
        "ed25519 tampered refused True",
    ] {
        assert!(
            out.lines().any(|l| l == line),
            "missing {line:?} in:\n{out}"
        );
    }
}
