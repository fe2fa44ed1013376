//! Unix stream socket channel: the local faces applications connect to.
//!
//! Who may connect is decided by the socket file's mode and group ([`UnixAccess`]; owner and
//! group by default), since every face on it is local and may send management commands. A
//! socket directory the forwarder picked itself (the `/tmp` or `$XDG_RUNTIME_DIR` fallback)
//! must belong to us and be writable by nobody else, or another user could replace the socket.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

use crate::link::{Channel, ChannelCounters, FaceKind, FaceMeta, InboundTx, Persistency};
use crate::stream::{Accepted, FaceOptions, FaceSlot, spawn_accepted_face};
use crate::{Error, MAX_PACKET_SIZE, io_err};

/// NFD's socket path on Linux, where unmodified clients look first.
pub const NFD_SOCKET_PATH: &str = "/run/nfd/nfd.sock";

/// The last-resort socket directory when neither `/run/nfd` nor `$XDG_RUNTIME_DIR` is usable.
pub const FALLBACK_SOCKET_DIR: &str = "/tmp/amicn";

/// Default mode of the socket file: owner and group may connect, others may not.
pub const DEFAULT_SOCKET_MODE: u32 = 0o660;

/// Who may connect to the Unix socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixAccess {
    /// Permission bits of the socket file (connecting needs write permission). NFD uses 0666;
    /// the default [`DEFAULT_SOCKET_MODE`] admits the owner and the owner's group.
    pub mode: u32,
    /// Group given the socket file (name or numeric id); `None` keeps the creator's group.
    pub group: Option<String>,
}

impl Default for UnixAccess {
    fn default() -> Self {
        Self {
            mode: DEFAULT_SOCKET_MODE,
            group: None,
        }
    }
}

/// The socket path used when none is configured: NFD's `/run/nfd/nfd.sock` if its directory is
/// writable (or creatable), else `$XDG_RUNTIME_DIR/amicn/nfd.sock`, else `/tmp/amicn/nfd.sock`.
pub fn default_socket_path() -> PathBuf {
    let nfd = PathBuf::from(NFD_SOCKET_PATH);
    if dir_writable(Path::new("/run/nfd")) {
        return nfd;
    }
    if let Some(dir) = xdg_dir()
        && dir_writable(&dir)
    {
        return dir.join("nfd.sock");
    }
    Path::new(FALLBACK_SOCKET_DIR).join("nfd.sock")
}

fn xdg_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|v| !v.is_empty())
        .map(|x| PathBuf::from(x).join("amicn"))
}

/// Directories [`default_socket_path`] may pick on its own, which must be private to us.
fn chosen_dirs() -> Vec<PathBuf> {
    let mut v = vec![PathBuf::from(FALLBACK_SOCKET_DIR)];
    v.extend(xdg_dir());
    v
}

fn dir_writable(dir: &Path) -> bool {
    // Created private: the directory guards the socket against replacement.
    if std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .is_err()
    {
        return false;
    }
    let probe = dir.join(format!(".amicn-probe-{}", std::process::id()));
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            true
        }
        Err(_) => false,
    }
}

/// The effective user id of this process: the owner of files it creates.
fn our_uid(dir: &Path) -> std::io::Result<u32> {
    if let Ok(m) = std::fs::metadata("/proc/self") {
        return Ok(m.uid());
    }
    let probe = dir.join(format!(".amicn-uid-{}", std::process::id()));
    let uid = std::fs::File::create(&probe)?.metadata()?.uid();
    let _ = std::fs::remove_file(&probe);
    Ok(uid)
}

/// Refuses a socket directory another user could tamper with: it must be a real directory
/// (not a symlink), owned by us, with no group or other write permission.
pub fn check_private_dir(dir: &Path) -> crate::Result<()> {
    let insecure = |why: String| Error::InsecureSocketDir {
        dir: dir.display().to_string(),
        why,
    };
    let m = std::fs::symlink_metadata(dir).map_err(|e| io_err("stat", dir.display(), e))?;
    if !m.file_type().is_dir() {
        return Err(insecure("it is not a directory (a symlink?)".into()));
    }
    let uid = our_uid(dir).map_err(|e| io_err("find our user id", dir.display(), e))?;
    if m.uid() != uid {
        return Err(insecure(format!(
            "it belongs to uid {}, not to us (uid {uid})",
            m.uid()
        )));
    }
    let mode = m.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(insecure(format!(
            "mode {mode:04o} lets other users write to it"
        )));
    }
    Ok(())
}

/// A group name from `/etc/group`, or a numeric id, as a gid.
fn resolve_group(group: &str) -> crate::Result<u32> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(gid);
    }
    let text =
        std::fs::read_to_string("/etc/group").map_err(|e| io_err("read", "/etc/group", e))?;
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            Some((f.next()?, f.nth(1)?))
        })
        .find(|(name, _)| *name == group)
        .and_then(|(_, gid)| gid.parse().ok())
        .ok_or_else(|| Error::UnknownGroup(group.to_string()))
}

/// Binds `path` (removing a stale socket file, refusing one a live process listens on) and
/// accepts connections as local, on-demand faces; the socket gets [`UnixAccess::default`].
pub async fn listen_unix(
    path: &Path,
    inbound: InboundTx,
    opts: FaceOptions,
) -> crate::Result<Channel> {
    listen_unix_with(path, inbound, opts, &UnixAccess::default()).await
}

