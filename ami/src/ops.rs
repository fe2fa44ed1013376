//! Meter operations: on-demand reads, remote connect / disconnect and the load limit.
//!
//! A head-end principal sends one meter a signed command Interest
//! `/<u>/ami/meter/<id>/cmd/<verb>/<params-digest>` (verbs `read`, `connect`, `disconnect`,
//! `limit`). Its ApplicationParameters are a [`CommandParams`]: the meter the command is for,
//! the load limit (for `limit`) and the signer's certificate, so the meter can check the chain
//! to its anchor without fetching anything. The meter accepts it only if
//! 1. the signature, the certificate chain and the trust rules hold: the utility operator may
//!    sign every verb, the MDMS only `read` (rules `meter-read` and `meter-commands` of
//!    [`crate::ami_policy`]), and no meter may command one (not even itself);
//! 2. the parameters name this meter (a command for meter 8 is never executed by meter 7,
//!    whatever name it arrives under);
//! 3. the replay records accept its SignatureTime and SignatureNonce (per signing key, kept in
//!    the meter's state directory across restarts).
//!
//! It then answers with Data of the same name, signed by its own key, holding a
//! [`CommandReply`]: a status (200, or the refusal's code and kind), the relay state after the
//! command and, for `read`, a fresh reading in the [`crate::reading`] format sealed under the
//! meter's reading key exactly as its periodic readings are (the AAD is the reply's name), so
//! only the MDMS (which holds the meter's reading keys) can open it. Refusals are answered and
//! counted per kind: `malformed`, `signer`, `wrong-meter`, `replay`, `not-joined`.
//!
//! The relay state (supply connected or not, load limit) is persisted before the answer is sent
//! and shows in every reading the meter captures: register 0-0:96.3.10 (disconnect control,
//! 1 = connected) and, when a limit is set, 0-0:17.0.0 (limiter threshold, W). A disconnected
//! meter draws nothing; a limited one never more than its limit.
//!
//! ```text
//! CommandParams = MeterId 0xFC, [LimitW 0xD0 (NNI, W)], [Certificate 0xE4 (Data)]
//! CommandReply  = Status (StatusCode 0xC8, StatusText 0xCA), Relay 0xD2 (NNI 1/0),
//!                 [LimitW 0xD0], [Sealed 0xF6 (EncryptedContent of a Reading)]
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use amicn_face::client::{Client, Reply};
use amicn_kms::cert::Certificate;
use amicn_kms::envelope::{EncryptedContent, EnvelopeKey, Purpose};
use amicn_kms::replay::{ReplayChecker, ReplayConfig};
use amicn_tlv::{Data, Interest, Name, TlvReader, encode_nni_tlv, encode_tlv};
use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use crate::error::{AmiError, Result};
use crate::keys::HeadEndKeys;
use crate::names::AmiNames;
use crate::net::now_ms;
use crate::pki::{Credentials, Trust};
use crate::reading;
use crate::wire::{CERTIFICATE, METER_ID, SEALED, STATUS_CODE, STATUS_TEXT, Status};

/// A load limit in W.
pub(crate) const LIMIT_W: u32 = 0xD0;
/// The relay state: 1 connected, 0 disconnected.
pub(crate) const RELAY: u32 = 0xD2;
/// ContentType NACK (a refusal).
const CONTENT_TYPE_NACK: u64 = 3;
/// Largest load limit a command may set (a household connection is far below).
pub const MAX_LIMIT_W: u32 = 1_000_000;

/// One command to a meter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeterOp {
    /// A fresh reading, now.
    Read,
    /// Close the supply relay.
    Connect,
    /// Open the supply relay.
    Disconnect,
    /// Set the load limit (W); `None` removes it.
    Limit(Option<u32>),
}

impl MeterOp {
    /// The verb in the command name.
    pub fn verb(&self) -> &'static str {
        match self {
            MeterOp::Read => "read",
            MeterOp::Connect => "connect",
            MeterOp::Disconnect => "disconnect",
            MeterOp::Limit(_) => "limit",
        }
    }
}

