//! best-route: the lowest-cost eligible next hop; a retransmission that passes suppression
//! goes to an eligible next hop not tried yet, else to the one tried longest ago; a Nack makes
//! it try the next untried one.

use amicn_tlv::NackReason;

use super::{Context, Strategy, Verdict};
use crate::core::FaceId;

/// The best-route strategy.
pub(crate) struct BestRoute;

impl Strategy for BestRoute {
    fn after_receive_interest(&self, ctx: &mut Context<'_>, in_face: FaceId) -> Verdict {
        let down = Some(in_face);
        if ctx.entry.out_records.is_empty() {
            return match ctx.hops.iter().find(|h| ctx.eligible(down, h.face)) {
                Some(h) => {
                    ctx.send.push(h.face);
                    Verdict::Forward
                }
                None => Verdict::NoRoute,
            };
        }
        if !ctx.retx_allowed() {
            return Verdict::Suppressed;
        }
        let unused = ctx
            .hops
            .iter()
            .find(|h| ctx.eligible(down, h.face) && !ctx.tried(h.face));
        let pick = unused.map(|h| h.face).or_else(|| {
            ctx.hops
                .iter()
                .filter(|h| ctx.eligible(down, h.face))
                .filter_map(|h| {
                    ctx.entry
                        .out_records
                        .iter()
                        .find(|o| o.face == h.face)
                        .map(|o| (o.sent, h.face))
                })
                .min()
                .map(|(_, f)| f)
        });
        if let Some(f) = pick {
            ctx.send.push(f);
        }
        Verdict::Forward
    }

    fn after_receive_nack(
        &self,
        ctx: &mut Context<'_>,
        _from: FaceId,
        reason: NackReason,
    ) -> Option<FaceId> {
        if reason == NackReason::Duplicate {
            return None;
        }
        ctx.hops
            .iter()
            .find(|h| ctx.eligible(None, h.face) && !ctx.tried(h.face))
            .map(|h| h.face)
    }
}
