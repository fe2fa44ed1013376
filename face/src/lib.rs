//! Transports between NDN nodes: Unix, TCP and UDP faces with TLV stream framing, and the client-side connection applications use to reach a forwarder.
