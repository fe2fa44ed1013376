//! Per-face fair queueing in front of the forwarding pipelines.
//!
//! Face readers hand the runtime whole batches (a stream face can deliver a thousand
//! Interests from one 64 KiB read). Processed in arrival order, a flooding face would take the
//! forwarding thread for as long as its batches last while a consumer's single Interest waits
//! behind them. The runtime therefore parks every batch in a per-face queue and serves the
//! queues by deficit round robin, at most [`FairQueue::QUANTUM`] packets of one face per turn,
//! so under overload each face gets an equal share of the thread however much it sends. A
//! face's backlog is bounded in packets and bytes ([`FairQueue::new`]); what arrives beyond it
//! while the forwarder is behind is dropped and counted for that face, not for everybody. The
//! runtime stops taking new batches while the queues together hold more than its byte budget,
//! so the face readers (and through them TCP flow control) wait, as without the queue.
//!
//! Pure data structure: no clock, no I/O.

use std::collections::{HashMap, VecDeque};

use amicn_face::link::FaceToken;
use bytes::Bytes;

/// Per-face queues served round robin.
#[derive(Debug)]
pub(crate) struct FairQueue {
    queues: HashMap<FaceToken, FaceQueue>,
    /// Faces with packets waiting, in service order.
    ring: VecDeque<FaceToken>,
    waiting: usize,
    bytes: usize,
    max_per_face: usize,
    max_bytes_per_face: usize,
}

#[derive(Debug, Default)]
struct FaceQueue {
    packets: VecDeque<Bytes>,
    bytes: usize,
}

impl FairQueue {
    /// Packets one face may have processed per turn.
    pub(crate) const QUANTUM: usize = 32;

    /// Queues holding at most `max_per_face` waiting packets and `max_bytes_per_face` bytes
    /// per face.
    pub(crate) fn new(max_per_face: usize, max_bytes_per_face: usize) -> Self {
        FairQueue {
            queues: HashMap::new(),
            ring: VecDeque::new(),
            waiting: 0,
            bytes: 0,
            max_per_face: max_per_face.max(Self::QUANTUM),
            max_bytes_per_face,
        }
    }

    /// Bytes waiting in all queues.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Packets waiting in all queues.
    pub(crate) fn len(&self) -> usize {
        self.waiting
    }