/// The supply state a meter keeps: relay and load limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Supply {
    /// Whether the supply relay is closed.
    pub connected: bool,
    /// Load limit, W (`None` = no limit).
    pub limit_w: Option<u32>,
}

impl Default for Supply {
    fn default() -> Self {
        Supply {
            connected: true,
            limit_w: None,
        }
    }
}

impl Supply {
    /// The power drawn when the household asks for `demand_w`.
    pub fn drawn_w(&self, demand_w: f64) -> f64 {
        if !self.connected {
            return 0.0;
        }
        match self.limit_w {
            Some(l) => demand_w.min(f64::from(l)),
            None => demand_w,
        }
    }
}

/// ApplicationParameters of a command Interest (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandParams {
    /// The meter the command is for.
    pub meter: u32,
    /// The load limit of a `limit` command (0 or absent = none).
    pub limit_w: Option<u32>,
    /// The signer's certificate (a whole Data packet).
    pub certificate: Option<Bytes>,
}

impl CommandParams {
    /// The TLV encoding.
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        encode_nni_tlv(&mut b, METER_ID, u64::from(self.meter));
        if let Some(l) = self.limit_w {
            encode_nni_tlv(&mut b, LIMIT_W, u64::from(l));
        }
        if let Some(c) = &self.certificate {
            encode_tlv(&mut b, CERTIFICATE, c);
        }
        b.freeze()
    }

    /// Decodes and checks the parameters.
    pub fn decode(params: Bytes) -> Result<Self> {
        let bad = |why: &str| AmiError::protocol("command parameters", why);
        let mut r = TlvReader::new(params);
        let meter = u32::try_from(r.expect(METER_ID, "MeterId")?.nni()?)
            .map_err(|_| bad("meter id exceeds 32 bits"))?;
        let mut limit_w = None;
        let mut certificate = None;
        while !r.is_empty() {
            let e = r.read()?;
            match e.typ {
                LIMIT_W if limit_w.is_none() && certificate.is_none() => {
                    let l = e.nni()?;
                    if l > u64::from(MAX_LIMIT_W) {
                        return Err(bad("load limit above 1 MW"));
                    }
                    limit_w = Some(l as u32);
                }
                CERTIFICATE if certificate.is_none() => certificate = Some(e.value.clone()),
                t => {
                    return Err(bad(&format!("unexpected or repeated TLV-TYPE {t:#x}")));
                }
            }
        }
        Ok(CommandParams {
            meter,
            limit_w: limit_w.filter(|&l| l > 0),
            certificate,
        })
    }
}

/// Content of a meter's answer to a command (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandReply {
    /// 200 done, 400 malformed, 403 refused, 404 another meter's command, 409 not joined.
    pub status: Status,
    /// The supply state after the command.
    pub supply: Supply,
    /// For `read`: the reading, sealed under the meter's reading key.
    pub sealed: Option<Bytes>,
}

impl CommandReply {
    /// The TLV encoding.
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        encode_nni_tlv(&mut b, STATUS_CODE, self.status.code);
        encode_tlv(&mut b, STATUS_TEXT, self.status.text.as_bytes());
        encode_nni_tlv(&mut b, RELAY, u64::from(self.supply.connected));
        if let Some(l) = self.supply.limit_w {
            encode_nni_tlv(&mut b, LIMIT_W, u64::from(l));
        }
        if let Some(s) = &self.sealed {
            encode_tlv(&mut b, SEALED, s);
        }
        b.freeze()
    }

    /// Decodes a reply.
    pub fn decode(content: Bytes) -> Result<Self> {
        let bad = |why: &str| AmiError::protocol("command reply", why);
        let mut r = TlvReader::new(content);
        let code = r.expect(STATUS_CODE, "StatusCode")?.nni()?;
        let text = r.expect(STATUS_TEXT, "StatusText")?;
        let text = String::from_utf8(text.value.to_vec()).map_err(|_| bad("text not UTF-8"))?;
        let connected = match r.expect(RELAY, "Relay")?.nni()? {
            0 => false,
            1 => true,
            _ => return Err(bad("relay state is neither 0 nor 1")),
        };
        let mut limit_w = None;
        let mut sealed = None;
        while !r.is_empty() {
            let e = r.read()?;
            match e.typ {
                LIMIT_W if limit_w.is_none() && sealed.is_none() => {
                    limit_w =
                        Some(u32::try_from(e.nni()?).map_err(|_| bad("limit exceeds 32 bits"))?);
                }
                SEALED if sealed.is_none() => sealed = Some(e.value.clone()),
                t => return Err(bad(&format!("unexpected or repeated TLV-TYPE {t:#x}"))),
            }
        }
        Ok(CommandReply {
            status: Status {
                code,
                text,
                epoch: None,
            },
            supply: Supply { connected, limit_w },
            sealed,
        })
    }
}

