//! The AMI name scheme (DESIGN.md § Naming) for one utility prefix.

use amicn_tlv::{Component, Name};
use bytes::Bytes;

use crate::error::{AmiError, Result};

/// Builds and parses every name the AMI roles use under one utility prefix `/<u>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmiNames {
    utility: Name,
    prefix: String,
}

fn generic(s: &str) -> Component {
    Component::generic(Bytes::copy_from_slice(s.as_bytes()))
}

/// A meter id component: generic, canonical decimal (no "007" alias of meter 7).
fn meter_id(c: &Component) -> Option<u32> {
    if !c.is_generic() {
        return None;
    }
    let id: u32 = std::str::from_utf8(c.value()).ok()?.parse().ok()?;
    (id.to_string().as_bytes() == c.value()).then_some(id)
}

impl AmiNames {
    /// The names under utility prefix `prefix` (e.g. `/example-utility`).
    pub fn new(prefix: &str) -> Result<Self> {
        let utility = Name::from_uri(prefix)?;
        if utility.is_empty() {
            return Err(AmiError::Config(
                "the utility prefix must have at least one component".into(),
            ));
        }
        let prefix = utility.to_string();
        Ok(AmiNames { utility, prefix })
    }

    /// `/<u>` as a Name.
    pub fn utility(&self) -> &Name {
        &self.utility
    }

    /// `/<u>` in canonical URI form (the key graph's prefix string).
    pub fn prefix_str(&self) -> &str {
        &self.prefix
    }

    /// `/<u>/ami`.
    pub fn ami(&self) -> Name {
        self.utility.append(generic("ami"))
    }

    /// `/<u>/ami/<role>`: identity of a head-end role (`KMS`, `price`, `dr`, `mdms`).
    pub fn role(&self, role: &str) -> Name {
        self.ami().append(generic(role))
    }

    /// `/<u>/ami/meter/<id>`: a meter's identity and the prefix it serves.
    pub fn meter(&self, id: u32) -> Name {
        self.ami()
            .append(generic("meter"))
            .append(generic(&id.to_string()))
    }

    /// `/<u>/ami/meter/<id>/reading`.
    pub fn reading_prefix(&self, id: u32) -> Name {
        self.meter(id).append(generic("reading"))
    }

    /// `/<u>/ami/meter/<id>/reading/t=<µs>`.
    pub fn reading(&self, id: u32, t_us: u64) -> Name {
        self.reading_prefix(id).append(Component::timestamp(t_us))
    }

    /// Meter id and timestamp of a reading name, if `name` is one under this utility.
    pub fn parse_reading(&self, name: &Name) -> Option<(u32, u64)> {
        let n = self.utility.len();
        if name.len() != n + 5 || !self.utility.is_prefix_of(name) {
            return None;
        }
        let is = |i: usize, s: &str| {
            name.get(i)
                .is_some_and(|c| c.is_generic() && c.value() == s.as_bytes())
        };
        if !is(n, "ami") || !is(n + 1, "meter") || !is(n + 3, "reading") {
            return None;
        }
        let id_c = name.get(n + 2)?;
        if !id_c.is_generic() {
            return None;
        }
        let id: u32 = std::str::from_utf8(id_c.value()).ok()?.parse().ok()?;
        // Only the canonical decimal form names a meter (no "007" aliases of meter 7).
        if id.to_string().as_bytes() != id_c.value() {
            return None;
        }
        let t = name.get(n + 4)?.as_timestamp()?;
        Some((id, t))
    }

    /// `/<u>/ami/price`.
    pub fn price_prefix(&self) -> Name {
        self.role("price")
    }

    /// `/<u>/ami/price/<tariff>`.
    pub fn tariff(&self, tariff: &str) -> Name {
        self.price_prefix().append(generic(tariff))
    }

    /// `/<u>/ami/price/<tariff>/v=<ver>`.
    pub fn price(&self, tariff: &str, version: u64) -> Name {
        self.tariff(tariff).append(Component::version(version))
    }

