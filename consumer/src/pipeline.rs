//! The pipelined segmented fetch: version discovery, a congestion window of segment
//! Interests, retransmission on loss, batch verification and in-order output.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use amicn_face::client::{ClientError, Reply};
use amicn_tlv::{Component, Data, Interest, NackReason, Name};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::cc::{Aimd, CongestionSignal, RttEstimator};
use crate::{Consumer, Error, Result};

/// How the version of an object is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discovery {
    /// `/<prefix>/32=metadata`, falling back to CanBePrefix if nobody answers within 1 s;
    /// a name already ending in a version is used as is.
    Auto,
    /// Only the `32=metadata` convention (ndnget's default).
    Metadata,
    /// Interest for the prefix with CanBePrefix + MustBeFresh; the answer's name gives the version.
    CanBePrefix,
    /// The given name is already the versioned name.
    Exact,
}

/// Settings of [`Consumer::fetch_object`].
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Version discovery method.
    pub discovery: Discovery,
    /// Initial congestion window (Interests).
    pub initial_window: f64,
    /// Largest congestion window.
    pub max_window: f64,
    /// Retransmissions allowed per segment.
    pub max_retries: u32,
    /// InterestLifetime of segment Interests.
    pub lifetime: Duration,
    /// Initial retransmission timeout, before any RTT sample.
    pub initial_rto: Duration,
    /// Smallest retransmission timeout.
    pub min_rto: Duration,
    /// Segments verified together (batch verification amortises Ed25519 cost).
    pub verify_batch: usize,
    /// Batches verified concurrently, each on its own blocking thread.
    pub verify_parallel: usize,
    /// Times a segment that fails verification is asked for again (MustBeFresh, new Nonce)
    /// before the fetch fails with [`Error::VerificationFailed`].
    pub verify_retries: u32,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            discovery: Discovery::Auto,
            initial_window: 4.0,
            max_window: 512.0,
            max_retries: 15,
            lifetime: Duration::from_secs(4),
            initial_rto: Duration::from_secs(1),
            min_rto: Duration::from_millis(200),
            verify_batch: 64,
            verify_parallel: 2,
            verify_retries: 3,
        }
    }
}

/// Progress of a running fetch, passed to the caller's callback after each written batch.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// Bytes written so far.
    pub bytes: u64,
    /// Segments written so far.
    pub segments: u64,
    /// Total segments, once FinalBlockId is known.
    pub total_segments: Option<u64>,
    /// Current congestion window.
    pub window: usize,
    /// Retransmitted Interests so far.
    pub retransmissions: u64,
}

/// What a finished fetch did.
#[derive(Debug, Clone)]
pub struct FetchSummary {
    /// `/<prefix>/v=<version>` fetched.
    pub versioned_name: Name,
    /// Bytes written.
    pub bytes: u64,
    /// Segments fetched.
    pub segments: u64,
    /// Wall-clock time from first Interest to last write.
    pub elapsed: Duration,
    /// Interests sent again after a timeout or Nack.
    pub retransmissions: u64,
    /// Segment Interests that timed out.
    pub timeouts: u64,
    /// Data carrying a CongestionMark.
    pub congestion_marks: u64,
    /// Nacks received.
    pub nacks: u64,
    /// Times the window was halved.
    pub window_decreases: u64,
    /// Largest window reached.
    pub max_window: usize,
    /// Smallest window after the first decrease (equals `max_window` if never decreased).
    pub min_window_after_decrease: usize,
    /// Smoothed RTT at the end.
    pub srtt: Option<Duration>,
    /// Segment and discovery answers that failed verification (each refused copy counts once).
    pub verify_failures: u64,
    /// Segments (or discovery Interests) fetched again after failing verification.
    pub verify_refetches: u64,
}

/// Verification counters of one fetch, shared by the pipeline and the writer.
#[derive(Debug, Default)]
struct VerifyStats {
    failures: AtomicU64,
    refetches: AtomicU64,
}

/// The Data a verification error blames, if retrying that Data could help: a bad signature,
/// an untrusted signer or an unsupported SignatureType on the packet itself (a forged or
/// corrupted copy), not a failure to fetch or check a certificate.
fn blamed_packet(e: &Error) -> Option<&Name> {
    match e {
        Error::BadSignature { name, .. }
        | Error::Untrusted { name, .. }
        | Error::SignerNotAllowed { name, .. }
        | Error::UnsupportedSignature { name, .. } => Some(name),
        _ => None,
    }
}

