//! Name URI parsing, and the URI/wire round trip of whatever parses.
#![no_main]

use amicn_tlv::Name;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data)
        && let Ok(n) = Name::from_uri(s)
    {
        let again = Name::from_uri(&n.to_string()).expect("canonical URI must parse");
        assert_eq!(again, n);
        assert_eq!(Name::decode(n.to_wire()).expect("own wire must decode"), n);
    }
    if let Ok(n) = Name::decode(Bytes::copy_from_slice(data)) {
        assert_eq!(
            Name::from_uri(&n.to_string()).expect("printed URI must parse"),
            n
        );
    }
});
