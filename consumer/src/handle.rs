//! One event: decode it (waiting for the registry only when its schema is not at hand),
//! apply the undecodable policy (dead-letter, stop, or keep it as undecodable), and write it
//! out as a JSON line or a database row; Capture files take it as it is.

use std::time::{Duration, Instant};

use anyhow::Context;
use eventhubs_kafka::encoding::{DecodeError, Decoder, Encoding};
use eventhubs_kafka::kafka::context::ToolContext;
use rdkafka::message::{BorrowedMessage, Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;

use crate::OnUndecodable;
use crate::output::{Sink, finish_decoded, finish_undecodable, start_line};

/// Header names on dead-lettered events.
pub(crate) const DEAD_LETTER_ERROR_HEADER: &str = "x-dead-letter-error";
pub(crate) const DEAD_LETTER_SOURCE_HEADER: &str = "x-dead-letter-source";

/// What the loop counts.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    pub(crate) consumed: u64,
    pub(crate) decoded: u64,
    pub(crate) undecodable: u64,
    pub(crate) dead_lettered: u64,
}

/// Reused buffers: the line being built and the decoded value.
#[derive(Default)]
pub(crate) struct Buffers {
    line: Vec<u8>,
    value: Vec<u8>,
}

/// What became of one event.
pub(crate) enum Handled {
    /// Written out (decoded, printed as undecodable, or dead-lettered): its position moves.
    Done,
    /// In a capture window or the database sink's batch: its position moves when that is
    /// written (`full`: write the batch now).
    Buffered { full: bool },
    /// Undecodable, and the policy is to stop without committing it.
    StopUndecodable,
    /// A signal came while waiting for the registry: stop, this event not committed.
    Interrupted,
}

/// Where async work is waited for (registry requests, dead-letter sends), how long to wait
/// for an unreachable registry, and the signal that ends the wait (and the loop).
pub(crate) struct Waiting<'a> {
    pub(crate) runtime: &'a tokio::runtime::Handle,
    pub(crate) cancel: &'a tokio_util::sync::CancellationToken,
    pub(crate) retry_for: Duration,
}

/// What handling an event needs besides the event itself: the same for every event.
pub(crate) struct Handler<'a> {
    pub(crate) decoder: &'a Decoder,
    pub(crate) sink: &'a Sink,
    pub(crate) dead_letter: Option<&'a (String, FutureProducer<ToolContext>)>,
    pub(crate) policy: OnUndecodable,
    pub(crate) waiting: &'a Waiting<'a>,
}

impl Handler<'_> {
    /// Decode and write out one event.
    pub(crate) fn handle(
        &self,
        message: &BorrowedMessage<'_>,
        counts: &mut Counts,
        buffers: &mut Buffers,
    ) -> anyhow::Result<Handled> {
        if let Sink::Capture(capture) = self.sink {
            // Capture keeps bodies as they are: nothing to decode. The position advances
            // when the window's file is written.
            capture.add(message);
            return Ok(Handled::Buffered { full: false });
        }
        // Unreadable headers make the event undecodable, like an undecodable value.
        let headers = crate::headers::read(message);
        let decoded = match &headers {
            Ok(h) => {
                let content_type = crate::headers::content_type(h);
                match self.decode(message, content_type, &mut buffers.value)? {
                    Some(decoded) => decoded,
                    None => return Ok(Handled::Interrupted),
                }
            }
            Err(unreadable) => Err(DecodeError::Unreadable(unreadable.to_string())),
        };
        let headers = headers.unwrap_or_default();
        let decoded = match decoded {
            Ok(encoding) => {
                counts.decoded += 1;
                Ok(encoding)
            }
            Err(error) => {
                counts.undecodable += 1;
                if let Some(handled) = self.undecodable(message, &headers, &error, counts)? {
                    return Ok(handled);
                }
                Err(error)
            }
        };
        self.write_out(message, &headers, decoded, buffers)
    }

    /// The value as JSON text in `out`: at once when its schema is at hand, else waiting
    /// on the runtime for the registry. `None`: a signal came while waiting.
    fn decode(
        &self,
        message: &BorrowedMessage<'_>,
        content_type: Option<&str>,
        out: &mut Vec<u8>,
    ) -> anyhow::Result<Option<Result<Encoding, DecodeError>>> {
        out.clear();
        if let Some(decoded) = self
            .decoder
            .decode_cached_into(message.payload(), content_type, out)
        {
            return Ok(Some(decoded));
        }
        self.waiting.runtime.block_on(fetch_and_decode(
            message,
            content_type,
            self.decoder,
            out,
            self.waiting,
        ))
    }

    /// The policy for an undecodable event: dead-letter it, stop, or warn and go on.
    /// `Some`: what became of it, when it is not written out like the others.
    fn undecodable(
        &self,
        message: &BorrowedMessage<'_>,
        headers: &crate::headers::HeaderList<'_>,
        error: &DecodeError,
        counts: &mut Counts,
    ) -> anyhow::Result<Option<Handled>> {
        let source = format!(
            "{}/{}/{}",
            message.topic(),
            message.partition(),
            message.offset()
        );
        if let Some((dlq, producer)) = self.dead_letter {
            self.waiting.runtime.block_on(send_to_dead_letter(
                message,
                headers,
                dlq,
                producer,
                &error.to_string(),
                &source,
            ))?;
            counts.dead_lettered += 1;
            // The database keeps every event (its bytes, at least); lines do not.
            if !matches!(self.sink, Sink::Database(_)) {
                return Ok(Some(Handled::Done));
            }
        } else if self.policy == OnUndecodable::Fail {
            tracing::error!(event = %source, "undecodable event: {error}; stopping without committing it");
            return Ok(Some(Handled::StopUndecodable));
        } else {
            tracing::warn!(event = %source, "undecodable event: {error}");
        }
        Ok(None)
    }

    /// The event as a JSON line or a database row (decoded or not).
    fn write_out(
        &self,
        message: &BorrowedMessage<'_>,
        headers: &crate::headers::HeaderList<'_>,
        decoded: Result<Encoding, DecodeError>,
        buffers: &mut Buffers,
    ) -> anyhow::Result<Handled> {
        match self.sink {
            Sink::Database(db) => {
                let body_json = match decoded {
                    Ok(_) => {
                        eventhubs_kafka::db::body_json_text(std::mem::take(&mut buffers.value))
                    }
                    Err(_) => None,
                };
                Ok(Handled::Buffered {
                    full: db.add(message, body_json)?,
                })
            }
            Sink::Lines(output) => {
                match decoded {
                    Ok(encoding) => {
                        if output.enabled() {
                            start_line(&mut buffers.line, message, headers);
                            finish_decoded(&mut buffers.line, encoding.as_str(), &buffers.value);
                        }
                    }
                    Err(error) => {
                        start_line(&mut buffers.line, message, headers);
                        finish_undecodable(&mut buffers.line, &error.to_string(), message);
                    }
                }
                output
                    .write_line(&buffers.line)
                    .context("writing to stdout")?;
                Ok(Handled::Done)
            }
            // Taken before decoding (Capture keeps bodies as they are).
            Sink::Capture(_) => Ok(Handled::Buffered { full: false }),
        }
    }
}