impl FetchSummary {
    /// Goodput in megabytes (10^6) per second.
    pub fn mbps(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.bytes as f64 / s / 1e6
        } else {
            0.0
        }
    }
}

type Outcome = (u64, Instant, u32, std::result::Result<Reply, ClientError>);

impl Consumer {
    /// Finds the versioned name of the object at `prefix` (and possibly its first segment).
    /// With a trust policy, the version is believed only from a discovery answer that verifies
    /// (see [`Consumer::fetch_object`] for the retries).
    pub async fn discover(&self, prefix: &Name, how: Discovery) -> Result<(Name, Option<Data>)> {
        let opts = FetchOptions {
            discovery: how,
            ..FetchOptions::default()
        };
        self.discover_counted(prefix, &opts, &VerifyStats::default())
            .await
    }

    async fn discover_counted(
        &self,
        prefix: &Name,
        opts: &FetchOptions,
        stats: &VerifyStats,
    ) -> Result<(Name, Option<Data>)> {
        let ends_in_version = prefix
            .get(prefix.len().wrapping_sub(1))
            .and_then(|c| c.as_version())
            .is_some();
        match opts.discovery {
            Discovery::Exact => Ok((prefix.clone(), None)),
            Discovery::Auto if ends_in_version => Ok((prefix.clone(), None)),
            Discovery::Metadata => {
                self.discover_metadata(prefix, Duration::from_secs(4), 2, opts, stats)
                    .await
            }
            Discovery::CanBePrefix => self.discover_prefix(prefix, opts, stats).await,
            Discovery::Auto => match self
                .discover_metadata(prefix, Duration::from_secs(1), 0, opts, stats)
                .await
            {
                Ok(found) => Ok(found),
                Err(Error::Timeout { .. } | Error::Nack { .. }) => {
                    self.discover_prefix(prefix, opts, stats).await
                }
                Err(e) => Err(e),
            },
        }
    }

