//! Opt-in Prometheus text metrics: a latency histogram type, the text renderer, and a tiny
//! HTTP/1.0 responder on a tokio `TcpListener` (one request per connection, no framework).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Bucket upper bounds in microseconds (log-spaced 1 µs .. 1 s).
const BUCKETS_US: [u64; 19] = [
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000,
    200_000, 500_000, 1_000_000,
];

/// A fixed-bucket latency histogram (no allocation when observing).
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    counts: [u64; BUCKETS_US.len() + 1],
    sum_ns: u128,
    count: u64,
}

impl Histogram {
    /// Records one duration.
    pub fn observe(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = BUCKETS_US.partition_point(|b| *b < us);
        if let Some(c) = self.counts.get_mut(i) {
            *c += 1;
        }
        self.sum_ns += d.as_nanos();
        self.count += 1;
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Approximate quantile (upper bound of the bucket holding it), in microseconds.
    pub fn quantile_us(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let target = ((self.count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= target {
                return Some(BUCKETS_US.get(i).copied().unwrap_or(u64::MAX));
            }
        }
        None
    }

    /// Appends this histogram in Prometheus text format (seconds).
    pub fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cum = 0;
        for (i, b) in BUCKETS_US.iter().enumerate() {
            cum += self.counts.get(i).copied().unwrap_or(0);
            let _ = writeln!(out, "{name}_bucket{{le=\"{}\"}} {cum}", *b as f64 / 1e6);
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum {}", self.sum_ns as f64 / 1e9);
        let _ = writeln!(out, "{name}_count {}", self.count);
    }
}

/// Appends one counter or gauge sample with its HELP/TYPE header.
pub fn render_metric(out: &mut String, kind: &str, name: &str, help: &str, value: u64) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    let _ = writeln!(out, "{name} {value}");
}

/// A request for the current metrics text, answered by the forwarding loop.
pub type MetricsRequest = oneshot::Sender<String>;

/// Serves `GET /metrics` on `addr`; each request asks the forwarding loop for fresh text.
pub async fn serve(
    addr: SocketAddr,
    requests: mpsc::Sender<MetricsRequest>,
    stop: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                () = stop.cancelled() => break,
                a = listener.accept() => a,
            };
            let Ok((mut sock, _)) = accepted else {
                continue;
            };
            let requests = requests.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let n =
                    match tokio::time::timeout(Duration::from_secs(2), sock.read(&mut buf)).await {
                        Ok(Ok(n)) => n,
                        _ => return,
                    };
                let head = std::str::from_utf8(buf.get(..n).unwrap_or_default()).unwrap_or("");
                let path = head.split_whitespace().nth(1).unwrap_or("");
                let resp = if head.starts_with("GET ") && (path == "/metrics" || path == "/") {
                    let (tx, rx) = oneshot::channel();
                    let body = if requests.send(tx).await.is_ok() {
                        rx.await.unwrap_or_default()
                    } else {
                        String::new()
                    };
                    format!(
                        "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                } else {
                    "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .to_string()
                };
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    Ok((bound, task))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn histogram_buckets_and_quantiles() {
        let mut h = Histogram::default();
        for us in [3u64, 3, 3, 40, 900, 2_000_000] {
            h.observe(Duration::from_micros(us));
        }
        assert_eq!(h.count(), 6);
        assert_eq!(h.quantile_us(0.5), Some(5));
        assert_eq!(h.quantile_us(0.66), Some(50));
        assert_eq!(h.quantile_us(1.0), Some(u64::MAX));
        let mut s = String::new();
        h.render(&mut s, "x_seconds", "test");
        assert!(s.contains("x_seconds_bucket{le=\"0.000005\"} 3\n"), "{s}");
        assert!(s.contains("x_seconds_bucket{le=\"+Inf\"} 6\n"));
        assert!(s.contains("x_seconds_count 6\n"));
    }

    #[tokio::test]
    async fn serves_metrics_text_over_http() {
        let (tx, mut rx) = mpsc::channel::<MetricsRequest>(4);
        let stop = CancellationToken::new();
        let (addr, _task) = serve("127.0.0.1:0".parse().unwrap(), tx, stop.clone())
            .await
            .unwrap();
        tokio::spawn(async move {
            while let Some(r) = rx.recv().await {
                let _ = r.send("amicn_up 1\n".into());
            }
        });
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut resp = String::new();
        c.read_to_string(&mut resp).await.unwrap();
        assert!(resp.starts_with("HTTP/1.0 200 OK"));
        assert!(resp.ends_with("amicn_up 1\n"));
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET /nope HTTP/1.1\r\n\r\n").await.unwrap();
        let mut resp = String::new();
        c.read_to_string(&mut resp).await.unwrap();
        assert!(resp.starts_with("HTTP/1.0 404"));
        stop.cancel();
    }
}
