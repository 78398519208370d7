//! Kafka headers read without letting a hostile event crash the consumer.
//!
//! rdkafka 0.39 converts every header key to `&str` with an `unwrap()`: a key that is not
//! UTF-8 (any producer can write one; the protocol does not check) panics inside its
//! iterator, and since the same event is read again after every restart, the whole group
//! would stop for good. Reaching the raw bytes needs librdkafka's C API, which this workspace
//! keeps out (`unsafe_code = "forbid"`), so the one read of a message's headers happens here,
//! with that panic caught and turned into an error: the event is then undecodable, handled
//! by `--on-undecodable` or the dead-letter topic, and the group moves on. While this read
//! runs, the panic hook stays silent, so the caught panic prints nothing.

use std::cell::Cell;
use std::panic::AssertUnwindSafe;
use std::sync::Once;

use rdkafka::message::{BorrowedMessage, Headers, Message};

thread_local! {
    static READING: Cell<bool> = const { Cell::new(false) };
}

/// A message's headers: (key, value) in order, repeated keys kept.
pub(crate) type HeaderList<'a> = Vec<(&'a str, Option<&'a [u8]>)>;

/// Why a message's headers cannot be read.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("a header key is not UTF-8, so the event's headers cannot be read")]
pub(crate) struct UnreadableHeaders;

/// Make the panic hook silent for the panics [`read`] catches (once per process).
fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !READING.with(Cell::get) {
                previous(info);
            }
        }));
    });
}

/// The headers of `message`.
pub(crate) fn read<'a>(
    message: &'a BorrowedMessage<'_>,
) -> Result<HeaderList<'a>, UnreadableHeaders> {
    let Some(headers) = message.headers() else {
        return Ok(Vec::new());
    };
    install_hook();
    READING.with(|r| r.set(true));
    let read = std::panic::catch_unwind(AssertUnwindSafe(|| {
        headers.iter().map(|h| (h.key, h.value)).collect::<Vec<_>>()
    }));
    READING.with(|r| r.set(false));
    read.map_err(|_| UnreadableHeaders)
}

/// The `content-type` header (Azure Schema Registry payloads carry one).
pub(crate) fn content_type<'a>(headers: &HeaderList<'a>) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .and_then(|(_, v)| *v)
        .and_then(|v| std::str::from_utf8(v).ok())
}
