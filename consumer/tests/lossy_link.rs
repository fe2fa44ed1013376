//! The segmented fetch over an in-memory link that loses, delays and congestion-marks packets:
//! every lost segment is retransmitted, the output is still byte-exact, and the window shrinks.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use amicn_consumer::trust::TrustMode;
use amicn_consumer::{Consumer, Discovery, FetchOptions};
use amicn_face::client::{Client, ClientOptions};
use amicn_producer::{DigestSigner, Ed25519Signer, Producer, PublishOptions};
use amicn_tlv::{LpHeaders, NetPacket, decode_packet, split_first_tlv, wrap_fragment};
use bytes::{Bytes, BytesMut};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How the far end of the link misbehaves.
#[derive(Clone, Copy)]
struct Impairment {
    /// Drop the first Interest for every segment number divisible by this.
    drop_every: u64,
    /// Congestion-mark the Data of every segment number divisible by this.
    mark_every: u64,
    /// Delay before answering each Interest.
    delay: Duration,
}

/// Runs the producer end of the link until the stream closes.
async fn far_end(stream: tokio::io::DuplexStream, producer: Arc<Producer>, imp: Impairment) {
    let (mut r, w) = tokio::io::split(stream);
    let w = Arc::new(tokio::sync::Mutex::new(w));
    let mut buf = BytesMut::new();
    let mut dropped: HashSet<u64> = HashSet::new();
    loop {
        if r.read_buf(&mut buf).await.unwrap_or(0) == 0 {
            return;
        }
        while let Ok(Some(n)) = split_first_tlv(&buf) {
            let pkt = buf.split_to(n).freeze();
            let rx = decode_packet(pkt).unwrap();
            let NetPacket::Interest(interest) = rx.packet else {
                continue;
            };
            let seg = interest.name.last().and_then(|c| c.as_segment());
            if let Some(s) = seg
                && s % imp.drop_every == 0
                && dropped.insert(s)
            {
                continue;
            }
            let Some(wire) = producer.answer(&interest) else {
                continue;
            };
            let mark = seg.is_some_and(|s| s % imp.mark_every == 1).then_some(1);
            let lp = LpHeaders {
                pit_token: rx.lp.pit_token.clone(),
                congestion_mark: mark,
                ..LpHeaders::default()
            };
            let out = wrap_fragment(wire, &lp, None);
            let w = w.clone();
            let delay = imp.delay;
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = w.lock().await.write_all(&out).await;
            });
        }
    }
}

/// A far end that answers from `producer`, except segment `seg`, for which it sends `forged`.
async fn forging_far_end(
    stream: tokio::io::DuplexStream,
    producer: Arc<Producer>,
    seg: u64,
    forged: Bytes,
) {
    let (mut r, mut w) = tokio::io::split(stream);
    let mut buf = BytesMut::new();
    while r.read_buf(&mut buf).await.unwrap_or(0) > 0 {
        while let Ok(Some(n)) = split_first_tlv(&buf) {
            let rx = decode_packet(buf.split_to(n).freeze()).unwrap();
            let NetPacket::Interest(interest) = rx.packet else {
                continue;
            };
            let wire = if interest.name.last().and_then(|c| c.as_segment()) == Some(seg) {
                Some(forged.clone())
            } else {
                producer.answer(&interest)
            };
            let Some(wire) = wire else { continue };
            let lp = LpHeaders {
                pit_token: rx.lp.pit_token.clone(),
                ..LpHeaders::default()
            };
            let _ = w.write_all(&wrap_fragment(wire, &lp, None)).await;
        }
    }
}

