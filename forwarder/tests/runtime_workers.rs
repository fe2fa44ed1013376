//! Two forwarding threads over real loopback sockets: names spread over both shards (seen in
//! the shard byte of the PitTokens the producer receives), every Interest gets its Data whether
//! or not the producer echoes the token, repeats are Content Store hits on the owning shard,
//! unrouted names are nacked by either shard, and a route registered through management after
//! start is used by both shards.

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::{BTreeSet, HashSet};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use amicn_forwarder::core::token_shard;
use amicn_forwarder::runtime::{RunningForwarder, RuntimeConfig};
use amicn_tlv::mgmt::{ControlParameters, ControlResponse};
use amicn_tlv::{Data, Interest, LpPacket, NackReason, Name, NetPacket, decode_packet};
use bytes::{Bytes, BytesMut};

const WAIT: Duration = Duration::from_secs(5);
const NAMES: u32 = 64;

fn start(tag: &str) -> (RunningForwarder, PathBuf) {
    let dir = std::env::temp_dir().join(format!("amicn-rtw-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("nfd.sock");
    let cfg = RuntimeConfig {
        unix_path: Some(sock.clone()),
        tcp: vec!["127.0.0.1:0".parse().unwrap()],
        workers: 2,
        shard_prefix_components: 2,
        ..RuntimeConfig::default()
    };
    (RunningForwarder::start(cfg).unwrap(), sock)
}

/// Reads one whole TLV from a stream; `None` when nothing arrives before the read timeout.
fn try_read_tlv(s: &mut impl Read, buf: &mut BytesMut) -> Option<Bytes> {
    loop {
        if let Some(n) = amicn_tlv::split_first_tlv(buf).unwrap() {
            return Some(buf.split_to(n).freeze());
        }
        let mut chunk = [0u8; 16384];
        match s.read(&mut chunk) {
            Ok(0) => panic!("connection closed while waiting for a packet"),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return None;
            }
            Err(e) => panic!("read: {e}"),
        }
    }
}

fn read_tlv(s: &mut impl Read, buf: &mut BytesMut) -> Bytes {
    try_read_tlv(s, buf).expect("timed out waiting for a packet")
}

fn interest(uri: &str, nonce: u32) -> Bytes {
    let mut i = Interest::new(Name::from_uri(uri).unwrap());
    i.nonce = Some(nonce);
    i.lifetime_ms = Some(2000);
    i.encode()
}

fn register(prefix: &str, nonce: u32) -> Bytes {
    let cp = ControlParameters {
        name: Some(Name::from_uri(prefix).unwrap()),
        ..ControlParameters::default()
    };
    let name = Name::from_uri("/localhost/nfd/rib/register")
        .unwrap()
        .append_generic(cp.encode());
    let mut i = Interest::new(name);
    i.nonce = Some(nonce);
    i.encode()
}

/// A producer on the Unix socket that has registered `prefix` (reply checked).
fn producer(sock: &Path, prefix: &str) -> (UnixStream, BytesMut) {
    let mut s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(&register(prefix, 7)).unwrap();
    let mut buf = BytesMut::new();
    let NetPacket::Data(reply) = decode_packet(read_tlv(&mut s, &mut buf)).unwrap().packet else {
        panic!("expected the register reply");
    };
    let resp = ControlResponse::decode(reply.content.clone()).unwrap();
    assert_eq!(resp.status_code, 200, "{}", resp.status_text);
    (s, buf)
}

/// Serves `n` Interests: Data named as asked, content = the name; echoes the PitToken on
/// every other one (token-less Data must find its shard by name). Returns the shard bytes of
/// the tokens seen.
fn serve(s: &mut UnixStream, buf: &mut BytesMut, n: u32) -> BTreeSet<u8> {
    let mut shards = BTreeSet::new();
    for k in 0..n {
        let rx = decode_packet(read_tlv(s, buf)).unwrap();
        let NetPacket::Interest(i) = rx.packet else {
            panic!("producer expected an Interest");
        };
        let token = rx
            .lp
            .pit_token
            .expect("the forwarder tags Interests with its PitToken");
        shards.insert(token_shard(&token).expect("8-byte forwarder token"));
        let content = Bytes::from(i.name.to_string().into_bytes());
        let data = Data::new(i.name.clone(), content).sign_digest_sha256();
        let out = if k % 2 == 0 {
            LpPacket {
                pit_token: Some(token),
                fragment: Some(data),
                ..LpPacket::default()
            }
            .encode()
        } else {
            data
        };
        s.write_all(&out).unwrap();
    }
    shards
}

/// Sends every name, then collects exactly one Data per name.
fn fetch_all(tcp: &mut TcpStream, buf: &mut BytesMut, names: &[String], nonce: u32) {
    for (i, n) in names.iter().enumerate() {
        tcp.write_all(&interest(n, nonce + i as u32)).unwrap();
    }
    let mut got = HashSet::new();
    for _ in names {
        match decode_packet(read_tlv(tcp, buf)).unwrap().packet {
            NetPacket::Data(d) => {
                let name = d.name.to_string();
                assert_eq!(d.content, Bytes::from(name.clone().into_bytes()));
                assert!(got.insert(name), "duplicate Data");
            }
            other => panic!("expected Data, got {other:?}"),
        }
    }
    let want: HashSet<String> = names.iter().cloned().collect();
    assert_eq!(got, want);
}

#[test]
fn two_shards_fetch_nack_cache_and_share_routes() {
    let (fwd, sock) = start("all");
    let ep = fwd.endpoints().clone();
    let (mut prod, mut pbuf) = producer(&sock, "/amicn");
    let mut tcp = TcpStream::connect(ep.tcp[0]).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    let mut tbuf = BytesMut::new();

    // Distinct second components: the hash of /amicn/<i> spreads them over both shards.
    let names: Vec<String> = (0..NAMES).map(|i| format!("/amicn/m{i}/reading")).collect();
    let server = std::thread::spawn(move || {
        let shards = serve(&mut prod, &mut pbuf, NAMES);
        (prod, pbuf, shards)
    });
    fetch_all(&mut tcp, &mut tbuf, &names, 1000);
    let (mut prod, mut pbuf, shards) = server.join().unwrap();
    assert_eq!(
        shards,
        BTreeSet::from([0, 1]),
        "both shards forwarded Interests"
    );

    // Second fetch: every name is a CS hit on the shard that cached it; the producer hears
    // nothing.
    fetch_all(&mut tcp, &mut tbuf, &names, 2000);
    prod.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(
        try_read_tlv(&mut prod, &mut pbuf).is_none(),
        "a cached name reached the producer"
    );
    prod.set_read_timeout(Some(WAIT)).unwrap();

    // No route, from whichever shard owns the name.
    let nowhere: Vec<String> = (0..16).map(|i| format!("/nowhere/n{i}/x")).collect();
    for (i, n) in nowhere.iter().enumerate() {
        tcp.write_all(&interest(n, 3000 + i as u32)).unwrap();
    }
    let mut nacked = HashSet::new();
    for _ in &nowhere {
        match decode_packet(read_tlv(&mut tcp, &mut tbuf)).unwrap().packet {
            NetPacket::Nack(n) => {
                assert_eq!(n.reason, NackReason::NoRoute);
                nacked.insert(n.interest.name.to_string());
            }
            other => panic!("expected Nack, got {other:?}"),
        }
    }
    assert_eq!(nacked, nowhere.iter().cloned().collect());

    // A route registered through management now: both shards use it.
    let (mut prod2, mut pbuf2) = producer(&sock, "/late");
    let late: Vec<String> = (0..NAMES).map(|i| format!("/late/d{i}/v")).collect();
    let server = std::thread::spawn(move || serve(&mut prod2, &mut pbuf2, NAMES));
    fetch_all(&mut tcp, &mut tbuf, &late, 4000);
    assert_eq!(server.join().unwrap(), BTreeSet::from([0, 1]));

    drop(prod);
    let stats = fwd.shutdown().unwrap();
    assert_eq!(stats["workers"].as_u64(), Some(2), "{stats}");
    assert!(
        stats["cs_hits"].as_u64().unwrap() >= u64::from(NAMES),
        "{stats}"
    );
    assert!(
        stats["in_interests"].as_u64().unwrap() >= u64::from(3 * NAMES + 16),
        "{stats}"
    );
    assert!(stats["out_nacks"].as_u64().unwrap() >= 16, "{stats}");
    assert_eq!(stats["shard_queue_drops"].as_u64(), Some(0), "{stats}");
}

#[test]
fn cs_capacity_is_forwarder_wide_across_shards() {
    let (fwd, sock) = start("csinfo");
    let mut s = UnixStream::connect(&sock).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = BytesMut::new();
    let cp = ControlParameters {
        capacity: Some(1000),
        ..ControlParameters::default()
    };
    let name = Name::from_uri("/localhost/nfd/cs/config")
        .unwrap()
        .append_generic(cp.encode());
    let mut i = Interest::new(name);
    i.nonce = Some(9);
    s.write_all(&i.encode()).unwrap();
    let NetPacket::Data(reply) = decode_packet(read_tlv(&mut s, &mut buf)).unwrap().packet else {
        panic!("expected the cs/config reply");
    };
    let resp = ControlResponse::decode(reply.content.clone()).unwrap();
    assert_eq!(resp.status_code, 200, "{}", resp.status_text);
    assert_eq!(resp.body.unwrap().capacity, Some(1000));
    drop(fwd);
}
