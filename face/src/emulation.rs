//! EMULATION ONLY: per-face artificial delay and random loss on the send path, for experiments
//! on kernels without netem. Off by default; a face gets it only when configured explicitly.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use amicn_tlv::lp::Frame;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::link::FaceCounters;

/// Emulated link impairments applied to packets a face sends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Emulation {
    /// One-way delay added to every packet.
    pub delay: Duration,
    /// Probability in [0, 1] that a packet is dropped.
    pub loss: f64,
    /// Seed of the loss generator, so runs are reproducible.
    pub seed: u64,
}

impl Emulation {
    /// True when the settings change nothing.
    pub fn is_noop(&self) -> bool {
        self.delay.is_zero() && self.loss <= 0.0
    }
}

/// The loss generator: loss decisions need speed and reproducibility from the seed, not
/// secrecy, so a small seeded generator with a fixed algorithm.
pub(crate) fn loss_rng(seed: u64) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(seed)
}

/// Inserts the emulation stage between a face's send queue and its writer; returns the queue the
/// writer should drain instead.
pub fn insert_stage(
    mut rx: mpsc::Receiver<Frame>,
    emu: Emulation,
    counters: Arc<FaceCounters>,
    capacity: usize,
) -> mpsc::Receiver<Frame> {
    let (tx, out) = mpsc::channel(capacity.max(1));
    tokio::spawn(async move {
        let mut rng = loss_rng(emu.seed);
        let mut pending: VecDeque<(Instant, Frame)> = VecDeque::new();
        loop {
            let due = pending.front().map(|(t, _)| *t);
            tokio::select! {
                got = rx.recv() => match got {
                    Some(pkt) => {
                        if emu.loss > 0.0 && rng.random::<f64>() < emu.loss {
                            FaceCounters::add(&counters.emulated_losses, 1);
                            continue;
                        }
                        pending.push_back((Instant::now() + emu.delay, pkt));
                    }
                    None => break,
                },
                () = async {
                    match due {
                        Some(t) => tokio::time::sleep_until(t).await,
                        None => std::future::pending().await,
                    }
                } => {
                    let now = Instant::now();
                    while pending.front().is_some_and(|(t, _)| *t <= now) {
                        if let Some((_, pkt)) = pending.pop_front()
                            && tx.send(pkt).await.is_err()
                        {
                            return;
                        }
                    }
                }
            }
        }
        // Deliver what is still in flight, keeping the delay.
        while let Some((t, pkt)) = pending.pop_front() {
            tokio::time::sleep_until(t).await;
            if tx.send(pkt).await.is_err() {
                return;
            }
        }
    });
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use bytes::Bytes;

    #[test]
    fn loss_rate_is_close_to_setting() {
        let mut rng = loss_rng(7);
        let lost = (0..100_000).filter(|_| rng.random::<f64>() < 0.25).count();
        assert!((23_000..27_000).contains(&lost), "lost {lost}");
    }

    #[test]
    fn losses_repeat_for_a_seed() {
        let pattern = |seed| {
            let mut rng = loss_rng(seed);
            (0..256)
                .map(|_| rng.random::<f64>() < 0.5)
                .collect::<Vec<_>>()
        };
        assert_eq!(pattern(11), pattern(11));
        assert_ne!(pattern(11), pattern(12));
    }

    #[tokio::test(start_paused = true)]
    async fn delays_and_drops() {
        let counters = Arc::new(FaceCounters::default());
        let (tx, rx) = mpsc::channel(16);
        let emu = Emulation {
            delay: Duration::from_millis(50),
            loss: 0.0,
            seed: 1,
        };
        let mut out = insert_stage(rx, emu, counters.clone(), 16);
        let start = Instant::now();
        tx.send(Frame::from(Bytes::from_static(b"x")))
            .await
            .unwrap();
        let got = out.recv().await.unwrap();
        assert_eq!(&got.packet[..], b"x");
        assert!(start.elapsed() >= Duration::from_millis(50));

        let (tx, rx) = mpsc::channel(16);
        let all_lost = Emulation {
            delay: Duration::ZERO,
            loss: 1.0,
            seed: 1,
        };
        let mut out = insert_stage(rx, all_lost, counters.clone(), 16);
        tx.send(Frame::from(Bytes::from_static(b"y")))
            .await
            .unwrap();
        drop(tx);
        assert!(out.recv().await.is_none());
        assert_eq!(FaceCounters::get(&counters.emulated_losses), 1);
    }
}