    /// `/<u>/ami/dr/<project>/event`.
    pub fn dr_event_prefix(&self, project: &str) -> Name {
        self.role("dr")
            .append(generic(project))
            .append(generic("event"))
    }

    /// `/<u>/ami/dr/<project>/event/seq=<n>`.
    pub fn dr_event(&self, project: &str, seq: u64) -> Name {
        self.dr_event_prefix(project)
            .append(Component::sequence_num(seq))
    }

    /// `/<u>/ami/dr/<project>/KEK`: where the project key's wraps live.
    pub fn dr_kek_prefix(&self, project: &str) -> Name {
        self.role("dr")
            .append(generic(project))
            .append(generic("KEK"))
    }

    /// `/<u>/ami/bcast`: where the broadcast key's wraps live.
    pub fn bcast_prefix(&self) -> Name {
        self.role("bcast")
    }

    /// `/<u>/ami/KMS`: the KMS identity and everything it publishes.
    pub fn kms(&self) -> Name {
        self.role("KMS")
    }

    /// `/<u>/ami/KMS/rekey`.
    pub fn manifest_prefix(&self) -> Name {
        self.kms().append(generic("rekey"))
    }

    /// `/<u>/ami/KMS/rekey/<epoch>`.
    pub fn manifest(&self, epoch: u32) -> Name {
        self.manifest_prefix().append(generic(&epoch.to_string()))
    }

    /// `/<u>/ami/KMS/rekey/<epoch>/seg=<k>`: one segment of a manifest object.
    pub fn manifest_segment(&self, epoch: u32, seg: u64) -> Name {
        self.manifest(epoch).append(Component::segment(seg))
    }

    /// Epoch of a manifest name, with or without its segment component.
    pub fn parse_manifest(&self, name: &Name) -> Option<u32> {
        let p = self.manifest_prefix();
        let extra = name.len().checked_sub(p.len())?;
        if !(1..=2).contains(&extra) || !p.is_prefix_of(name) {
            return None;
        }
        if extra == 2 {
            name.get(p.len() + 1)?.as_segment()?;
        }
        let c = name.get(p.len())?;
        let e: u32 = std::str::from_utf8(c.value()).ok()?.parse().ok()?;
        (e.to_string().as_bytes() == c.value()).then_some(e)
    }

    /// `/<u>/ami/meter/<id>/cmd`: where a meter answers signed commands ([`crate::ops`]).
    pub fn meter_commands(&self, id: u32) -> Name {
        self.meter(id).append(generic("cmd"))
    }

    /// `/<u>/ami/meter/<id>/cmd/<verb>` (the signed Interest adds its parameters digest).
    pub fn meter_command(&self, id: u32, verb: &str) -> Name {
        self.meter_commands(id).append(generic(verb))
    }

    /// `/<u>/ami/meter/<id>/latest`: where a meter's signed latest pointer is discovered.
    pub fn latest_prefix(&self, id: u32) -> Name {
        self.meter(id).append(generic("latest"))
    }

    /// `/<u>/ami/meter/<id>/latest/v=<n>`: one version of the pointer.
    pub fn latest(&self, id: u32, version: u64) -> Name {
        self.latest_prefix(id).append(Component::version(version))
    }

    /// `/<u>/ami/meter/<id>/event`: where a meter serves its events ([`crate::events`]).
    pub fn event_prefix(&self, id: u32) -> Name {
        self.meter(id).append(generic("event"))
    }

    /// `/<u>/ami/meter/<id>/event/seq=<n>`.
    pub fn event(&self, id: u32, seq: u64) -> Name {
        self.event_prefix(id).append(Component::sequence_num(seq))
    }

    /// `/<u>/ami/mdms/notify`: where meters tell the MDMS that an event is waiting.
    pub fn event_notify_prefix(&self) -> Name {
        self.role("mdms").append(generic("notify"))
    }

    /// `/<u>/ami/mdms/notify/<id>/seq=<n>`: meter `id` has published event `n`.
    pub fn event_notify(&self, id: u32, seq: u64) -> Name {
        self.event_notify_prefix()
            .append(generic(&id.to_string()))
            .append(Component::sequence_num(seq))
    }

