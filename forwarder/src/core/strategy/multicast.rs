//! multicast: every eligible next hop, each with its own retransmission suppression; Nacks do
//! not make it try anything else (the other upstreams already have the Interest).

use amicn_tlv::NackReason;

use super::{Context, Strategy, Verdict, eligible};
use crate::core::FaceId;

/// The multicast strategy.
pub(crate) struct Multicast;

impl Strategy for Multicast {
    fn after_receive_interest(&self, ctx: &mut Context<'_>, in_face: FaceId) -> Verdict {
        let (initial, max) = (
            ctx.config.retx_suppression_initial,
            ctx.config.retx_suppression_max,
        );
        let was_new = ctx.entry.out_records.is_empty();
        let now = ctx.now;
        for h in ctx.hops {
            if !eligible(ctx.faces, ctx.entry, Some(in_face), h.face) {
                continue;
            }
            let go = match ctx.entry.out_records.iter_mut().find(|o| o.face == h.face) {
                None => true,
                Some(o) => o.suppress.allow(now.saturating_since(o.sent), initial, max),
            };
            if go {
                ctx.send.push(h.face);
            }
        }
        match (ctx.send.is_empty(), was_new) {
            (false, _) => Verdict::Forward,
            (true, true) => Verdict::NoRoute,
            (true, false) => Verdict::Suppressed,
        }
    }

    fn after_receive_nack(
        &self,
        _ctx: &mut Context<'_>,
        _from: FaceId,
        _reason: NackReason,
    ) -> Option<FaceId> {
        None
    }
}
