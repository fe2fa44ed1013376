//! The repository's insert path: arbitrary bytes as an insert command Interest checked by the
//! insert policy (one configured publisher), and as Data stored directly. A Data the store
//! accepts is served back byte for byte by its exact name; nothing panics. The corpus seed is
//! a signed reading Data.
#![no_main]

use std::sync::OnceLock;

use amicn_ami::repo::{PrefixMatch, RepoStore};
use amicn_ami::repo_insert::InsertPolicy;
use amicn_kms::cert::{Certificate, Validity};
use amicn_kms::identity::KeyPair;
use amicn_tlv::{Data, Interest, Name};
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

struct Fixture {
    store: RepoStore,
    policy: InsertPolicy,
}

fn fixture() -> Option<&'static Fixture> {
    static F: OnceLock<Option<Fixture>> = OnceLock::new();
    F.get_or_init(|| {
        let store = RepoStore::open(":memory:").ok()?;
        let key = KeyPair::from_seed(&[7; 32], Name::from_uri("/lab/pub/KEY/%01").ok()?).ok()?;
        let cert = Certificate::self_signed(
            &key,
            1,
            Validity::starting_now(1_700_000_000, 200 * 365 * 86_400),
        )
        .ok()?;
        let mut policy = InsertPolicy::default();
        policy.allow(cert, vec![Name::from_uri("/lab").ok()?]).ok()?;
        Some(Fixture { store, policy })
    })
    .as_ref()
}

fuzz_target!(|data: &[u8]| {
    let Some(f) = fixture() else { return };
    let wire = Bytes::copy_from_slice(data);
    if let Ok(i) = Interest::decode(wire.clone()) {
        let _ = f.policy.handle(&f.store, &i, 1_800_000_000_000);
    }
    // (A name ending in an implicit digest would be looked up by digest instead.)
    if let Ok(d) = Data::decode(wire.clone())
        && !d.name.last().is_some_and(|c| c.is_implicit_digest())
        && f.store.insert(std::slice::from_ref(&wire)).is_ok()
    {
        let got = f
            .store
            .get(&Interest::new(d.name.clone()), PrefixMatch::First);
        assert_eq!(got.ok().flatten(), Some(wire));
    }
});
