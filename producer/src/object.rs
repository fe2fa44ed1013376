//! A published object: content cut into segments `/<prefix>/v=<version>/seg=<n>`, each
//! signed once (eagerly or on first request) and then served from memory.

use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use amicn_tlv::{Component, Data, Name};
use bytes::Bytes;

use crate::signer::{Signer, sign};
use crate::{Encryptor, Error, Result};

/// How an object is published.
#[derive(Debug, Clone)]
pub struct PublishOptions {
    /// Content bytes per segment (ndnputchunks default 8000 suits an 8800-byte MTU).
    pub segment_size: usize,
    /// Version number; default: microseconds since the Unix epoch.
    pub version: Option<u64>,
    /// FreshnessPeriod of every segment, in ms.
    pub freshness_ms: u64,
    /// Sign every segment at publish time; otherwise each is signed when first requested.
    pub sign_eagerly: bool,
    /// Threads used for eager signing.
    pub signing_threads: usize,
}

impl Default for PublishOptions {
    fn default() -> Self {
        PublishOptions {
            segment_size: 8000,
            version: None,
            freshness_ms: 10_000,
            sign_eagerly: true,
            signing_threads: 2,
        }
    }
}

/// Number of segments `len` bytes take at `segment_size` bytes each (an empty object has one).
pub fn segment_count(len: usize, segment_size: usize) -> u64 {
    if len == 0 {
        1
    } else {
        len.div_ceil(segment_size.max(1)) as u64
    }
}

/// The `32=metadata` keyword component of the ndn-cxx RDR convention.
pub fn metadata_component() -> Component {
    Component::keyword(Bytes::from_static(b"metadata"))
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// The metadata Data answering `interest_name` (`/<prefix>/32=metadata`): named
/// `<interest_name>/v=<now>/seg=0`, Content = the versioned name's TLV, fresh for 1 s.
pub(crate) fn metadata_data(interest_name: &Name, versioned: &Name) -> Data {
    let name = interest_name
        .append(Component::version(now_us() / 1000))
        .append(Component::segment(0));
    let mut d = Data::new(name, versioned.to_wire());
    d.meta_info.freshness_period_ms = Some(1000);
    d.meta_info.final_block_id = Some(Component::segment(0));
    d
}

/// A segmented object ready to serve.
pub struct Object {
    versioned: Name,
    content: Bytes,
    segment_size: usize,
    last_segment: u64,
    freshness_ms: u64,
    signer: Arc<dyn Signer>,
    encryptor: Option<Arc<dyn Encryptor>>,
    signed: Vec<OnceLock<Bytes>>,
}

impl std::fmt::Debug for Object {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Object")
            .field("versioned", &self.versioned.to_string())
            .field("len", &self.content.len())
            .field("segments", &self.signed.len())
            .finish_non_exhaustive()
    }
}

impl Object {
    /// Prepares `content` for publication under `prefix` (nothing is signed yet).
    pub fn new(
        prefix: &Name,
        content: Bytes,
        opts: &PublishOptions,
        signer: Arc<dyn Signer>,
        encryptor: Option<Arc<dyn Encryptor>>,
    ) -> Result<Object> {
        if opts.segment_size == 0 {
            return Err(Error::Options("segment size must be at least 1 byte"));
        }
        let version = opts.version.unwrap_or_else(now_us);
        let versioned = prefix.append(Component::version(version));
        let n = segment_count(content.len(), opts.segment_size);
        let count = usize::try_from(n).map_err(|_| Error::Options("too many segments"))?;
        Ok(Object {
            versioned,
            content,
            segment_size: opts.segment_size,
            last_segment: n - 1,
            freshness_ms: opts.freshness_ms,
            signer,
            encryptor,
            signed: (0..count).map(|_| OnceLock::new()).collect(),
        })
    }

    /// `/<prefix>/v=<version>`.
    pub fn versioned_name(&self) -> &Name {
        &self.versioned
    }

    /// Number of segments.
    pub fn segments(&self) -> u64 {
        self.last_segment + 1
    }

