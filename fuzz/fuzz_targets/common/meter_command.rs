//! The meter's command handler, shared by the `meter_command` target and the corpus replay
//! in `ami/tests/fuzz_corpus.rs` (`/<u>/ami/meter/<id>/cmd/<verb>`, see `amicn_ami::ops`):
//! `CommandState::check` of meter 1, fed signed commands from a test PKI (mutated as the input
//! says), correctly signed commands carrying input bytes as parameters, and input bytes as a
//! whole Interest. Nothing panics; bad input is a refusal.
//!
//! The input is a short program: each step is one opcode byte and the bytes it consumes.
//!
//! | op % 4 | step |
//! | --- | --- |
//! | 0 | a command: signer, verb, meter named, meter in the parameters, limit, then a mutation |
//! | 1 | a correctly signed `limit` to meter 1 with a length byte and that many input bytes as ApplicationParameters |
//! | 2 | a 16-bit length and that many input bytes as a whole Interest |
//! | 3 | the previous Interest again (a replay) |
//!
//! Checked: an accepted command was signed by the utility operator (or, for `read`, the MDMS)
//! with an untouched signature, names meter 1 in its parameters and was never accepted before;
//! applying it changes the supply as the verb says.
#[path = "input.rs"]
mod input;
use input::Input;
use std::sync::{Arc, OnceLock};

use amicn_ami::ops::{CommandParams, CommandState};
use amicn_ami::{AmiNames, Credentials, MeterOp, Pki, Trust, now_ms};
use amicn_face::client::{Client, ClientOptions};
use amicn_kms::cert::{Certificate, Validity};
use amicn_kms::identity::KeyPair;
use amicn_tlv::{Interest, SignatureInfo};
use bytes::Bytes;

/// The meter whose handler runs.
const METER: u32 = 1;
const VERBS: [&str; 5] = ["read", "connect", "disconnect", "limit", "reboot"];
/// Steps per input.
const MAX_STEPS: usize = 16;
/// Outside the replay checker's grace.
const SKEW_MS: u64 = 120_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Operator,
    Mdms,
    Dr,
    /// An operator key whose self-signed certificate does not chain to the anchor.
    Stranger,
    /// Meter 1 itself.
    Meter,
}

impl Who {
    fn pick(b: u8) -> Who {
        match b % 5 {
            0 => Who::Operator,
            1 => Who::Mdms,
            2 => Who::Dr,
            3 => Who::Stranger,
            _ => Who::Meter,
        }
    }

    fn may_send(self, op: MeterOp) -> bool {
        self == Who::Operator || (self == Who::Mdms && op == MeterOp::Read)
    }
}

struct Fixture {
    /// Never driven: the connection is a placeholder the trust needs.
    rt: tokio::runtime::Runtime,
    client: Client,
    names: AmiNames,
    pki: Pki,
    operator: Credentials,
    mdms: Credentials,
    dr: Credentials,
    stranger: Credentials,
    meter: Credentials,
}

impl Fixture {
    fn creds(&self, w: Who) -> &Credentials {
        match w {
            Who::Operator => &self.operator,
            Who::Mdms => &self.mdms,
            Who::Dr => &self.dr,
            Who::Stranger => &self.stranger,
            Who::Meter => &self.meter,
        }
    }
}

fn fixture() -> Option<&'static Fixture> {
    static F: OnceLock<Option<Fixture>> = OnceLock::new();
    F.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread().build().ok()?;
        let client = {
            let _in_rt = rt.enter();
            Client::from_stream(tokio::io::duplex(1 << 12).0, ClientOptions::default())
        };
        let names = AmiNames::new("/u").ok()?;
        let pki = Pki::new(&names).ok()?;
        let now_s = now_ms() / 1000;
        let key = KeyPair::generate(&names.role("operator"));
        let cert =
            Certificate::self_signed(&key, 1, Validity::starting_now(now_s - 60, 86_400)).ok()?;
        Some(Fixture {
            operator: pki.issue(&names.role("operator")).ok()?,
            mdms: pki.issue(&names.role("mdms")).ok()?,
            dr: pki.issue(&names.role("dr")).ok()?,
            meter: pki.issue(&names.meter(METER)).ok()?,
            stranger: Credentials {
                key: Arc::new(key),
                cert,
            },
            rt,
            client,
            names,
            pki,
        })
    })
    .as_ref()
}

/// What the harness knows about an Interest it delivers.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Unsigned, signature altered or signed by an untrusted key: never executed.
    Refused,
    /// Signed by this principal with an untouched signature.
    SignedBy(Who),
    /// Input bytes or a replay.
    Unknown,
}

struct Session<'a> {
    f: &'static Fixture,
    state: CommandState,
    trust: Arc<Trust>,
    input: Input<'a>,
    clock: u64,
    nonce: u64,
    last: Option<Interest>,
    /// Wire of every command accepted in this session.
    accepted: Vec<Bytes>,
}

