//! SafeBag import (`ndnsec import`'s format, `amicn_kms::safebag`): arbitrary bytes as a
//! SafeBag, TLV or base64 text, opened with a fixed passphrase. Whatever decodes re-encodes to
//! the same bag (TLV and base64), reports an iteration count within the library's bound, and a
//! key that opens belongs to the bag's certificate. Nothing panics.
//!
//! Opening costs one PBKDF2 run of the bag's iteration count, which the library bounds at
//! `MAX_SAFEBAG_ITERATIONS` (seconds per input); the harness opens only bags of at most
//! [`MAX_FUZZ_ITERATIONS`], the count `ndnsec export` writes, so every input stays fast.
use amicn_kms::safebag::{MAX_SAFEBAG_ITERATIONS, SafeBag};

/// The passphrase of the ndn-cxx vectors the corpus starts from.
pub const PASSPHRASE: &[u8] = b"amicn-vector";
/// The most PBKDF2 iterations one input may cost.
pub const MAX_FUZZ_ITERATIONS: u32 = 2048;

/// Checks one input (see the module documentation); returns whether a key was opened.
pub fn run(data: &[u8]) -> bool {
    let Ok(bag) = SafeBag::decode(data) else {
        return false;
    };
    let wire = bag.to_wire();
    let again = SafeBag::decode(&wire).expect("a decoded SafeBag re-decodes");
    assert_eq!(again.to_wire(), wire);
    let text = SafeBag::decode(bag.to_base64().as_bytes()).expect("its base64 decodes");
    assert_eq!(text.to_wire(), wire);
    let n = bag
        .iterations()
        .expect("a decoded SafeBag has an iteration count");
    assert!((1..=MAX_SAFEBAG_ITERATIONS).contains(&n));
    if n > MAX_FUZZ_ITERATIONS {
        return false;
    }
    let Ok(key) = bag.open(PASSPHRASE) else {
        return false;
    };
    assert_eq!(&key.public_key(), bag.certificate().key());
    true
}
