//! The KMS's epoch journal: what each epoch did, in enough detail to replay it exactly.
//!
//! An entry holds the seed the key graph's generator had for the epoch (drawn fresh from the OS
//! per epoch), the operations staged in order (joins with their user keys, leaves, moves,
//! refreshes, a revocation, projects added), and the SHA-256 of the manifest the commit produced.
//! Replaying the entries on top of the last saved graph image reproduces every key, wrap and
//! manifest byte for byte; the manifest digest proves it, and a mismatch stops the KMS instead
//! of letting it publish different content under names caches may hold.
//!
//! Entry layout: `"AKJ1" seed[32] manifest_sha256[32] count:u32 op*`, with
//! `op = 1 meter:u32 key[32] projects | 2 meter | 3 meter projects | 4 flags:u8 | 5 meter |
//! 6 name`, `projects = count:u16 name*`, `name = len:u16 UTF-8`, integers big-endian.

use amicn_kms::SymmetricKey;
use amicn_kms::graph::manifest::ManifestSigner;
use amicn_kms::graph::{KeyGraph, Rekey};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

const MAGIC: &[u8; 4] = b"AKJ1";

/// One operation staged in an epoch.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Op {
    Join {
        meter: u32,
        key: Zeroizing<[u8; 32]>,
        projects: Vec<String>,
    },
    Leave(u32),
    Move(u32, Vec<String>),
    Refresh {
        projects: bool,
        root: bool,
    },
    /// Leaves every group and commits at once: always the last operation of its epoch.
    Revoke(u32),
    AddProject(String),
}

impl std::fmt::Debug for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Op::Join {
                meter, projects, ..
            } => write!(f, "Join({meter}, {projects:?})"),
            Op::Leave(m) => write!(f, "Leave({m})"),
            Op::Move(m, p) => write!(f, "Move({m}, {p:?})"),
            Op::Refresh { projects, root } => write!(f, "Refresh({projects}, {root})"),
            Op::Revoke(m) => write!(f, "Revoke({m})"),
            Op::AddProject(p) => write!(f, "AddProject({p})"),
        }
    }
}

fn put_name(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    out.extend_from_slice(&(b.len().min(u16::MAX as usize) as u16).to_be_bytes());
    out.extend_from_slice(&b[..b.len().min(u16::MAX as usize)]);
}

fn put_projects(out: &mut Vec<u8>, p: &[String]) {
    out.extend_from_slice(&(p.len().min(u16::MAX as usize) as u16).to_be_bytes());
    for s in p.iter().take(u16::MAX as usize) {
        put_name(out, s);
    }
}

/// Encodes an entry.
pub(crate) fn encode(seed: &[u8; 32], manifest: &[u8], ops: &[Op]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(72 + ops.len() * 48));
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(seed);
    out.extend_from_slice(&Sha256::digest(manifest));
    out.extend_from_slice(&(ops.len() as u32).to_be_bytes());
    for op in ops {
        match op {
            Op::Join {
                meter,
                key,
                projects,
            } => {
                out.push(1);
                out.extend_from_slice(&meter.to_be_bytes());
                out.extend_from_slice(key.as_ref());
                put_projects(&mut out, projects);
            }
            Op::Leave(m) => {
                out.push(2);
                out.extend_from_slice(&m.to_be_bytes());
            }
            Op::Move(m, p) => {
                out.push(3);
                out.extend_from_slice(&m.to_be_bytes());
                put_projects(&mut out, p);
            }
            Op::Refresh { projects, root } => {
                out.push(4);
                out.push(u8::from(*projects) | (u8::from(*root) << 1));
            }
            Op::Revoke(m) => {
                out.push(5);
                out.extend_from_slice(&m.to_be_bytes());
            }
            Op::AddProject(p) => {
                out.push(6);
                put_name(&mut out, p);
            }
        }
    }
    out
}

/// A decoded entry.
pub(crate) struct Entry {
    pub(crate) seed: Zeroizing<[u8; 32]>,
    pub(crate) manifest_digest: [u8; 32],
    pub(crate) ops: Vec<Op>,
}

struct R<'a> {
    b: &'a [u8],
}

impl R<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if self.b.len() < n {
            return Err("truncated".into());
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn arr32(&mut self) -> Result<[u8; 32], String> {
        let mut a = [0u8; 32];
        a.copy_from_slice(self.take(32)?);
        Ok(a)
    }
    fn name(&mut self) -> Result<String, String> {
        let n = usize::from(self.u16()?);
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| "project name is not UTF-8".into())
    }
    fn projects(&mut self) -> Result<Vec<String>, String> {
        let n = self.u16()?;
        (0..n).map(|_| self.name()).collect()
    }
}

/// Decodes an entry; the error says what is wrong.
pub(crate) fn decode(b: &[u8]) -> Result<Entry, String> {
    let mut r = R { b };
    if r.take(4)? != MAGIC {
        return Err("not a journal entry (bad magic)".into());
    }
    let seed = Zeroizing::new(r.arr32()?);
    let manifest_digest = r.arr32()?;
    let n = r.u32()?;
    if n as usize > b.len() {
        return Err("operation count exceeds the entry".into());
    }
    let mut ops = Vec::with_capacity(n as usize);
    for _ in 0..n {
        ops.push(match r.u8()? {
            1 => Op::Join {
                meter: r.u32()?,
                key: Zeroizing::new(r.arr32()?),
                projects: r.projects()?,
            },
            2 => Op::Leave(r.u32()?),
            3 => Op::Move(r.u32()?, r.projects()?),
            4 => {
                let f = r.u8()?;
                Op::Refresh {
                    projects: f & 1 != 0,
                    root: f & 2 != 0,
                }
            }
            5 => Op::Revoke(r.u32()?),
            6 => Op::AddProject(r.name()?),
            t => return Err(format!("unknown operation {t}")),
        });
    }
    if !r.b.is_empty() {
        return Err("trailing bytes".into());
    }
    Ok(Entry {
        seed,
        manifest_digest,
        ops,
    })
}

