//! Damaged key-management input never panics: rekey manifests and wraps a meter receives,
//! content envelopes, certificates, export files and saved state are taken from real encodings
//! and mutated deterministically (bit flips, truncations, byte overwrites, insertions,
//! deletions and splices from a seeded generator), then fed to the same decoders the
//! `kms_*` fuzz targets drive. Each family also checks that the undamaged input still works, so
//! a decoder that rejected everything would fail here.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::Path;

use amicn_kms::SymmetricKey;
use amicn_kms::cert::{Certificate, Validity};
use amicn_kms::envelope::{EncryptedContent, EnvelopeKey, Purpose};
use amicn_kms::graph::{
    GraphConfig, KeyGraph, Manifest, MemberState, SignedManifest, WRAP_LEN, Wrap,
};
use amicn_kms::identity::KeyPair;
use amicn_kms::keychain::decode_export;
use amicn_kms::persist::{decode_graph, decode_member, encode_graph, encode_member};
use amicn_kms::replay::{ReplayChecker, ReplayConfig};
use amicn_tlv::Name;
use bytes::Bytes;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{Rng as _, RngExt, SeedableRng};

/// Mutation choices from a seeded generator, so a failing case repeats with its seed.
struct Rng(Xoshiro256PlusPlus);

impl Rng {
    fn seeded(seed: u64) -> Self {
        Rng(Xoshiro256PlusPlus::seed_from_u64(seed))
    }

    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { self.0.random_range(0..n) }
    }
}

/// Every truncation, up to `flips` single-bit flips spread over the input, and `random`
/// seeded multi-step mutations (some spliced with `other`).
fn mutations(
    seed: &[u8],
    other: &[u8],
    flips: usize,
    random: usize,
    rng: &mut Rng,
) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for n in 0..seed.len() {
        out.push(seed[..n].to_vec());
    }
    let bits = seed.len() * 8;
    let step = (bits / flips.max(1)).max(1);
    for b in (0..bits).step_by(step) {
        let mut m = seed.to_vec();
        m[b / 8] ^= 1 << (b % 8);
        out.push(m);
    }
    for _ in 0..random {
        let mut m = seed.to_vec();
        for _ in 0..=rng.below(3) {
            match rng.below(6) {
                0 if !m.is_empty() => {
                    let i = rng.below(m.len());
                    m[i] = rng.next() as u8;
                }
                1 if !m.is_empty() => {
                    let i = rng.below(m.len());
                    m[i] = [0, 0xff, 0xfd, 0xfe, 0x7f, 0x80][rng.below(6)];
                }
                2 => {
                    let i = rng.below(m.len() + 1);
                    let v = rng.next() as u8;
                    m.insert(i, v);
                }
                3 if !m.is_empty() => {
                    let i = rng.below(m.len());
                    let n = rng.below(m.len() - i + 1);
                    m.drain(i..i + n);
                }
                4 if !other.is_empty() => {
                    let cut = rng.below(m.len() + 1);
                    let from = rng.below(other.len());
                    m.truncate(cut);
                    m.extend_from_slice(&other[from..]);
                }
                _ => {
                    let n = rng.below(m.len() + 1);
                    m.truncate(n);
                }
            }
        }
        out.push(m);
    }
    out
}

fn signer(b: &[u8]) -> Vec<u8> {
    // The members below accept any signature; the signer only has to be deterministic.
    b.iter().take(8).copied().collect()
}

fn accept(_: &[u8], _: &[u8]) -> Result<(), String> {
    Ok(())
}

const PREFIX: &str = "/ami/kms";

fn user_key(meter: u32) -> SymmetricKey {
    SymmetricKey::from_bytes([meter as u8; 32])
}

/// A small key graph with two projects, five meters joined and one gone: every manifest and
/// wrap it published, and the final graph.
fn world() -> (KeyGraph, Vec<SignedManifest>, HashMap<String, Wrap>) {
    let cfg = GraphConfig {
        prefix: PREFIX.into(),
        degree: 3,
        ratchet_joins: true,
    };
    let mut g = KeyGraph::with_seed(cfg, 11).unwrap();
    g.add_project("dr-east").unwrap();
    g.add_project("dr-west").unwrap();
    let mut signed = Vec::new();
    let mut wraps = HashMap::new();
    let mut keep = |r: amicn_kms::graph::Rekey| {
        signed.push(r.signed);
        for w in r.wraps {
            wraps.insert(w.name.clone(), w);
        }
    };
    for m in 1..=5u32 {
        let p: &[&str] = if m % 2 == 0 {
            &["dr-east"]
        } else {
            &["dr-west"]
        };
        keep(g.join(m, p, user_key(m), &signer).unwrap());
    }
    keep(g.leave(2, &signer).unwrap());
    (g, signed, wraps)
}

fn member_before(
    signed: &[SignedManifest],
    wraps: &HashMap<String, Wrap>,
    meter: u32,
    upto: usize,
) -> MemberState {
    let mut m = MemberState::new(PREFIX, meter, user_key(meter));
    for s in &signed[..upto] {
        m.ingest(s, &accept, &mut |n: &str| wraps.get(n).cloned())
            .unwrap();
    }
    m
}

