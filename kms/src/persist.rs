//! Crash-safe persistence of the KMS key graph and of a member's key state.
//!
//! Both are written as one compact binary image (bulk arrays little-endian, ending in a SHA-256
//! of everything before it) by atomic replacement: write a uniquely named temporary file (0600,
//! created exclusively, see [`replace_file`]), fsync it, rename it over
//! `<file>`, fsync the directory. A crash at any point leaves either the previous or the new
//! complete image; a torn or truncated image is detected by the checksum and refused, never
//! half-loaded. The server must be saved after [`KeyGraph::commit`] and before the rekey is
//! published, so that nothing published is ever lost.
//!
//! A 10^6-member binary tree is ≈ 2.1 M nodes × 40 B ≈ 84 MB; it loads with one sequential read,
//! one hash pass and straight array copies. The member table is stored sparse, 12 B per member
//! whatever its id; images of the earlier dense layout (one slot per id up to the largest) load.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use crate::graph::member::{MemberState, Place};
use crate::graph::tree::{Level, LkhTree};
use crate::graph::{GraphConfig, GraphError, GraphResult, KeyGraph, Project, Slot, Subgroup};
use crate::key::{KEY_LEN, SymmetricKey};

/// Server image with the member table as `(meter id, subgroup, leaf)` triples, ids ascending.
const GRAPH_MAGIC: &[u8; 8] = b"AKGSNAP2";
/// Earlier server image with a dense member table indexed by meter id; still read.
const GRAPH_MAGIC_DENSE: &[u8; 8] = b"AKGSNAP1";
const MEMBER_MAGIC: &[u8; 8] = b"AKMSTAT1";

struct W(Vec<u8>);

impl W {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.0.extend_from_slice(s.as_bytes());
    }
    fn key(&mut self, k: &[u8; KEY_LEN]) {
        self.0.extend_from_slice(k);
    }
    fn finish(mut self) -> Vec<u8> {
        let d = Sha256::digest(&self.0);
        self.0.extend_from_slice(&d);
        std::mem::take(&mut self.0)
    }
}

impl Drop for W {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

struct R<'a> {
    b: &'a [u8],
    off: usize,
    path: &'a Path,
}

impl<'a> R<'a> {
    fn corrupt(&self, what: &str) -> GraphError {
        GraphError::CorruptState {
            path: self.path.to_path_buf(),
            reason: format!("{what} at byte {}", self.off),
        }
    }
    fn take(&mut self, n: usize) -> GraphResult<&'a [u8]> {
        match self.off.checked_add(n).filter(|&e| e <= self.b.len()) {
            Some(e) => {
                let s = &self.b[self.off..e];
                self.off = e;
                Ok(s)
            }
            None => Err(self.corrupt("truncated")),
        }
    }
    fn u8(&mut self) -> GraphResult<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> GraphResult<u32> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn u64(&mut self) -> GraphResult<u64> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_le_bytes(a))
    }
    fn len(&mut self, item: usize) -> GraphResult<usize> {
        let n = self.u64()? as usize;
        if n.saturating_mul(item) > self.b.len() - self.off {
            return Err(self.corrupt("impossible length"));
        }
        Ok(n)
    }
    fn str(&mut self) -> GraphResult<String> {
        let n = self.u32()? as usize;
        let s = self.take(n)?;
        String::from_utf8(s.to_vec()).map_err(|_| self.corrupt("bad UTF-8"))
    }
    fn key(&mut self) -> GraphResult<[u8; KEY_LEN]> {
        let mut k = [0u8; KEY_LEN];
        k.copy_from_slice(self.take(KEY_LEN)?);
        Ok(k)
    }
}

/// Checks magic and trailing checksum; returns the body between them.
fn open_image<'a>(bytes: &'a [u8], magic: &[u8; 8], path: &Path) -> GraphResult<&'a [u8]> {
    let corrupt = |reason: &str| GraphError::CorruptState {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    if bytes.len() < magic.len() + 32 {
        return Err(corrupt("shorter than header and checksum"));
    }
    let (body, sum) = bytes.split_at(bytes.len() - 32);
    if &body[..8] != magic {
        return Err(corrupt("wrong magic"));
    }
    if Sha256::digest(body).as_slice() != sum {
        return Err(corrupt("checksum mismatch (torn or modified write)"));
    }
    Ok(&body[8..])
}

