//! NFD management elements (`ndn-cxx/encoding/tlv-nfd.hpp`, NFD management protocol):
//! ControlParameters, ControlResponse, the status datasets and FaceEventNotification.

pub use crate::tt::mgmt::*;