/// Why a meter refused a command.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// The counter it is counted under: `malformed`, `signer`, `wrong-meter`, `replay`,
    /// `not-joined` or `state`.
    pub kind: &'static str,
    /// The status code of the answer (400, 403, 404, 409 or 500).
    pub code: u64,
    /// What was wrong, for the answer's StatusText.
    pub why: String,
}

impl Refusal {
    pub(crate) fn new(kind: &'static str, code: u64, why: impl Into<String>) -> Self {
        Refusal {
            kind,
            code,
            why: why.into(),
        }
    }
}

/// Counters of the commands one meter received.
#[derive(Debug, Default)]
pub struct CommandCounters {
    /// Commands executed, by verb.
    accepted: Mutex<BTreeMap<&'static str, u64>>,
    /// Commands refused, by kind.
    refused: Mutex<BTreeMap<&'static str, u64>>,
    /// Supply changes (connect, disconnect, limit) executed.
    pub supply_changes: AtomicU64,
}

impl CommandCounters {
    /// Commands executed, by verb.
    pub fn accepted(&self) -> BTreeMap<&'static str, u64> {
        self.accepted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Commands refused, by kind (`malformed`, `signer`, `wrong-meter`, `replay`,
    /// `not-joined`).
    pub fn refused(&self) -> BTreeMap<&'static str, u64> {
        self.refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn accept(&self, verb: &'static str) {
        *self
            .accepted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(verb)
            .or_insert(0) += 1;
    }

    pub(crate) fn refuse(&self, kind: &'static str) {
        *self
            .refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(kind)
            .or_insert(0) += 1;
    }
}

/// The meter's side of the command channel: replay records, persisted supply state, counters.
/// [`crate::Meter`] answers its command Interests through one; it is public so the checks can be
/// driven without a network (the `meter_command` fuzz target does).
pub struct CommandState {
    names: AmiNames,
    id: u32,
    dir: Option<PathBuf>,
    replay: Mutex<ReplayChecker>,
    supply: Mutex<Supply>,
    pub(crate) counters: CommandCounters,
}

/// The supply and replay files of a meter's state directory.
fn ops_files(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("supply.json"), dir.join("command-replay.json"))
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(AmiError::State {
            path: path.to_path_buf(),
            why: e.to_string(),
        }),
    }
}

impl CommandState {
    /// The command state of meter `id`, restored from `dir` when it holds one.
    pub fn open(names: &AmiNames, id: u32, dir: Option<&Path>) -> Result<Self> {
        let mut supply = Supply::default();
        let mut replay = ReplayChecker::new(ReplayConfig::default());
        if let Some(d) = dir {
            let (s, r) = ops_files(d);
            if let Some(b) = read_optional(&s)? {
                supply = serde_json::from_slice(&b).map_err(|e| AmiError::State {
                    path: s.clone(),
                    why: format!("damaged: {e}"),
                })?;
            }
            if let Some(b) = read_optional(&r)? {
                replay = ReplayChecker::from_bytes(&b).map_err(|e| AmiError::State {
                    path: r.clone(),
                    why: format!("damaged: {e}"),
                })?;
            }
        }
        Ok(CommandState {
            names: names.clone(),
            id,
            dir: dir.map(Path::to_path_buf),
            replay: Mutex::new(replay),
            supply: Mutex::new(supply),
            counters: CommandCounters::default(),
        })
    }

