//! The demand-response operator: sends OpenADR-shaped events to the members of one DR project
//! under that project's group key, and collects the members' signed acknowledgements.
//!
//! **Events.** An event is Data `/<u>/ami/dr/<p>/event/seq=<n>`, encrypted under project
//! `p`'s current key and signed by the DR operator; its plaintext is the JSON of a [`DrEvent`]
//! (OpenADR's eiEvent reduced to what a meter acts on: event id, signal name and level, start,
//! duration, randomisation window, target project). Members learn of a new event without
//! polling: each keeps one Interest outstanding for the next sequence number (exact name, a
//! few seconds' lifetime, re-expressed when it expires). Forwarders aggregate the identical
//! Interests of all members in their PIT, the operator holds the one that reaches it until the
//! event exists, and a single Data then fans out to every member along the PIT entries — the
//! NDN form of multicast, with the Content Store absorbing late askers.
//!
//! **Acknowledgements.** A member answers every event it receives with a signed Interest
//! `/<u>/ami/dr/<p>/ack/<id>/seq=<n>/<params-digest>` whose parameters are a [`DrAck`] (opted
//! in or out, the randomised start it chose, when it received the event) and its certificate;
//! the operator answers with a Status signed by its key. A signed Interest, rather than ack Data
//! the operator fetches from each member, costs one round trip and tells the operator of each
//! ack the moment it is sent, without an Interest per member per event (most of which would
//! wait for members that never answer); the signed-Interest rules give the replay protection.
//! The operator accepts an ack only if the trust rule `dr-acks` holds (meter X acknowledges only
//! as X), the meter is a member of the project, the event was published, the signature time and
//! nonce are fresh, and the member has not acknowledged that event before; refusals are answered
//! and counted by kind (`malformed`, `signer`, `non-member`, `unknown-event`, `replay`,
//! `duplicate`). [`DrOperator::report`] gives, per event, the members that opted in and out,
//! those that have not answered, and the latencies from publication to each ack.
//!
//! ```text
//! DrAckParams = DrAck 0xD4 (JSON of a DrAck), Certificate 0xE4 (Data)
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use amicn_face::client::Client;
use amicn_kms::cert::Certificate;
use amicn_kms::envelope::{EnvelopeKey, Purpose};
use amicn_kms::replay::{ReplayChecker, ReplayConfig};
use amicn_tlv::{Data, Interest, Name, TlvReader, encode_tlv};
use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use crate::error::{AmiError, Result};
use crate::keys::HeadEndKeys;
use crate::names::AmiNames;
use crate::net::{Publisher, now_ms, now_us};
use crate::pki::{Credentials, Trust};
use crate::wire::{CERTIFICATE, Status};

/// The JSON of a [`DrAck`] in the acknowledgement's parameters.
const DR_ACK: u32 = 0xD4;
/// Event Interests the operator holds at once (the oldest is dropped beyond).
const MAX_HELD: usize = 65_536;

fn simple() -> String {
    "SIMPLE".into()
}

/// One DR event (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrEvent {
    /// Target DR project.
    pub project: String,
    /// Sequence number (the `seq=` component).
    pub seq: u64,
    /// Event id (OpenADR eventID); empty = `<project>-<seq>`.
    #[serde(default)]
    pub event_id: String,
    /// Signal name (OpenADR signalName: `SIMPLE`, `LOAD_DISPATCH`, …).
    #[serde(default = "simple")]
    pub signal: String,
    /// Signal level (for `SIMPLE`: 0 normal, 1 moderate, 2 high, 3 special).
    #[serde(default)]
    pub level: i64,
    /// Start, seconds since the Unix epoch.
    pub start_s: u64,
    /// Duration in seconds.
    pub duration_s: u32,
    /// Randomisation window (OpenADR startafter), seconds: each member starts at a random
    /// offset within it, so a project's load does not step all at once.
    #[serde(default)]
    pub randomization_s: u32,
    /// Requested load reduction per meter, W.
    pub reduce_w: u32,
    /// When the operator issued it, µs since the Unix epoch (OpenADR createdDateTime).
    #[serde(default)]
    pub issued_us: u64,
}