/// [`listen_unix`] with the socket file's mode and group given.
pub async fn listen_unix_with(
    path: &Path,
    inbound: InboundTx,
    opts: FaceOptions,
    access: &UnixAccess,
) -> crate::Result<Channel> {
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        let chosen = chosen_dirs().iter().any(|d| d == parent);
        if chosen {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(|e| io_err("create dir", parent.display(), e))?;
            check_private_dir(parent)?;
        } else {
            std::fs::create_dir_all(parent)
                .map_err(|e| io_err("create dir", parent.display(), e))?;
        }
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(Error::SocketInUse(path.display().to_string()));
        }
        std::fs::remove_file(path).map_err(|e| io_err("remove stale socket", path.display(), e))?;
    }
    let gid = access.group.as_deref().map(resolve_group).transpose()?;
    let listener = UnixListener::bind(path).map_err(|e| io_err("bind", path.display(), e))?;
    let restrict = || -> std::io::Result<()> {
        if let Some(gid) = gid {
            std::os::unix::fs::chown(path, None, Some(gid))?;
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(access.mode & 0o777))
    };
    if let Err(e) = restrict() {
        let _ = std::fs::remove_file(path);
        return Err(io_err("set socket owner/mode", path.display(), e));
    }
    let local_uri = format!("unix://{}", path.display());
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    let uri = local_uri.clone();
    let counters = Arc::new(ChannelCounters::default());
    let chan_counters = counters.clone();
    let open = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        let mut n = 0u64;
        loop {
            let accepted = tokio::select! {
                () = stop.cancelled() => break,
                a = listener.accept() => a,
            };
            match accepted {
                Ok((stream, _)) => {
                    let Some(slot) = FaceSlot::take(&open, opts.limits.max_stream_faces) else {
                        counters.refused.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!("unix channel full; connection refused");
                        continue;
                    };
                    n += 1;
                    let (r, w) = stream.into_split();
                    let meta = FaceMeta {
                        kind: FaceKind::Unix,
                        remote_uri: format!("fd://{n}"),
                        local_uri: uri.clone(),
                        local: true,
                        persistency: Persistency::OnDemand,
                        mtu: MAX_PACKET_SIZE,
                    };
                    let accepted = Accepted {
                        slot: Some(slot),
                        idle: None,
                    };
                    if spawn_accepted_face(r, w, meta, inbound.clone(), opts, accepted)
                        .await
                        .is_none()
                    {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "unix accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            }
        }
    });
    Ok(Channel::new(
        local_uri,
        None,
        cancel,
        Some(path.to_path_buf()),
        chan_counters,
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::link::Inbound;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn accepts_replaces_stale_and_cleans_up() {
        let dir = std::env::temp_dir().join(format!("amicn-unix-test-{}", std::process::id()));
        let path = dir.join("s.sock");
        // A stale file nobody listens on is replaced.
        std::fs::create_dir_all(&dir).unwrap();
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        let ch = listen_unix(&path, tx.clone(), FaceOptions::default())
            .await
            .unwrap();
        // A second listener on a live path is refused.
        assert!(matches!(
            listen_unix(&path, tx, FaceOptions::default()).await,
            Err(Error::SocketInUse(_))
        ));
        // (The liveness probe above was itself accepted as a face; it opens and closes.)
        let mut c = tokio::net::UnixStream::connect(&path).await.unwrap();
        c.write_all(&[5, 0]).await.unwrap();
        let mut opened = 0;
        let packets = loop {
            match rx.recv().await.unwrap() {
                Inbound::Opened { meta, .. } => {
                    assert!(meta.local);
                    assert_eq!(meta.kind, FaceKind::Unix);
                    opened += 1;
                }
                Inbound::Packets { packets, .. } => break packets,
                Inbound::Closed { .. } => {}
            }
        };
        assert_eq!(opened, 2);
        assert_eq!(&packets[0][..], &[5, 0]);
        drop(ch);
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn socket_mode_and_group_are_applied() {
        let dir = std::env::temp_dir().join(format!("amicn-unix-mode-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let (tx, _rx) = tokio::sync::mpsc::channel(8);
        let ch = listen_unix(&path, tx.clone(), FaceOptions::default())
            .await
            .unwrap();
        let m = std::fs::metadata(&path).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, DEFAULT_SOCKET_MODE);
        drop(ch);
        let gid = std::fs::metadata(&dir).unwrap().gid();
        let access = UnixAccess {
            mode: 0o600,
            group: Some(gid.to_string()),
        };
        let ch = listen_unix_with(&path, tx.clone(), FaceOptions::default(), &access)
            .await
            .unwrap();
        let m = std::fs::metadata(&path).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o600);
        assert_eq!(m.gid(), gid);
        drop(ch);
        let bad = UnixAccess {
            group: Some("no-such-group-amicn".into()),
            ..UnixAccess::default()
        };
        assert!(matches!(
            listen_unix_with(&path, tx, FaceOptions::default(), &bad).await,
            Err(Error::UnknownGroup(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_socket_directory_others_can_write_is_refused() {
        let dir = std::env::temp_dir().join(format!("amicn-unix-dir-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        check_private_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = check_private_dir(&dir).unwrap_err();
        assert!(matches!(e, Error::InsecureSocketDir { .. }), "{e}");
        assert!(e.to_string().contains("other users write"), "{e}");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        // A symlink to a private directory is not accepted either.
        let link = dir.with_extension("link");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        assert!(matches!(
            check_private_dir(&link),
            Err(Error::InsecureSocketDir { .. })
        ));
        // Not ours: the root directory belongs to root (tests do not run as root).
        if std::fs::metadata("/proc/self").unwrap().uid() != 0 {
            let e = check_private_dir(Path::new("/")).unwrap_err();
            assert!(e.to_string().contains("not to us"), "{e}");
        }
        let _ = std::fs::remove_file(&link);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