    /// Meter id and sequence number of a notification name (extra components, such as a
    /// signed Interest's digest, are ignored).
    pub fn parse_event_notify(&self, name: &Name) -> Option<(u32, u64)> {
        let p = self.event_notify_prefix();
        if !p.is_prefix_of(name) {
            return None;
        }
        let id = meter_id(&name.get(p.len())?)?;
        let seq = name.get(p.len() + 1)?.as_sequence_num()?;
        Some((id, seq))
    }

    /// `/<u>/ami/price/latest/<tariff>`: the signed pointer to a tariff's newest version.
    pub fn tariff_latest_prefix(&self, tariff: &str) -> Name {
        self.price_prefix()
            .append(generic("latest"))
            .append(generic(tariff))
    }

    /// `/<u>/ami/price/latest/<tariff>/v=<ver>`: one version of the pointer.
    pub fn tariff_latest(&self, tariff: &str, version: u64) -> Name {
        self.tariff_latest_prefix(tariff)
            .append(Component::version(version))
    }

    /// `/<u>/ami/dr/<project>/ack`: where members acknowledge the project's events.
    pub fn dr_ack_prefix(&self, project: &str) -> Name {
        self.role("dr")
            .append(generic(project))
            .append(generic("ack"))
    }

    /// `/<u>/ami/dr/<project>/ack/<id>/seq=<n>`: meter `id`'s acknowledgement of event `n` (the
    /// signed Interest adds its parameters digest).
    pub fn dr_ack(&self, project: &str, id: u32, seq: u64) -> Name {
        self.dr_ack_prefix(project)
            .append(generic(&id.to_string()))
            .append(Component::sequence_num(seq))
    }

    /// Project, meter id and event sequence number of an acknowledgement name.
    pub fn parse_dr_ack(&self, name: &Name) -> Option<(String, u32, u64)> {
        let dr = self.role("dr");
        if !dr.is_prefix_of(name) {
            return None;
        }
        let n = dr.len();
        let project = std::str::from_utf8(name.get(n)?.value()).ok()?.to_string();
        let ack = name.get(n + 1)?;
        if !ack.is_generic() || ack.value() != b"ack" {
            return None;
        }
        let id = meter_id(&name.get(n + 2)?)?;
        let seq = name.get(n + 3)?.as_sequence_num()?;
        Some((project, id, seq))
    }

    /// `/<u>/ami/KMS/svc/<role>`: where service `role` asks the KMS for its keys.
    pub fn service_keys(&self, role: &str) -> Name {
        self.kms().append(generic("svc")).append(generic(role))
    }

    /// `/<u>/ami/KMS/cmd/<verb>`: authority commands (signed Interests) to the KMS.
    pub fn command(&self, verb: &str) -> Name {
        self.kms().append(generic("cmd")).append(generic(verb))
    }

    /// `/<u>/ami/KMS/revoked`: the published revocation list.
    pub fn revocations_prefix(&self) -> Name {
        self.kms().append(generic("revoked"))
    }

    /// `/<u>/ami/KMS/revoked/v=<n>/seg=<k>`.
    pub fn revocations(&self, version: u64, seg: u64) -> Name {
        self.revocations_prefix()
            .append(Component::version(version))
            .append(Component::segment(seg))
    }

    /// `/<u>/ami/KMS/enrol`.
    pub fn enrol_prefix(&self) -> Name {
        self.kms().append(generic("enrol"))
    }

    /// `/<u>/ami/KMS/enrol/<id>` (the signed enrolment Interest adds its parameters digest).
    pub fn enrol(&self, id: u32) -> Name {
        self.enrol_prefix().append(generic(&id.to_string()))
    }