#[test]
fn damaged_manifests_and_wraps_give_errors_not_panics() {
    let (_, signed, wraps) = world();
    let mut rng = Rng::seeded(1);
    // Meter 3 joins in the third manifest and sees every later one.
    let meter = 3;
    let good = member_before(&signed, &wraps, meter, signed.len());
    assert!(
        good.root_key().is_some(),
        "the undamaged history gives the broadcast key"
    );
    let path = Path::new("member.state");
    let mut rejected = 0u32;
    for at in 2..signed.len() {
        let base = encode_member(&member_before(&signed, &wraps, meter, at));
        let other = &signed[(at + 1) % signed.len()].bytes;
        for bytes in mutations(&signed[at].bytes, other, 400, 300, &mut rng) {
            if let Ok(m) = Manifest::decode(&bytes) {
                assert_eq!(Manifest::decode(&m.encode()).unwrap(), m);
            }
            let mut member = decode_member(&base, path).unwrap();
            let s = SignedManifest {
                bytes,
                signature: signed[at].signature.clone(),
            };
            if member
                .ingest(&s, &accept, &mut |n: &str| wraps.get(n).cloned())
                .is_err()
            {
                rejected += 1;
            }
        }
        // Right manifest, damaged wraps: authentication fails with an error naming the wrap.
        let mut member = decode_member(&base, path).unwrap();
        let mut fetched = 0;
        let r = member.ingest(&signed[at], &accept, &mut |n: &str| {
            fetched += 1;
            let mut w = wraps.get(n).cloned()?;
            let i = rng.below(WRAP_LEN);
            w.payload[i] ^= 1 << rng.below(8);
            Some(w)
        });
        if fetched > 0 {
            assert!(r.is_err(), "a damaged wrap must not open");
        }
        // Wraps missing entirely.
        let mut member = decode_member(&base, path).unwrap();
        let _ = member.ingest(&signed[at], &accept, &mut |_: &str| None);
    }
    assert!(rejected > 0);
}

#[test]
fn damaged_envelopes_never_open_to_other_plaintext() {
    let key_name = Name::from_uri("/ami/kms/KEY/dr-east/v=4").unwrap();
    let data_name = Name::from_uri("/ami/meter/7/reading/seq=1").unwrap();
    let key = EnvelopeKey::derive(
        &SymmetricKey::from_bytes([5; 32]),
        &key_name,
        Purpose::Content,
    );
    let plain = b"kWh=12.5;t=1700000000";
    let sealed = key.seal(&data_name, plain).unwrap();
    assert_eq!(&key.open(&data_name, &sealed).unwrap()[..], plain);
    let other = key.seal(&data_name, b"other").unwrap();
    let mut rng = Rng::seeded(2);
    let mut opened = 0;
    for m in mutations(&sealed, &other, 2000, 3000, &mut rng) {
        let m = Bytes::from(m);
        if let Ok(ec) = EncryptedContent::decode(m.clone()) {
            let _ = key.open_decoded(&data_name, &ec);
        }
        if let Ok(p) = key.open(&data_name, &m) {
            assert_eq!(&p[..], plain, "only the sealed plaintext ever opens");
            if m != sealed {
                opened += 1;
            }
        }
    }
    assert_eq!(opened, 0, "every change to a sealed envelope is detected");
}