/// Stages one operation (a revocation commits: its rekey is returned).
pub(crate) fn apply(
    g: &mut KeyGraph,
    op: &Op,
    signer: &dyn ManifestSigner,
) -> amicn_kms::graph::GraphResult<Option<Rekey>> {
    let refs = |p: &[String]| p.iter().map(String::clone).collect::<Vec<_>>();
    match op {
        Op::Join {
            meter,
            key,
            projects,
        } => {
            let p = refs(projects);
            let p: Vec<&str> = p.iter().map(String::as_str).collect();
            g.stage_join(*meter, &p, SymmetricKey::from_bytes(**key))?;
        }
        Op::Leave(m) => g.stage_leave(*m)?,
        Op::Move(m, projects) => {
            let p: Vec<&str> = projects.iter().map(String::as_str).collect();
            g.stage_move(*m, &p)?;
        }
        Op::Refresh { projects, root } => g.stage_refresh(*projects, *root),
        Op::Revoke(m) => return g.revoke(*m, signer).map(Some),
        Op::AddProject(p) => g.add_project(p)?,
    }
    Ok(None)
}

/// Replays one entry on `g`; returns the rekey it reproduces, or why it does not.
pub(crate) fn replay(
    g: &mut KeyGraph,
    epoch: u32,
    e: &Entry,
    signer: &dyn ManifestSigner,
) -> Result<Rekey, String> {
    g.reseed(*e.seed);
    let mut committed = None;
    for (i, op) in e.ops.iter().enumerate() {
        if committed.is_some() {
            return Err(format!(
                "operation {i} follows the revocation that committed"
            ));
        }
        committed = apply(g, op, signer).map_err(|err| format!("{op:?}: {err}"))?;
    }
    let rekey = match committed {
        Some(r) => r,
        None => g.commit(signer),
    };
    if rekey.manifest.epoch != epoch {
        return Err(format!(
            "replay produced epoch {}, not {epoch}",
            rekey.manifest.epoch
        ));
    }
    let d: [u8; 32] = Sha256::digest(&rekey.signed.bytes).into();
    if d != e.manifest_digest {
        return Err("replay produced a different manifest than the one published".into());
    }
    Ok(rekey)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use amicn_kms::graph::GraphConfig;

    fn signer(b: &[u8]) -> Vec<u8> {
        Sha256::digest(b).to_vec()
    }

    #[test]
    fn entries_round_trip_and_reject_damage() {
        let ops = vec![
            Op::Join {
                meter: 7,
                key: Zeroizing::new([3; 32]),
                projects: vec!["p1".into()],
            },
            Op::Leave(2),
            Op::Move(4, vec![]),
            Op::Refresh {
                projects: true,
                root: false,
            },
            Op::AddProject("p9".into()),
            Op::Revoke(5),
        ];
        let b = encode(&[1; 32], b"manifest", &ops);
        let e = decode(&b).unwrap();
        assert_eq!(e.ops, ops);
        assert_eq!(*e.seed, [1; 32]);
        assert!(decode(&b[..b.len() - 1]).is_err());
        let mut x = b.to_vec();
        x.push(0);
        assert!(decode(&x).is_err());
        assert!(decode(b"AKJ2").is_err());
    }

    #[test]
    fn replay_reproduces_every_epoch_exactly() {
        let cfg = GraphConfig::new("/u", 2);
        let mut live = KeyGraph::new(cfg).unwrap();
        live.add_project("p1").unwrap();
        let image = amicn_kms::persist::encode_graph(&live);
        let mut journal = Vec::new();
        let epochs: Vec<Vec<Op>> = vec![
            (1..=9)
                .map(|m| Op::Join {
                    meter: m,
                    key: Zeroizing::new([m as u8; 32]),
                    projects: if m % 2 == 0 {
                        vec!["p1".into()]
                    } else {
                        vec![]
                    },
                })
                .collect(),
            vec![Op::Leave(3), Op::Move(4, vec![])],
            vec![Op::Refresh {
                projects: true,
                root: true,
            }],
            vec![Op::Leave(5), Op::Revoke(6)],
        ];
        for ops in &epochs {
            let seed = [ops.len() as u8 + 40; 32];
            live.reseed(seed);
            let mut committed = None;
            for op in ops {
                committed = apply(&mut live, op, &signer).unwrap();
            }
            let r = committed.unwrap_or_else(|| live.commit(&signer));
            journal.push((r.manifest.epoch, encode(&seed, &r.signed.bytes, ops)));
        }
        let mut restored =
            amicn_kms::persist::decode_graph(&image, std::path::Path::new("test")).unwrap();
        for (e, b) in &journal {
            replay(&mut restored, *e, &decode(b).unwrap(), &signer).unwrap();
        }
        assert_eq!(
            amicn_kms::persist::encode_graph(&restored),
            amicn_kms::persist::encode_graph(&live),
            "the replayed graph is the live one"
        );
        // A tampered entry (another seed) is detected, not silently accepted.
        let mut again =
            amicn_kms::persist::decode_graph(&image, std::path::Path::new("test")).unwrap();
        let mut bad = decode(&journal[0].1).unwrap();
        bad.seed = Zeroizing::new([0; 32]);
        assert!(replay(&mut again, journal[0].0, &bad, &signer).is_err());
    }
}
