//! Runs the `meter_command`, `safebag` and `dr_ack` fuzz targets' checks (the same code, from
//! `fuzz/fuzz_targets/common`) over their seed corpora in `fuzz/corpus`, their truncations and
//! mutations, so CI replays them without libFuzzer. The seeds come from the real encoders:
//! `AMICN_FUZZ_SEEDS=fuzz/corpus cargo test -p amicn-ami --test fuzz_corpus -- --ignored`
//! writes them again.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[allow(unreachable_pub, dead_code)]
#[path = "../../fuzz/fuzz_targets/common/meter_command.rs"]
mod meter_command;

#[allow(unreachable_pub, dead_code)]
#[path = "../../fuzz/fuzz_targets/common/safebag.rs"]
mod safebag;

#[allow(unreachable_pub, dead_code)]
#[path = "../../fuzz/fuzz_targets/common/dr_ack.rs"]
mod dr_ack;

use std::path::{Path, PathBuf};

use amicn_ami::ops::CommandParams;
use amicn_ami::{AmiNames, DrAck, Pki, now_ms};
use amicn_kms::identity::KeyPair;
use amicn_kms::safebag::{MIN_SAFEBAG_ITERATIONS, PrivateKey, SafeBag};
use amicn_tlv::{Interest, Name};
use bytes::Bytes;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus");
const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../kms/tests/identity_vectors/ndn-cxx-keys"
);

fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(Path::new(CORPUS).join(target))
        .unwrap()
        .map(|f| {
            let p = f.unwrap().path();
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    v.sort();
    v
}

/// Seeded generator, so a failing mutation repeats.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(v.len());
        match rng.below(4) {
            0 if !v.is_empty() => v[at] ^= 1 << rng.below(8),
            1 if !v.is_empty() => v[at] = rng.next() as u8,
            2 => v.insert(at, rng.next() as u8),
            _ if !v.is_empty() => {
                v.remove(at);
            }
            _ => {}
        }
    }
    v
}

/// Runs `check` over every seed of `target`, its truncations (every `step` bytes) and
/// `mutations` mutated copies; returns how many seeds `check` counted.
fn replay(target: &str, step: usize, mutations: usize, check: impl Fn(&[u8]) -> usize) -> usize {
    let all = seeds(target);
    assert!(all.len() >= 3, "{target} corpus has {} files", all.len());
    let mut rng = Rng(0x5EED_0000 + target.len() as u64);
    let mut counted = 0;
    for (path, seed) in &all {
        let n = check(seed);
        eprintln!("{}: {n}", path.display());
        counted += usize::from(n > 0);
        for cut in (0..seed.len()).step_by(step) {
            check(&seed[..cut]);
        }
        for _ in 0..mutations {
            check(&mutate(seed, &mut rng));
        }
    }
    counted
}

#[test]
fn meter_command_corpus_replays() {
    // Each program signs its commands afresh, so the seeds execute commands now too.
    let executed = replay("meter_command", 7, 60, meter_command::run);
    assert!(executed >= 3, "{executed} seeds executed a command");
}

#[test]
fn safebag_corpus_replays() {
    let opened = replay("safebag", 97, 40, |b| usize::from(safebag::run(b)));
    // The ndn-cxx vectors (TLV and base64, 2048 iterations) open with the passphrase.
    assert!(opened >= 4, "{opened} seeds opened");
}

#[test]
fn dr_ack_corpus_replays() {
    let decoded = replay("dr_ack", 1, 500, |b| usize::from(dr_ack::run(b)));
    assert!(decoded >= 3, "{decoded} seeds decoded");
}

