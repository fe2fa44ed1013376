//! The DR operator's acknowledgement parameters (`amicn_ami::DrAck`, what a member's signed
//! ack Interest carries): arbitrary bytes as ApplicationParameters. Whatever decodes re-encodes
//! to parameters that decode equal; nothing panics.

use amicn_ami::DrAck;
use bytes::Bytes;

/// Checks one input (see the module documentation); returns whether it decoded.
pub fn run(data: &[u8]) -> bool {
    let Ok((ack, cert)) = DrAck::decode(Bytes::copy_from_slice(data)) else {
        return false;
    };
    let (back, c) = DrAck::decode(ack.encode(&cert)).expect("an encoded ack decodes");
    assert_eq!(back, ack);
    assert_eq!(c, cert);
    true
}
