//! NDN packet format v0.3 and NDNLPv2 codec: names, Interests, Data, link-layer packets and NFD management elements. Pure, no I/O.