    /// The supply state now.
    pub fn supply(&self) -> Supply {
        *self.supply.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn persist_supply(&self, s: &Supply) -> Result<()> {
        let Some(d) = &self.dir else { return Ok(()) };
        std::fs::create_dir_all(d).map_err(|e| AmiError::State {
            path: d.clone(),
            why: e.to_string(),
        })?;
        let json = serde_json::to_vec(s).map_err(|e| AmiError::Config(e.to_string()))?;
        amicn_kms::persist::write_atomic(&ops_files(d).0, &json)?;
        Ok(())
    }

    fn persist_replay(&self, bytes: &[u8]) -> Result<()> {
        let Some(d) = &self.dir else { return Ok(()) };
        std::fs::create_dir_all(d).map_err(|e| AmiError::State {
            path: d.clone(),
            why: e.to_string(),
        })?;
        amicn_kms::persist::write_atomic(&ops_files(d).1, bytes)?;
        Ok(())
    }

    /// Checks a command Interest (signer, target, replay) and returns its verb and parameters.
    /// Nothing is recorded unless every check passes.
    pub fn check(
        &self,
        trust: &Trust,
        interest: &Interest,
    ) -> std::result::Result<(MeterOp, CommandParams), Refusal> {
        let base = self.names.meter_commands(self.id);
        let malformed = |why: String| Refusal::new("malformed", 400, why);
        let verb = interest
            .name
            .get(base.len())
            .filter(|_| base.is_prefix_of(&interest.name))
            .map(|c| String::from_utf8_lossy(c.value()).into_owned())
            .ok_or_else(|| malformed("no command verb".into()))?;
        let params = interest
            .app_parameters
            .clone()
            .ok_or_else(|| malformed("no ApplicationParameters".into()))?;
        let params = CommandParams::decode(params).map_err(|e| malformed(e.to_string()))?;
        let op = match verb.as_str() {
            "read" => MeterOp::Read,
            "connect" => MeterOp::Connect,
            "disconnect" => MeterOp::Disconnect,
            "limit" => MeterOp::Limit(params.limit_w),
            other => return Err(malformed(format!("unknown command {other:?}"))),
        };
        if let Some(c) = &params.certificate {
            // Trusted only through the chain the validator checks, never by being carried.
            let cert = Data::decode(c.clone())
                .map_err(AmiError::from)
                .and_then(|d| Certificate::from_data(d).map_err(AmiError::from))
                .map_err(|e| malformed(format!("certificate: {e}")))?;
            trust.add_certificate(cert);
        }
        // The trust rules bind each verb to its principals (meter-read: operator or MDMS;
        // meter-commands: operator alone); the meter's own key signs only the answers.
        trust
            .verify_interest(interest)
            .map_err(|e| Refusal::new("signer", 403, e.to_string()))?;
        if params.meter != self.id {
            return Err(Refusal::new(
                "wrong-meter",
                404,
                format!(
                    "command for meter {}, this is meter {}",
                    params.meter, self.id
                ),
            ));
        }
        let bytes = {
            let mut r = self.replay.lock().unwrap_or_else(|e| e.into_inner());
            r.check_interest(interest, now_ms())
                .map_err(|e| Refusal::new("replay", 403, e.to_string()))?;
            r.to_bytes()
        };
        // A replay record that cannot be kept would reopen the window after a restart.
        self.persist_replay(&bytes)
            .map_err(|e| Refusal::new("state", 500, e.to_string()))?;
        Ok((op, params))
    }

    /// Applies a supply command and persists the new state; returns it.
    pub fn apply(&self, op: MeterOp) -> std::result::Result<Supply, Refusal> {
        let mut s = self.supply.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = *s;
        match op {
            MeterOp::Read => return Ok(next),
            MeterOp::Connect => next.connected = true,
            MeterOp::Disconnect => next.connected = false,
            MeterOp::Limit(l) => next.limit_w = l,
        }
        self.persist_supply(&next)
            .map_err(|e| Refusal::new("state", 500, e.to_string()))?;
        *s = next;
        self.counters.supply_changes.fetch_add(1, Ordering::Relaxed);
        Ok(next)
    }
}

/// The answer Data for a command (unsigned; the meter's publisher signs it).
pub(crate) fn reply_data(name: &Name, reply: &CommandReply) -> Data {
    let mut d = Data::new(name.clone(), reply.encode());
    // Never served from a cache: each command is answered by the meter itself.
    d.meta_info.freshness_period_ms = Some(0);
    if reply.status.code != 200 {
        d.meta_info.content_type = CONTENT_TYPE_NACK;
    }
    d
}

/// What a command's answer said, checked.
#[derive(Debug, Clone)]
pub struct CommandOutcome {
    /// The answer's name (the command Interest's name).
    pub name: Name,
    /// Status (200 = executed).
    pub status: Status,
    /// The meter's supply state after the command.
    pub supply: Supply,
    /// For a `read` by a holder of the meter's reading keys: the decrypted reading.
    pub reading: Option<reading::Reading>,
    /// Whether the answer carried a sealed reading.
    pub sealed: bool,
    /// Interest to verified answer.
    pub latency: Duration,
}

/// Sends meter commands as one head-end principal (the utility operator or the MDMS) and checks
/// the answers: signed by the meter addressed, under the trust rules.
pub struct MeterCommander {
    names: AmiNames,
    creds: Credentials,
    trust: Arc<Trust>,
    client: Client,
    keys: Option<Arc<HeadEndKeys>>,
    lifetime: Duration,
}

impl std::fmt::Debug for MeterCommander {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeterCommander")
            .field("signer", &self.creds.key.key_name().to_string())
            .finish_non_exhaustive()
    }
}

