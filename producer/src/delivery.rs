//! Delivery accounting: an event counts as sent only when the broker acknowledged it.
//!
//! librdkafka calls [`Deliveries::delivery`](DeliveryHandler::delivery) once per event on its polling thread with
//! the broker's verdict; the counters and the latency histogram live here, and so does the
//! record of every event that was not delivered.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use eventhubs_kafka::kafka::context::{DeliveryHandler, ToolContext};
use hdrhistogram::Histogram;
use rdkafka::message::Message;
use rdkafka::producer::DeliveryResult;

/// How many undelivered events are named one by one in the log; the rest are counted by
/// reason.
const FAILURES_NAMED: u64 = 1000;

/// Latencies are recorded up to ten minutes.
const MAX_LATENCY_US: u64 = 600_000_000;

/// One event in this many is timed from hand-over to acknowledgement: reading the clock
/// twice per event cost a tenth of the producer's CPU on a virtual machine, and percentiles
/// over every eighth event (125,000 per million) are the same figures.
pub(crate) const TIMED_ONE_IN: u64 = 8;

/// What the producer knows about an event in flight.
pub(crate) struct Pending {
    /// Where the event came from: its input line, or its index when generated.
    pub origin: Origin,
    /// When it was handed to librdkafka, for the events that are timed.
    pub enqueued: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Origin {
    Line(u64),
    Generated(u64),
}

impl Origin {
    /// Whether this event's latency is measured (the first, then one in [`TIMED_ONE_IN`]).
    pub(crate) fn timed(self) -> bool {
        let (Self::Line(n) | Self::Generated(n)) = self;
        n % TIMED_ONE_IN == 1
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Line(n) => write!(f, "input line {n}"),
            Self::Generated(n) => write!(f, "generated event {n}"),
        }
    }
}

/// The producer's part of its librdkafka context ([`ToolContext`] does the rest, shared
/// with every client): delivery reports counted, timed and named.
pub(crate) struct Deliveries {
    sent: AtomicU64,
    failed: AtomicU64,
    bytes: AtomicU64,
    /// `None` only if the histogram could not be created, which constant bounds rule out.
    latency_us: Mutex<Option<Histogram<u64>>>,
    failure_reasons: Mutex<BTreeMap<String, u64>>,
}

/// Totals at the end of a run.
#[derive(Debug, Clone, Default)]
pub(crate) struct DeliveryTotals {
    pub sent: u64,
    pub failed: u64,
    pub bytes: u64,
    pub latency_ms: LatencyMs,
    pub failure_reasons: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct LatencyMs {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

/// The producer's context: the shared one with delivery accounting.
pub(crate) type DeliveryContext = ToolContext<Deliveries>;

impl Default for Deliveries {
    fn default() -> Self {
        Self::new()
    }
}

impl Deliveries {
    pub(crate) fn new() -> Self {
        Self {
            sent: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            // 1 µs to 10 min, 3 significant digits.
            latency_us: Mutex::new(Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).ok()),
            failure_reasons: Mutex::new(BTreeMap::new()),
        }
    }

    pub(crate) fn totals(&self) -> DeliveryTotals {
        let h = self.latency_us.lock().unwrap_or_else(|e| e.into_inner());
        let ms = |us: u64| us as f64 / 1000.0;
        let latency_ms = match h.as_ref() {
            Some(h) if !h.is_empty() => LatencyMs {
                p50: ms(h.value_at_quantile(0.50)),
                p99: ms(h.value_at_quantile(0.99)),
                max: ms(h.max()),
            },
            _ => LatencyMs::default(),
        };
        DeliveryTotals {
            sent: self.sent.load(Ordering::Acquire),
            failed: self.failed.load(Ordering::Acquire),
            bytes: self.bytes.load(Ordering::Acquire),
            latency_ms,
            failure_reasons: self
                .failure_reasons
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }

    /// Account one event as not delivered, named (the first `FAILURES_NAMED`) and counted
    /// by reason: for a delivery report, and for an event librdkafka refused outright.
    pub(crate) fn record_failure(&self, origin: &Origin, reason: String, key: Option<&[u8]>) {
        let n = self.failed.fetch_add(1, Ordering::AcqRel) + 1;
        if n <= FAILURES_NAMED {
            let key = key.map(String::from_utf8_lossy).unwrap_or_default();
            tracing::warn!(origin = %origin, key = %key, error = %reason, "event not delivered");
        } else if n == FAILURES_NAMED + 1 {
            tracing::warn!(
                "more events not delivered; the rest are counted by reason in the summary"
            );
        }
        *self
            .failure_reasons
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(reason)
            .or_default() += 1;
    }
}

impl DeliveryHandler for Deliveries {
    type Opaque = Box<Pending>;

    fn delivery(&self, result: &DeliveryResult<'_>, pending: Box<Pending>) {
        match result {
            Ok(message) => {
                let size = message.payload_len() + message.key().map_or(0, <[u8]>::len);
                self.bytes.fetch_add(size as u64, Ordering::AcqRel);
                if let Some(enqueued) = pending.enqueued {
                    let us = enqueued.elapsed().as_micros() as u64;
                    if let Some(h) = self
                        .latency_us
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .as_mut()
                    {
                        let _ = h.record(us.clamp(1, MAX_LATENCY_US));
                    }
                }
                self.sent.fetch_add(1, Ordering::AcqRel);
            }
            Err((error, message)) => {
                self.record_failure(&pending.origin, error.to_string(), message.key())
            }
        }
    }
}
