//! Routing what comes back to whoever waits for it: Data and Nacks to the pending Interest
//! (by PitToken, or by name when the forwarder did not echo it), Interests to the handler of
//! the longest matching prefix.

use std::sync::atomic::Ordering;

use super::*;

pub(super) fn on_packet(inner: &Inner, pkt: Bytes) {
    inner.counters.rx_packets.fetch_add(1, Ordering::Relaxed);
    let Ok(received) = amicn_tlv::decode_packet(pkt) else {
        inner.counters.malformed.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let token = received.lp.pit_token.clone();
    match received.packet {
        NetPacket::Interest(interest) => {
            let handlers = inner.handlers.read().unwrap_or_else(|e| e.into_inner());
            let best = handlers
                .iter()
                .filter(|h| h.prefix.is_prefix_of(&interest.name))
                .max_by_key(|h| h.prefix.len());
            let dropped = match best.map(|h| &h.sink) {
                Some(Sink::Queue(tx)) => tx
                    .try_send(IncomingInterest {
                        interest,
                        pit_token: token,
                    })
                    .is_err(),
                Some(Sink::Inline(f)) => match f(&interest) {
                    Some(body) => {
                        let head = token.as_ref().map(|t| lp_header(t, body.len()));
                        // Never block the reader: a full send queue drops the answer and the
                        // consumer retransmits.
                        inner.out.try_send(Outgoing { head, body }).is_err()
                    }
                    None => false,
                },
                None => true,
            };
            if dropped {
                inner
                    .counters
                    .interests_dropped
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        NetPacket::Data(data) => {
            let mark = received.lp.congestion_mark.unwrap_or(0);
            let mut digest = None;
            satisfy(
                inner,
                token.as_ref(),
                &mut |p| data_satisfies(p, &data, &mut digest),
                || Reply::Data {
                    data: data.clone(),
                    congestion_mark: mark,
                },
            );
        }
        NetPacket::Nack(nack) => {
            let reason = nack.reason;
            // A Nack names exactly its Interest. A Duplicate Nack concerns one nonce only; any
            // other reason ends the aggregated in-record, so every identical Interest with it.
            let name = nack.interest.name;
            let aggregated = reason != NackReason::Duplicate;
            satisfy(
                inner,
                token.as_ref(),
                &mut |p| aggregated && p.name == name,
                || Reply::Nack { reason },
            );
        }
    }
}

fn token_of(t: &Bytes) -> Option<u64> {
    let arr: [u8; 8] = t.as_ref().try_into().ok()?;
    Some(u64::from_be_bytes(arr))
}

/// Whether `data` satisfies an Interest for `name` (exact, prefix with CanBePrefix, or a full
/// name ending in the Data's implicit digest, computed at most once per packet).
fn data_satisfies(p: &Pending, data: &Data, digest: &mut Option<[u8; 32]>) -> bool {
    if p.name == data.name || (p.can_be_prefix && p.name.is_prefix_of(&data.name)) {
        return true;
    }
    let n = data.name.len();
    if p.name.len() != n + 1 || !data.name.is_prefix_of(&p.name) {
        return false;
    }
    let Some(last) = p.name.get(n).filter(|c| c.is_implicit_digest()) else {
        return false;
    };
    let d = digest.get_or_insert_with(|| data.implicit_digest());
    last.value()[..] == d[..]
}

/// Hands a reply to the request whose PitToken came back, and to every other pending request on
/// this connection it answers: the forwarder keeps one in-record per face, so identical
/// Interests sent on one connection are aggregated and answered once, with the last token.
fn satisfy(
    inner: &Inner,
    token: Option<&Bytes>,
    matches: &mut dyn FnMut(&Pending) -> bool,
    make: impl Fn() -> Reply,
) {
    let mut pending = inner.pending.lock().unwrap_or_else(|e| e.into_inner());
    let mut answered = false;
    if let Some(t) = token.and_then(token_of)
        && let Some(p) = pending.remove(&t)
    {
        let _ = p.tx.send(make());
        answered = true;
    }
    let keys: Vec<u64> = pending
        .iter()
        .filter(|(_, p)| matches(p))
        .map(|(k, _)| *k)
        .collect();
    if keys.is_empty() && !answered {
        inner.counters.unsolicited.fetch_add(1, Ordering::Relaxed);
        return;
    }
    for k in keys {
        if let Some(p) = pending.remove(&k) {
            let _ = p.tx.send(make());
        }
    }
}