/// One `meter_command` step 0: a command by `who` (0 operator, 1 MDMS, 2 DR, 3 stranger,
/// 4 meter), `verb` (0 read .. 3 limit), to meter `to` naming `target` in its parameters.
fn command_step(who: u8, verb: u8, to: u8, target: u8, limit: u32, mutation: u8) -> Vec<u8> {
    let mut v = vec![0, who, verb, to - 1, target - 1];
    v.extend_from_slice(&limit.to_be_bytes());
    v.extend_from_slice(&[1, mutation]);
    v
}

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

    // meter_command: programs (the harness signs with its test PKI) and one whole command
    // Interest as the head-end's encoder writes it.
    put(
        "meter_command",
        "operator-connect",
        &command_step(0, 1, 1, 1, 0, 0),
    );
    put(
        "meter_command",
        "mdms-read",
        &command_step(1, 0, 1, 1, 0, 0),
    );
    let mut p = command_step(0, 3, 1, 1, 5_000, 0);
    p.extend(command_step(0, 2, 1, 1, 0, 0));
    p.push(3);
    put("meter_command", "limit-disconnect-replay", &p);
    put(
        "meter_command",
        "mdms-disconnect",
        &command_step(1, 2, 1, 1, 0, 0),
    );
    put(
        "meter_command",
        "wrong-meter",
        &command_step(0, 1, 1, 2, 0, 0),
    );
    put(
        "meter_command",
        "flipped-signature",
        &command_step(0, 1, 1, 1, 0, 1),
    );
    put(
        "meter_command",
        "stranger-connect",
        &command_step(3, 1, 1, 1, 0, 0),
    );
    put(
        "meter_command",
        "meter-itself",
        &command_step(4, 1, 1, 1, 0, 0),
    );
    let names = AmiNames::new("/u").unwrap();
    let pki = Pki::new(&names).unwrap();
    let operator = pki.issue(&names.role("operator")).unwrap();
    let params = CommandParams {
        meter: 1,
        limit_w: Some(3_000),
        certificate: Some(operator.cert.to_wire()),
    };
    let mut i = Interest::new(names.meter_command(1, "limit"));
    i.app_parameters = Some(params.encode());
    i.lifetime_ms = Some(4_000);
    i.must_be_fresh = true;
    let wire = operator.key.sign_interest(&mut i, now_ms()).unwrap();
    let mut p = vec![2];
    p.extend_from_slice(&(wire.len() as u16).to_be_bytes());
    p.extend_from_slice(&wire);
    put("meter_command", "whole-interest", &p);
    let short = CommandParams {
        meter: 1,
        limit_w: Some(800),
        certificate: None,
    };
    let mut p = vec![1, short.encode().len() as u8];
    p.extend_from_slice(&short.encode());
    put("meter_command", "limit-params", &p);

    // safebag: the ndn-cxx vectors as ndnsec writes them and as TLV, and amicn's own export.
    for k in ["ecdsa", "rsa"] {
        let text = std::fs::read(format!("{VECTORS}/{k}.safebag.b64")).unwrap();
        let bag = SafeBag::decode(&text).unwrap();
        put("safebag", &format!("ndnsec-{k}.b64"), &text);
        put("safebag", &format!("ndnsec-{k}.tlv"), &bag.to_wire());
    }
    let kp =
        KeyPair::from_seed(&[4; 32], Name::from_uri("/u/ami/meter/7/KEY/%01").unwrap()).unwrap();
    let cert = amicn_kms::cert::Certificate::self_signed(
        &kp,
        1,
        amicn_kms::cert::Validity {
            not_before: 1_700_000_000,
            not_after: 1_800_000_000,
        },
    )
    .unwrap();
    let key = PrivateKey::Ed25519(kp);
    let bag = SafeBag::seal(&key, &cert, safebag::PASSPHRASE, MIN_SAFEBAG_ITERATIONS).unwrap();
    put("safebag", "amicn-ed25519.tlv", &bag.to_wire());

    // dr_ack: acknowledgements as members send them.
    let member = pki.issue(&names.meter(7)).unwrap().cert.to_wire();
    for (name, opt_in, start) in [("opt-in", true, Some(120)), ("opt-out", false, None)] {
        let ack = DrAck {
            meter: 7,
            project: "p1".into(),
            seq: 3,
            event_id: "p1/3".into(),
            opt_in,
            start_at_s: start,
            received_us: 1_796_256_000_000_000,
        };
        put("dr_ack", name, &ack.encode(&member));
    }
    let ack = DrAck {
        meter: u32::MAX,
        project: "p-ünïcode".into(),
        seq: u64::MAX,
        event_id: String::new(),
        opt_in: true,
        start_at_s: Some(0),
        received_us: 0,
    };
    put("dr_ack", "extremes", &ack.encode(&Bytes::new()));
}
