//! Golden checks against packets captured from real NDN clients and NFD (shared/vectors): every
//! DigestSha256 signature in them must verify with our signed-portion computation, and flipping
//! one byte of the signed portion must make it fail.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use amicn_kms::identity::{
    verify_data_digest, verify_interest_digest, verify_legacy_command_digest,
};
use amicn_tlv::{Data, Interest, NetPacket, decode_packet, split_first_tlv};
use bytes::Bytes;

/// Captured registration exchanges (copied from the project's shared vectors, hex as captured).
fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/identity_vectors/registration")
}

fn packets(file: &str) -> Vec<NetPacket> {
    let dir = vectors_dir();
    let text = std::fs::read_to_string(dir.join(file)).unwrap();
    let hexs: String = text.split_whitespace().collect();
    let mut buf = Bytes::from(hex::decode(hexs).unwrap());
    let mut out = Vec::new();
    while !buf.is_empty() {
        let len = split_first_tlv(&buf).unwrap().unwrap();
        let one = buf.split_to(len);
        out.push(decode_packet(one).unwrap().packet);
    }
    out
}

/// Flips a byte inside the signed portion of a decoded packet and re-decodes it.
fn tamper_data(d: &Data) -> Data {
    let mut w = d.wire().unwrap().to_vec();
    // The last byte of the Content's value sits inside the signed portion; the Name's first
    // component byte is an alternative when Content is empty.
    let portion = d.signed_portion();
    let start = w
        .windows(portion.len())
        .position(|win| win == &portion[..])
        .unwrap();
    let idx = start + portion.len() / 2;
    w[idx] ^= 0x01;
    Data::decode(Bytes::from(w)).unwrap_or_else(|_| {
        let mut d2 = d.clone();
        d2.content = Bytes::from_static(b"tampered");
        d2.clear_wire();
        d2
    })
}

#[test]
fn captured_digest_signatures_verify() {
    let mut data_checked = 0;
    let mut v03_checked = 0;
    let mut legacy_checked = 0;
    for client in [
        "python-ndn-v1",
        "python-ndn-v2",
        "ndn-cxx-registerPrefix",
        "nfdc-route-add",
        "ndnts",
    ] {
        for dir in ["to-forwarder", "from-forwarder"] {
            for p in packets(&format!("{client}.{dir}.hex")) {
                match p {
                    NetPacket::Data(d) if d.signature_info.sig_type == 0 => {
                        verify_data_digest(&d).unwrap();
                        let bad = tamper_data(&d);
                        assert!(
                            verify_data_digest(&bad).is_err(),
                            "tampered {} accepted",
                            d.name
                        );
                        data_checked += 1;
                    }
                    NetPacket::Interest(i) if i.signature_info.is_some() => {
                        verify_interest_digest(&i).unwrap();
                        let mut bad = i.clone();
                        bad.app_parameters = Some(Bytes::from_static(b"x"));
                        bad.clear_wire();
                        assert!(verify_interest_digest(&bad).is_err());
                        v03_checked += 1;
                    }
                    NetPacket::Interest(i) if client == "python-ndn-v1" => {
                        verify_legacy_command_digest(&i).unwrap();
                        legacy_checked += 1;
                    }
                    _ => {}
                }
            }
        }
    }
    // NFD answers every command with a DigestSha256 Data; four v0.3 clients and one legacy one.
    assert!(data_checked >= 5, "only {data_checked} Data checked");
    assert!(
        v03_checked >= 4,
        "only {v03_checked} signed Interests checked"
    );
    assert_eq!(legacy_checked, 1);
}

#[test]
fn python_ndn_v2_signed_portion_is_exact() {
    let ps = packets("python-ndn-v2.to-forwarder.hex");
    let NetPacket::Interest(i) = &ps[0] else {
        panic!("not an Interest")
    };
    let i: &Interest = i;
    let info = i.signature_info.as_ref().unwrap();
    assert_eq!(info.sig_type, 0);
    assert_eq!(
        info.nonce.as_deref().unwrap(),
        &hex::decode("d3d8fa558005b0dc").unwrap()[..]
    );
    assert_eq!(info.time_ms, Some(0x0000_01a2_0f44_8e80));
    // Signed portion = name components without the digest component, then
    // ApplicationParameters (empty) and InterestSignatureInfo, byte for byte.
    let portion = i.signed_portion();
    let wire = i.wire().unwrap();
    let name_val = &wire[4..4 + 87 - 34];
    assert!(portion.starts_with(name_val));
    assert_eq!(&portion[name_val.len()..name_val.len() + 2], &[0x24, 0x00]);
    assert_eq!(portion.len(), name_val.len() + 2 + 25);
}

