//! Management requests parsed once: the module and verb of a `/localhost/nfd` Interest become a
//! [`Request`], a command's ControlParameters (or a `rib/announce` PrefixAnnouncement) travel in
//! it, and every command then goes through the one path in [`super::Management::on_interest`]:
//! authorize, validate, execute, reply.

use amicn_tlv::mgmt::ControlParameters;
use amicn_tlv::{Data, Interest};

use super::{generic, is_localhost_nfd, name_component_value, params};

/// A status dataset (answered with segmented, versioned Data).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dataset {
    /// `faces/list`.
    FacesList,
    /// `faces/channels`.
    FacesChannels,
    /// `faces/query` (the FaceQueryFilter follows the verb).
    FacesQuery,
    /// `fib/list`.
    FibList,
    /// `rib/list`.
    RibList,
    /// `cs/info`.
    CsInfo,
    /// `strategy-choice/list`.
    StrategyChoiceList,
    /// `status/general`.
    StatusGeneral,
}

/// A control command verb.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verb {
    /// `rib/register`.
    RibRegister,
    /// `rib/unregister`.
    RibUnregister,
    /// `faces/create`.
    FacesCreate,
    /// `faces/update`.
    FacesUpdate,
    /// `faces/destroy`.
    FacesDestroy,
    /// `fib/add-nexthop`.
    FibAddNextHop,
    /// `fib/remove-nexthop`.
    FibRemoveNextHop,
    /// `strategy-choice/set`.
    StrategySet,
    /// `strategy-choice/unset`.
    StrategyUnset,
    /// `cs/config`.
    CsConfig,
    /// `cs/erase`.
    CsErase,
}

/// A control command with what it carries.
#[derive(Clone, Debug)]
pub(crate) enum Command {
    /// A command with ControlParameters after the verb.
    Control(Verb, ControlParameters),
    /// `rib/announce`: a PrefixAnnouncement Data in ApplicationParameters.
    Announce(Data),
}

/// A management Interest, parsed.
// Lives on the stack from parsing to handling only; boxing the command would cost an
// allocation per command to save a few hundred bytes of stack.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub(crate) enum Request {
    /// A status dataset.
    Dataset(Dataset),
    /// `faces/events`: waits for the next face event notification.
    FaceEvents,
    /// A control command.
    Command(Command),
}

impl Request {
    /// Parses a `/localhost/nfd/<module>/<verb>/...` Interest. `None` for anything management
    /// does not answer (NFD leaves it unanswered and the client times out): not under
    /// `/localhost/nfd`, an unknown module or verb, or undecodable command parameters.
    pub(crate) fn parse(interest: &Interest) -> Option<Request> {
        let name = &interest.name;
        let (module, verb) = (generic(name, 2)?, generic(name, 3)?);
        if !is_localhost_nfd(name) {
            return None;
        }
        let verb = match (module.value(), verb.value()) {
            (b"faces", b"list") => return Some(Request::Dataset(Dataset::FacesList)),
            (b"faces", b"channels") => return Some(Request::Dataset(Dataset::FacesChannels)),
            (b"faces", b"query") => return Some(Request::Dataset(Dataset::FacesQuery)),
            (b"fib", b"list") => return Some(Request::Dataset(Dataset::FibList)),
            (b"rib", b"list") => return Some(Request::Dataset(Dataset::RibList)),
            (b"cs", b"info") => return Some(Request::Dataset(Dataset::CsInfo)),
            (b"strategy-choice", b"list") => {
                return Some(Request::Dataset(Dataset::StrategyChoiceList));
            }
            (b"status", b"general") => return Some(Request::Dataset(Dataset::StatusGeneral)),
            (b"faces", b"events") => return Some(Request::FaceEvents),
            (b"rib", b"announce") => {
                let pa = interest
                    .app_parameters
                    .as_ref()
                    .filter(|p| !p.is_empty())
                    .and_then(|p| Data::decode(p.clone()).ok())?;
                return Some(Request::Command(Command::Announce(pa)));
            }
            (b"rib", b"register") => Verb::RibRegister,
            (b"rib", b"unregister") => Verb::RibUnregister,
            (b"faces", b"create") => Verb::FacesCreate,
            (b"faces", b"update") => Verb::FacesUpdate,
            (b"faces", b"destroy") => Verb::FacesDestroy,
            (b"fib", b"add-nexthop") => Verb::FibAddNextHop,
            (b"fib", b"remove-nexthop") => Verb::FibRemoveNextHop,
            (b"strategy-choice", b"set") => Verb::StrategySet,
            (b"strategy-choice", b"unset") => Verb::StrategyUnset,
            (b"cs", b"config") => Verb::CsConfig,
            (b"cs", b"erase") => Verb::CsErase,
            _ => return None,
        };
        // Parameters sit right after the verb; whatever follows (old-style timestamp, nonce and
        // signature components, or params-sha256) belongs to the signature, not to us.
        let cp = name_component_value(name, 4).and_then(|v| ControlParameters::decode(v).ok())?;
        Some(Request::Command(Command::Control(verb, cp)))
    }
}