/// Encodes the whole server state (between epochs: staged changes are not included).
pub fn encode_graph(g: &KeyGraph) -> Vec<u8> {
    encode_graph_as(g, false)
}

/// [`encode_graph`] in the current sparse layout or, for tests of reading old images, in the
/// dense layout of [`GRAPH_MAGIC_DENSE`].
fn encode_graph_as(g: &KeyGraph, dense: bool) -> Vec<u8> {
    let nodes: usize = g
        .subgroups
        .iter()
        .map(|s| s.tree.levels.iter().map(Level::len).sum::<usize>())
        .sum();
    let mut w = W(Vec::with_capacity(
        256 + nodes * (KEY_LEN + 8) + g.members.len() * 12,
    ));
    w.0.extend_from_slice(if dense {
        GRAPH_MAGIC_DENSE
    } else {
        GRAPH_MAGIC
    });
    w.str(&g.cfg.prefix);
    w.u32(g.cfg.degree);
    w.u8(u8::from(g.cfg.ratchet_joins));
    w.u32(g.epoch);
    w.u32(g.root_epoch);
    w.key(&g.root_key);
    w.u64(g.projects.len() as u64);
    for p in &g.projects {
        w.str(&p.name);
        w.u32(p.epoch);
        w.key(&p.key);
        w.u64(p.subgroups.len() as u64);
        for &s in &p.subgroups {
            w.u32(s);
        }
    }
    w.u64(g.subgroups.len() as u64);
    for s in &g.subgroups {
        w.str(&s.label);
        w.u64(s.projects.len() as u64);
        for &p in &s.projects {
            w.u32(u32::from(p));
        }
        let t = &s.tree;
        w.u32(t.degree);
        w.u32(t.next_fresh);
        w.u64(t.occupied_nodes);
        w.u64(t.free.len() as u64);
        for &f in &t.free {
            w.u32(f);
        }
        w.u64(t.levels.len() as u64);
        for l in &t.levels {
            w.u64(l.len() as u64);
            for n in l.nodes.iter() {
                w.0.extend_from_slice(&n.key);
            }
            for n in l.nodes.iter() {
                w.u32(n.epoch);
            }
            for n in l.nodes.iter() {
                w.u32(n.occ);
            }
        }
    }
    if dense {
        let len = g
            .members
            .last_key_value()
            .map_or(0, |(&m, _)| u64::from(m) + 1);
        w.u64(len);
        for meter in 0..len {
            let slot = u32::try_from(meter)
                .ok()
                .and_then(|m| g.members.get(&m))
                .map_or((u32::MAX, u32::MAX), |s| (s.sg, s.pos));
            w.u32(slot.0);
            w.u32(slot.1);
        }
    } else {
        w.u64(g.members.len() as u64);
        for (&meter, slot) in &g.members {
            w.u32(meter);
            w.u32(slot.sg);
            w.u32(slot.pos);
        }
    }
    let mut revoked: Vec<u32> = g.revoked.iter().copied().collect();
    revoked.sort_unstable();
    w.u64(revoked.len() as u64);
    for r in revoked {
        w.u32(r);
    }
    w.finish()
}

