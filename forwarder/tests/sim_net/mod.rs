//! A deterministic network simulator for forwarding cores: in-memory links with delay and
//! seeded loss, application endpoints, and one virtual clock. Shared by the `sim_*.rs` tests.

#![allow(dead_code, clippy::unwrap_used, unreachable_pub, missing_docs)]

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

use amicn_forwarder::core::{Config, FaceId, FaceOptions, FaceScope, Forwarder, LinkType, Time};
use amicn_tlv::{
    Data, Interest, LpHeaders, NackReason, Name, NetPacket, Received, decode_packet, wrap_fragment,
};
use bytes::Bytes;

/// Where a packet is delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Endpoint {
    /// A face of a forwarder node.
    Node(usize, FaceId),
    /// An application.
    App(usize),
}

#[derive(Clone, Copy, Debug)]
pub struct LinkOpts {
    pub delay: Duration,
    /// Loss probability in parts per million.
    pub loss_ppm: u32,
    pub link_type: LinkType,
}

impl Default for LinkOpts {
    fn default() -> Self {
        LinkOpts {
            delay: Duration::from_millis(5),
            loss_ppm: 0,
            link_type: LinkType::PointToPoint,
        }
    }
}

struct Wire {
    to: Endpoint,
    delay: Duration,
    loss_ppm: u32,
    /// Administratively down: everything sent is lost.
    down: bool,
}

/// What an application does with an incoming Interest.
pub type Handler = Box<dyn FnMut(&Interest) -> Option<Bytes>>;

pub struct App {
    pub node: usize,
    pub face: FaceId,
    /// Every packet received, decoded, with arrival time.
    pub inbox: Vec<(Time, Received)>,
    handler: Option<Handler>,
    /// Echo the PitToken of Interests on the Data produced (NDNts behaviour).
    pub echo_token: bool,
    pub interests_seen: usize,
}

pub struct Sim {
    pub now: Time,
    pub nodes: Vec<Forwarder>,
    pub apps: Vec<App>,
    wires: HashMap<Endpoint, Wire>,
    queue: BinaryHeap<Reverse<(Time, u64, Endpoint, Bytes)>>,
    seq: u64,
    rng: u64,
}

impl Sim {
    pub fn new(seed: u64) -> Self {
        Sim {
            now: Time::from_millis(1_000),
            nodes: Vec::new(),
            apps: Vec::new(),
            wires: HashMap::new(),
            queue: BinaryHeap::new(),
            seq: 0,
            rng: seed | 1,
        }
    }