    fn build(&self, seg: u64) -> Result<Bytes> {
        let start = (seg as usize)
            .saturating_mul(self.segment_size)
            .min(self.content.len());
        let end = start
            .saturating_add(self.segment_size)
            .min(self.content.len());
        let name = self.versioned.append(Component::segment(seg));
        let mut data = Data::new(name, self.content.slice(start..end));
        data.meta_info.freshness_period_ms = Some(self.freshness_ms);
        data.meta_info.final_block_id = Some(Component::segment(self.last_segment));
        if let Some(enc) = &self.encryptor {
            data.content =
                enc.encrypt(&data.name, &data.content)
                    .map_err(|why| Error::Encrypt {
                        name: data.name.clone(),
                        why,
                    })?;
        }
        sign(&*self.signer, data)
    }

    /// The signed segment `seg` (signing it now if it was not yet), or `None` past the end.
    pub fn segment(&self, seg: u64) -> Result<Option<Bytes>> {
        let Some(slot) = usize::try_from(seg).ok().and_then(|i| self.signed.get(i)) else {
            return Ok(None);
        };
        if let Some(w) = slot.get() {
            return Ok(Some(w.clone()));
        }
        let wire = self.build(seg)?;
        Ok(Some(slot.get_or_init(|| wire).clone()))
    }

    /// Signs every segment now, on `threads` threads.
    pub fn sign_all(&self, threads: usize) -> Result<()> {
        let threads = threads.max(1);
        let n = self.signed.len();
        let chunk = n.div_ceil(threads).max(1);
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    s.spawn(move || -> Result<()> {
                        let lo = t * chunk;
                        let hi = ((t + 1) * chunk).min(n);
                        for i in lo..hi {
                            self.segment(i as u64)?;
                        }
                        Ok(())
                    })
                })
                .collect();
            for h in handles {
                match h.join() {
                    Ok(r) => r?,
                    Err(_) => return Err(Error::Options("signing thread panicked")),
                }
            }
            Ok(())
        })
    }

    /// Concatenated content (for tests and re-publication).
    pub fn content(&self) -> &Bytes {
        &self.content
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::DigestSigner;

    #[test]
    fn segments_carry_final_block_id_and_content() {
        let content = Bytes::from((0..20_000u32).map(|i| i as u8).collect::<Vec<_>>());
        let opts = PublishOptions {
            segment_size: 8000,
            version: Some(7),
            ..PublishOptions::default()
        };
        let obj = Object::new(
            &"/f".parse().unwrap(),
            content.clone(),
            &opts,
            Arc::new(DigestSigner),
            None,
        )
        .unwrap();
        assert_eq!(obj.segments(), 3);
        assert_eq!(obj.versioned_name().to_string(), "/f/v=7");
        obj.sign_all(2).unwrap();
        let mut joined = Vec::new();
        for s in 0..3 {
            let d = Data::decode(obj.segment(s).unwrap().unwrap()).unwrap();
            assert_eq!(d.name.to_string(), format!("/f/v=7/seg={s}"));
            assert_eq!(d.meta_info.final_block_id, Some(Component::segment(2)));
            joined.extend_from_slice(&d.content);
        }
        assert_eq!(joined, content.to_vec());
        assert!(obj.segment(3).unwrap().is_none());
    }

    #[test]
    fn empty_object_has_one_empty_segment() {
        assert_eq!(segment_count(0, 8000), 1);
        assert_eq!(segment_count(8000, 8000), 1);
        assert_eq!(segment_count(8001, 8000), 2);
        let obj = Object::new(
            &"/e".parse().unwrap(),
            Bytes::new(),
            &PublishOptions::default(),
            Arc::new(DigestSigner),
            None,
        )
        .unwrap();
        let d = Data::decode(obj.segment(0).unwrap().unwrap()).unwrap();
        assert!(d.content.is_empty());
    }

    #[test]
    fn metadata_names_the_versioned_prefix() {
        let d = metadata_data(
            &"/f/32=metadata".parse().unwrap(),
            &"/f/v=9".parse().unwrap(),
        );
        assert_eq!(d.content, "/f/v=9".parse::<Name>().unwrap().to_wire());
        assert_eq!(d.name.len(), 4);
    }
}