/// Decodes a server image written by [`encode_graph`]; `path` only labels errors.
pub fn decode_graph(bytes: &[u8], path: &Path) -> GraphResult<KeyGraph> {
    let dense = bytes.starts_with(GRAPH_MAGIC_DENSE);
    let magic = if dense {
        GRAPH_MAGIC_DENSE
    } else {
        GRAPH_MAGIC
    };
    let body = open_image(bytes, magic, path)?;
    let mut r = R {
        b: body,
        off: 0,
        path,
    };
    let prefix = r.str()?;
    let degree = r.u32()?;
    let ratchet_joins = r.u8()? != 0;
    if !(2..=255).contains(&degree) {
        return Err(r.corrupt("bad degree"));
    }
    let epoch = r.u32()?;
    let root_epoch = r.u32()?;
    let root_key = r.key()?;
    let n = r.len(40)?;
    let mut projects = Vec::with_capacity(n);
    for _ in 0..n {
        let name = r.str()?;
        let epoch = r.u32()?;
        let key = r.key()?;
        let k = r.len(4)?;
        let mut subgroups = Vec::with_capacity(k);
        for _ in 0..k {
            subgroups.push(r.u32()?);
        }
        projects.push(Project {
            name,
            key,
            epoch,
            subgroups,
        });
    }
    let n = r.len(16)?;
    let mut subgroups = Vec::with_capacity(n);
    for _ in 0..n {
        let label = r.str()?;
        let k = r.len(4)?;
        let mut set = Vec::with_capacity(k);
        for _ in 0..k {
            let p = r.u32()?;
            if p as usize >= projects.len() {
                return Err(r.corrupt("subgroup names an unknown project"));
            }
            set.push(p as u16);
        }
        let tdeg = r.u32()?;
        let next_fresh = r.u32()?;
        let occupied_nodes = r.u64()?;
        let k = r.len(4)?;
        let mut free = Vec::with_capacity(k);
        for _ in 0..k {
            free.push(r.u32()?);
        }
        let nl = r.len(1)?;
        if !(2..=32).contains(&nl) {
            return Err(r.corrupt("bad tree height"));
        }
        let mut levels = Vec::with_capacity(nl);
        for _ in 0..nl {
            let len = r.len(KEY_LEN + 8)?;
            let keys_raw = r.take(len * KEY_LEN)?;
            let e_raw = r.take(len * 4)?;
            let o_raw = r.take(len * 4)?;
            let mut level = Level::new(len, false);
            for (((n, k), e), o) in level
                .nodes
                .iter_mut()
                .zip(keys_raw.chunks_exact(KEY_LEN))
                .zip(e_raw.chunks_exact(4))
                .zip(o_raw.chunks_exact(4))
            {
                n.key.copy_from_slice(k);
                n.epoch = u32::from_le_bytes([e[0], e[1], e[2], e[3]]);
                n.occ = u32::from_le_bytes([o[0], o[1], o[2], o[3]]);
            }
            levels.push(level);
        }
        // Level sizes must shrink by the degree up to a single root.
        for h in 1..levels.len() {
            if levels[h].len() != levels[h - 1].len().div_ceil(tdeg as usize) {
                return Err(r.corrupt("inconsistent level sizes"));
            }
        }
        if levels.last().map(Level::len) != Some(1) || tdeg != degree {
            return Err(r.corrupt("tree shape"));
        }
        let cap = levels[0].len();
        if next_fresh as usize > cap || free.iter().any(|&f| f as usize >= cap) {
            return Err(r.corrupt("leaf index out of range"));
        }
        subgroups.push(Subgroup {
            label,
            projects: set,
            tree: LkhTree {
                degree: tdeg,
                levels,
                free,
                next_fresh,
                occupied_nodes,
            },
        });
    }
    let n = r.len(if dense { 8 } else { 12 })?;
    let mut members = BTreeMap::new();
    for i in 0..n {
        // The dense layout has one slot per id up to the largest, absent ones included.
        let meter = if dense {
            u32::try_from(i).map_err(|_| r.corrupt("member table too long"))?
        } else {
            r.u32()?
        };
        let sg = r.u32()?;
        let pos = r.u32()?;
        if dense && sg == u32::MAX {
            continue;
        }
        if meter == u32::MAX
            || sg as usize >= subgroups.len()
            || pos as usize >= subgroups[sg as usize].tree.capacity()
        {
            return Err(r.corrupt("member slot out of range"));
        }
        if members
            .last_key_value()
            .is_some_and(|(&last, _)| last >= meter)
        {
            return Err(r.corrupt("member ids not ascending"));
        }
        members.insert(meter, Slot { sg, pos });
    }
    let n = r.len(4)?;
    let mut revoked = HashSet::with_capacity(n);
    for _ in 0..n {
        revoked.insert(r.u32()?);
    }
    if r.off != body.len() {
        return Err(r.corrupt("trailing bytes"));
    }
    let cfg = GraphConfig {
        prefix,
        degree,
        ratchet_joins,
    };
    Ok(KeyGraph::from_parts(
        cfg, epoch, projects, root_key, root_epoch, subgroups, members, revoked,
    ))
}

