//! Face URIs as NFD writes them: `unix:///run/nfd/nfd.sock`, `tcp4://192.0.2.1:6363`,
//! `udp4://192.0.2.1:6363`, `udp6://[2001:db8::1]:6363`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

use crate::{Error, NDN_PORT};

/// A parsed face URI.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FaceUri {
    /// Unix stream socket path.
    Unix(PathBuf),
    /// TCP endpoint.
    Tcp(SocketAddr),
    /// UDP endpoint (unicast, or a multicast group).
    Udp(SocketAddr),
}

impl FaceUri {
    /// Parses a URI; the port defaults to 6363.
    pub fn parse(s: &str) -> crate::Result<Self> {
        let bad = |why| Error::BadUri {
            uri: s.to_owned(),
            why,
        };
        let (kind, scheme, rest) = split_scheme(s).map_err(bad)?;
        match kind {
            Transport::Unix => Ok(Self::Unix(PathBuf::from(rest))),
            Transport::Tcp => Ok(Self::Tcp(parse_addr(rest, scheme).map_err(bad)?)),
            Transport::Udp => Ok(Self::Udp(parse_addr(rest, scheme).map_err(bad)?)),
        }
    }

    /// Canonical form, as `faces/list` reports it.
    pub fn canonical(&self) -> String {
        self.to_string()
    }
}

/// The socket family a URI names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    Unix,
    Tcp,
    Udp,
}

/// Splits `scheme://rest` and classifies the scheme; the one scheme table shared by face URIs
/// ([`FaceUri`]) and client transport URIs ([`crate::client::TransportUri`]).
pub(crate) fn split_scheme(s: &str) -> Result<(Transport, &str, &str), &'static str> {
    let (scheme, rest) = s.split_once("://").ok_or("missing scheme://")?;
    let kind = match scheme {
        "unix" => Transport::Unix,
        "tcp" | "tcp4" | "tcp6" => Transport::Tcp,
        "udp" | "udp4" | "udp6" => Transport::Udp,
        _ => return Err("unsupported scheme (use unix, tcp4, tcp6, udp4, udp6)"),
    };
    if kind == Transport::Unix && rest.is_empty() {
        return Err("empty socket path");
    }
    Ok((kind, scheme, rest))
}

fn parse_addr(rest: &str, scheme: &str) -> Result<SocketAddr, &'static str> {
    let rest = rest.trim_end_matches('/');
    let (host, port) = if let Some(r) = rest.strip_prefix('[') {
        let (h, after) = r.split_once(']').ok_or("unterminated [IPv6] host")?;
        let port = after.strip_prefix(':');
        (h, port)
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    let ip: IpAddr = if host == "localhost" {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host.parse().map_err(|_| "host must be an IP address")?
    };
    let port = match port {
        Some(p) => p.parse().map_err(|_| "bad port")?,
        None => NDN_PORT,
    };
    match (scheme.as_bytes().last(), ip) {
        (Some(b'4'), IpAddr::V6(_)) => Err("IPv6 address in a v4 scheme"),
        (Some(b'6'), IpAddr::V4(_)) => Err("IPv4 address in a v6 scheme"),
        _ => Ok(SocketAddr::new(ip, port)),
    }
}

impl FromStr for FaceUri {
    type Err = Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        Self::parse(s)
    }
}

impl fmt::Display for FaceUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = |a: &SocketAddr| if a.is_ipv4() { '4' } else { '6' };
        match self {
            Self::Unix(p) => write!(f, "unix://{}", p.display()),
            Self::Tcp(a) => write!(f, "tcp{}://{a}", v(a)),
            Self::Udp(a) => write!(f, "udp{}://{a}", v(a)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_and_prints_nfd_forms() {
        let u = FaceUri::parse("tcp4://192.0.2.1:6363").unwrap();
        assert_eq!(u.to_string(), "tcp4://192.0.2.1:6363");
        let u = FaceUri::parse("udp://127.0.0.1").unwrap();
        assert_eq!(u, FaceUri::Udp("127.0.0.1:6363".parse().unwrap()));
        assert_eq!(u.to_string(), "udp4://127.0.0.1:6363");
        let u = FaceUri::parse("udp6://[::1]:7000").unwrap();
        assert_eq!(u.to_string(), "udp6://[::1]:7000");
        let u = FaceUri::parse("unix:///run/nfd/nfd.sock").unwrap();
        assert_eq!(u, FaceUri::Unix("/run/nfd/nfd.sock".into()));
        assert_eq!(u.to_string(), "unix:///run/nfd/nfd.sock");
        assert_eq!(
            FaceUri::parse("tcp://localhost").unwrap(),
            FaceUri::Tcp("127.0.0.1:6363".parse().unwrap())
        );
    }

    #[test]
    fn rejects_bad_uris() {
        for s in [
            "ether://aa",
            "tcp4://[::1]:1",
            "udp6://1.2.3.4",
            "tcp4://host.example:1",
            "unix://",
            "127.0.0.1:6363",
            "tcp4://1.2.3.4:99999",
        ] {
            assert!(FaceUri::parse(s).is_err(), "{s}");
        }
    }
}