    fn rand_ppm(&mut self) -> u32 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng % 1_000_000) as u32
    }

    pub fn add_node(&mut self, config: Config) -> usize {
        self.nodes.push(Forwarder::new(config));
        self.nodes.len() - 1
    }

    /// Connects two nodes with a pair of non-local faces; returns (face on a, face on b).
    pub fn link(&mut self, a: usize, b: usize, opts: LinkOpts) -> (FaceId, FaceId) {
        let fo = FaceOptions {
            remote_uri: "sim://peer".into(),
            link_type: opts.link_type,
            ..Default::default()
        };
        let fa = self.nodes[a].add_face(fo.clone());
        let fb = self.nodes[b].add_face(fo);
        self.wires.insert(
            Endpoint::Node(a, fa),
            Wire {
                to: Endpoint::Node(b, fb),
                delay: opts.delay,
                loss_ppm: opts.loss_ppm,
                down: false,
            },
        );
        self.wires.insert(
            Endpoint::Node(b, fb),
            Wire {
                to: Endpoint::Node(a, fa),
                delay: opts.delay,
                loss_ppm: opts.loss_ppm,
                down: false,
            },
        );
        (fa, fb)
    }

    /// Takes a link direction (packets sent by `node` out of `face`) down or up.
    pub fn set_down(&mut self, node: usize, face: FaceId, down: bool) {
        if let Some(w) = self.wires.get_mut(&Endpoint::Node(node, face)) {
            w.down = down;
        }
    }

    /// Attaches an application on a local (or non-local) face of `node`.
    pub fn attach_app(&mut self, node: usize, scope: FaceScope) -> usize {
        let face = self.nodes[node].add_face(FaceOptions {
            remote_uri: "sim://app".into(),
            scope,
            ..Default::default()
        });
        let id = self.apps.len();
        self.apps.push(App {
            node,
            face,
            inbox: Vec::new(),
            handler: None,
            echo_token: false,
            interests_seen: 0,
        });
        let d = Duration::from_micros(100);
        self.wires.insert(
            Endpoint::App(id),
            Wire {
                to: Endpoint::Node(node, face),
                delay: d,
                loss_ppm: 0,
                down: false,
            },
        );
        self.wires.insert(
            Endpoint::Node(node, face),
            Wire {
                to: Endpoint::App(id),
                delay: d,
                loss_ppm: 0,
                down: false,
            },
        );
        id
    }

    /// A producer app answering every Interest with `handler`, route registered on `prefix`.
    pub fn producer(&mut self, node: usize, prefix: &str, handler: Handler) -> usize {
        let app = self.attach_app(node, FaceScope::Local);
        self.apps[app].handler = Some(handler);
        let face = self.apps[app].face;
        self.nodes[node]
            .fib_add_nexthop(&name(prefix), face, 0)
            .unwrap();
        app
    }

    /// Sends raw bytes from an app to its forwarder.
    pub fn app_send(&mut self, app: usize, pkt: Bytes) {
        self.send_from(Endpoint::App(app), pkt);
    }

    /// Sends an Interest from an app.
    pub fn express(&mut self, app: usize, interest: &Interest) {
        self.app_send(app, interest.encode());
    }

    fn send_from(&mut self, from: Endpoint, pkt: Bytes) {
        let Some(w) = self.wires.get(&from) else {
            return;
        };
        let (to, delay, loss, down) = (w.to, w.delay, w.loss_ppm, w.down);
        if down || (loss > 0 && self.rand_ppm() < loss) {
            return;
        }
        self.seq += 1;
        self.queue
            .push(Reverse((self.now.saturating_add(delay), self.seq, to, pkt)));
    }

    fn flush_nodes(&mut self) {
        for n in 0..self.nodes.len() {
            while let Some((face, pkt)) = self.nodes[n].poll_transmit() {
                self.send_from(Endpoint::Node(n, face), pkt);
            }
        }
    }

    fn deliver(&mut self, to: Endpoint, pkt: Bytes) {
        match to {
            Endpoint::Node(n, face) => self.nodes[n].on_packet(self.now, face, pkt),
            Endpoint::App(a) => {
                let Ok(rx) = decode_packet(pkt) else { return };
                let reply = match &rx.packet {
                    NetPacket::Interest(i) => {
                        self.apps[a].interests_seen += 1;
                        let token = rx.lp.pit_token.clone();
                        let echo = self.apps[a].echo_token;
                        self.apps[a].handler.as_mut().and_then(|h| h(i)).map(|d| {
                            if echo && token.is_some() {
                                wrap_fragment(
                                    d,
                                    &LpHeaders {
                                        pit_token: token,
                                        ..Default::default()
                                    },
                                    None,
                                )
                            } else {
                                d
                            }
                        })
                    }
                    _ => None,
                };
                self.apps[a].inbox.push((self.now, rx));
                if let Some(r) = reply {
                    self.send_from(Endpoint::App(a), r);
                }
            }
        }
    }

    /// Runs every event up to and including `until`.
    pub fn run_until(&mut self, until: Time) {
        loop {
            self.flush_nodes();
            let next_pkt = self.queue.peek().map(|Reverse((t, ..))| *t);
            let next_timer = self.nodes.iter().filter_map(Forwarder::poll_timeout).min();
            let next = match (next_pkt, next_timer) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) => a,
                (None, Some(b)) => b,
                (None, None) => break,
            };
            if next > until {
                break;
            }
            self.now = self.now.max(next);
            if next_pkt == Some(next) {
                let Reverse((_, _, to, pkt)) = self.queue.pop().unwrap();
                self.deliver(to, pkt);
            } else {
                let now = self.now;
                for n in &mut self.nodes {
                    if n.poll_timeout().is_some_and(|t| t <= now) {
                        n.on_timeout(now);
                    }
                }
            }
        }
        self.now = self.now.max(until);
        for n in &mut self.nodes {
            n.on_timeout(until);
        }
        self.flush_nodes();
    }

    pub fn run_for(&mut self, d: Duration) {
        let until = self.now.saturating_add(d);
        self.run_until(until);
    }

    /// Drains an app's inbox.
    pub fn take_inbox(&mut self, app: usize) -> Vec<(Time, Received)> {
        std::mem::take(&mut self.apps[app].inbox)
    }

    pub fn data_names(&mut self, app: usize) -> Vec<String> {
        self.take_inbox(app)
            .into_iter()
            .filter_map(|(_, r)| match r.packet {
                NetPacket::Data(d) => Some(d.name.to_string()),
                _ => None,
            })
            .collect()
    }
}

pub fn name(s: &str) -> Name {
    Name::from_uri(s).unwrap()
}

pub fn interest(uri: &str, nonce: u32) -> Interest {
    let mut i = Interest::new(name(uri));
    i.nonce = Some(nonce);
    i.lifetime_ms = Some(1000);
    i
}

pub fn data(n: &Name, content: &[u8], freshness_ms: Option<u64>) -> Bytes {
    let mut d = Data::new(n.clone(), Bytes::copy_from_slice(content));
    d.meta_info.freshness_period_ms = freshness_ms;
    d.sign_digest_sha256()
}

/// A handler that answers every Interest with a Data of the same name.
pub fn echo_producer(freshness_ms: Option<u64>) -> Handler {
    Box::new(move |i: &Interest| Some(data(&i.name, b"payload", freshness_ms)))
}

pub fn nack_reasons(inbox: &[(Time, Received)]) -> Vec<NackReason> {
    inbox
        .iter()
        .filter_map(|(_, r)| match &r.packet {
            NetPacket::Nack(n) => Some(n.reason),
            _ => None,
        })
        .collect()
}

pub fn count_data(inbox: &[(Time, Received)]) -> usize {
    inbox
        .iter()
        .filter(|(_, r)| matches!(r.packet, NetPacket::Data(_)))
        .count()
}