impl Verb {
    /// Which fields the command requires and allows.
    fn rules(self) -> &'static params::Rules {
        match self {
            Verb::RibRegister => &params::RIB_REGISTER,
            Verb::RibUnregister => &params::RIB_UNREGISTER,
            Verb::FacesCreate => &params::FACE_CREATE,
            Verb::FacesUpdate => &params::FACE_UPDATE,
            Verb::FacesDestroy => &params::FACE_DESTROY,
            Verb::FibAddNextHop => &params::FIB_ADD_NEXTHOP,
            Verb::FibRemoveNextHop => &params::FIB_REMOVE_NEXTHOP,
            Verb::StrategySet => &params::STRATEGY_SET,
            Verb::StrategyUnset => &params::STRATEGY_UNSET,
            Verb::CsConfig => &params::CS_CONFIG,
            Verb::CsErase => &params::CS_ERASE,
        }
    }

    /// Whether the parameters are acceptable for this command: the field rules, plus the
    /// values NFD refuses (destroying face 0, unsetting the root's strategy, erasing 0 entries).
    pub(crate) fn validate(self, cp: &ControlParameters) -> bool {
        self.rules().check(cp)
            && match self {
                Verb::FacesDestroy => cp.face_id != Some(0),
                Verb::StrategyUnset => cp.name.as_ref().is_some_and(|n| !n.is_empty()),
                Verb::CsErase => cp.count != Some(0),
                _ => true,
            }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use amicn_tlv::Name;

    fn interest(uri: &str) -> Interest {
        Interest::new(Name::from_uri(uri).unwrap())
    }

    #[test]
    fn module_and_verb_map_to_one_request() {
        let ds = |uri| match Request::parse(&interest(uri)) {
            Some(Request::Dataset(d)) => Some(d),
            _ => None,
        };
        assert_eq!(ds("/localhost/nfd/faces/list"), Some(Dataset::FacesList));
        assert_eq!(ds("/localhost/nfd/fib/list"), Some(Dataset::FibList));
        assert_eq!(
            ds("/localhost/nfd/status/general"),
            Some(Dataset::StatusGeneral)
        );
        assert!(matches!(
            Request::parse(&interest("/localhost/nfd/faces/events")),
            Some(Request::FaceEvents)
        ));
        assert!(Request::parse(&interest("/localhost/nfd/faces/frobnicate")).is_none());
        assert!(Request::parse(&interest("/localhop/nfd/faces/list")).is_none());
        assert!(Request::parse(&interest("/localhost/nfd/faces")).is_none());
    }

    #[test]
    fn commands_carry_their_parameters() {
        let cp = ControlParameters {
            name: Some(Name::from_uri("/a").unwrap()),
            ..ControlParameters::default()
        };
        let name = Name::from_uri("/localhost/nfd/rib/register")
            .unwrap()
            .append(amicn_tlv::Component::generic(cp.encode().to_vec()));
        match Request::parse(&Interest::new(name)) {
            Some(Request::Command(Command::Control(Verb::RibRegister, got))) => {
                assert_eq!(got.name, cp.name);
            }
            other => panic!("not a rib/register: {other:?}"),
        }
        // A command without decodable parameters is not answered.
        assert!(Request::parse(&interest("/localhost/nfd/rib/register")).is_none());
        assert!(Request::parse(&interest("/localhost/nfd/rib/announce")).is_none());
    }

    #[test]
    fn validation_refuses_what_nfd_refuses() {
        let root = ControlParameters {
            name: Some(Name::new()),
            ..ControlParameters::default()
        };
        assert!(!Verb::StrategyUnset.validate(&root));
        let a = ControlParameters {
            name: Some(Name::from_uri("/a").unwrap()),
            ..ControlParameters::default()
        };
        assert!(Verb::StrategyUnset.validate(&a));
        let zero = ControlParameters {
            face_id: Some(0),
            ..ControlParameters::default()
        };
        assert!(!Verb::FacesDestroy.validate(&zero));
    }
}