/// Ed25519 certificates, a Data and a signed Interest produced by python-ndn 0.5.2
/// (`identity_vectors/python-ndn-ed25519.txt`): our certificate decoder, signed-portion
/// computation, Ed25519 verification and chain validation must accept them.
#[test]
fn python_ndn_ed25519_packets_validate() {
    use amicn_kms::cert::Certificate;
    use amicn_kms::identity::{KeyPair, verify_data, verify_interest};
    use amicn_kms::trust::{CertStore, TrustPolicy, Validator};
    use amicn_tlv::Name;

    let text = include_str!("identity_vectors/python-ndn-ed25519.txt");
    let get = |label: &str| -> Bytes {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{label} ")))
            .unwrap();
        Bytes::from(hex::decode(line.split_whitespace().nth(1).unwrap()).unwrap())
    };
    let root = Certificate::decode(get("root-cert")).unwrap();
    let meter = Certificate::decode(get("meter-cert")).unwrap();
    assert!(root.is_self_signed());
    root.verify_self_signature().unwrap();
    assert_eq!(
        root.key_name(),
        Name::from_uri("/example/KEY/%01%02").unwrap()
    );
    assert_eq!(root.issuer_id(), b"self");
    // The certified keys are the ones derived from the seeds python-ndn was given.
    let root_kp = KeyPair::from_seed(&[0x33; 32], root.key_name()).unwrap();
    let meter_kp = KeyPair::from_seed(&[0x44; 32], meter.key_name()).unwrap();
    assert_eq!(root.public_key(), Some(&root_kp.public_key()));
    assert_eq!(meter.public_key(), Some(&meter_kp.public_key()));
    assert_eq!(root.validity().not_before, 1_767_225_600); // 2026-01-01T00:00:00Z
    assert_eq!(root.validity().not_after, 1_893_456_000); // 2030-01-01T00:00:00Z
    verify_data(meter.data(), root.public_key().unwrap()).unwrap();

    let data = Data::decode(get("data")).unwrap();
    verify_data(&data, meter.public_key().unwrap()).unwrap();
    let interest = Interest::decode(get("interest")).unwrap();
    verify_interest(&interest, meter.public_key().unwrap()).unwrap();

    let policy = TrustPolicy::from_toml(
        r#"
[[rule]]
id = "meter-cert"
data = "/example/ami/meter/<id>/KEY/..."
signer = "/example/KEY/..."

[[rule]]
id = "meter"
data = "/example/ami/meter/<id>/..."
signer = "/example/ami/meter/<id>/KEY/..."
"#,
    )
    .unwrap();
    let mut v = Validator::new(policy);
    v.add_anchor(root.clone()).unwrap();
    let mut store = CertStore::new();
    store.insert(meter.clone());
    let now_ms = 1_795_564_800_000;
    let ok = v.validate_data(&data, &store, now_ms).unwrap();
    assert_eq!(ok.chain, vec![meter.name().clone(), root.name().clone()]);
    v.validate_interest(&interest, &store, now_ms).unwrap();
    // After 2030 the chain has expired.
    assert!(v.validate_data(&data, &store, 1_900_000_000_000).is_err());
}

/// A certificate chain, a Data and a signed Interest made by this crate, as `label hex` lines.
fn our_packets() -> String {
    use amicn_kms::cert::{Certificate, Validity};
    use amicn_kms::identity::KeyPair;
    use amicn_tlv::Name;
    let root = KeyPair::from_seed(&[0x55; 32], Name::from_uri("/example/KEY/r").unwrap()).unwrap();
    let meter = KeyPair::from_seed(
        &[0x66; 32],
        Name::from_uri("/example/ami/meter/7/KEY/m").unwrap(),
    )
    .unwrap();
    let v = Validity::starting_now(1_795_564_800, 86_400);
    let root_cert = Certificate::self_signed(&root, 1, v).unwrap();
    let meter_cert =
        Certificate::issue(meter.key_name(), meter.public_key(), &root, b"root", 1, v).unwrap();
    let mut d = Data::new(
        Name::from_uri("/example/ami/meter/7/reading/1").unwrap(),
        Bytes::from_static(b"kWh=42"),
    );
    let data = meter.sign_data(&mut d).unwrap();
    let mut i = Interest::new(Name::from_uri("/example/ami/meter/7/cmd/read").unwrap());
    i.app_parameters = Some(Bytes::from_static(b"now"));
    let interest = meter.sign_interest(&mut i, 1_795_564_800_000).unwrap();
    format!(
        "root-cert {}\nmeter-cert {}\ndata {}\ninterest {}\n",
        hex::encode(root_cert.to_wire()),
        hex::encode(meter_cert.to_wire()),
        hex::encode(data),
        hex::encode(interest)
    )
}

/// python-ndn parses our certificates, Data and signed Interest, computes the same signed
/// portions and verifies our Ed25519 signatures and parameters digest. Skipped when python-ndn is
/// not installed, unless `AMICN_REQUIRE_INTEROP=1` (as in `scripts/test`).
#[test]
fn python_ndn_verifies_our_packets() {
    let have = std::process::Command::new("python3")
        .args(["-c", "import ndn, Cryptodome"])
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        assert!(
            std::env::var("AMICN_REQUIRE_INTEROP").as_deref() != Ok("1"),
            "python-ndn is required (AMICN_REQUIRE_INTEROP=1) but not importable"
        );
        eprintln!("python-ndn not installed; skipping");
        return;
    }
    let mut rnd = [0u8; 8];
    rand::Rng::fill_bytes(&mut rand::rng(), &mut rnd);
    let file = std::env::temp_dir().join(format!("amicn-kms-ours-{}.txt", hex::encode(rnd)));
    std::fs::write(&file, our_packets()).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/identity_vectors/check_with_python_ndn.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(&file)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&file);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "root /example/KEY/r/self/v=1 2 3600000 b'20261125T000000' b'20261126T000000'",
        "root cert signature ok",
        "meter cert signature ok",
        "data ok /example/ami/meter/7/reading/1 /example/ami/meter/7/KEY/m",
        "interest ok",
        "digest ok True",
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "missing {line:?} in:\n{stdout}"
        );
    }
}

/// Prints [`our_packets`] for checking by hand
/// (`cargo test -p amicn-kms --test identity_golden -- --ignored --nocapture`).
#[test]
#[ignore = "prints packets for an external cross-check"]
fn print_packets_for_python_ndn() {
    print!("{}", our_packets());
}