impl MeterCommander {
    /// A commander signing with `creds`; with `keys` (the MDMS's reading keys) it opens the
    /// readings meters answer with.
    pub fn new(
        names: AmiNames,
        creds: Credentials,
        trust: Arc<Trust>,
        client: &Client,
        keys: Option<Arc<HeadEndKeys>>,
    ) -> Self {
        MeterCommander {
            names,
            creds,
            trust,
            client: client.clone(),
            keys,
            lifetime: Duration::from_secs(4),
        }
    }

    /// The signed command Interest for `op`, addressed to `to` (its name) and naming `target`
    /// in its parameters (the two differ only in refusal tests); returns it with its wire.
    pub fn signed(&self, to: u32, target: u32, op: MeterOp) -> Result<(Interest, Bytes)> {
        let params = CommandParams {
            meter: target,
            limit_w: match op {
                MeterOp::Limit(l) => Some(l.unwrap_or(0)),
                _ => None,
            },
            certificate: Some(self.creds.cert.to_wire()),
        };
        let mut i = Interest::new(self.names.meter_command(to, op.verb()));
        i.app_parameters = Some(params.encode());
        i.lifetime_ms = Some(self.lifetime.as_millis() as u64);
        i.must_be_fresh = true;
        // No Interest Nonce: the forwarder adds a fresh one to each copy.
        let wire = self
            .creds
            .key
            .sign_interest(&mut i, crate::net::signature_time())?;
        Ok((Interest::decode(wire.clone())?, wire))
    }

    /// Sends `op` to meter `meter` and checks the answer.
    pub async fn send(&self, meter: u32, op: MeterOp) -> Result<CommandOutcome> {
        let (i, wire) = self.signed(meter, meter, op)?;
        self.send_wire(meter, &i, wire).await
    }

    /// Sends an already signed command (e.g. a copy of one sent before) to meter `meter`.
    pub async fn send_wire(&self, meter: u32, i: &Interest, wire: Bytes) -> Result<CommandOutcome> {
        let started = Instant::now();
        let reply = self
            .client
            .express_wire(&i.name, false, wire, self.lifetime)
            .await?;
        let data = match reply {
            Reply::Data { data, .. } => data,
            Reply::Nack { reason } => {
                return Err(AmiError::protocol(&i.name, format!("Nacked: {reason:?}")));
            }
        };
        // The answer must be named for meter `meter`; the meter-data rule then lets only that
        // meter's key sign it.
        if !self.names.meter(meter).is_prefix_of(&data.name) {
            return Err(AmiError::protocol(
                &data.name,
                format!("answer is not named for meter {meter}"),
            ));
        }
        self.trust.verify_data(&data).await?;
        let latency = started.elapsed();
        let rep = CommandReply::decode(data.content.clone())?;
        let reading = match (&rep.sealed, &self.keys) {
            (Some(s), Some(keys)) => Some(open_reading(keys, &data.name, meter, s.clone())?),
            _ => None,
        };
        Ok(CommandOutcome {
            name: data.name.clone(),
            sealed: rep.sealed.is_some(),
            status: rep.status,
            supply: rep.supply,
            reading,
            latency,
        })
    }
}