    /// Whether nothing waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.waiting == 0
    }

    /// Appends a batch read from `face`; returns how many packets did not fit its backlog
    /// (the newest ones, dropped).
    pub(crate) fn push(&mut self, face: FaceToken, packets: Vec<Bytes>) -> usize {
        let q = self.queues.entry(face).or_default();
        let was_idle = q.packets.is_empty();
        let mut dropped = 0;
        for p in packets {
            if q.packets.len() >= self.max_per_face
                || q.bytes.saturating_add(p.len()) > self.max_bytes_per_face
            {
                dropped += 1;
                continue;
            }
            q.bytes += p.len();
            self.bytes += p.len();
            self.waiting += 1;
            q.packets.push_back(p);
        }
        if was_idle && !q.packets.is_empty() {
            self.ring.push_back(face);
        }
        dropped
    }

    /// Removes and returns everything waiting for `face` (it is closing: its packets are
    /// processed before the face goes away).
    pub(crate) fn take_face(&mut self, face: FaceToken) -> VecDeque<Bytes> {
        let q = self.queues.remove(&face).unwrap_or_default();
        self.waiting -= q.packets.len();
        self.bytes -= q.bytes;
        self.ring.retain(|f| *f != face);
        q.packets
    }

    /// Serves up to `budget` packets, [`Self::QUANTUM`] per face per turn, calling `f` for each
    /// in order; returns how many were served.
    pub(crate) fn serve(&mut self, budget: usize, mut f: impl FnMut(FaceToken, Bytes)) -> usize {
        let mut served = 0;
        while served < budget {
            let Some(face) = self.ring.pop_front() else {
                break;
            };
            let Some(q) = self.queues.get_mut(&face) else {
                continue;
            };
            let turn = Self::QUANTUM.min(budget - served);
            for _ in 0..turn {
                let Some(p) = q.packets.pop_front() else {
                    break;
                };
                served += 1;
                self.waiting -= 1;
                q.bytes -= p.len();
                self.bytes -= p.len();
                f(face, p);
            }
            if q.packets.is_empty() {
                // Keep the allocation of a busy face's queue; forget idle ones.
                if q.packets.capacity() > 4 * Self::QUANTUM {
                    self.queues.remove(&face);
                }
            } else if turn < Self::QUANTUM {
                // The pass ended inside this face's turn: it goes on first next time.
                self.ring.push_front(face);
            } else {
                self.ring.push_back(face);
            }
        }
        served
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(face: u8, n: usize) -> Vec<Bytes> {
        (0..n).map(|i| Bytes::from(vec![face, i as u8])).collect()
    }

    #[test]
    fn a_large_batch_does_not_delay_a_small_one_by_more_than_a_quantum() {
        let mut fq = FairQueue::new(10_000, usize::MAX);
        assert_eq!(fq.push(1, batch(1, 1000)), 0);
        assert_eq!(fq.push(2, batch(2, 1)), 0);
        let mut order = Vec::new();
        fq.serve(usize::MAX, |f, _| order.push(f));
        let pos = order.iter().position(|f| *f == 2).expect("face 2 served");
        assert_eq!(pos, FairQueue::QUANTUM, "after one turn of face 1");
        assert_eq!(order.len(), 1001);
        assert!(fq.is_empty());
    }

    #[test]
    fn packets_of_one_face_keep_their_order() {
        let mut fq = FairQueue::new(10_000, usize::MAX);
        fq.push(1, batch(1, 100));
        fq.push(2, batch(2, 50));
        fq.push(1, batch(1, 10));
        let mut seen: Vec<(u64, Bytes)> = Vec::new();
        fq.serve(usize::MAX, |f, p| seen.push((f, p)));
        let ones: Vec<u8> = seen
            .iter()
            .filter(|(f, _)| *f == 1)
            .map(|(_, p)| p[1])
            .collect();
        let want: Vec<u8> = (0..100u8).chain(0..10).collect();
        assert_eq!(ones, want);
    }

    #[test]
    fn backlog_is_bounded_per_face_and_the_excess_counted() {
        let mut fq = FairQueue::new(100, 1 << 20);
        assert_eq!(fq.push(1, batch(1, 80)), 0);
        assert_eq!(fq.push(1, batch(1, 80)), 60);
        assert_eq!(
            fq.push(2, batch(2, 10)),
            0,
            "another face has its own backlog"
        );
        assert_eq!(fq.len(), 110);
        assert_eq!(fq.bytes(), 220);
        let mut small = FairQueue::new(1000, 50);
        assert_eq!(small.push(3, batch(3, 40)), 15, "2-byte packets, 50 bytes");
        small.serve(usize::MAX, |_, _| {});
        assert_eq!((small.len(), small.bytes()), (0, 0));
    }

    #[test]
    fn budget_limits_one_pass_and_service_resumes_round_robin() {
        let mut fq = FairQueue::new(1000, usize::MAX);
        fq.push(1, batch(1, 100));
        fq.push(2, batch(2, 100));
        let mut order = Vec::new();
        assert_eq!(fq.serve(40, |f, _| order.push(f)), 40);
        assert_eq!(
            order.iter().filter(|f| **f == 1).count(),
            FairQueue::QUANTUM
        );
        assert_eq!(fq.len(), 160);
        order.clear();
        fq.serve(usize::MAX, |f, _| order.push(f));
        assert_eq!(order[0], 2, "face 2 was cut short and continues first");
        assert_eq!(order.len(), 160);
    }

    #[test]
    fn a_closing_face_hands_back_what_waits() {
        let mut fq = FairQueue::new(1000, usize::MAX);
        fq.push(1, batch(1, 5));
        fq.push(2, batch(2, 5));
        assert_eq!(fq.take_face(1).len(), 5);
        let mut order = Vec::new();
        fq.serve(usize::MAX, |f, _| order.push(f));
        assert_eq!(order, vec![2; 5]);
        assert!(fq.is_empty());
    }
}
