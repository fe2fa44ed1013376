//! The KMS's request handlers as the network reaches them, shared by the `kms_enrol`,
//! `kms_command` and `kms_key_request` targets.
//!
//! Every input gets a fresh KMS (state in memory, projects p1 and p2, meters 1 and 2 already
//! entitled) opened with `KmsService::open` and driven only through `KmsService::on_interest`,
//! the function the daemon registers for its request prefixes. The input is a short program:
//! each step is one opcode byte and the bytes it consumes.
//!
//! | op % 8 | step |
//! | --- | --- |
//! | 0 | commit the staged epoch |
//! | 1 | a well-formed enrolment of meter 1–4 (projects from a bit mask) |
//! | 2 | a well-formed operator command (entitle, revoke or leave) |
//! | 3, 4 | a request of the target's kind, fields chosen by the input, then one mutation |
//! | 5 | the target's request name, correctly signed, input bytes as ApplicationParameters |
//! | 6 | input bytes as a whole Interest |
//! | 7 | the previous Interest again (a replay) |
//!
//! Mutations: none, a flipped bit in the signature value, another signer, a SignatureTime
//! outside the window or in the future, the previous nonce again, a flipped bit anywhere,
//! no signature, a DigestSha256 signature, a truncated packet, sending it twice. Requests are
//! signed with real keys from a test PKI (meter 4's certificate has expired, meter 5's and the
//! stranger's are self-signed), so valid requests get past the signature check into the logic.
//!
//! Checked on every answer: one comes back for every name under the request prefixes, named
//! like the Interest; a request whose signature value was altered, or that is unsigned, signed
//! by an untrusted key or with DigestSha256, is never carried out, and neither is a command or
//! key request the KMS has seen before (a replay).

#[path = "input.rs"]
mod input;
use input::Input;
use std::sync::{Arc, OnceLock};

use amicn_ami::{AmiNames, Credentials, KmsConfig, KmsService, Pki, Publisher, Trust, now_ms};
use amicn_face::client::{Client, ClientOptions};
use amicn_kms::cert::{Certificate, Validity};
use amicn_kms::establish::EphemeralAgreement;
use amicn_kms::identity::KeyPair;
use amicn_tlv::{Data, Interest, Name, SignatureInfo, TlvReader, encode_nni_tlv, encode_tlv};
use bytes::{Bytes, BytesMut};

/// Which handler a target concentrates on.
// Each target binary constructs only its own variant.
#[allow(dead_code)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    /// `/<u>/ami/KMS/enrol/<id>`.
    Enrol,
    /// `/<u>/ami/KMS/cmd/<verb>`.
    Command,
    /// `/<u>/ami/KMS/svc/<role>`.
    KeyRequest,
}

// TLV-TYPEs of the AMI request formats (ami/src/wire.rs).
const X25519_KEY: u32 = 0xE0;
const PROJECT: u32 = 0xE2;
const CERTIFICATE: u32 = 0xE4;
const KIND: u32 = 0xCE;
const NEXT: u32 = 0xC4;
const ASSIGNMENT: u32 = 0xC6;
const METER_ID: u32 = 0xFC;
const STATUS_CODE: u32 = 0xC8;
/// ContentType NACK: the KMS's refusal of an enrolment or key request.
const CONTENT_TYPE_NACK: u64 = 3;

/// p9 is not one of the KMS's projects.
const PROJECTS: [&str; 3] = ["p1", "p2", "p9"];
const VERBS: [&str; 4] = ["entitle", "revoke", "leave", "refresh"];
const ROLES: [&str; 4] = ["mdms", "price", "dr", "operator"];
const KINDS: [&str; 4] = ["readings", "broadcast", "projects", "meters"];
/// Meters 1..=METERS have keys: 1–3 valid certificates, 4 expired, 5 self-signed.
const METERS: u32 = 5;
/// Steps per input (each can commit an epoch, so this bounds the time per input).
const MAX_STEPS: usize = 24;
/// Outside the replay checker's 60 s grace.
const SKEW_MS: u64 = 120_000;

/// Everything a signature can come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Kms,
    Dr,
    Operator,
    Mdms,
    Price,
    /// An operator key whose self-signed certificate does not chain to the anchor.
    Stranger,
    Meter(u32),
}

impl Who {
    fn pick(b: u8) -> Who {
        match b % 7 {
            0 => Who::Kms,
            1 => Who::Dr,
            2 => Who::Operator,
            3 => Who::Mdms,
            4 => Who::Price,
            5 => Who::Stranger,
            _ => Who::Meter(1 + u32::from(b / 7) % METERS),
        }
    }

    /// Whether no request signed by this key can be valid.
    fn untrusted(self) -> bool {
        matches!(self, Who::Stranger | Who::Meter(4) | Who::Meter(5))
    }
}