/// Decode an event whose schema a registry must give first. A registry that cannot be
/// reached is waited for (backing off, up to `retry_for`), never taken as an answer: the
/// event would otherwise be dead-lettered and committed while the registry is down.
/// `None`: a signal came while waiting.
async fn fetch_and_decode(
    message: &BorrowedMessage<'_>,
    content_type: Option<&str>,
    decoder: &Decoder,
    out: &mut Vec<u8>,
    waiting: &Waiting<'_>,
) -> anyhow::Result<Option<Result<Encoding, DecodeError>>> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(500);
    loop {
        out.clear();
        match decoder
            .decode_into(message.payload(), content_type, out)
            .await
        {
            Err(e) if e.is_retriable() => {
                let event = format!(
                    "{}/{}/{}",
                    message.topic(),
                    message.partition(),
                    message.offset()
                );
                if started.elapsed() >= waiting.retry_for {
                    anyhow::bail!(
                        "the schema registry stayed unreachable for {:?} ({e}); stopping without committing {event}",
                        waiting.retry_for
                    );
                }
                tracing::warn!(event = %event, "{e}; retrying in {pause:?}");
                tokio::select! {
                    _ = waiting.cancel.cancelled() => return Ok(None),
                    _ = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(Duration::from_secs(10));
            }
            other => return Ok(Some(other)),
        }
    }
}

async fn send_to_dead_letter(
    message: &BorrowedMessage<'_>,
    original: &crate::headers::HeaderList<'_>,
    topic: &str,
    producer: &FutureProducer<ToolContext>,
    error: &str,
    source: &str,
) -> anyhow::Result<()> {
    let mut headers = OwnedHeaders::new();
    for (key, value) in original {
        headers = headers.insert(Header { key, value: *value });
    }
    headers = headers
        .insert(Header {
            key: DEAD_LETTER_ERROR_HEADER,
            value: Some(error),
        })
        .insert(Header {
            key: DEAD_LETTER_SOURCE_HEADER,
            value: Some(source),
        });
    let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).headers(headers);
    if let Some(key) = message.key() {
        record = record.key(key);
    }
    if let Some(payload) = message.payload() {
        record = record.payload(payload);
    }
    // The offset is stored only once the dead-letter topic has the event.
    producer
        .send(record, Timeout::After(Duration::from_secs(60)))
        .await
        .map_err(|(e, _)| {
            anyhow::anyhow!("sending event {source} to dead-letter topic `{topic}` failed: {e}")
        })?;
    tracing::warn!(event = %source, dead_letter_topic = %topic, "undecodable event dead-lettered: {error}");
    Ok(())
}