#[test]
fn damaged_certificates_and_exports_give_errors() {
    let kp = KeyPair::from_seed(&[4; 32], Name::from_uri("/ami/meter/7/KEY/%01").unwrap()).unwrap();
    let cert = Certificate::self_signed(
        &kp,
        1,
        Validity {
            not_before: 1_700_000_000,
            not_after: 1_800_000_000,
        },
    )
    .unwrap();
    let wire = cert.to_wire().to_vec();
    let decoded = Certificate::decode(Bytes::from(wire.clone())).unwrap();
    decoded.verify_self_signature().unwrap();
    let mut rng = Rng::seeded(3);
    let mut verified = 0;
    for m in mutations(&wire, b"\x06\x05\x07\x03\x08\x01x", 1500, 3000, &mut rng) {
        if let Ok(c) = Certificate::decode(Bytes::from(m)) {
            let _ = (
                c.key_name(),
                c.identity(),
                c.issuer_id(),
                c.version(),
                c.signer(),
            );
            let _ = c.check_validity(1_750_000_000);
            if c.verify_self_signature().is_ok() {
                verified += 1;
                assert_eq!(c.public_key(), cert.public_key());
            }
        }
    }
    assert!(verified < 50, "{verified} damaged certificates verified");
    let text = format!(
        "format = \"amicn-identity-v1\"\nkey_name = \"{}\"\ncertificate = \"{}\"\nsecret = \"{}\"\n",
        kp.key_name(),
        hex(&wire),
        hex(&[4; 32])
    );
    let other = "[encrypted]\nkdf = \"pbkdf2\"\niterations = 1\nsalt = \"00\"\nnonce = \"zz\"\n";
    for m in mutations(text.as_bytes(), other.as_bytes(), 600, 1500, &mut rng) {
        if let Ok(t) = std::str::from_utf8(&m) {
            let _ = decode_export(t, None);
            let _ = decode_export(t, Some("pw"));
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn damaged_saved_state_gives_errors() {
    let (g, signed, wraps) = world();
    let path = Path::new("kms.state");
    let graph = encode_graph(&g);
    assert!(decode_graph(&graph, path).is_ok());
    let member = encode_member(&member_before(&signed, &wraps, 3, signed.len()));
    assert!(decode_member(&member, path).is_ok());
    let mut rng = Rng::seeded(4);
    let mut rejected = 0;
    for m in mutations(&graph, &member, 1500, 1500, &mut rng) {
        if decode_graph(&m, path).is_err() {
            rejected += 1;
        }
        let _ = decode_member(&m, path);
    }
    for m in mutations(&member, &graph, 1500, 1500, &mut rng) {
        let _ = decode_graph(&m, path);
        if decode_member(&m, path).is_err() {
            rejected += 1;
        }
    }
    assert!(rejected > 1000);

    let mut replay = ReplayChecker::new(ReplayConfig::default());
    let k = Name::from_uri("/ami/meter/9/KEY/%01").unwrap();
    replay
        .check(&k, Some(1_000), Some(&[1, 2, 3]), 1_000)
        .unwrap();
    let saved = replay.to_bytes();
    assert!(ReplayChecker::from_bytes(&saved).is_ok());
    for m in mutations(&saved, b"{\"config\":null}", 800, 1500, &mut rng) {
        let _ = ReplayChecker::from_bytes(&m);
    }
}

/// Writes the undamaged encodings above as starting corpora for the `kms_*` fuzz targets:
/// `AMICN_FUZZ_SEEDS=fuzz/corpus cargo test -p amicn-kms --test robust_decoders -- --ignored`.
#[test]
#[ignore = "writes files; run by hand to refresh fuzz seeds"]
fn write_fuzz_seeds() {
    let Some(dir) = std::env::var_os("AMICN_FUZZ_SEEDS") else {
        return;
    };
    let dir = Path::new(&dir);
    let put = |target: &str, name: &str, bytes: &[u8]| {
        let d = dir.join(target);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(name), bytes).unwrap();
    };
    let (g, signed, wraps) = world();
    for (i, s) in signed.iter().enumerate().skip(2).step_by(2) {
        let mut input = (s.bytes.len() as u16).to_be_bytes().to_vec();
        input.extend_from_slice(&s.bytes);
        for w in wraps.values().take(4) {
            input.extend_from_slice(&w.payload);
        }
        put("kms_manifest", &format!("manifest-{i}"), &input);
    }
    let key_name = Name::from_uri("/ami/kms/KEY/root/v=1").unwrap();
    let data_name = Name::from_uri("/ami/meter/7/reading/seq=1").unwrap();
    let key = EnvelopeKey::derive(
        &SymmetricKey::from_bytes([9; 32]),
        &key_name,
        Purpose::Content,
    );
    put(
        "kms_envelope",
        "sealed",
        &key.seal(&data_name, b"kWh=12.5").unwrap(),
    );
    let kp = KeyPair::from_seed(&[4; 32], Name::from_uri("/ami/meter/7/KEY/%01").unwrap()).unwrap();
    let validity = Validity {
        not_before: 1_700_000_000,
        not_after: 1_800_000_000,
    };
    let cert = Certificate::self_signed(&kp, 1, validity).unwrap();
    put("kms_cert", "self-signed", &cert.to_wire());
    put("kms_persist", "graph", &encode_graph(&g));
    put(
        "kms_persist",
        "member",
        &encode_member(&member_before(&signed, &wraps, 3, signed.len())),
    );
}

#[test]
fn an_export_asking_for_billions_of_kdf_iterations_is_refused_at_once() {
    let kp = KeyPair::from_seed(&[4; 32], Name::from_uri("/ami/meter/7/KEY/%01").unwrap()).unwrap();
    let validity = Validity {
        not_before: 1_700_000_000,
        not_after: 1_800_000_000,
    };
    let cert = Certificate::self_signed(&kp, 1, validity).unwrap();
    let text = format!(
        "format = \"amicn-identity-v1\"\nkey_name = \"{}\"\ncertificate = \"{}\"\n\n[encrypted]\n\
         kdf = \"pbkdf2-hmac-sha256+hkdf-sha256\"\naead = \"xchacha20poly1305\"\n\
         iterations = 4294967295\nsalt = \"{}\"\nnonce = \"{}\"\nciphertext = \"{}\"\n",
        kp.key_name(),
        hex(&cert.to_wire()),
        hex(&[1; 16]),
        hex(&[2; 24]),
        hex(&[3; 48]),
    );
    let err = decode_export(&text, Some("pw")).unwrap_err();
    assert!(err.to_string().contains("iterations"), "{err}");
}
