//! The runtime over real sockets on loopback: a raw-TLV producer registers a prefix over the
//! Unix socket, consumers on TCP and UDP fetch through it, an unrouted name comes back as a
//! Nack NoRoute, management from a non-local face is refused, and malformed or oversized input
//! is counted without taking the forwarder down.

#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use amicn_face::FaceUri;
use amicn_forwarder::runtime::{RunningForwarder, RuntimeConfig, StaticRoute};
use amicn_tlv::mgmt::{ControlParameters, ControlResponse};
use amicn_tlv::{Data, Interest, LpPacket, NackReason, Name, NetPacket, decode_packet};
use bytes::{Bytes, BytesMut};

const WAIT: Duration = Duration::from_secs(5);

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("amicn-rt-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn start(tag: &str, loopback_is_local: bool) -> (RunningForwarder, PathBuf) {
    let dir = temp_dir(tag);
    let sock = dir.join("nfd.sock");
    let cfg = RuntimeConfig {
        unix_path: Some(sock.clone()),
        tcp: vec!["127.0.0.1:0".parse().unwrap()],
        udp: vec!["127.0.0.1:0".parse().unwrap()],
        loopback_is_local,
        ..RuntimeConfig::default()
    };
    (RunningForwarder::start(cfg).unwrap(), sock)
}

