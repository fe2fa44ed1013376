//! Which ControlParameters fields each command accepts, and the defaults it applies
//! (the request rules of ndn-cxx `mgmt/nfd/control-command.cpp`, which NFD enforces).
//!
//! A command whose parameters decode but carry a forbidden field, miss a required one or break
//! a command-specific rule is answered 400 "failed in validating parameters".

use amicn_tlv::mgmt::ControlParameters;

use super::rib::{ORIGIN_APP, ROUTE_FLAG_CHILD_INHERIT};

/// One ControlParameters field, for presence rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    Name,
    FaceId,
    Uri,
    LocalUri,
    Origin,
    Cost,
    Capacity,
    Count,
    Flags,
    Mask,
    Strategy,
    ExpirationPeriod,
    FacePersistency,
    BaseCongestionMarkingInterval,
    DefaultCongestionThreshold,
    Mtu,
}

const ALL: [Field; 16] = [
    Field::Name,
    Field::FaceId,
    Field::Uri,
    Field::LocalUri,
    Field::Origin,
    Field::Cost,
    Field::Capacity,
    Field::Count,
    Field::Flags,
    Field::Mask,
    Field::Strategy,
    Field::ExpirationPeriod,
    Field::FacePersistency,
    Field::BaseCongestionMarkingInterval,
    Field::DefaultCongestionThreshold,
    Field::Mtu,
];

fn present(cp: &ControlParameters, f: Field) -> bool {
    match f {
        Field::Name => cp.name.is_some(),
        Field::FaceId => cp.face_id.is_some(),
        Field::Uri => cp.uri.is_some(),
        Field::LocalUri => cp.local_uri.is_some(),
        Field::Origin => cp.origin.is_some(),
        Field::Cost => cp.cost.is_some(),
        Field::Capacity => cp.capacity.is_some(),
        Field::Count => cp.count.is_some(),
        Field::Flags => cp.flags.is_some(),
        Field::Mask => cp.mask.is_some(),
        Field::Strategy => cp.strategy.is_some(),
        Field::ExpirationPeriod => cp.expiration_period.is_some(),
        Field::FacePersistency => cp.face_persistency.is_some(),
        Field::BaseCongestionMarkingInterval => cp.base_congestion_marking_interval.is_some(),
        Field::DefaultCongestionThreshold => cp.default_congestion_threshold.is_some(),
        Field::Mtu => cp.mtu.is_some(),
    }
}

/// Presence rules of one command.
pub(crate) struct Rules {
    required: &'static [Field],
    optional: &'static [Field],
}

impl Rules {
    /// Whether `cp` satisfies the presence rules (and Flags/Mask pairing where both are allowed).
    pub(crate) fn check(&self, cp: &ControlParameters) -> bool {
        for f in ALL {
            let is = present(cp, f);
            if self.required.contains(&f) {
                if !is {
                    return false;
                }
            } else if is && !self.optional.contains(&f) {
                return false;
            }
        }
        if self.optional.contains(&Field::Flags)
            && self.optional.contains(&Field::Mask)
            && cp.flags.is_some() != cp.mask.is_some()
        {
            return false;
        }
        true
    }
}

use Field as F;

pub(crate) const RIB_REGISTER: Rules = Rules {
    required: &[F::Name],
    optional: &[F::FaceId, F::Origin, F::Cost, F::Flags, F::ExpirationPeriod],
};
pub(crate) const RIB_UNREGISTER: Rules = Rules {
    required: &[F::Name],
    optional: &[F::FaceId, F::Origin],
};
pub(crate) const FACE_CREATE: Rules = Rules {
    required: &[F::Uri],
    optional: &[
        F::LocalUri,
        F::FacePersistency,
        F::BaseCongestionMarkingInterval,
        F::DefaultCongestionThreshold,
        F::Mtu,
        F::Flags,
        F::Mask,
    ],
};
pub(crate) const FACE_UPDATE: Rules = Rules {
    required: &[],
    optional: &[
        F::FaceId,
        F::FacePersistency,
        F::BaseCongestionMarkingInterval,
        F::DefaultCongestionThreshold,
        F::Mtu,
        F::Flags,
        F::Mask,
    ],
};
pub(crate) const FACE_DESTROY: Rules = Rules {
    required: &[F::FaceId],
    optional: &[],
};
pub(crate) const FIB_ADD_NEXTHOP: Rules = Rules {
    required: &[F::Name],
    optional: &[F::FaceId, F::Cost],
};
pub(crate) const FIB_REMOVE_NEXTHOP: Rules = Rules {
    required: &[F::Name],
    optional: &[F::FaceId],
};
pub(crate) const STRATEGY_SET: Rules = Rules {
    required: &[F::Name, F::Strategy],
    optional: &[],
};
pub(crate) const STRATEGY_UNSET: Rules = Rules {
    required: &[F::Name],
    optional: &[],
};
pub(crate) const CS_CONFIG: Rules = Rules {
    required: &[],
    optional: &[F::Capacity, F::Flags, F::Mask],
};
pub(crate) const CS_ERASE: Rules = Rules {
    required: &[F::Name],
    optional: &[F::Count],
};

/// `rib/register` defaults: FaceId 0 (the requesting face), Origin app, Cost 0, ChildInherit.
pub(crate) fn register_defaults(cp: &mut ControlParameters) {
    cp.face_id.get_or_insert(0);
    cp.origin.get_or_insert(ORIGIN_APP);
    cp.cost.get_or_insert(0);
    cp.flags.get_or_insert(ROUTE_FLAG_CHILD_INHERIT);
}

/// `rib/unregister` defaults: FaceId 0, Origin app.
pub(crate) fn unregister_defaults(cp: &mut ControlParameters) {
    cp.face_id.get_or_insert(0);
    cp.origin.get_or_insert(ORIGIN_APP);
}