struct Fixture {
    /// Never driven: the connection is a placeholder the publisher and trust need.
    rt: tokio::runtime::Runtime,
    client: Client,
    names: AmiNames,
    pki: Pki,
    kms: Credentials,
    dr: Credentials,
    operator: Credentials,
    mdms: Credentials,
    price: Credentials,
    stranger: Credentials,
    /// Meter `id` at index `id - 1`, with its X25519 public key.
    meters: Vec<(Credentials, [u8; 32])>,
}

fn self_signed(identity: &Name, now_s: u64) -> Option<Credentials> {
    let key = KeyPair::generate(identity);
    let cert = Certificate::self_signed(&key, 1, Validity::starting_now(now_s - 60, 400 * 86_400))
        .ok()?;
    Some(Credentials {
        key: Arc::new(key),
        cert,
    })
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
        let mut meters = Vec::new();
        for id in 1..=METERS {
            let creds = match id {
                4 => pki
                    .issue_with_validity(
                        &names.meter(id),
                        Validity::starting_now(now_s - 3 * 86_400, 86_400),
                    )
                    .ok()?,
                5 => self_signed(&names.meter(id), now_s)?,
                _ => pki.issue(&names.meter(id)).ok()?,
            };
            meters.push((creds, EphemeralAgreement::generate().public_key()));
        }
        Some(Fixture {
            kms: pki.issue(&names.kms()).ok()?,
            dr: pki.issue(&names.role("dr")).ok()?,
            operator: pki.issue(&names.role("operator")).ok()?,
            mdms: pki.issue(&names.role("mdms")).ok()?,
            price: pki.issue(&names.role("price")).ok()?,
            stranger: self_signed(&names.role("operator"), now_s)?,
            meters,
            rt,
            client,
            names,
            pki,
        })
    })
    .as_ref()
}

/// One request before signing: name, parameters and the key that should sign it.
struct Request {
    name: Name,
    params: Bytes,
    signer: Who,
}

struct Session<'a> {
    f: &'static Fixture,
    kms: Arc<KmsService>,
    input: Input<'a>,
    prefixes: [Name; 3],
    /// SignatureTime of the next request.
    clock: u64,
    nonce: u64,
    last: Option<Interest>,
    /// Wire of every Interest delivered in this session.
    delivered: Vec<Bytes>,
}

/// Runs one input against a fresh KMS (see the module documentation).
pub fn run(focus: Focus, data: &[u8]) {
    let Some(f) = fixture() else { return };
    let _in_rt = f.rt.enter();
    let Ok(trust) = Trust::new(&f.names, f.pki.anchor(), &f.client) else {
        return;
    };
    // What provisioning gives the KMS: the certificates of every principal that signs requests.
    for c in [&f.dr, &f.operator, &f.mdms, &f.price, &f.stranger] {
        trust.add_certificate(c.cert.clone());
    }
    let publisher = Publisher::new(&f.client, f.kms.key.clone(), None);
    let cfg = KmsConfig::new(f.names.clone(), vec!["p1".into(), "p2".into()]);
    let creds = Credentials {
        key: f.kms.key.clone(),
        cert: f.kms.cert.clone(),
    };
    let Ok(kms) = KmsService::open(cfg, creds, trust, publisher) else {
        return;
    };
    let p = |s: &str| s.to_string();
    if kms
        .entitle(&[(1, vec![p("p1")]), (2, vec![p("p1"), p("p2")])], "fuzz")
        .is_err()
    {
        return;
    }
    let kms_prefix = f.names.kms();
    let mut s = Session {
        f,
        kms,
        input: Input(data),
        prefixes: [
            f.names.enrol_prefix(),
            kms_prefix.append_generic(Bytes::from_static(b"svc")),
            kms_prefix.append_generic(Bytes::from_static(b"cmd")),
        ],
        clock: now_ms(),
        nonce: 0,
        last: None,
        delivered: Vec::new(),
    };
    for _ in 0..MAX_STEPS {
        if s.step(focus).is_none() {
            break;
        }
    }
}