fn random_bytes(n: usize, seed: u64) -> Bytes {
    // Seeded: deterministic content so a failure is reproducible.
    let mut v = vec![0u8; n];
    Xoshiro256PlusPlus::seed_from_u64(seed).fill_bytes(&mut v);
    Bytes::from(v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retransmission_recovers_losses_and_window_shrinks() {
    let content = random_bytes(300 * 1000 + 123, 42);
    let producer = Producer::new(Arc::new(DigestSigner));
    let opts = PublishOptions {
        segment_size: 1000,
        version: Some(5),
        ..PublishOptions::default()
    };
    let versioned = producer
        .publish(&"/lossy/obj".parse().unwrap(), content.clone(), &opts)
        .unwrap();
    assert_eq!(versioned.to_string(), "/lossy/obj/v=5");

    let (near, far) = tokio::io::duplex(1 << 20);
    let imp = Impairment {
        drop_every: 17,
        mark_every: 40,
        delay: Duration::from_millis(2),
    };
    tokio::spawn(far_end(far, producer, imp));
    let client = Client::from_stream(near, ClientOptions::default());
    let consumer = Consumer::new(client).with_trust(TrustMode::Integrity, true);
    let fopts = FetchOptions {
        discovery: Discovery::CanBePrefix,
        min_rto: Duration::from_millis(30),
        initial_rto: Duration::from_millis(100),
        ..FetchOptions::default()
    };
    let mut out = Vec::new();
    let mut calls = 0u32;
    let summary = consumer
        .fetch_object(
            &"/lossy/obj".parse().unwrap(),
            &fopts,
            &mut out,
            &mut |_p| calls += 1,
        )
        .await
        .unwrap();
    assert_eq!(out.len(), content.len());
    assert!(
        out == content.as_ref(),
        "output differs from the published object"
    );
    assert_eq!(summary.segments, 301);
    assert_eq!(summary.versioned_name, versioned);
    // Segments 0, 17, 34, ... 289 lose their first Interest (seg 0 is fetched by discovery).
    let lost = (1..=300u64).filter(|s| s % 17 == 0).count() as u64;
    assert!(
        summary.timeouts >= lost,
        "timeouts {} < lost {lost}",
        summary.timeouts
    );
    assert!(summary.retransmissions >= lost);
    assert!(summary.congestion_marks > 0);
    assert!(summary.window_decreases > 0);
    assert!(
        summary.min_window_after_decrease < summary.max_window,
        "{summary:?}"
    );
    assert!(calls > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_signer_is_rejected_with_its_name() {
    use amicn_consumer::trust::TrustAnchor;
    let content = random_bytes(5000, 7);
    let mallory = Ed25519Signer::from_seed(&[9; 32], "/mallory/KEY/k".parse().unwrap());
    // Mallory's self-signed certificate is reachable, so the refusal is about trust, not reachability.
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let cert = amicn_kms::cert::Certificate::self_signed_by(
        &mallory,
        &"/mallory/KEY/k".parse().unwrap(),
        1,
        amicn_kms::cert::Validity::starting_now(now_s - 60, 3600),
    )
    .unwrap();
    let producer = Producer::new(Arc::new(mallory));
    amicn_producer::Store::insert(&**producer.store(), cert.data().clone());
    let opts = PublishOptions {
        segment_size: 1000,
        version: Some(1),
        ..PublishOptions::default()
    };
    producer
        .publish(&"/alice/file".parse().unwrap(), content, &opts)
        .unwrap();
    let (near, far) = tokio::io::duplex(1 << 20);
    let imp = Impairment {
        drop_every: u64::MAX,
        mark_every: u64::MAX,
        delay: Duration::ZERO,
    };
    tokio::spawn(far_end(far, producer, imp));
    let alice =
        amicn_kms::identity::KeyPair::from_seed(&[1; 32], "/alice/KEY/k".parse().unwrap()).unwrap();
    let anchor = TrustAnchor {
        key_name: "/alice/KEY/k".parse().unwrap(),
        key: alice.public_key().into(),
    };
    let consumer = Consumer::new(Client::from_stream(near, ClientOptions::default()))
        .with_trust(TrustMode::Anchored(vec![anchor]), false);
    let fopts = FetchOptions {
        discovery: Discovery::Exact,
        ..FetchOptions::default()
    };
    let mut out = Vec::new();
    let err = consumer
        .fetch_object(
            &"/alice/file/v=1".parse().unwrap(),
            &fopts,
            &mut out,
            &mut |_| {},
        )
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("/mallory/KEY/k"), "{msg}");
    // Segment 0 carries FinalBlockId, so the refusal comes from checking it, naming the cause.
    let cause = match &err {
        amicn_consumer::Error::UnverifiedFinalBlockId { source, .. } => &**source,
        e => e,
    };
    assert!(
        matches!(cause, amicn_consumer::Error::Untrusted { .. }),
        "{msg}"
    );
    assert!(out.is_empty(), "unverified bytes were written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enveloped_object_opens_only_with_the_content_key() {
    use amicn_consumer::{Decryptor, KeyRing};
    use amicn_kms::SymmetricKey;
    use amicn_kms::envelope::{EnvelopeKey, Purpose};
    let plain = random_bytes(25_000, 21);
    let key_name: amicn_tlv::Name = "/u/ami/bcast/KEY/v=3".parse().unwrap();
    let secret = SymmetricKey::from_bytes([4; 32]);
    let producer = Producer::encrypting(
        Arc::new(DigestSigner),
        Arc::new(amicn_producer::MemoryStore::default()),
        Arc::new(EnvelopeKey::derive(&secret, &key_name, Purpose::Content)),
    );
    let opts = PublishOptions {
        segment_size: 4000,
        version: Some(2),
        ..PublishOptions::default()
    };
    producer
        .publish(&"/u/ami/price/t1".parse().unwrap(), plain.clone(), &opts)
        .unwrap();

    let fetch = |ring: Option<KeyRing>| {
        let producer = producer.clone();
        async move {
            let (near, far) = tokio::io::duplex(1 << 20);
            let imp = Impairment {
                drop_every: u64::MAX,
                mark_every: u64::MAX,
                delay: Duration::ZERO,
            };
            tokio::spawn(far_end(far, producer, imp));
            let mut c = Consumer::new(Client::from_stream(near, ClientOptions::default()))
                .with_trust(TrustMode::Integrity, true);
            if let Some(r) = ring {
                c = c.with_decryptor(Arc::new(r) as Arc<dyn Decryptor>);
            }
            let fopts = FetchOptions {
                discovery: Discovery::Exact,
                ..FetchOptions::default()
            };
            let mut out = Vec::new();
            let r = c
                .fetch_object(
                    &"/u/ami/price/t1/v=2".parse().unwrap(),
                    &fopts,
                    &mut out,
                    &mut |_| {},
                )
                .await;
            r.map(|_| out)
        }
    };
    let mut ring = KeyRing::new();
    ring.add(EnvelopeKey::derive(&secret, &key_name, Purpose::Content));
    assert!(
        fetch(Some(ring)).await.unwrap() == plain,
        "decrypted object differs"
    );
    // Without the key the bytes on the wire are ciphertext (larger, and not the plaintext).
    let raw = fetch(None).await.unwrap();
    assert!(raw.len() > plain.len() && raw.get(..100) != plain.get(..100));
    // A key of another epoch cannot open it, and says which key is missing.
    let mut wrong = KeyRing::new();
    wrong.add(EnvelopeKey::derive(
        &secret,
        &"/u/ami/bcast/KEY/v=4".parse().unwrap(),
        Purpose::Content,
    ));
    let err = fetch(Some(wrong)).await.unwrap_err();
    assert!(err.to_string().contains("/u/ami/bcast/KEY/v=3"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_final_block_id_is_refused_not_taken_as_the_end() {
    use amicn_consumer::trust::TrustAnchor;
    let content = random_bytes(5000, 11);
    let alice_key: amicn_tlv::Name = "/alice/KEY/k".parse().unwrap();
    let alice = amicn_kms::identity::KeyPair::from_seed(&[1; 32], alice_key.clone()).unwrap();
    let producer = Producer::new(Arc::new(Ed25519Signer::from_seed(
        &[1; 32],
        alice_key.clone(),
    )));
    let opts = PublishOptions {
        segment_size: 1000,
        version: Some(1),
        ..PublishOptions::default()
    };
    let prefix: amicn_tlv::Name = "/alice/file".parse().unwrap();
    producer.publish(&prefix, content.clone(), &opts).unwrap();
    let anchor = TrustAnchor {
        key_name: alice_key.clone(),
        key: alice.public_key().into(),
    };
    let fopts = FetchOptions {
        discovery: Discovery::Exact,
        ..FetchOptions::default()
    };
    let fetch = |forged: Option<Bytes>| {
        let anchor = anchor.clone();
        let fopts = fopts.clone();
        let producer = producer.clone();
        async move {
            let (near, far) = tokio::io::duplex(1 << 20);
            match forged {
                Some(f) => tokio::spawn(forging_far_end(far, producer, 1, f)),
                None => tokio::spawn(far_end(
                    far,
                    producer,
                    Impairment {
                        drop_every: u64::MAX,
                        mark_every: u64::MAX,
                        delay: Duration::ZERO,
                    },
                )),
            };
            let consumer = Consumer::new(Client::from_stream(near, ClientOptions::default()))
                .with_trust(TrustMode::Anchored(vec![anchor]), false);
            let mut out = Vec::new();
            let r = consumer
                .fetch_object(
                    &"/alice/file/v=1".parse().unwrap(),
                    &fopts,
                    &mut out,
                    &mut |_| {},
                )
                .await;
            (r, out)
        }
    };
    // The genuine object arrives whole.
    let (r, out) = fetch(None).await;
    r.unwrap();
    assert_eq!(out, content);

    // Mallory replaces segment 1 with one that claims the object ends at segment 0. It names
    // Alice's key but cannot make Alice's signature.
    let mallory = Ed25519Signer::from_seed(&[9; 32], alice_key.clone());
    let mut d = amicn_tlv::Data::new(
        "/alice/file/v=1/seg=1".parse().unwrap(),
        Bytes::from_static(b"the end"),
    );
    d.meta_info.final_block_id = Some(amicn_tlv::Component::segment(0));
    let wire = amicn_kms::signature::sign_data(&mallory, &mut d);
    let (r, _) = fetch(Some(wire)).await;
    let err = r.unwrap_err();
    assert!(
        matches!(
            err,
            amicn_consumer::Error::UnverifiedFinalBlockId { final_block: 0, ref name, .. }
                if name.to_string().ends_with("seg=1")
        ),
        "{err}"
    );
}

/// A far end that answers the first `bad_copies` Interests for segment `seg` with `forged`,
/// later ones from `producer`; counts the Interests for `seg` and whether they were MustBeFresh.
async fn forging_then_honest_far_end(
    stream: tokio::io::DuplexStream,
    producer: Arc<Producer>,
    seg: u64,
    forged: Bytes,
    bad_copies: usize,
    asked: Arc<std::sync::Mutex<Vec<bool>>>,
) {
    let (mut r, mut w) = tokio::io::split(stream);
    let mut buf = BytesMut::new();
    while r.read_buf(&mut buf).await.unwrap_or(0) > 0 {
        while let Ok(Some(n)) = split_first_tlv(&buf) {
            let rx = decode_packet(buf.split_to(n).freeze()).unwrap();
            let NetPacket::Interest(interest) = rx.packet else {
                continue;
            };
            let wire = if interest.name.last().and_then(|c| c.as_segment()) == Some(seg) {
                let mut a = asked.lock().unwrap();
                a.push(interest.must_be_fresh);
                if a.len() <= bad_copies {
                    Some(forged.clone())
                } else {
                    producer.answer(&interest)
                }
            } else {
                producer.answer(&interest)
            };
            let Some(wire) = wire else { continue };
            let lp = LpHeaders {
                pit_token: rx.lp.pit_token.clone(),
                ..LpHeaders::default()
            };
            let _ = w.write_all(&wrap_fragment(wire, &lp, None)).await;
        }
    }
}

struct ForgeRun {
    result: amicn_consumer::Result<amicn_consumer::FetchSummary>,
    out: Vec<u8>,
    asked: Vec<bool>,
}

/// Publishes 10 segments signed by Alice and fetches them (anchored at Alice) through a far end
/// that forges segment `seg` `bad_copies` times; the forgery is signed by another key under
/// Alice's KeyLocator and optionally claims `final_block`.
async fn fetch_with_forgery(
    seg: u64,
    final_block: Option<u64>,
    bad_copies: usize,
) -> (Bytes, ForgeRun) {
    use amicn_consumer::trust::TrustAnchor;
    let content = random_bytes(10_000, 13);
    let alice_key: amicn_tlv::Name = "/alice/KEY/k".parse().unwrap();
    let alice = amicn_kms::identity::KeyPair::from_seed(&[1; 32], alice_key.clone()).unwrap();
    let producer = Producer::new(Arc::new(Ed25519Signer::from_seed(
        &[1; 32],
        alice_key.clone(),
    )));
    let opts = PublishOptions {
        segment_size: 1000,
        version: Some(1),
        ..PublishOptions::default()
    };
    producer
        .publish(&"/alice/file".parse().unwrap(), content.clone(), &opts)
        .unwrap();
    let mallory = Ed25519Signer::from_seed(&[9; 32], alice_key.clone());
    let mut d = amicn_tlv::Data::new(
        format!("/alice/file/v=1/seg={seg}").parse().unwrap(),
        Bytes::from_static(b"forged"),
    );
    d.meta_info.final_block_id = final_block.map(amicn_tlv::Component::segment);
    let forged = amicn_kms::signature::sign_data(&mallory, &mut d);

    let (near, far) = tokio::io::duplex(1 << 20);
    let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
    tokio::spawn(forging_then_honest_far_end(
        far,
        producer,
        seg,
        forged,
        bad_copies,
        asked.clone(),
    ));
    let anchor = TrustAnchor {
        key_name: alice_key,
        key: alice.public_key().into(),
    };
    let consumer = Consumer::new(Client::from_stream(near, ClientOptions::default()))
        .with_trust(TrustMode::Anchored(vec![anchor]), false);
    let fopts = FetchOptions {
        discovery: Discovery::Exact,
        verify_retries: 3,
        ..FetchOptions::default()
    };
    let mut out = Vec::new();
    let result = consumer
        .fetch_object(
            &"/alice/file/v=1".parse().unwrap(),
            &fopts,
            &mut out,
            &mut |_| {},
        )
        .await;
    let asked = asked.lock().unwrap().clone();
    (content, ForgeRun { result, out, asked })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_forged_copy_is_fetched_again_and_counted() {
    // A middle segment, then the last one claiming an early end: both recover from one bad copy.
    for (seg, final_block) in [(4, None), (9, Some(2))] {
        let (content, run) = fetch_with_forgery(seg, final_block, 1).await;
        let sum = run.result.unwrap();
        assert!(run.out == content, "seg {seg}: fetched bytes differ");
        assert_eq!(sum.verify_failures, 1, "seg {seg}");
        assert_eq!(sum.verify_refetches, 1, "seg {seg}");
        // First Interest as in the pipeline, the refetch with MustBeFresh.
        assert_eq!(run.asked, vec![false, true], "seg {seg}");
    }
    // Nothing forged: nothing counted.
    let (content, run) = fetch_with_forgery(4, None, 0).await;
    let sum = run.result.unwrap();
    assert!(run.out == content);
    assert_eq!((sum.verify_failures, sum.verify_refetches), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_that_is_always_forged_fails_the_fetch_loudly() {
    let (_, run) = fetch_with_forgery(4, None, usize::MAX).await;
    let err = run.result.unwrap_err();
    match &err {
        amicn_consumer::Error::VerificationFailed {
            name,
            attempts,
            source,
        } => {
            assert!(name.to_string().ends_with("seg=4"), "{err}");
            assert_eq!(*attempts, 4);
            assert!(
                matches!(**source, amicn_consumer::Error::BadSignature { .. }),
                "{err}"
            );
        }
        e => panic!("unexpected {e}"),
    }
    assert!(err.to_string().contains("4 time(s)"), "{err}");
    // The first request and three refetches, each MustBeFresh.
    assert_eq!(run.asked, vec![false, true, true, true]);
    assert!(
        run.out.len() <= 4 * 1000,
        "nothing past the forged segment is written"
    );
    // A forged FinalBlockId that keeps coming back is still refused as such.
    let (_, run) = fetch_with_forgery(9, Some(0), usize::MAX).await;
    let err = run.result.unwrap_err();
    assert!(
        matches!(
            err,
            amicn_consumer::Error::UnverifiedFinalBlockId { final_block: 0, .. }
        ),
        "{err}"
    );
}

/// A far end that answers the first `bad_copies` discovery Interests (any Interest whose name
/// does not end in a segment number) with `forged`, later ones and all segments from
/// `producer`; records the discovery Interests' MustBeFresh.
async fn forging_discovery_far_end(
    stream: tokio::io::DuplexStream,
    producer: Arc<Producer>,
    forged: Bytes,
    bad_copies: usize,
    asked: Arc<std::sync::Mutex<Vec<bool>>>,
) {
    let (mut r, mut w) = tokio::io::split(stream);
    let mut buf = BytesMut::new();
    while r.read_buf(&mut buf).await.unwrap_or(0) > 0 {
        while let Ok(Some(n)) = split_first_tlv(&buf) {
            let rx = decode_packet(buf.split_to(n).freeze()).unwrap();
            let NetPacket::Interest(interest) = rx.packet else {
                continue;
            };
            let wire = if interest.name.last().and_then(|c| c.as_segment()).is_none() {
                let mut a = asked.lock().unwrap();
                a.push(interest.must_be_fresh);
                if a.len() <= bad_copies {
                    Some(forged.clone())
                } else {
                    producer.answer(&interest)
                }
            } else {
                producer.answer(&interest)
            };
            let Some(wire) = wire else { continue };
            let lp = LpHeaders {
                pit_token: rx.lp.pit_token.clone(),
                ..LpHeaders::default()
            };
            let _ = w.write_all(&wrap_fragment(wire, &lp, None)).await;
        }
    }
}

/// Publishes `/alice/file/v=1` (5 segments, signed by Alice) and fetches `/alice/file` with
/// `how` discovery, anchored at Alice, through a far end whose first `bad_copies` discovery
/// answers are a forgery (signed by another key under Alice's KeyLocator) claiming version 9.
async fn discover_with_forgery(how: Discovery, bad_copies: usize) -> (Bytes, ForgeRun) {
    use amicn_consumer::trust::TrustAnchor;
    let content = random_bytes(5_000, 17);
    let alice_key: amicn_tlv::Name = "/alice/KEY/k".parse().unwrap();
    let alice = amicn_kms::identity::KeyPair::from_seed(&[1; 32], alice_key.clone()).unwrap();
    let producer = Producer::new(Arc::new(Ed25519Signer::from_seed(
        &[1; 32],
        alice_key.clone(),
    )));
    let opts = PublishOptions {
        segment_size: 1000,
        version: Some(1),
        ..PublishOptions::default()
    };
    producer
        .publish(&"/alice/file".parse().unwrap(), content.clone(), &opts)
        .unwrap();
    let mallory = Ed25519Signer::from_seed(&[9; 32], alice_key.clone());
    let v9: amicn_tlv::Name = "/alice/file/v=9".parse().unwrap();
    let mut d = match how {
        Discovery::Metadata => amicn_tlv::Data::new(
            "/alice/file/32=metadata/v=9/seg=0".parse().unwrap(),
            v9.to_wire(),
        ),
        _ => amicn_tlv::Data::new(
            "/alice/file/v=9/seg=0".parse().unwrap(),
            Bytes::from_static(b"forged"),
        ),
    };
    d.meta_info.final_block_id = Some(amicn_tlv::Component::segment(0));
    let forged = amicn_kms::signature::sign_data(&mallory, &mut d);

    let (near, far) = tokio::io::duplex(1 << 20);
    let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
    tokio::spawn(forging_discovery_far_end(
        far,
        producer,
        forged,
        bad_copies,
        asked.clone(),
    ));
    let anchor = TrustAnchor {
        key_name: alice_key,
        key: alice.public_key().into(),
    };
    let consumer = Consumer::new(Client::from_stream(near, ClientOptions::default()))
        .with_trust(TrustMode::Anchored(vec![anchor]), false);
    let fopts = FetchOptions {
        discovery: how,
        verify_retries: 2,
        ..FetchOptions::default()
    };
    let mut out = Vec::new();
    let result = consumer
        .fetch_object(
            &"/alice/file".parse().unwrap(),
            &fopts,
            &mut out,
            &mut |_| {},
        )
        .await;
    let asked = asked.lock().unwrap().clone();
    (content, ForgeRun { result, out, asked })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_discovery_answer_is_not_believed_and_is_asked_again() {
    for how in [Discovery::CanBePrefix, Discovery::Metadata] {
        let (content, run) = discover_with_forgery(how, 1).await;
        let sum = run.result.unwrap();
        // The genuine version, not the forger's v=9.
        assert_eq!(sum.versioned_name.to_string(), "/alice/file/v=1", "{how:?}");
        assert!(run.out == content, "{how:?}: fetched bytes differ");
        assert_eq!(
            (sum.verify_failures, sum.verify_refetches),
            (1, 1),
            "{how:?}"
        );
        assert_eq!(run.asked, vec![true, true], "{how:?}");
        // Always forged: the fetch fails loudly, naming the discovery Interest, and writes nothing.
        let (_, run) = discover_with_forgery(how, usize::MAX).await;
        let err = run.result.unwrap_err();
        match &err {
            amicn_consumer::Error::VerificationFailed {
                attempts, source, ..
            } => {
                assert_eq!(*attempts, 3, "{how:?}");
                assert!(
                    matches!(**source, amicn_consumer::Error::BadSignature { .. }),
                    "{err}"
                );
            }
            e => panic!("{how:?}: unexpected {e}"),
        }
        assert_eq!(run.asked.len(), 3, "{how:?}");
        assert!(run.out.is_empty(), "{how:?}");
    }
    // Nothing forged: nothing counted.
    let (content, run) = discover_with_forgery(Discovery::CanBePrefix, 0).await;
    let sum = run.result.unwrap();
    assert!(run.out == content);
    assert_eq!((sum.verify_failures, sum.verify_refetches), (0, 0));
}