    /// Sends a discovery Interest (CanBePrefix) on `via` and returns the first answer that
    /// verifies. An answer that fails verification is counted and the Interest is sent again
    /// with MustBeFresh and a new Nonce (so that it may reach another upstream or the producer
    /// instead of a cached forgery), at most [`FetchOptions::verify_retries`] times; then the
    /// discovery fails with the last refusal. Nothing from a refused answer is believed.
    async fn discovery_answer(
        &self,
        via: &Consumer,
        interest: Interest,
        opts: &FetchOptions,
        stats: &VerifyStats,
    ) -> Result<Data> {
        let data = via.fetch_unverified(interest.clone()).await?;
        let Some(v) = &self.validator else {
            return Ok(data);
        };
        let mut last = match v.verify(std::slice::from_ref(&data)).await {
            Ok(()) => return Ok(data),
            Err(e) if blamed_packet(&e) == Some(&data.name) => e,
            Err(e) => return Err(e),
        };
        stats.failures.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(name = %interest.name, error = %last,
            "discovery answer failed verification; asking again");
        for _ in 0..opts.verify_retries {
            stats.refetches.fetch_add(1, Ordering::Relaxed);
            let mut i = interest.clone();
            i.must_be_fresh = true;
            let d = via.fetch_unverified(i).await?;
            match v.verify(std::slice::from_ref(&d)).await {
                Ok(()) => return Ok(d),
                Err(e) if blamed_packet(&e) == Some(&d.name) => {
                    stats.failures.fetch_add(1, Ordering::Relaxed);
                    last = e;
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::VerificationFailed {
            name: interest.name,
            attempts: opts.verify_retries + 1,
            source: Box::new(last),
        })
    }

    async fn discover_metadata(
        &self,
        prefix: &Name,
        lifetime: Duration,
        retries: u32,
        opts: &FetchOptions,
        stats: &VerifyStats,
    ) -> Result<(Name, Option<Data>)> {
        let mut i =
            Interest::new(prefix.append(Component::keyword(Bytes::from_static(b"metadata"))));
        i.can_be_prefix = true;
        i.must_be_fresh = true;
        i.lifetime_ms = Some(lifetime.as_millis() as u64);
        let c = self.clone().with_options(crate::ConsumerOptions {
            max_retries: retries,
            lifetime,
        });
        let mut meta = self.discovery_answer(&c, i, opts, stats).await?;
        if let Some(plain) = self.decrypt(&meta)? {
            meta.content = plain;
        }
        let versioned = Name::decode(meta.content.clone()).map_err(|_| Error::Protocol {
            name: meta.name.clone(),
            why: "metadata content is not a Name",
        })?;
        if !prefix.is_prefix_of(&versioned) {
            return Err(Error::Protocol {
                name: versioned,
                why: "metadata names an object outside the requested prefix",
            });
        }
        Ok((versioned, None))
    }

    async fn discover_prefix(
        &self,
        prefix: &Name,
        opts: &FetchOptions,
        stats: &VerifyStats,
    ) -> Result<(Name, Option<Data>)> {
        let mut i = Interest::new(prefix.clone());
        i.can_be_prefix = true;
        i.must_be_fresh = true;
        // The version (and any FinalBlockId) is believed only from a verified answer; decryption
        // waits for the segment's turn in the pipeline.
        let data = self.discovery_answer(self, i, opts, stats).await?;
        if !prefix.is_prefix_of(&data.name) {
            return Err(Error::Protocol {
                name: data.name,
                why: "discovery answer is outside the requested prefix",
            });
        }
        let n = data.name.len();
        let last_is_segment = data
            .name
            .get(n.wrapping_sub(1))
            .and_then(|c| c.as_segment())
            .is_some();
        if last_is_segment && n > prefix.len() {
            Ok((data.name.prefix(n - 1), Some(data)))
        } else {
            // Not segmented: the object is this single Data.
            Ok((data.name.clone(), Some(data)))
        }
    }

    /// Fetches the object at `prefix` segment by segment into `out`, calling `progress` as it
    /// goes. Every segment is verified (when a trust policy is set) before it is written.
    pub async fn fetch_object<W>(
        &self,
        prefix: &Name,
        opts: &FetchOptions,
        out: &mut W,
        progress: &mut (dyn FnMut(&Progress) + Send),
    ) -> Result<FetchSummary>
    where
        W: AsyncWrite + Unpin + ?Sized,
    {
        let start = Instant::now();
        let counters = VerifyStats::default();
        let stats = &counters;
        let (versioned, first) = self.discover_counted(prefix, opts, stats).await?;
        // A non-segmented object answered by discovery is written as is.
        if let Some(d) = &first
            && d.name == versioned
        {
            let d = self.finish_one(d.clone(), opts, stats).await?;
            out.write_all(&d.content).await?;
            out.flush().await?;
            let p = Progress {
                bytes: d.content.len() as u64,
                segments: 1,
                total_segments: Some(1),
                window: 1,
                retransmissions: 0,
            };
            progress(&p);
            return Ok(FetchSummary {
                versioned_name: versioned,
                bytes: p.bytes,
                segments: 1,
                elapsed: start.elapsed(),
                retransmissions: 0,
                timeouts: 0,
                congestion_marks: 0,
                nacks: 0,
                window_decreases: 0,
                max_window: 1,
                min_window_after_decrease: 1,
                srtt: None,
                verify_failures: stats.failures.load(Ordering::Relaxed),
                verify_refetches: stats.refetches.load(Ordering::Relaxed),
            });
        }

        let mut cc = Aimd::new(opts.initial_window, opts.max_window);
        let mut rtt = RttEstimator::new(
            opts.initial_rto,
            opts.min_rto,
            opts.lifetime.max(opts.min_rto),
        );
        let mut final_seg: Option<u64> = None;
        let mut next_seg: u64 = 0;
        let mut retx_queue: VecDeque<(u64, u32)> = VecDeque::new();
        let mut received: BTreeMap<u64, Data> = BTreeMap::new();
        let mut next_write: u64 = 0;
        let mut sum = FetchSummary {
            versioned_name: versioned.clone(),
            bytes: 0,
            segments: 0,
            elapsed: Duration::ZERO,
            retransmissions: 0,
            timeouts: 0,
            congestion_marks: 0,
            nacks: 0,
            window_decreases: 0,
            max_window: cc.window(),
            min_window_after_decrease: usize::MAX,
            srtt: None,
            verify_failures: 0,
            verify_refetches: 0,
        };
        if let Some(d) = first
            && let Some(seg) = d
                .name
                .get(d.name.len().wrapping_sub(1))
                .and_then(|c| c.as_segment())
        {
            final_seg = d
                .meta_info
                .final_block_id
                .as_ref()
                .and_then(|c| c.as_segment());
            received.insert(seg, d);
            if seg == 0 {
                next_seg = 1;
            }
        }
        // Verification and writing run beside the Interest pipeline (joined below), so
        // signature checks on a blocking thread overlap with fetching the next segments.
        let (batch_tx, mut batch_rx) = tokio::sync::mpsc::channel::<(Vec<Data>, Progress)>(8);
        let pipeline = async {
            let mut in_flight: FuturesUnordered<
                std::pin::Pin<Box<dyn std::future::Future<Output = Outcome> + Send>>,
            > = FuturesUnordered::new();
            let mut outstanding: std::collections::HashSet<u64> = std::collections::HashSet::new();

            loop {
                // Everything up to the final segment written?
                if final_seg.is_some_and(|f| next_write > f) {
                    break;
                }
                // Fill the window.
                while in_flight.len() < cc.window().max(1) {
                    let (seg, retx) = if let Some(r) = retx_queue.pop_front() {
                        r
                    } else if final_seg.is_none_or(|f| next_seg <= f) {
                        // Until FinalBlockId is known, go one segment at a time: asking past the
                        // end would only produce timeouts.
                        if final_seg.is_none() && !in_flight.is_empty() {
                            break;
                        }
                        next_seg += 1;
                        if received.contains_key(&(next_seg - 1))
                            || outstanding.contains(&(next_seg - 1))
                        {
                            continue;
                        }
                        (next_seg - 1, 0)
                    } else {
                        break;
                    };
                    if final_seg.is_some_and(|f| seg > f)
                        || seg < next_write
                        || received.contains_key(&seg)
                    {
                        continue;
                    }
                    outstanding.insert(seg);
                    let mut interest = Interest::new(versioned.append(Component::segment(seg)));
                    interest.nonce = Some(rand::random());
                    interest.lifetime_ms = Some(opts.lifetime.as_millis() as u64);
                    let client = self.client.clone();
                    let rto = rtt.rto();
                    in_flight.push(Box::pin(async move {
                        let sent = Instant::now();
                        // One timer per Interest: the retransmission timeout, not the lifetime.
                        let wire = interest.encode();
                        let r = client.express_wire(&interest.name, false, wire, rto).await;
                        (seg, sent, retx, r)
                    }));
                }
                let Some((seg, sent, retx, outcome)) = in_flight.next().await else {
                    // Nothing in flight and nothing to send: the object ended without FinalBlockId.
                    if final_seg.is_none() && !received.is_empty() {
                        return Err(Error::Protocol {
                            name: versioned,
                            why: "segments stop without a FinalBlockId",
                        });
                    }
                    break;
                };
                outstanding.remove(&seg);
                let now = Instant::now();
                match outcome {
                    Ok(Reply::Data {
                        mut data,
                        congestion_mark,
                    }) => {
                        if retx == 0 {
                            rtt.on_sample(now - sent);
                        }
                        if congestion_mark > 0 {
                            sum.congestion_marks += 1;
                            if cc.on_congestion(CongestionSignal::Mark, sent, now) {
                                sum.min_window_after_decrease =
                                    sum.min_window_after_decrease.min(cc.window());
                            }
                        } else {
                            cc.on_ack(sent);
                        }
                        sum.max_window = sum.max_window.max(cc.window());
                        if let Some(f) = data
                            .meta_info
                            .final_block_id
                            .as_ref()
                            .and_then(|c| c.as_segment())
                            && final_seg.is_none_or(|old| f < old)
                        {
                            // A FinalBlockId ends the fetch: it is believed only from a segment
                            // whose signature verifies, so a forged one cannot cut the object.
                            // A copy that fails is fetched again; the verified copy's own
                            // FinalBlockId is the one used.
                            data = self.check_final_block_id(data, f, opts, stats).await?;
                            if let Some(f) = data
                                .meta_info
                                .final_block_id
                                .as_ref()
                                .and_then(|c| c.as_segment())
                                && final_seg.is_none_or(|old| f < old)
                            {
                                final_seg = Some(f);
                            }
                        }
                        if data
                            .name
                            .get(data.name.len().wrapping_sub(1))
                            .and_then(|c| c.as_segment())
                            != Some(seg)
                        {
                            return Err(Error::Protocol {
                                name: data.name,
                                why: "answer is not the requested segment",
                            });
                        }
                        if seg >= next_write {
                            received.insert(seg, data);
                        }
                    }
                    Ok(Reply::Nack { reason }) => {
                        sum.nacks += 1;
                        match reason {
                            NackReason::Congestion => {
                                if cc.on_congestion(CongestionSignal::Nack, sent, now) {
                                    sum.min_window_after_decrease =
                                        sum.min_window_after_decrease.min(cc.window());
                                }
                            }
                            NackReason::Duplicate => {}
                            other => {
                                return Err(Error::Nack {
                                    name: versioned.append(Component::segment(seg)),
                                    reason: other,
                                });
                            }
                        }
                        if retx >= opts.max_retries {
                            return Err(Error::Nack {
                                name: versioned.append(Component::segment(seg)),
                                reason,
                            });
                        }
                        sum.retransmissions += 1;
                        retx_queue.push_back((seg, retx + 1));
                    }
                    Err(ClientError::Timeout { .. }) => {
                        sum.timeouts += 1;
                        if final_seg.is_some_and(|f| seg > f) {
                            continue;
                        }
                        rtt.on_timeout();
                        if cc.on_congestion(CongestionSignal::Loss, sent, now) {
                            sum.min_window_after_decrease =
                                sum.min_window_after_decrease.min(cc.window());
                        }
                        if retx >= opts.max_retries {
                            return Err(Error::Timeout {
                                name: versioned.append(Component::segment(seg)),
                                attempts: retx + 1,
                            });
                        }
                        sum.retransmissions += 1;
                        retx_queue.push_back((seg, retx + 1));
                    }
                    Err(e) => return Err(e.into()),
                }
                // Write the contiguous run once it is a full batch, or the tail of the object.
                let run_end = {
                    let mut e = next_write;
                    while received.contains_key(&e) {
                        e += 1;
                    }
                    e
                };
                let run = run_end - next_write;
                let at_end = final_seg.is_some_and(|f| run_end > f);
                if run > 0 && (run as usize >= opts.verify_batch || at_end) {
                    let batch: Vec<Data> = (next_write..run_end)
                        .filter_map(|s| received.remove(&s))
                        .collect();
                    let snapshot = Progress {
                        bytes: 0,
                        segments: batch.len() as u64,
                        total_segments: final_seg.map(|f| f + 1),
                        window: cc.window(),
                        retransmissions: sum.retransmissions,
                    };
                    next_write = run_end;
                    if batch_tx.send((batch, snapshot)).await.is_err() {
                        return Err(Error::Protocol {
                            name: versioned.clone(),
                            why: "output stopped",
                        });
                    }
                }
            }
            drop(batch_tx);
            Ok::<(), Error>(())
        };
        let writer = async {
            let mut prog = Progress::default();
            // Up to `verify_parallel` batches are verified at once (each on a blocking thread);
            // results are taken in order, so output order never changes.
            let mut verifying = futures_util::stream::FuturesOrdered::new();
            let mut input_open = true;
            loop {
                tokio::select! {
                    next = batch_rx.recv(), if input_open && verifying.len() < opts.verify_parallel.max(1) => {
                        match next {
                            Some((batch, snap)) => verifying.push_back(async move {
                                (self.finish_batch(batch, opts, stats).await, snap)
                            }),
                            None => input_open = false,
                        }
                    }
                    Some((checked, snap)) = verifying.next(), if !verifying.is_empty() => {
                        let batch: Vec<Data> = checked?;
                        for d in &batch {
                            out.write_all(&d.content).await?;
                            prog.bytes += d.content.len() as u64;
                        }
                        prog.segments += snap.segments;
                        prog.total_segments = snap.total_segments;
                        prog.window = snap.window;
                        prog.retransmissions = snap.retransmissions;
                        progress(&prog);
                    }
                    else => break,
                }
            }
            out.flush().await?;
            Ok::<Progress, Error>(prog)
        };
        let (piped, written) = tokio::join!(pipeline, writer);
        // A verification or output failure explains a stopped pipeline, so it is reported first.
        let prog = written?;
        piped?;
        sum.bytes = prog.bytes;
        sum.segments = prog.segments;
        sum.elapsed = start.elapsed();
        sum.window_decreases = cc.decreases();
        sum.srtt = rtt.srtt();
        sum.verify_failures = stats.failures.load(Ordering::Relaxed);
        sum.verify_refetches = stats.refetches.load(Ordering::Relaxed);
        if sum.min_window_after_decrease == usize::MAX {
            sum.min_window_after_decrease = sum.max_window;
        }
        Ok(sum)
    }

    /// Verifies the segment that announces FinalBlockId `f` before the fetch relies on it;
    /// returns the copy that verified.
    async fn check_final_block_id(
        &self,
        data: Data,
        f: u64,
        opts: &FetchOptions,
        stats: &VerifyStats,
    ) -> Result<Data> {
        let Some(v) = &self.validator else {
            return Ok(data);
        };
        let unverified = |e: Error| {
            // Still failing after the refetches: the cause is what the last copy did wrong.
            let source = match e {
                Error::VerificationFailed { source, .. } => source,
                e => Box::new(e),
            };
            Error::UnverifiedFinalBlockId {
                name: data.name.clone(),
                final_block: f,
                source,
            }
        };
        match v.verify(std::slice::from_ref(&data)).await {
            Ok(()) => Ok(data),
            Err(e) if blamed_packet(&e) == Some(&data.name) => self
                .refetch_until_verified(&data.name, e, opts, stats)
                .await
                .map_err(unverified),
            Err(e) => Err(unverified(e)),
        }
    }

    /// Asks again for `name`, whose copy failed verification with `first`: MustBeFresh and a
    /// new Nonce, so a Content Store does not answer with a stale copy and the Interest may
    /// reach another upstream. Every refused copy is counted; after
    /// [`FetchOptions::verify_retries`] refetches the fetch fails with the last refusal.
    async fn refetch_until_verified(
        &self,
        name: &Name,
        first: Error,
        opts: &FetchOptions,
        stats: &VerifyStats,
    ) -> Result<Data> {
        stats.failures.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(%name, error = %first, "segment failed verification; fetching it again");
        let Some(v) = &self.validator else {
            return Err(first);
        };
        let mut last = first;
        for _ in 0..opts.verify_retries {
            stats.refetches.fetch_add(1, Ordering::Relaxed);
            let mut i = Interest::new(name.clone());
            i.must_be_fresh = true;
            i.lifetime_ms = Some(opts.lifetime.as_millis() as u64);
            let d = self.fetch_unverified(i).await?;
            if d.name != *name {
                return Err(Error::Protocol {
                    name: d.name,
                    why: "answer is not the requested segment",
                });
            }
            match v.verify(std::slice::from_ref(&d)).await {
                Ok(()) => return Ok(d),
                Err(e) if blamed_packet(&e) == Some(name) => {
                    stats.failures.fetch_add(1, Ordering::Relaxed);
                    last = e;
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::VerificationFailed {
            name: name.clone(),
            attempts: opts.verify_retries + 1,
            source: Box::new(last),
        })
    }

    async fn finish_one(&self, d: Data, opts: &FetchOptions, stats: &VerifyStats) -> Result<Data> {
        let mut v = self.finish_batch(vec![d], opts, stats).await?;
        v.pop().ok_or(Error::Protocol {
            name: Name::default(),
            why: "empty batch",
        })
    }

    /// Verifies and decrypts a batch of Data (in order). A segment that fails verification is
    /// replaced by a copy fetched again ([`Consumer::refetch_until_verified`]).
    async fn finish_batch(
        &self,
        mut batch: Vec<Data>,
        opts: &FetchOptions,
        stats: &VerifyStats,
    ) -> Result<Vec<Data>> {
        if let Some(v) = &self.validator {
            loop {
                let Err(e) = v.verify(&batch).await else {
                    break;
                };
                let Some(i) =
                    blamed_packet(&e).and_then(|n| batch.iter().position(|d| d.name == *n))
                else {
                    return Err(e);
                };
                let name = batch[i].name.clone();
                batch[i] = self.refetch_until_verified(&name, e, opts, stats).await?;
            }
        }
        if self.decryptor.is_some() {
            for d in &mut batch {
                if let Some(p) = self.decrypt(d)? {
                    d.content = p;
                }
            }
        }
        Ok(batch)
    }
}
