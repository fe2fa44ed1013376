//! Rekey manifests and wraps as a member receives them: arbitrary manifest bytes (signature
//! accepted, so the decoder and the member's key update see everything) and arbitrary wrap
//! payloads returned for whatever wrap names the member asks for.
//!
//! Input: `[split_hi, split_lo, manifest..., wrap payloads...]`.
#![no_main]

use amicn_kms::SymmetricKey;
use amicn_kms::graph::{Manifest, MemberState, SignedManifest, WRAP_LEN, Wrap, WrapMode};
use libfuzzer_sys::fuzz_target;

fn accept(_: &[u8], _: &[u8]) -> Result<(), String> {
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let [hi, lo, body @ ..] = data else {
        return;
    };
    let split = (usize::from(*hi) << 8 | usize::from(*lo)).min(body.len());
    let (manifest, pool) = body.split_at(split);
    let decoded = Manifest::decode(manifest);
    if let Ok(m) = &decoded {
        let again = Manifest::decode(&m.encode()).expect("re-encoded manifest decodes");
        assert_eq!(&again, m);
        let _ = m.changed_keys();
    }
    let _ = Manifest::peek_epoch(manifest);
    let signed = SignedManifest {
        bytes: manifest.to_vec(),
        signature: vec![0; 64],
    };
    // A fresh member, one named by the first join (so it gets placed and fetches wraps) and
    // one named by the first departure.
    let mut meters = vec![7u32];
    if let Ok(m) = &decoded {
        meters.extend(m.joins.first().map(|j| j.meter));
        meters.extend(m.departs.first().copied());
    }
    for meter in meters {
        let prefix = decoded.as_ref().map_or("/ami/kms", |m| m.prefix.as_str());
        let mut member = MemberState::new(prefix, meter, SymmetricKey::from_bytes([3; 32]));
        let mut chunks = pool.chunks(WRAP_LEN);
        let mut fetch = |name: &str| {
            let chunk = chunks.next()?;
            let mut payload = [0u8; WRAP_LEN];
            payload[..chunk.len()].copy_from_slice(chunk);
            Some(Wrap {
                name: name.to_string(),
                mode: WrapMode::Multicast,
                payload,
            })
        };
        let first = member.ingest(&signed, &accept, &mut fetch);
        let _ = member.keys();
        // The same manifest again is always stale once it was taken.
        if first.is_ok() {
            assert!(member.ingest(&signed, &accept, &mut fetch).is_err());
        }
    }
});
