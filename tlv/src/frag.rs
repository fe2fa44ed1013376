//! NDNLPv2 fragmentation and reassembly.