    /// The Name of a key-graph object named by the KMS as a URI string (wraps, key names).
    pub fn graph_name(uri: &str) -> Result<Name> {
        Ok(Name::from_uri(uri)?)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_follow_the_design() {
        let n = AmiNames::new("/example-utility").unwrap();
        assert_eq!(
            n.reading(7, 1_700_000_000_000_000).to_string(),
            "/example-utility/ami/meter/7/reading/t=1700000000000000"
        );
        assert_eq!(
            n.price("flat", 3).to_string(),
            "/example-utility/ami/price/flat/v=3"
        );
        assert_eq!(
            n.dr_event("p1", 9).to_string(),
            "/example-utility/ami/dr/p1/event/seq=9"
        );
        assert_eq!(
            n.manifest(12).to_string(),
            "/example-utility/ami/KMS/rekey/12"
        );
        assert_eq!(
            n.manifest(12).to_string(),
            amicn_kms::graph::names::manifest_name(n.prefix_str(), 12)
        );
        assert_eq!(n.parse_manifest(&n.manifest(12)), Some(12));
        assert_eq!(n.parse_manifest(&n.manifest_segment(12, 3)), Some(12));
        assert_eq!(
            n.parse_manifest(&n.manifest(12).append_generic(Bytes::from_static(b"x"))),
            None
        );
        assert_eq!(
            n.latest(4, 9).to_string(),
            "/example-utility/ami/meter/4/latest/v=9"
        );
        assert_eq!(
            n.service_keys("mdms").to_string(),
            "/example-utility/ami/KMS/svc/mdms"
        );
        assert_eq!(
            n.command("entitle").to_string(),
            "/example-utility/ami/KMS/cmd/entitle"
        );
        assert_eq!(n.enrol(4).to_string(), "/example-utility/ami/KMS/enrol/4");
        assert_eq!(
            n.meter_command(4, "disconnect").to_string(),
            "/example-utility/ami/meter/4/cmd/disconnect"
        );
    }

    #[test]
    fn event_tariff_and_ack_names_follow_the_design_and_parse_strictly() {
        let n = AmiNames::new("/u").unwrap();
        assert_eq!(n.event(4, 7).to_string(), "/u/ami/meter/4/event/seq=7");
        assert_eq!(
            n.event_notify(4, 7).to_string(),
            "/u/ami/mdms/notify/4/seq=7"
        );
        assert_eq!(n.parse_event_notify(&n.event_notify(4, 7)), Some((4, 7)));
        assert_eq!(
            n.parse_event_notify(&Name::from_uri("/u/ami/mdms/notify/04/seq=7").unwrap()),
            None
        );
        assert_eq!(
            n.parse_event_notify(&Name::from_uri("/u/ami/mdms/notify/4/7").unwrap()),
            None
        );
        assert_eq!(
            n.tariff_latest("tou", 3).to_string(),
            "/u/ami/price/latest/tou/v=3"
        );
        assert_eq!(n.dr_ack("p1", 5, 2).to_string(), "/u/ami/dr/p1/ack/5/seq=2");
        assert_eq!(
            n.parse_dr_ack(
                &n.dr_ack("p1", 5, 2)
                    .append_generic(Bytes::from_static(b"d"))
            ),
            Some(("p1".to_string(), 5, 2))
        );
        assert_eq!(n.parse_dr_ack(&n.dr_event("p1", 2)), None);
    }

    #[test]
    fn reading_names_parse_strictly() {
        let n = AmiNames::new("/u").unwrap();
        assert_eq!(n.parse_reading(&n.reading(42, 99)), Some((42, 99)));
        assert_eq!(
            n.parse_reading(&Name::from_uri("/u/ami/meter/042/reading/t=99").unwrap()),
            None
        );
        assert_eq!(
            n.parse_reading(&Name::from_uri("/u/ami/meter/42/reading/99").unwrap()),
            None
        );
        assert_eq!(
            n.parse_reading(&Name::from_uri("/u/ami/meter/42/other/t=99").unwrap()),
            None
        );
        assert_eq!(
            n.parse_reading(&Name::from_uri("/v/ami/meter/42/reading/t=99").unwrap()),
            None
        );
        assert_eq!(
            n.parse_reading(&n.reading(42, 99).append_generic(Bytes::from_static(b"x"))),
            None
        );
    }
}
