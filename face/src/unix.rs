//! Unix stream socket channel: the local faces applications connect to.

use std::path::{Path, PathBuf};

use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

use crate::link::{Channel, FaceKind, FaceMeta, InboundTx, Persistency};
use crate::stream::{FaceOptions, spawn_stream_face};
use crate::{Error, MAX_PACKET_SIZE, io_err};

/// NFD's socket path on Linux, where unmodified clients look first.
pub const NFD_SOCKET_PATH: &str = "/run/nfd/nfd.sock";

/// The socket path used when none is configured: NFD's `/run/nfd/nfd.sock` if its directory is
/// writable (or creatable), else `$XDG_RUNTIME_DIR/amicn/nfd.sock`, else `/tmp/amicn/nfd.sock`.
pub fn default_socket_path() -> PathBuf {
    let nfd = PathBuf::from(NFD_SOCKET_PATH);
    if dir_writable(Path::new("/run/nfd")) {
        return nfd;
    }
    if let Some(xdg) = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        let dir = PathBuf::from(xdg).join("amicn");
        if dir_writable(&dir) {
            return dir.join("nfd.sock");
        }
    }
    PathBuf::from("/tmp/amicn/nfd.sock")
}

fn dir_writable(dir: &Path) -> bool {
    if std::fs::create_dir_all(dir).is_err() {
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

/// Binds `path` (removing a stale socket file, refusing one a live process listens on) and
/// accepts connections as local, on-demand faces.
pub async fn listen_unix(
    path: &Path,
    inbound: InboundTx,
    opts: FaceOptions,
) -> crate::Result<Channel> {
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent).map_err(|e| io_err("create dir", parent.display(), e))?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(Error::SocketInUse(path.display().to_string()));
        }
        std::fs::remove_file(path).map_err(|e| io_err("remove stale socket", path.display(), e))?;
    }
    let listener = UnixListener::bind(path).map_err(|e| io_err("bind", path.display(), e))?;
    {
        use std::os::unix::fs::PermissionsExt;
        // Like NFD: any local user may connect; management authorisation is by face scope.
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666));
    }
    let local_uri = format!("unix://{}", path.display());
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    let uri = local_uri.clone();
    tokio::spawn(async move {
        let mut n = 0u64;
        loop {
            let accepted = tokio::select! {
                () = stop.cancelled() => break,
                a = listener.accept() => a,
            };
            match accepted {
                Ok((stream, _)) => {
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
                    if spawn_stream_face(r, w, meta, inbound.clone(), opts)
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
}
