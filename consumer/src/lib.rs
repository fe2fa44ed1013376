//! Consumer library: express Interests with retransmission, fetch segmented objects, verify and decrypt.