impl Session<'_> {
    /// An unsigned command Interest to meter `to`.
    fn command(&mut self, verb: &str, to: u32, params: Bytes) -> Interest {
        let mut i = Interest::new(self.f.names.meter_command(to, verb));
        i.app_parameters = Some(params);
        i.lifetime_ms = Some(4_000);
        i.must_be_fresh = true;
        i
    }

    fn sign(&mut self, mut i: Interest, who: Who, skew: i64) -> Vec<u8> {
        self.clock += 1;
        self.nonce += 1;
        let creds = self.f.creds(who);
        let info = SignatureInfo {
            nonce: Some(Bytes::copy_from_slice(&self.nonce.to_be_bytes())),
            time_ms: Some(self.clock.saturating_add_signed(skew)),
            ..creds.key.signature_info()
        };
        i.sign_with(info, |p| creds.key.sign(p).to_vec()).to_vec()
    }

    fn step(&mut self, op: u8) -> Option<()> {
        match op % 4 {
            0 => {
                let who = Who::pick(self.input.byte()?);
                let verb = VERBS[usize::from(self.input.byte()?) % VERBS.len()];
                let to = 1 + u32::from(self.input.byte()? % 2);
                let target = 1 + u32::from(self.input.byte()? % 2);
                let limit = self.input.u32();
                let carry = self.input.byte()? % 4 != 0;
                let mutation = self.input.byte()?;
                let params = CommandParams {
                    meter: target,
                    limit_w: limit,
                    certificate: carry.then(|| self.f.creds(who).cert.to_wire()),
                };
                let i = self.command(verb, to, params.encode());
                let skew = match mutation % 8 {
                    3 => -(SKEW_MS as i64),
                    4 => SKEW_MS as i64,
                    _ => 0,
                };
                let (mut wire, mut forged) = if mutation % 8 == 5 {
                    let mut i = i;
                    i.update_params_digest();
                    (i.encode().to_vec(), true)
                } else {
                    (self.sign(i, who, skew), false)
                };
                match mutation % 8 {
                    1 => {
                        if let Some(b) = wire.last_mut() {
                            *b ^= 0x01;
                            forged = true;
                        }
                    }
                    2 => {
                        let at = usize::from(self.input.byte().unwrap_or(0)) << 8
                            | usize::from(self.input.byte().unwrap_or(0));
                        let bit = self.input.byte().unwrap_or(0) % 8;
                        if let Some(len) = std::num::NonZeroUsize::new(wire.len()) {
                            wire[at % len.get()] ^= 1 << bit;
                        }
                    }
                    6 => {
                        let at = usize::from(self.input.byte().unwrap_or(0));
                        wire.truncate(wire.len().saturating_sub(at + 1));
                    }
                    _ => {}
                }
                let i = Interest::decode(Bytes::from(wire)).ok()?;
                let expect = if forged || who == Who::Stranger {
                    Expect::Refused
                } else {
                    Expect::SignedBy(who)
                };
                self.deliver(&i, expect);
            }
            1 => {
                let n = usize::from(self.input.byte()?);
                let params = Bytes::copy_from_slice(self.input.take(n));
                let i = self.command("limit", METER, params);
                let wire = self.sign(i, Who::Operator, 0);
                let i = Interest::decode(Bytes::from(wire)).ok()?;
                self.deliver(&i, Expect::SignedBy(Who::Operator));
            }
            2 => {
                let n = usize::from(u16::from_be_bytes(self.input.take(2).try_into().ok()?));
                let wire = Bytes::copy_from_slice(self.input.take(n));
                let i = Interest::decode(wire).ok()?;
                self.deliver(&i, Expect::Unknown);
            }
            _ => {
                let i = self.last.clone()?;
                self.deliver(&i, Expect::Unknown);
            }
        }
        Some(())
    }

    /// Checks `i` as meter 1 does.
    fn deliver(&mut self, i: &Interest, expect: Expect) {
        let wire = wire_of(i);
        if let Ok((op, params)) = self.state.check(&self.trust, i) {
            assert_eq!(params.meter, METER, "executed a command for another meter");
            assert!(
                !self.accepted.contains(&wire),
                "a replayed command was executed"
            );
            match expect {
                Expect::Refused => panic!("a forged or untrusted command was executed"),
                Expect::SignedBy(w) => assert!(w.may_send(op), "{w:?} may not send {op:?}"),
                Expect::Unknown => {}
            }
            let before = self.state.supply();
            let after = self.state.apply(op).ok();
            if let Some(s) = after {
                match op {
                    MeterOp::Read => assert_eq!(s, before),
                    MeterOp::Connect => assert!(s.connected),
                    MeterOp::Disconnect => assert!(!s.connected),
                    MeterOp::Limit(l) => assert_eq!(s.limit_w, l),
                }
                assert_eq!(self.state.supply(), s);
            }
            self.accepted.push(wire);
        }
        self.last = Some(i.clone());
    }
}

fn wire_of(i: &Interest) -> Bytes {
    i.wire().cloned().unwrap_or_else(|| i.encode())
}

/// Runs one input against a fresh meter 1 (see the module documentation); returns how many
/// commands it executed.
pub fn run(data: &[u8]) -> usize {
    let Some(f) = fixture() else { return 0 };
    let _in_rt = f.rt.enter();
    let Ok(trust) = Trust::new(&f.names, f.pki.anchor(), &f.client) else {
        return 0;
    };
    // What provisioning gives a meter: the head-end principals' certificates.
    for w in [Who::Operator, Who::Mdms, Who::Dr] {
        trust.add_certificate(f.creds(w).cert.clone());
    }
    let Ok(state) = CommandState::open(&f.names, METER, None) else {
        return 0;
    };
    let mut s = Session {
        f,
        state,
        trust,
        input: Input(data),
        clock: now_ms(),
        nonce: 0,
        last: None,
        accepted: Vec::new(),
    };
    for _ in 0..MAX_STEPS {
        let Some(op) = s.input.byte() else { break };
        if s.step(op).is_none() {
            break;
        }
    }
    s.accepted.len()
}