impl Default for DrEvent {
    fn default() -> Self {
        DrEvent {
            project: String::new(),
            seq: 0,
            event_id: String::new(),
            signal: simple(),
            level: 1,
            start_s: 0,
            duration_s: 0,
            randomization_s: 0,
            reduce_w: 0,
            issued_us: 0,
        }
    }
}

impl DrEvent {
    /// The event id, `<project>-<seq>` if none was given.
    pub fn id(&self) -> String {
        if self.event_id.is_empty() {
            format!("{}-{}", self.project, self.seq)
        } else {
            self.event_id.clone()
        }
    }
}

/// A member's answer to one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrAck {
    /// The member.
    pub meter: u32,
    /// The event's project.
    pub project: String,
    /// The event's sequence number.
    pub seq: u64,
    /// The event's id.
    pub event_id: String,
    /// Whether the member takes part (`false` = opted out).
    pub opt_in: bool,
    /// The start it chose within the randomisation window, seconds (opted in only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at_s: Option<u64>,
    /// When the member received the event, µs since the Unix epoch.
    pub received_us: u64,
}

impl DrAck {
    /// The parameters of the acknowledgement Interest, with the signer's certificate.
    pub fn encode(&self, certificate: &Bytes) -> Bytes {
        let mut b = BytesMut::new();
        encode_tlv(
            &mut b,
            DR_ACK,
            &serde_json::to_vec(self).unwrap_or_default(),
        );
        encode_tlv(&mut b, CERTIFICATE, certificate);
        b.freeze()
    }

    /// Decodes the parameters: the ack and the certificate.
    pub fn decode(params: Bytes) -> Result<(Self, Bytes)> {
        let mut r = TlvReader::new(params);
        let json = r.expect(DR_ACK, "DrAck")?;
        let cert = r.expect(CERTIFICATE, "Certificate")?;
        r.finish("DR acknowledgement")?;
        let ack: DrAck = serde_json::from_slice(&json.value)
            .map_err(|e| AmiError::protocol("DR acknowledgement", e.to_string()))?;
        Ok((ack, cert.value.clone()))
    }
}

/// What the operator knows about one event's acknowledgements.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DrEventReport {
    /// Project.
    pub project: String,
    /// Sequence number.
    pub seq: u64,
    /// Event id.
    pub event_id: String,
    /// Members of the project when it was published.
    pub members: Vec<u32>,
    /// Members that acknowledged and opted in.
    pub opted_in: Vec<u32>,
    /// Members that acknowledged and opted out.
    pub opted_out: Vec<u32>,
    /// Members that have not acknowledged.
    pub silent: Vec<u32>,
    /// From publication to each member's receipt (as the member reports it), µs, ascending.
    pub delivery_us: Vec<u64>,
    /// From publication to each acknowledgement's arrival, µs, ascending.
    pub ack_us: Vec<u64>,
}

impl DrEventReport {
    /// The `q`-quantile (nearest rank) of `v`.
    pub fn quantile(v: &[u64], q: f64) -> Option<u64> {
        if v.is_empty() {
            return None;
        }
        let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
        v.get(rank - 1).copied()
    }
}

struct Published {
    at: Instant,
    issued_us: u64,
    event_id: String,
    members: BTreeSet<u32>,
    opted_in: BTreeSet<u32>,
    opted_out: BTreeSet<u32>,
    delivery_us: Vec<u64>,
    ack_us: Vec<u64>,
}

/// An event Interest waiting for its event.
struct Held {
    name: Name,
    can_be_prefix: bool,
    pit_token: Option<Bytes>,
    until: Instant,
}

struct DrState {
    names: AmiNames,
    key: Arc<amicn_kms::identity::KeyPair>,
    publisher: Publisher,
    held: Mutex<Vec<Held>>,
    published: Mutex<HashMap<(String, u64), Published>>,
    members: Mutex<HashMap<String, BTreeSet<u32>>>,
    replay: Mutex<ReplayChecker>,
    refused: Mutex<BTreeMap<&'static str, u64>>,
    held_dropped: AtomicU64,
    delivered_held: AtomicU64,
}

