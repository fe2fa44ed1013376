//! Where the forwarder is: the transport URI, and how applications find it
//! (`AMICN_SOCKET`, `NDN_CLIENT_TRANSPORT`, `client.conf` `transport=`, the default Unix socket
//! and its fallbacks).

use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::ClientError;
use crate::uri::{FaceUri, Transport, split_scheme};

/// Default NDN port for TCP and UDP faces.
pub const DEFAULT_PORT: u16 = crate::NDN_PORT;
/// Default Unix socket of a local forwarder on Linux (ndn-cxx, python-ndn, NDNts).
pub const DEFAULT_UNIX_PATH: &str = "/run/nfd/nfd.sock";
/// Unix socket paths tried, in order, when the default one does not exist.
pub const FALLBACK_UNIX_PATHS: &[&str] = &[
    "/run/nfd.sock",
    "/run/ndn/nfd.sock",
    "/var/run/nfd/nfd.sock",
];

/// Where the forwarder is: a parsed `unix://`, `tcp://` or `udp://` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportUri {
    /// A Unix stream socket.
    Unix(PathBuf),
    /// A TCP connection to `host:port`.
    Tcp(String),
    /// A UDP unicast face to `host:port`.
    Udp(String),
}

impl std::fmt::Display for TransportUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransportUri::Unix(p) => write!(f, "unix://{}", p.display()),
            TransportUri::Tcp(a) => write!(f, "tcp://{a}"),
            TransportUri::Udp(a) => write!(f, "udp://{a}"),
        }
    }
}

fn with_default_port(uri: &str, rest: &str) -> Result<String, ClientError> {
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() {
        return Err(ClientError::InvalidUri {
            uri: uri.to_owned(),
            why: "missing host",
        });
    }
    // `[v6]:port`, `[v6]`, `host:port`, `host`.
    let has_port = if let Some(end) = rest.rfind(']') {
        rest[end..].contains(':')
    } else {
        rest.contains(':')
    };
    if has_port {
        Ok(rest.to_owned())
    } else {
        Ok(format!("{rest}:{DEFAULT_PORT}"))
    }
}

impl FromStr for TransportUri {
    type Err = ClientError;

    fn from_str(uri: &str) -> Result<Self, Self::Err> {
        let uri = uri.trim();
        if uri.starts_with('/') {
            return Ok(TransportUri::Unix(PathBuf::from(uri)));
        }
        let bad = |why| ClientError::InvalidUri {
            uri: uri.to_owned(),
            why,
        };
        let (kind, _, rest) = split_scheme(uri).map_err(|_| {
            bad(if uri.starts_with("unix://") {
                "missing socket path"
            } else {
                "unknown scheme"
            })
        })?;
        Ok(match kind {
            Transport::Unix => TransportUri::Unix(PathBuf::from(rest)),
            Transport::Tcp => TransportUri::Tcp(with_default_port(uri, rest)?),
            Transport::Udp => TransportUri::Udp(with_default_port(uri, rest)?),
        })
    }
}

impl From<&FaceUri> for TransportUri {
    /// The transport a client uses to reach a forwarder listening on a face URI.
    fn from(u: &FaceUri) -> TransportUri {
        match u {
            FaceUri::Unix(p) => TransportUri::Unix(p.clone()),
            FaceUri::Tcp(a) => TransportUri::Tcp(a.to_string()),
            FaceUri::Udp(a) => TransportUri::Udp(a.to_string()),
        }
    }
}

/// The `transport=` value of a `client.conf` file, if any.
pub(super) fn transport_from_client_conf(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|line| {
        let line = line.trim();
        if line.starts_with(';') || line.starts_with('#') {
            return None;
        }
        let (key, value) = line.split_once('=')?;
        (key.trim() == "transport").then(|| value.trim().to_owned())
    })
}

/// Finds the forwarder the way NDN applications do.
///
/// Order: `AMICN_SOCKET` (a path or URI), `NDN_CLIENT_TRANSPORT`, `transport=` in
/// `$HOME/.ndn/client.conf`, `/usr/local/etc/ndn/client.conf`, `/etc/ndn/client.conf`; then the
/// default Unix socket `/run/nfd/nfd.sock`, or the first fallback path that exists.
pub fn default_transport() -> Result<TransportUri, ClientError> {
    resolve_transport(&|var| std::env::var(var).ok())
}

/// [`default_transport`] with the environment read through `env` (a variable's value, `None`
/// when unset), so that every tool resolves the same forwarder from the same settings.
pub fn resolve_transport(
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<TransportUri, ClientError> {
    for var in ["AMICN_SOCKET", "NDN_CLIENT_TRANSPORT"] {
        if let Some(v) = env(var)
            && !v.is_empty()
        {
            return v.parse();
        }
    }
    let mut confs = Vec::new();
    if let Some(home) = env("HOME").filter(|h| !h.is_empty()) {
        confs.push(PathBuf::from(home).join(".ndn/client.conf"));
    }
    confs.push(PathBuf::from("/usr/local/etc/ndn/client.conf"));
    confs.push(PathBuf::from("/etc/ndn/client.conf"));
    for conf in confs {
        if let Some(t) = transport_from_client_conf(&conf) {
            return t.parse();
        }
    }
    if !Path::new(DEFAULT_UNIX_PATH).exists()
        && let Some(p) = FALLBACK_UNIX_PATHS.iter().find(|p| Path::new(p).exists())
    {
        return Ok(TransportUri::Unix(PathBuf::from(p)));
    }
    Ok(TransportUri::Unix(PathBuf::from(DEFAULT_UNIX_PATH)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn resolution_order() {
        let dir = std::env::temp_dir().join(format!("amicn-transport-{}", std::process::id()));
        std::fs::create_dir_all(dir.join(".ndn")).unwrap();
        std::fs::write(
            dir.join(".ndn/client.conf"),
            "; comment\ntransport=tcp4://192.0.2.7\n",
        )
        .unwrap();
        let home = dir.to_string_lossy().into_owned();
        let with = |pairs: &[(&str, &str)]| {
            let pairs: Vec<(String, String)> = pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            move |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        };
        let conf = resolve_transport(&with(&[("HOME", &home)])).unwrap();
        assert_eq!(conf, TransportUri::Tcp("192.0.2.7:6363".into()));
        let ndn = resolve_transport(&with(&[
            ("HOME", &home),
            ("NDN_CLIENT_TRANSPORT", "unix:///tmp/x.sock"),
        ]))
        .unwrap();
        assert_eq!(ndn, TransportUri::Unix("/tmp/x.sock".into()));
        let ours = resolve_transport(&with(&[
            ("HOME", &home),
            ("NDN_CLIENT_TRANSPORT", "unix:///tmp/x.sock"),
            ("AMICN_SOCKET", "/tmp/y.sock"),
        ]))
        .unwrap();
        assert_eq!(ours, TransportUri::Unix("/tmp/y.sock".into()));
        assert!(resolve_transport(&with(&[("AMICN_SOCKET", "ftp://x")])).is_err());
        // A face URI and the transport URI of the same socket name the same thing.
        for s in [
            "unix:///tmp/f.sock",
            "tcp4://127.0.0.1:6363",
            "udp6://[::1]:7000",
        ] {
            let face: FaceUri = s.parse().unwrap();
            assert_eq!(
                TransportUri::from(&face),
                s.parse::<TransportUri>().unwrap(),
                "{s}"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