/// Encodes a member's key state.
pub fn encode_member(m: &MemberState) -> Vec<u8> {
    let mut w = W(Vec::with_capacity(1024));
    w.0.extend_from_slice(MEMBER_MAGIC);
    w.str(&m.prefix);
    w.u32(m.meter);
    w.key(m.user_key.as_bytes());
    w.u32(m.leaf_epoch);
    w.u32(m.epoch);
    match &m.place {
        Some(p) => {
            w.u8(1);
            w.str(&p.label);
            w.u32(p.degree);
            w.u32(p.pos);
        }
        None => w.u8(0),
    }
    let held = |w: &mut W, h: Option<&(u32, SymmetricKey)>| match h {
        Some((e, k)) => {
            w.u8(1);
            w.u32(*e);
            w.key(k.as_bytes());
        }
        None => w.u8(0),
    };
    w.u64(m.path.len() as u64);
    for h in &m.path {
        held(&mut w, h.as_ref());
    }
    w.u64(m.projects.len() as u64);
    for (n, h) in &m.projects {
        w.str(n);
        held(&mut w, Some(h));
    }
    held(&mut w, m.root.as_ref());
    w.finish()
}

/// Decodes a member image written by [`encode_member`].
pub fn decode_member(bytes: &[u8], path: &Path) -> GraphResult<MemberState> {
    let body = open_image(bytes, MEMBER_MAGIC, path)?;
    let mut r = R {
        b: body,
        off: 0,
        path,
    };
    let prefix = r.str()?;
    let meter = r.u32()?;
    let mut uk = r.key()?;
    let mut m = MemberState::new(&prefix, meter, SymmetricKey::from_bytes(uk));
    uk.zeroize();
    m.leaf_epoch = r.u32()?;
    m.epoch = r.u32()?;
    m.place = match r.u8()? {
        0 => None,
        _ => {
            let place = Place {
                label: r.str()?,
                degree: r.u32()?,
                pos: r.u32()?,
            };
            if !(2..=255).contains(&place.degree) {
                return Err(r.corrupt("bad degree"));
            }
            Some(place)
        }
    };
    fn held(r: &mut R<'_>) -> GraphResult<Option<(u32, SymmetricKey)>> {
        Ok(match r.u8()? {
            0 => None,
            _ => {
                let e = r.u32()?;
                let mut k = r.key()?;
                let key = SymmetricKey::from_bytes(k);
                k.zeroize();
                Some((e, key))
            }
        })
    }
    let n = r.len(1)?;
    for _ in 0..n {
        m.path.push(held(&mut r)?);
    }
    let n = r.len(5)?;
    for _ in 0..n {
        let name = r.str()?;
        let h = held(&mut r)?.ok_or_else(|| r.corrupt("project without key"))?;
        m.projects.insert(name, h);
    }
    m.root = held(&mut r)?;
    if r.off != body.len() {
        return Err(r.corrupt("trailing bytes"));
    }
    Ok(m)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> GraphError + '_ {
    move |source| GraphError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Whether `name` is a temporary file [`replace_file`] writes while replacing `target`: a
/// leftover one (an interrupted save) is never loaded and may be removed.
pub fn is_temp_of(target: &Path, name: &Path) -> bool {
    let (Some(t), Some(n)) = (target.file_name(), name.file_name()) else {
        return false;
    };
    let (t, n) = (t.to_string_lossy(), n.to_string_lossy());
    n.strip_prefix('.')
        .and_then(|rest| rest.strip_prefix(t.as_ref()))
        .and_then(|rest| rest.strip_prefix('.'))
        .and_then(|rest| rest.strip_suffix(".tmp"))
        .is_some_and(|hex| hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Atomically replaces `path` with `bytes`: a temporary file `.<name>.<random>.tmp` beside it,
/// created exclusively with `mode` (so it never follows a symlink planted under that name, and
/// two writers never share one), written, fsynced, renamed over `path`, and the directory
/// fsynced. A failed replacement removes its temporary file. Errors name the path involved.
pub fn replace_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), (PathBuf, std::io::Error)> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut rnd = [0u8; 8];
    crate::key::fill_random(&mut rnd);
    let file_name = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.{}.tmp", hex::encode(rnd)));
    let at = |p: &Path| {
        let p = p.to_path_buf();
        move |e| (p, e)
    };
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(at(&tmp))?;
        f.write_all(bytes).map_err(at(&tmp))?;
        f.sync_all().map_err(at(&tmp))?;
        drop(f);
        fs::rename(&tmp, path).map_err(at(path))?;
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(at(dir))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Atomically replaces `path` with `bytes`, readable by the owner only (0600); see
/// [`replace_file`].
pub fn write_atomic(path: &Path, bytes: &[u8]) -> GraphResult<()> {
    replace_file(path, bytes, 0o600).map_err(|(path, source)| GraphError::Io { path, source })
}

/// Reads a secret state file (key graph image or member state), refusing one that other users
/// could read (its keys may be known) or write (it may have been replaced), as the keychain
/// refuses such key files.
fn read(path: &Path) -> GraphResult<Vec<u8>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path).map_err(io(path))?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(GraphError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!(
                        "mode {:04o} lets other users read or write these keys; refused \
                         (chmod 600 it if its contents are still trusted)",
                        mode & 0o7777
                    ),
                ),
            });
        }
    }
    fs::read(path).map_err(io(path))
}