/// Publishes `/<u>/ami/dr/<p>/event/seq=<n>`, encrypted under project `p`'s current key and
/// signed with the DR operator's key, and collects acknowledgements (see the module docs).
pub struct DrOperator {
    keys: Arc<HeadEndKeys>,
    creds: Credentials,
    state: Arc<DrState>,
    freshness: Duration,
}

impl std::fmt::Debug for DrOperator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DrOperator")
            .field("key", &self.creds.key)
            .finish_non_exhaustive()
    }
}

impl DrOperator {
    /// Events the operator keeps, their Data in its publisher and their acknowledgement
    /// records (the oldest go first): about 17 hours of events at the default one a minute. An
    /// acknowledgement for an event no longer kept is refused as unknown.
    pub const EVENTS_KEPT: usize = 1024;

    /// Registers `/<u>/ami/dr/<p>/event` for every project and `/<u>/ami/dr/KEY` (its
    /// certificate) on `client`.
    pub async fn start(
        names: AmiNames,
        creds: Credentials,
        keys: Arc<HeadEndKeys>,
        client: &Client,
        projects: &[String],
        freshness: Duration,
    ) -> Result<Self> {
        let publisher =
            Publisher::with_capacity(client, creds.key.clone(), None, Self::EVENTS_KEPT);
        publisher.pin_wire(creds.cert.to_wire())?;
        publisher.serve(creds.key.key_name().clone()).await?;
        let state = Arc::new(DrState {
            names,
            key: creds.key.clone(),
            publisher,
            held: Mutex::new(Vec::new()),
            published: Mutex::new(HashMap::new()),
            members: Mutex::new(HashMap::new()),
            replay: Mutex::new(ReplayChecker::new(ReplayConfig::default())),
            refused: Mutex::new(BTreeMap::new()),
            held_dropped: AtomicU64::new(0),
            delivered_held: AtomicU64::new(0),
        });
        for p in projects {
            let mut rx = client.register(state.names.dr_event_prefix(p)).await?;
            let (st, c) = (state.clone(), client.clone());
            tokio::spawn(async move {
                while let Some(incoming) = rx.recv().await {
                    let i = &incoming.interest;
                    if let Some(wire) = st.publisher.answer(i) {
                        let _ = c.put_data(wire, incoming.pit_token.as_ref()).await;
                        continue;
                    }
                    let mut held = st.held.lock().unwrap_or_else(|e| e.into_inner());
                    let now = Instant::now();
                    held.retain(|h| h.until > now);
                    if held.len() >= MAX_HELD {
                        held.remove(0);
                        st.held_dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    held.push(Held {
                        name: i.name.clone(),
                        can_be_prefix: i.can_be_prefix,
                        pit_token: incoming.pit_token.clone(),
                        until: now + i.lifetime(),
                    });
                }
            });
        }
        Ok(DrOperator {
            keys,
            creds,
            state,
            freshness,
        })
    }

    /// Sets the members of `project` (the meters the operator entitled), whose
    /// acknowledgements it accepts.
    pub fn set_members(&self, project: &str, members: impl IntoIterator<Item = u32>) {
        self.state
            .members
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(project.to_string(), members.into_iter().collect());
    }

    /// Registers `/<u>/ami/dr/<p>/ack` for every project on `client` and checks, records and
    /// answers the members' acknowledgements in the background, validating with `trust`.
    pub async fn serve_acks(
        &self,
        trust: Arc<Trust>,
        client: &Client,
        projects: &[String],
    ) -> Result<()> {
        for p in projects {
            let mut rx = client.register(self.state.names.dr_ack_prefix(p)).await?;
            let (st, c, trust) = (self.state.clone(), client.clone(), trust.clone());
            tokio::spawn(async move {
                while let Some(incoming) = rx.recv().await {
                    let status = match st.take_ack(&trust, &incoming.interest) {
                        Ok(ack) => Status {
                            code: 200,
                            text: format!(
                                "{} recorded for {}",
                                if ack.opt_in { "opt-in" } else { "opt-out" },
                                ack.event_id
                            ),
                            epoch: None,
                        },
                        Err((code, kind, why)) => {
                            *st.refused
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .entry(kind)
                                .or_insert(0) += 1;
                            tracing::info!(
                                "DR ack {} refused ({kind}): {why}",
                                incoming.interest.name
                            );
                            Status {
                                code,
                                text: format!("{kind}: {why}"),
                                epoch: None,
                            }
                        }
                    };
                    let mut d = Data::new(incoming.interest.name.clone(), status.encode());
                    d.meta_info.freshness_period_ms = Some(0);
                    if let Ok(wire) = st.key.sign_data(&mut d) {
                        let _ = c.put_data(wire, incoming.pit_token.as_ref()).await;
                    }
                }
            });
        }
        Ok(())
    }

    /// Encrypts and publishes `event` (stamping `issued_us` if unset), answers the members'
    /// Interests held for it, and returns its name and the project key name used.
    pub fn publish(&self, event: &DrEvent) -> Result<(Name, Name)> {
        let (key_name, key) = self.keys.project_key(&event.project).ok_or_else(|| {
            AmiError::Config(format!(
                "no key for DR project {:?}: it has no members",
                event.project
            ))
        })?;
        let mut event = event.clone();
        if event.issued_us == 0 {
            event.issued_us = now_us();
        }
        let st = &self.state;
        let name = st.names.dr_event(&event.project, event.seq);
        let plain = serde_json::to_vec(&event).map_err(|e| AmiError::Config(e.to_string()))?;
        let content = EnvelopeKey::derive(&key, &key_name, Purpose::Content).seal(&name, &plain)?;
        let mut d = Data::new(name.clone(), content);
        d.meta_info.freshness_period_ms = Some(self.freshness.as_millis() as u64);
        let wire = self.creds.key.sign_data(&mut d)?;
        let members = st
            .members
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&event.project)
            .cloned()
            .unwrap_or_default();
        {
            let mut published = st.published.lock().unwrap_or_else(|e| e.into_inner());
            published.insert(
                (event.project.clone(), event.seq),
                Published {
                    at: Instant::now(),
                    issued_us: event.issued_us,
                    event_id: event.id(),
                    members,
                    opted_in: BTreeSet::new(),
                    opted_out: BTreeSet::new(),
                    delivery_us: Vec::new(),
                    ack_us: Vec::new(),
                },
            );
            while published.len() > Self::EVENTS_KEPT {
                let Some(oldest) = published
                    .iter()
                    .min_by_key(|(_, p)| p.at)
                    .map(|(k, _)| k.clone())
                else {
                    break;
                };
                published.remove(&oldest);
            }
        }
        st.publisher.put_wire(wire.clone())?;
        let waiting: Vec<Held> = {
            let mut held = st.held.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let (hit, keep): (Vec<Held>, Vec<Held>) = held.drain(..).partition(|h| {
                h.until > now && (h.name == name || (h.can_be_prefix && h.name.is_prefix_of(&name)))
            });
            *held = keep.into_iter().filter(|h| h.until > now).collect();
            hit
        };
        if !waiting.is_empty()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            let c = st.publisher.client().clone();
            st.delivered_held
                .fetch_add(waiting.len() as u64, Ordering::Relaxed);
            rt.spawn(async move {
                for h in waiting {
                    let _ = c.put_data(wire.clone(), h.pit_token.as_ref()).await;
                }
            });
        }
        Ok((name, key_name))
    }

    /// The acknowledgements of event `seq` of `project`, if it was published.
    pub fn report(&self, project: &str, seq: u64) -> Option<DrEventReport> {
        let published = self
            .state
            .published
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let p = published.get(&(project.to_string(), seq))?;
        let mut delivery = p.delivery_us.clone();
        delivery.sort_unstable();
        let mut ack = p.ack_us.clone();
        ack.sort_unstable();
        Some(DrEventReport {
            project: project.to_string(),
            seq,
            event_id: p.event_id.clone(),
            members: p.members.iter().copied().collect(),
            opted_in: p.opted_in.iter().copied().collect(),
            opted_out: p.opted_out.iter().copied().collect(),
            silent: p
                .members
                .iter()
                .filter(|m| !p.opted_in.contains(m) && !p.opted_out.contains(m))
                .copied()
                .collect(),
            delivery_us: delivery,
            ack_us: ack,
        })
    }

    /// Acknowledgements refused, by kind.
    pub fn refused(&self) -> BTreeMap<&'static str, u64> {
        self.state
            .refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Event Interests answered when their event was published (held until then).
    pub fn delivered_held(&self) -> u64 {
        self.state.delivered_held.load(Ordering::Relaxed)
    }
}

