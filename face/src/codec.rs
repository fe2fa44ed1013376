//! TLV stream framing: Unix and TCP faces carry back-to-back TLVs with no extra framing, so the
//! reader cuts the stream by each packet's outer TLV-LENGTH.

use bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::{Error, MAX_PACKET_SIZE};

/// Frames a byte stream into whole TLV elements (one NDN packet or LpPacket each).
///
/// A frame whose header declares more than `max_frame` bytes is an error: the stream cannot be
/// resynchronised after it, so the face must be closed.
#[derive(Debug, Clone, Copy)]
pub struct TlvCodec {
    max_frame: usize,
}

impl Default for TlvCodec {
    fn default() -> Self {
        Self::new(MAX_PACKET_SIZE)
    }
}

impl TlvCodec {
    /// A framer accepting frames up to `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        Self { max_frame }
    }

    /// The largest frame accepted.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }
}

/// Total length the first TLV header in `buf` announces, if the header is complete and well
/// formed (a malformed header is left for [`amicn_tlv::split_first_tlv`] to report).
/// Used only to reject oversized frames before their bytes arrive.
fn announced_len(buf: &[u8]) -> Option<u64> {
    let (_, t) = amicn_tlv::read_var_number(buf).ok()?;
    let (len, l) = amicn_tlv::read_var_number(buf.get(t..)?).ok()?;
    Some(len.saturating_add((t + l) as u64))
}

impl Decoder for TlvCodec {
    type Item = Bytes;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, Error> {
        if src.is_empty() {
            return Ok(None);
        }
        if let Some(len) = announced_len(src)
            && len > self.max_frame as u64
        {
            return Err(Error::FrameTooLarge {
                len: usize::try_from(len).unwrap_or(usize::MAX),
                max: self.max_frame,
            });
        }
        match amicn_tlv::split_first_tlv(src)? {
            Some(n) => Ok(Some(src.split_to(n).freeze())),
            None => {
                // Reserve room for the rest of this frame so the next read completes it.
                if let Some(len) = announced_len(src) {
                    let want = usize::try_from(len).unwrap_or(self.max_frame);
                    src.reserve(want.saturating_sub(src.len()));
                }
                Ok(None)
            }
        }
    }
}

impl Encoder<Bytes> for TlvCodec {
    type Error = Error;

    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> Result<(), Error> {
        if item.len() > self.max_frame {
            return Err(Error::FrameTooLarge {
                len: item.len(),
                max: self.max_frame,
            });
        }
        dst.extend_from_slice(&item);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn frames_back_to_back_packets_split_anywhere() {
        // Interest /a (minimal) followed by a Data-typed TLV with a 3-octet length.
        let mut stream = vec![0x05, 0x05, 0x07, 0x03, 0x08, 0x01, b'a'];
        let mut big = vec![0x06, 0xFD, 0x01, 0x00];
        big.extend(std::iter::repeat_n(0x42, 256));
        stream.extend_from_slice(&big);
        for cut in 0..stream.len() {
            let mut codec = TlvCodec::default();
            let mut buf = BytesMut::from(&stream[..cut]);
            let mut out = Vec::new();
            while let Some(f) = codec.decode(&mut buf).unwrap() {
                out.push(f);
            }
            buf.extend_from_slice(&stream[cut..]);
            while let Some(f) = codec.decode(&mut buf).unwrap() {
                out.push(f);
            }
            assert_eq!(out.len(), 2, "cut at {cut}");
            assert_eq!(&out[0][..], &stream[..7]);
            assert_eq!(&out[1][..], &big[..]);
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn rejects_oversized_header_before_body_arrives() {
        let mut codec = TlvCodec::default();
        // Data with TLV-LENGTH 8800: total 8804 > 8800.
        let mut buf = BytesMut::from(&[0x06, 0xFD, 0x22, 0x60][..]);
        match codec.decode(&mut buf) {
            Err(Error::FrameTooLarge { len, max }) => {
                assert_eq!(len, 8804);
                assert_eq!(max, 8800);
            }
            other => panic!("expected FrameTooLarge, got {other:?}"),
        }
        // A frame of exactly 8800 bytes is fine.
        let mut ok = vec![0x06, 0xFD, 0x22, 0x5C];
        ok.resize(8800, 0);
        let mut buf = BytesMut::from(&ok[..]);
        assert_eq!(codec.decode(&mut buf).unwrap().unwrap().len(), 8800);
    }

    #[test]
    fn encoder_refuses_oversized() {
        let mut codec = TlvCodec::new(10);
        let mut dst = BytesMut::new();
        assert!(
            codec
                .encode(Bytes::from_static(&[0; 11]), &mut dst)
                .is_err()
        );
        codec.encode(Bytes::from_static(&[5, 0]), &mut dst).unwrap();
        assert_eq!(&dst[..], &[5, 0]);
    }
}