/// Saves the server state to `path` atomically. Refused while changes are staged: the image
/// must describe a committed epoch.
pub fn save_graph(g: &KeyGraph, path: &Path) -> GraphResult<()> {
    if g.has_staged() {
        return Err(GraphError::BadParameter(
            "commit staged changes before saving the key graph".into(),
        ));
    }
    let mut bytes = encode_graph(g);
    let r = write_atomic(path, &bytes);
    bytes.zeroize();
    r
}

/// Loads the server state from `path` (a temporary file left by an interrupted save is ignored).
pub fn load_graph(path: &Path) -> GraphResult<KeyGraph> {
    let mut bytes = read(path)?;
    let g = decode_graph(&bytes, path);
    bytes.zeroize();
    g
}

/// Saves a member's state to `path` atomically.
pub fn save_member(m: &MemberState, path: &Path) -> GraphResult<()> {
    let mut bytes = encode_member(m);
    let r = write_atomic(path, &bytes);
    bytes.zeroize();
    r
}

/// Loads a member's state from `path`.
pub fn load_member(path: &Path) -> GraphResult<MemberState> {
    let mut bytes = read(path)?;
    let m = decode_member(&bytes, path);
    bytes.zeroize();
    m
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[cfg(unix)]
    #[test]
    fn state_others_can_read_or_write_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("amicn-persist-perm-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("graph.img");
        save_graph(&graph(), &p).unwrap();
        assert!(load_graph(&p).is_ok());
        for mode in [0o644, 0o620, 0o604] {
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
            let e = load_graph(&p).err().unwrap().to_string();
            assert!(
                e.contains("refused") && e.contains("graph.img"),
                "{mode:o}: {e}"
            );
        }
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(load_graph(&p).is_ok());
        let _ = fs::remove_dir_all(&dir);
    }

    fn graph() -> KeyGraph {
        let mut g = KeyGraph::with_seed(GraphConfig::new("/u", 2), 7).unwrap();
        g.add_project("p1").unwrap();
        for m in [0u32, 3, 9, 40] {
            g.stage_join(m, &["p1"], SymmetricKey::from_bytes([m as u8; KEY_LEN]))
                .unwrap();
        }
        g.commit(&|_: &[u8]| vec![0u8; 64]);
        g.stage_leave(3).unwrap();
        g.commit(&|_: &[u8]| vec![0u8; 64]);
        g
    }

    #[test]
    fn dense_images_of_the_earlier_layout_still_load() {
        let g = graph();
        let dense = encode_graph_as(&g, true);
        assert!(dense.starts_with(GRAPH_MAGIC_DENSE));
        let back = decode_graph(&dense, Path::new("old")).unwrap();
        assert_eq!(back.member_ids(), vec![0, 9, 40]);
        assert_eq!(back.members, g.members);
        // Saved again it takes the sparse layout, identical to the live graph's.
        assert_eq!(encode_graph(&back), encode_graph(&g));
    }

    #[test]
    fn sparse_member_table_is_checked() {
        let g = graph();
        let img = encode_graph(&g);
        let body_end = img.len() - 32;
        // The member table ends just before the revoked list (count 0, 8 bytes): rewrite the
        // second id to repeat the first, then re-checksum.
        let table_end = body_end - 8;
        let second_id = table_end - 2 * 12;
        let mut bad = img[..body_end].to_vec();
        bad[second_id..second_id + 4].copy_from_slice(&0u32.to_le_bytes());
        let sum = Sha256::digest(&bad);
        bad.extend_from_slice(&sum);
        let e = decode_graph(&bad, Path::new("x")).unwrap_err().to_string();
        assert!(e.contains("ascending"), "{e}");
    }
}