/// Why an acknowledgement was refused: status code, counter kind, explanation.
type AckRefusal = (u64, &'static str, String);

impl DrState {
    fn take_ack(&self, trust: &Trust, i: &Interest) -> std::result::Result<DrAck, AckRefusal> {
        let malformed = |why: String| (400, "malformed", why);
        let (project, meter, seq) = self
            .names
            .parse_dr_ack(&i.name)
            .ok_or_else(|| malformed("not an acknowledgement name".into()))?;
        let params = i
            .app_parameters
            .clone()
            .ok_or_else(|| malformed("no ApplicationParameters".into()))?;
        let (ack, cert) = DrAck::decode(params).map_err(|e| malformed(e.to_string()))?;
        if ack.meter != meter || ack.project != project || ack.seq != seq {
            return Err(malformed(format!(
                "parameters for meter {} event {}/{}, name says meter {meter} event {project}/{seq}",
                ack.meter, ack.project, ack.seq
            )));
        }
        // Trusted only through the chain the validator checks, never by being carried.
        let cert = Data::decode(cert)
            .map_err(AmiError::from)
            .and_then(|d| Certificate::from_data(d).map_err(AmiError::from))
            .map_err(|e| malformed(format!("certificate: {e}")))?;
        trust.add_certificate(cert);
        // The dr-acks rule lets meter X alone sign acknowledgements named for X.
        trust
            .verify_interest(i)
            .map_err(|e| (403, "signer", e.to_string()))?;
        let member = self
            .members
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&project)
            .is_some_and(|m| m.contains(&meter));
        if !member {
            return Err((
                403,
                "non-member",
                format!("meter {meter} is not a member of {project}"),
            ));
        }
        if !self
            .published
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&(project.clone(), seq))
        {
            return Err((404, "unknown-event", format!("no event {project}/{seq}")));
        }
        self.replay
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .check_interest(i, now_ms())
            .map_err(|e| (403, "replay", e.to_string()))?;
        let mut published = self.published.lock().unwrap_or_else(|e| e.into_inner());
        let p = published
            .get_mut(&(project.clone(), seq))
            .ok_or_else(|| (404, "unknown-event", format!("no event {project}/{seq}")))?;
        if p.opted_in.contains(&meter) || p.opted_out.contains(&meter) {
            return Err((
                409,
                "duplicate",
                format!("meter {meter} already acknowledged {project}/{seq}"),
            ));
        }
        if ack.opt_in {
            p.opted_in.insert(meter);
        } else {
            p.opted_out.insert(meter);
        }
        p.ack_us
            .push(u64::try_from(p.at.elapsed().as_micros()).unwrap_or(u64::MAX));
        p.delivery_us
            .push(ack.received_us.saturating_sub(p.issued_us));
        Ok(ack)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn events_and_acks_round_trip_and_older_events_still_parse() {
        let old = br#"{"project":"p1","seq":3,"start_s":10,"duration_s":60,"reduce_w":700}"#;
        let e: DrEvent = serde_json::from_slice(old).unwrap();
        assert_eq!((e.signal.as_str(), e.randomization_s), ("SIMPLE", 0));
        assert_eq!(e.id(), "p1-3");
        let ack = DrAck {
            meter: 4,
            project: "p1".into(),
            seq: 3,
            event_id: "p1-3".into(),
            opt_in: true,
            start_at_s: Some(12),
            received_us: 99,
        };
        let cert = Bytes::from_static(b"\x06\x00");
        let (back, c) = DrAck::decode(ack.encode(&cert)).unwrap();
        assert_eq!((back, c), (ack, cert));
        assert!(DrAck::decode(Bytes::from_static(b"\xd4\x01x\xe4\x00")).is_err());
        assert_eq!(DrEventReport::quantile(&[1, 5, 9], 0.5), Some(5));
        assert_eq!(DrEventReport::quantile(&[1, 5, 9], 0.99), Some(9));
        assert_eq!(DrEventReport::quantile(&[], 0.5), None);
    }
}