/// Opens a reading sealed by `meter` under one of its reading keys in `keys`.
fn open_reading(
    keys: &HeadEndKeys,
    name: &Name,
    meter: u32,
    sealed: Bytes,
) -> Result<reading::Reading> {
    let ec = EncryptedContent::decode(sealed)?;
    let (owner, key) = keys
        .user_key(&ec.key_name)
        .ok_or_else(|| AmiError::KeyNotHeld {
            data_name: name.to_string(),
            key_name: ec.key_name.to_string(),
        })?;
    if owner != meter {
        return Err(AmiError::protocol(
            name,
            format!("sealed under meter {owner}'s key, not meter {meter}'s"),
        ));
    }
    let plain =
        EnvelopeKey::derive(&key, &ec.key_name, Purpose::Content).open_decoded(name, &ec)?;
    let r = reading::Reading::decode(&plain)?;
    if r.meter != meter {
        return Err(AmiError::protocol(
            name,
            format!("reading of meter {}, asked meter {meter}", r.meter),
        ));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn params_and_replies_round_trip_and_refuse_junk() {
        let p = CommandParams {
            meter: 7,
            limit_w: Some(1500),
            certificate: Some(Bytes::from_static(b"\x06\x00")),
        };
        assert_eq!(CommandParams::decode(p.encode()).unwrap(), p);
        // MeterId 7 is fc 01 07; LimitW 1500 is d0 02 05 dc.
        assert_eq!(
            &CommandParams {
                certificate: None,
                ..p.clone()
            }
            .encode()[..],
            &[0xfc, 0x01, 0x07, 0xd0, 0x02, 0x05, 0xdc]
        );
        // A limit of 0 means none.
        let zero = CommandParams::decode(Bytes::from_static(&[0xfc, 1, 7, 0xd0, 1, 0])).unwrap();
        assert_eq!(zero.limit_w, None);
        for junk in [
            &[][..],
            &[0xd0, 1, 5],
            &[0xfc, 1, 7, 0xd0, 1, 5, 0xd0, 1, 5],
            &[0xfc, 1, 7, 0x99, 0],
            &[
                0xfc, 4, 0x7f, 0xff, 0xff, 0xff, 0xd0, 4, 0x7f, 0xff, 0xff, 0xff,
            ],
        ] {
            assert!(
                CommandParams::decode(Bytes::copy_from_slice(junk)).is_err(),
                "{junk:?}"
            );
        }
        let r = CommandReply {
            status: Status {
                code: 200,
                text: "ok".into(),
                epoch: None,
            },
            supply: Supply {
                connected: false,
                limit_w: Some(900),
            },
            sealed: Some(Bytes::from_static(b"xyz")),
        };
        assert_eq!(CommandReply::decode(r.encode()).unwrap(), r);
        // Relay state 2 is not a state.
        let mut b = BytesMut::new();
        encode_nni_tlv(&mut b, STATUS_CODE, 200);
        encode_tlv(&mut b, STATUS_TEXT, b"ok");
        encode_nni_tlv(&mut b, RELAY, 2);
        assert!(CommandReply::decode(b.freeze()).is_err());
    }

    #[test]
    fn supply_limits_what_is_drawn() {
        let on = Supply::default();
        assert_eq!(on.drawn_w(2500.0), 2500.0);
        let limited = Supply {
            connected: true,
            limit_w: Some(1000),
        };
        assert_eq!(limited.drawn_w(2500.0), 1000.0);
        assert_eq!(limited.drawn_w(400.0), 400.0);
        let off = Supply {
            connected: false,
            limit_w: Some(1000),
        };
        assert_eq!(off.drawn_w(2500.0), 0.0);
    }
}