impl Session<'_> {
    fn creds(&self, who: Who) -> &'static Credentials {
        let f = self.f;
        match who {
            Who::Kms => &f.kms,
            Who::Dr => &f.dr,
            Who::Operator => &f.operator,
            Who::Mdms => &f.mdms,
            Who::Price => &f.price,
            Who::Stranger => &f.stranger,
            Who::Meter(m) => &f.meters[(m.clamp(1, METERS) - 1) as usize].0,
        }
    }

    fn step(&mut self, focus: Focus) -> Option<()> {
        let op = self.input.byte()?;
        match op % 8 {
            0 => {
                let _ = self.kms.commit_epoch("fuzz");
            }
            1 => {
                let m = 1 + u32::from(self.input.byte()?) % 4;
                let mask = self.input.byte()?;
                let r = self.enrolment(m, m, mask, 0, 0);
                self.send(r, 0);
            }
            2 => {
                let r = self.command()?;
                self.send(r, 0);
            }
            3 | 4 => {
                let r = self.request(focus)?;
                let mutation = self.input.byte()?;
                self.send(r, mutation);
            }
            5 => {
                let mut r = self.request(focus)?;
                r.params = Bytes::from(self.input.chunk()?);
                self.send(r, 0);
            }
            6 => {
                let wire = self.input.chunk()?;
                if let Ok(i) = Interest::decode(Bytes::from(wire)) {
                    self.deliver(&i, false);
                }
            }
            _ => {
                if let Some(i) = self.last.clone() {
                    self.deliver(&i, false);
                }
            }
        }
        Some(())
    }

    fn request(&mut self, focus: Focus) -> Option<Request> {
        match focus {
            Focus::Enrol => {
                let m = 1 + u32::from(self.input.byte()?) % METERS;
                let named = match self.input.byte()? % 4 {
                    0 => 1 + u32::from(self.input.byte()?) % METERS,
                    1 => self.input.u32()?,
                    _ => m,
                };
                let mask = self.input.byte()?;
                let (cert, key) = (self.input.byte()?, self.input.byte()?);
                Some(self.enrolment(m, named, mask, cert, key))
            }
            Focus::Command => self.command(),
            Focus::KeyRequest => {
                let role = ROLES[usize::from(self.input.byte()?) % ROLES.len()];
                let kind = KINDS[usize::from(self.input.byte()?) % KINDS.len()];
                let next = match self.input.byte()? % 4 {
                    0 => Some(u64::from(self.input.u32()?)),
                    1 => Some(u64::from(self.input.byte()?)),
                    _ => None,
                };
                let mut b = BytesMut::new();
                encode_tlv(&mut b, X25519_KEY, &self.f.meters[0].1);
                encode_tlv(&mut b, KIND, kind.as_bytes());
                if let Some(n) = next {
                    encode_nni_tlv(&mut b, NEXT, n);
                }
                let signer = match role {
                    "mdms" => Who::Mdms,
                    "price" => Who::Price,
                    "dr" => Who::Dr,
                    _ => Who::Operator,
                };
                Some(Request {
                    name: self.f.names.service_keys(role),
                    params: b.freeze(),
                    signer,
                })
            }
        }
    }

    /// Meter `m`'s enrolment under the name of meter `named`: `cert` picks the enclosed
    /// certificate (its own, another meter's, the KMS's, none), `key` its X25519 key.
    fn enrolment(&mut self, m: u32, named: u32, mask: u8, cert: u8, key: u8) -> Request {
        let f = self.f;
        let idx = (m - 1) as usize;
        let mut b = BytesMut::new();
        match key % 8 {
            6 => encode_tlv(&mut b, X25519_KEY, &[0u8; 32]),
            7 => encode_tlv(&mut b, X25519_KEY, &f.meters[idx].1[..31]),
            _ => encode_tlv(&mut b, X25519_KEY, &f.meters[idx].1),
        }
        for (k, p) in PROJECTS.iter().enumerate() {
            if mask & (1 << k) != 0 {
                encode_tlv(&mut b, PROJECT, p.as_bytes());
            }
            if mask & (1 << (k + 4)) != 0 {
                // A project named twice.
                encode_tlv(&mut b, PROJECT, p.as_bytes());
            }
        }
        match cert % 8 {
            5 => encode_tlv(&mut b, CERTIFICATE, &f.meters[idx % 3 + 1].0.cert.to_wire()),
            6 => encode_tlv(&mut b, CERTIFICATE, &f.kms.cert.to_wire()),
            7 => {}
            _ => encode_tlv(&mut b, CERTIFICATE, &f.meters[idx].0.cert.to_wire()),
        }
        let name = if named == u32::MAX {
            // Not canonical decimal.
            f.names
                .enrol_prefix()
                .append_generic(Bytes::from(format!("0{m}")))
        } else {
            f.names.enrol(named)
        };
        Request {
            name,
            params: b.freeze(),
            signer: Who::Meter(m),
        }
    }

    /// An operator command, signed by the principal its verb belongs to.
    fn command(&mut self) -> Option<Request> {
        let verb = VERBS[usize::from(self.input.byte()?) % VERBS.len()];
        let mut b = BytesMut::new();
        if verb == "entitle" {
            for _ in 0..self.input.byte()? % 4 {
                let mut a = BytesMut::new();
                encode_nni_tlv(&mut a, METER_ID, u64::from(self.meter_id()?));
                let mask = self.input.byte()?;
                for (k, p) in PROJECTS.iter().enumerate() {
                    if mask & (1 << k) != 0 {
                        encode_tlv(&mut a, PROJECT, p.as_bytes());
                    }
                }
                encode_tlv(&mut b, ASSIGNMENT, &a);
            }
        } else {
            encode_nni_tlv(&mut b, METER_ID, u64::from(self.meter_id()?));
        }
        Some(Request {
            name: self.f.names.command(verb),
            params: b.freeze(),
            signer: if verb == "entitle" {
                Who::Dr
            } else {
                Who::Operator
            },
        })
    }

    /// Mostly a meter the KMS knows of, sometimes any 32-bit id.
    fn meter_id(&mut self) -> Option<u32> {
        let b = self.input.byte()?;
        if b == 0xFF {
            self.input.u32()
        } else {
            Some(1 + u32::from(b) % 6)
        }
    }

    /// Signs `r`, applies `mutation` and hands the packet to the KMS.
    fn send(&mut self, r: Request, mutation: u8) {
        let mut i = Interest::new(r.name);
        i.app_parameters = Some(r.params);
        i.lifetime_ms = Some(4_000);
        i.must_be_fresh = true;
        self.clock += 1;
        self.nonce += 1;
        let (mut signer, mut time, mut nonce) = (r.signer, self.clock, self.nonce);
        let mut digest_signed = false;
        let mut unsigned = false;
        match mutation % 12 {
            3 => {
                if let Some(b) = self.input.byte() {
                    signer = Who::pick(b);
                }
            }
            4 => time -= SKEW_MS,
            5 => time += SKEW_MS,
            6 => nonce = nonce.saturating_sub(1),
            8 => unsigned = true,
            9 => digest_signed = true,
            _ => {}
        }
        let creds = self.creds(signer);
        let info = SignatureInfo {
            nonce: Some(Bytes::copy_from_slice(&nonce.to_be_bytes())),
            time_ms: Some(time),
            ..creds.key.signature_info()
        };
        let mut wire = if unsigned {
            i.update_params_digest();
            i.encode()
        } else if digest_signed {
            i.sign_digest_sha256(SignatureInfo {
                nonce: info.nonce.clone(),
                time_ms: info.time_ms,
                ..SignatureInfo::digest_sha256()
            })
        } else {
            i.sign_with(info, |p| creds.key.sign(p).to_vec())
        }
        .to_vec();
        let mut forged = unsigned || digest_signed || signer.untrusted();
        match mutation % 12 {
            2 => {
                // The SignatureValue's last byte: the end of the packet.
                if let Some(b) = wire.last_mut() {
                    *b ^= 0x01;
                    forged = true;
                }
            }
            7 => {
                let at = usize::from(self.input.byte().unwrap_or(0)) << 8
                    | usize::from(self.input.byte().unwrap_or(0));
                let bit = self.input.byte().unwrap_or(0) % 8;
                if let Some(len) = std::num::NonZeroUsize::new(wire.len()) {
                    wire[at % len.get()] ^= 1 << bit;
                }
            }
            10 => {
                let at = usize::from(self.input.byte().unwrap_or(0));
                wire.truncate(wire.len().saturating_sub(at + 1));
            }
            _ => {}
        }
        let Ok(packet) = Interest::decode(Bytes::from(wire)) else {
            return;
        };
        self.deliver(&packet, forged);
        if mutation % 12 == 11 {
            self.deliver(&packet, forged);
        }
    }

    /// Hands one Interest to the KMS and checks the answer.
    fn deliver(&mut self, i: &Interest, forged: bool) {
        let answer = self.kms.on_interest(i);
        let ours = self.prefixes.iter().any(|p| p.is_prefix_of(&i.name));
        assert_eq!(answer.is_some(), ours, "answered exactly under the request prefixes");
        let wire = i.wire().cloned().unwrap_or_else(|| i.encode());
        // Commands and key requests are never answered twice; a repeated enrolment may be.
        let repeated = self.delivered.contains(&wire) && !self.prefixes[0].is_prefix_of(&i.name);
        if let Some(d) = &answer {
            assert_eq!(d.name, i.name, "the answer is named like the request");
            if forged {
                assert!(refused(d, &self.prefixes[2]), "a forged request was carried out");
            }
            if repeated {
                assert!(refused(d, &self.prefixes[2]), "a replayed request was carried out");
            }
        }
        self.delivered.push(wire);
        self.last = Some(i.clone());
    }
}

/// Whether the KMS's answer refuses the request: a NACK, or a command status other than 200.
fn refused(d: &Data, cmd_prefix: &Name) -> bool {
    if d.meta_info.content_type == CONTENT_TYPE_NACK {
        return true;
    }
    if !cmd_prefix.is_prefix_of(&d.name) {
        return false;
    }
    let mut r = TlvReader::new(d.content.clone());
    r.expect(STATUS_CODE, "StatusCode")
        .ok()
        .and_then(|e| e.nni().ok())
        .is_some_and(|code| code != 200)
}