/// Reads one whole TLV from a stream.
fn read_tlv(s: &mut impl Read, buf: &mut BytesMut) -> Bytes {
    loop {
        if let Some(n) = amicn_tlv::split_first_tlv(buf).unwrap() {
            return buf.split_to(n).freeze();
        }
        let mut chunk = [0u8; 16384];
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed while waiting for a packet");
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn interest(uri: &str, nonce: u32) -> Interest {
    let mut i = Interest::new(Name::from_uri(uri).unwrap());
    i.nonce = Some(nonce);
    i.lifetime_ms = Some(2000);
    i
}

fn register_command(prefix: &str, nonce: u32) -> Bytes {
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

fn expect_data(wire: Bytes) -> Data {
    match decode_packet(wire).unwrap().packet {
        NetPacket::Data(d) => d,
        other => panic!("expected Data, got {other:?}"),
    }
}

/// A producer on the Unix socket: registers `prefix` and checks the 200 reply.
fn producer(sock: &PathBuf, prefix: &str) -> (UnixStream, BytesMut) {
    let mut s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(&register_command(prefix, 7)).unwrap();
    let mut buf = BytesMut::new();
    let reply = expect_data(read_tlv(&mut s, &mut buf));
    assert!(
        reply
            .name
            .to_string()
            .starts_with("/localhost/nfd/rib/register/")
    );
    let resp = ControlResponse::decode(reply.content.clone()).unwrap();
    assert_eq!(resp.status_code, 200, "{}", resp.status_text);
    let body = resp.body.unwrap();
    assert_eq!(body.name.unwrap().to_string(), prefix);
    assert!(body.face_id.unwrap() >= 256);
    (s, buf)
}

/// Answers one Interest with Data of the same name, echoing a PitToken if one came.
fn serve_one(s: &mut UnixStream, buf: &mut BytesMut, content: &'static [u8]) -> Name {
    let wire = read_tlv(s, buf);
    let rx = decode_packet(wire).unwrap();
    let NetPacket::Interest(i) = rx.packet else {
        panic!("producer expected an Interest");
    };
    let mut d = Data::new(i.name.clone(), Bytes::from_static(content));
    let data = d.sign_digest_sha256();
    let out = match rx.lp.pit_token {
        Some(t) => LpPacket {
            pit_token: Some(t),
            fragment: Some(data),
            ..LpPacket::default()
        }
        .encode(),
        None => data,
    };
    s.write_all(&out).unwrap();
    i.name
}

#[test]
fn register_fetch_over_tcp_and_udp_and_nack_no_route() {
    let (fwd, sock) = start("fetch", true);
    let ep = fwd.endpoints().clone();
    let (mut prod, mut pbuf) = producer(&sock, "/amicn/test");

    // TCP consumer.
    let mut tcp = TcpStream::connect(ep.tcp[0]).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    tcp.write_all(&interest("/amicn/test/tcp", 1).encode())
        .unwrap();
    let served = serve_one(&mut prod, &mut pbuf, b"over tcp");
    assert_eq!(served.to_string(), "/amicn/test/tcp");
    let mut tbuf = BytesMut::new();
    let d = expect_data(read_tlv(&mut tcp, &mut tbuf));
    assert_eq!(d.name.to_string(), "/amicn/test/tcp");
    assert_eq!(&d.content[..], b"over tcp");

    // The same name again is a CS hit: the producer sees nothing.
    tcp.write_all(&interest("/amicn/test/tcp", 2).encode())
        .unwrap();
    let d = expect_data(read_tlv(&mut tcp, &mut tbuf));
    assert_eq!(&d.content[..], b"over tcp");

    // UDP consumer.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(WAIT)).unwrap();
    udp.send_to(&interest("/amicn/test/udp", 3).encode(), ep.udp[0])
        .unwrap();
    serve_one(&mut prod, &mut pbuf, b"over udp");
    let mut dg = [0u8; 9000];
    let (n, from) = udp.recv_from(&mut dg).unwrap();
    assert_eq!(from, ep.udp[0]);
    let d = expect_data(Bytes::copy_from_slice(&dg[..n]));
    assert_eq!(d.name.to_string(), "/amicn/test/udp");

    // No route: Nack NoRoute as an LpPacket around the Interest.
    tcp.write_all(&interest("/nowhere/at/all", 4).encode())
        .unwrap();
    let rx = decode_packet(read_tlv(&mut tcp, &mut tbuf)).unwrap();
    match rx.packet {
        NetPacket::Nack(n) => {
            assert_eq!(n.reason, NackReason::NoRoute);
            assert_eq!(n.interest.name.to_string(), "/nowhere/at/all");
        }
        other => panic!("expected Nack, got {other:?}"),
    }

    let stats = fwd.shutdown().unwrap();
    assert!(stats["in_interests"].as_u64().unwrap() >= 5, "{stats}");
    assert!(stats["cs_hits"].as_u64().unwrap() >= 1, "{stats}");
    assert!(stats["out_nacks"].as_u64().unwrap() >= 1, "{stats}");
    assert!(!sock.exists(), "socket file must be removed at shutdown");
}

#[test]
fn management_refused_on_non_local_face() {
    // Loopback TCP/UDP peers count as non-local here, as a neighbour forwarder would.
    let (fwd, sock) = start("scope", false);
    let ep = fwd.endpoints().clone();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.send_to(&register_command("/stolen", 9), ep.udp[0])
        .unwrap();
    // The same command on the Unix socket is answered, proving the command itself is fine and
    // giving the UDP datagram time to be processed first (one forwarding thread, FIFO).
    let (_p, _) = producer(&sock, "/legit");
    // A consumer on the Unix socket asking for /stolen gets NoRoute: nothing was registered.
    let mut c = UnixStream::connect(&sock).unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    c.write_all(&interest("/stolen/x", 10).encode()).unwrap();
    let mut buf = BytesMut::new();
    match decode_packet(read_tlv(&mut c, &mut buf)).unwrap().packet {
        NetPacket::Nack(n) => assert_eq!(n.reason, NackReason::NoRoute),
        other => panic!("expected Nack, got {other:?}"),
    }
    let stats = fwd.shutdown().unwrap();
    assert!(stats["drops"]["scope"].as_u64().unwrap() >= 1, "{stats}");
}

#[test]
fn udp_from_loopback_is_never_local_but_tcp_from_loopback_is() {
    let (fwd, sock) = start("udpscope", true);
    let ep = fwd.endpoints().clone();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    udp.send_to(&register_command("/udp-stolen", 41), ep.udp[0])
        .unwrap();
    let mut dg = [0u8; 9000];
    assert!(udp.recv_from(&mut dg).is_err(), "UDP command answered");
    // TCP on loopback keeps NFD's rule: local, so the command is answered.
    let mut t = TcpStream::connect(ep.tcp[0]).unwrap();
    t.set_read_timeout(Some(WAIT)).unwrap();
    t.write_all(&register_command("/tcp-ok", 42)).unwrap();
    let mut buf = BytesMut::new();
    let resp = ControlResponse::decode(expect_data(read_tlv(&mut t, &mut buf)).content).unwrap();
    assert_eq!(resp.status_code, 200, "{}", resp.status_text);
    drop(sock);
    let stats = fwd.shutdown().unwrap();
    assert!(stats["drops"]["scope"].as_u64().unwrap() >= 1, "{stats}");
}

#[test]
fn malformed_and_oversized_input_is_counted_not_fatal() {
    let (fwd, sock) = start("bad", true);
    let ep = fwd.endpoints().clone();

    // A well-framed TLV that is not a valid Interest: dropped by the core as malformed.
    let mut junk = UnixStream::connect(&sock).unwrap();
    junk.write_all(&[0x05, 0x03, 0xFF, 0x01, 0x00]).unwrap();
    // An unknown top-level type is dropped too.
    junk.write_all(&[0x09, 0x01, 0x00]).unwrap();

    // A frame announcing more than 8800 bytes closes that face.
    let mut big = UnixStream::connect(&sock).unwrap();
    big.set_read_timeout(Some(WAIT)).unwrap();
    big.write_all(&[0x05, 0xFD, 0x30, 0x00, 0x07, 0x00])
        .unwrap();
    let mut rest = Vec::new();
    let n = big.read_to_end(&mut rest).unwrap();
    assert_eq!(n, 0, "the forwarder closes a face after an oversized frame");

    // A garbage datagram on UDP.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.send_to(&[0xFF, 0xFF, 0xFF], ep.udp[0]).unwrap();

    // The forwarder still works.
    let (mut prod, mut pbuf) = producer(&sock, "/still/alive");
    let mut c = TcpStream::connect(ep.tcp[0]).unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    c.write_all(&interest("/still/alive/1", 11).encode())
        .unwrap();
    serve_one(&mut prod, &mut pbuf, b"ok");
    let mut cbuf = BytesMut::new();
    assert_eq!(&expect_data(read_tlv(&mut c, &mut cbuf)).content[..], b"ok");

    let stats = fwd.shutdown().unwrap();
    assert_eq!(stats["link_oversized_frames"].as_u64(), Some(1), "{stats}");
    let malformed = stats["drops"]["malformed"].as_u64().unwrap()
        + stats["drops"]["unknown_critical"].as_u64().unwrap();
    assert!(malformed >= 2, "{stats}");
}

#[test]
fn stale_socket_is_replaced_and_live_one_refused() {
    let dir = temp_dir("stale");
    let sock = dir.join("nfd.sock");
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    let cfg = |p: &PathBuf| RuntimeConfig {
        unix_path: Some(p.clone()),
        ..RuntimeConfig::default()
    };
    let fwd = RunningForwarder::start(cfg(&sock)).unwrap();
    let second = RunningForwarder::start(cfg(&sock));
    assert!(
        second.is_err(),
        "a second forwarder on a live socket must fail"
    );
    fwd.shutdown().unwrap();
    assert!(!sock.exists());
}

fn scrape(addr: std::net::SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.0 200 OK"), "{out}");
    out
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn pit_expiry_fires_on_the_runtime_timer_and_metrics_show_it() {
    let dir = temp_dir("timer");
    let sock = dir.join("nfd.sock");
    let cfg = RuntimeConfig {
        unix_path: Some(sock.clone()),
        metrics: Some("127.0.0.1:0".parse().unwrap()),
        ..RuntimeConfig::default()
    };
    let fwd = RunningForwarder::start(cfg).unwrap();
    let maddr = fwd.endpoints().metrics.unwrap();
    let (mut prod, mut pbuf) = producer(&sock, "/silent");
    let mut c = UnixStream::connect(&sock).unwrap();
    let mut i = interest("/silent/x", 21);
    i.lifetime_ms = Some(100);
    c.write_all(&i.encode()).unwrap();
    // The producer receives the Interest but never answers.
    let got = read_tlv(&mut prod, &mut pbuf);
    assert!(matches!(
        decode_packet(got).unwrap().packet,
        NetPacket::Interest(_)
    ));
    // Only the PIT timer can move this counter; poll until it does (bounded).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = scrape(maddr);
        if metric(&text, "amicn_unsatisfied_interests_total") >= 1 {
            assert!(metric(&text, "amicn_in_interests_total") >= 1, "{text}");
            assert!(
                text.contains("amicn_forwarding_batch_seconds_count"),
                "{text}"
            );
            assert_eq!(metric(&text, "amicn_pit_entries"), 0, "{text}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "PIT entry never expired:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    fwd.shutdown().unwrap();
}

fn command(verb: &str, cp: &ControlParameters, nonce: u32) -> Bytes {
    let name = Name::from_uri(&format!("/localhost/nfd/{verb}"))
        .unwrap()
        .append_generic(cp.encode());
    let mut i = Interest::new(name);
    i.nonce = Some(nonce);
    i.encode()
}

fn control_response(s: &mut UnixStream, buf: &mut BytesMut) -> ControlResponse {
    let d = expect_data(read_tlv(s, buf));
    ControlResponse::decode(d.content.clone()).unwrap()
}

#[test]
fn faces_create_and_destroy_through_management() {
    let (fwd, sock) = start("faces", true);
    // A remote "forwarder": a plain UDP socket.
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(WAIT)).unwrap();
    let uri = format!("udp4://{}", peer.local_addr().unwrap());

    let mut admin = UnixStream::connect(&sock).unwrap();
    admin.set_read_timeout(Some(WAIT)).unwrap();
    let mut abuf = BytesMut::new();
    let create = ControlParameters {
        uri: Some(uri.clone()),
        ..ControlParameters::default()
    };
    admin
        .write_all(&command("faces/create", &create, 1))
        .unwrap();
    let resp = control_response(&mut admin, &mut abuf);
    assert_eq!(resp.status_code, 200, "{}", resp.status_text);
    let body = resp.body.unwrap();
    assert_eq!(body.uri.as_deref(), Some(uri.as_str()));
    let face = body.face_id.unwrap();

    // Creating it again reports the existing face (409).
    admin
        .write_all(&command("faces/create", &create, 2))
        .unwrap();
    let again = control_response(&mut admin, &mut abuf);
    assert_eq!(again.status_code, 409);
    assert_eq!(again.body.and_then(|b| b.face_id), Some(face));

    // Non-canonical and unsupported URIs are refused the way NFD does.
    let bad = ControlParameters {
        uri: Some("udp4://localhost:9".into()),
        ..ControlParameters::default()
    };
    admin.write_all(&command("faces/create", &bad, 3)).unwrap();
    assert_eq!(control_response(&mut admin, &mut abuf).status_code, 400);
    let unsupported = ControlParameters {
        uri: Some("ether://[01:00:5e:00:17:aa]".into()),
        ..ControlParameters::default()
    };
    admin
        .write_all(&command("faces/create", &unsupported, 4))
        .unwrap();
    assert_eq!(control_response(&mut admin, &mut abuf).status_code, 406);

    // A next hop toward the new face: Interests under /far go out over UDP.
    let hop = ControlParameters {
        name: Some(Name::from_uri("/far").unwrap()),
        face_id: Some(face),
        ..ControlParameters::default()
    };
    admin
        .write_all(&command("fib/add-nexthop", &hop, 5))
        .unwrap();
    assert_eq!(control_response(&mut admin, &mut abuf).status_code, 200);
    admin.write_all(&interest("/far/away", 6).encode()).unwrap();
    let mut dg = [0u8; 9000];
    let (n, _) = peer.recv_from(&mut dg).unwrap();
    let rx = decode_packet(Bytes::copy_from_slice(&dg[..n])).unwrap();
    assert_eq!(rx.packet.name().to_string(), "/far/away");

    // Destroy it: the FIB next hop goes with it, so the next Interest is a NoRoute Nack.
    let destroy = ControlParameters {
        face_id: Some(face),
        ..ControlParameters::default()
    };
    admin
        .write_all(&command("faces/destroy", &destroy, 7))
        .unwrap();
    assert_eq!(control_response(&mut admin, &mut abuf).status_code, 200);
    admin
        .write_all(&interest("/far/again", 8).encode())
        .unwrap();
    loop {
        match decode_packet(read_tlv(&mut admin, &mut abuf))
            .unwrap()
            .packet
        {
            NetPacket::Nack(n) => {
                assert_eq!(n.reason, NackReason::NoRoute);
                break;
            }
            // Face event notifications or late replies are not what this waits for.
            _ => continue,
        }
    }
    fwd.shutdown().unwrap();
}

#[test]
fn large_data_crosses_udp_as_ndnlp_fragments_both_ways() {
    use amicn_face::fragment::{Fragmenter, Reassembled, Reassembler};
    let dir = temp_dir("frag");
    let sock = dir.join("nfd.sock");
    // A producer on UDP, reached by a static route (a UDP face is never local, so it could
    // not register the prefix itself).
    let prod = UdpSocket::bind("127.0.0.1:0").unwrap();
    prod.set_read_timeout(Some(WAIT)).unwrap();
    let cfg = RuntimeConfig {
        unix_path: Some(sock.clone()),
        udp: vec!["127.0.0.1:0".parse().unwrap()],
        udp_mtu: 1400,
        routes: vec![StaticRoute {
            prefix: Name::from_uri("/udpbig").unwrap(),
            face: FaceUri::Udp(prod.local_addr().unwrap()),
            cost: 0,
        }],
        ..RuntimeConfig::default()
    };
    let fwd = RunningForwarder::start(cfg).unwrap();
    let fudp = fwd.endpoints().udp[0];
    let big = Bytes::from(vec![0x5Au8; 6000]);
    let mut dg = [0u8; 9000];

    // Unix consumer -> forwarder -> UDP producer; the 6000-byte answer goes back in fragments.
    let mut c = UnixStream::connect(&sock).unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    c.write_all(&interest("/udpbig/a", 32).encode()).unwrap();
    let (n, _) = prod.recv_from(&mut dg).unwrap();
    let rx = decode_packet(Bytes::copy_from_slice(&dg[..n])).unwrap();
    let NetPacket::Interest(i) = rx.packet else {
        panic!("producer expected an Interest")
    };
    let mut d = Data::new(i.name.clone(), big.clone());
    let wire = d.sign_digest_sha256();
    let mut frag = Fragmenter::new(1400, 1);
    let pieces = frag.fragment(wire).unwrap();
    assert!(pieces.len() >= 5);
    for p in pieces {
        assert!(p.len() <= 1400);
        prod.send_to(&p, fudp).unwrap();
    }
    let mut cbuf = BytesMut::new();
    let got = expect_data(read_tlv(&mut c, &mut cbuf));
    assert_eq!(got.content, big, "reassembled by the forwarder");

    // The other way: a UDP consumer gets the cached 6000-byte Data as fragments <= MTU.
    let cons = UdpSocket::bind("127.0.0.1:0").unwrap();
    cons.set_read_timeout(Some(WAIT)).unwrap();
    cons.send_to(&interest("/udpbig/a", 33).encode(), fudp)
        .unwrap();
    let mut r = Reassembler::default();
    let whole = loop {
        let (n, _) = cons.recv_from(&mut dg).unwrap();
        assert!(n <= 1400, "datagram of {n} bytes over a 1400-byte MTU");
        if let Reassembled::Packet(p) =
            r.push(std::time::Instant::now(), Bytes::copy_from_slice(&dg[..n]))
        {
            break p;
        }
    };
    assert_eq!(expect_data(whole).content, big);
    fwd.shutdown().unwrap();
}
