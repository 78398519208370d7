//! How values look in JSON, in one place: strings escaped as serde_json escapes them,
//! integers and floats without the formatting machinery, Avro's timestamps as RFC 3339 and
//! dates as `YYYY-MM-DD`, bytes as text or base64. Written straight into a byte buffer for
//! the hot paths (the consumer's lines, the Avro → JSON text decoder), or as `serde_json`
//! values for the renderers of decoded values (Avro value trees, Capture's properties).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Datelike, NaiveDate, SecondsFormat, Timelike, Utc};
use serde_json::Value as Json;

/// `s` as a JSON string: `"` and `\` escaped, control characters as `\n`, `\t`, ... or
/// `\u00XX`, everything else as it is (the same bytes as `serde_json::to_writer`).
pub fn string(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        start = i + 1;
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
        }
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// An integer in decimal.
pub fn integer(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// A float as serde_json writes it (shortest round-trip form); `null` when it is not
/// finite, which JSON cannot express.
pub fn float(out: &mut Vec<u8>, f: f64) {
    if f.is_finite() {
        let _ = serde_json::to_writer(&mut *out, &f);
    } else {
        out.extend_from_slice(b"null");
    }
}

/// A UTC time as an RFC 3339 string ending in `Z`, with 3, 6 or 9 digits of fractional
/// seconds for `Millis`, `Micros` and `Nanos`: the same text as chrono's
/// `to_rfc3339_opts(format, true)`, without building a `String` (chrono writes the rare
/// cases: years outside 0..=9999, leap seconds, other formats).
pub fn time(out: &mut Vec<u8>, t: &DateTime<Utc>, format: SecondsFormat) {
    // The UTC fields, read once (each accessor of a DateTime applies its offset again).
    let t = t.naive_utc();
    let nanos = t.nanosecond();
    let (digits, fraction) = match format {
        SecondsFormat::Millis => (3, nanos / 1_000_000),
        SecondsFormat::Micros => (6, nanos / 1_000),
        SecondsFormat::Nanos => (9, nanos),
        _ => (0, 0),
    };
    let year = t.year();
    if digits == 0 || !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        string(out, &t.and_utc().to_rfc3339_opts(format, true));
        return;
    }
    out.push(b'"');
    padded(out, year.unsigned_abs(), 4);
    out.push(b'-');
    padded(out, t.month(), 2);
    out.push(b'-');
    padded(out, t.day(), 2);
    out.push(b'T');
    padded(out, t.hour(), 2);
    out.push(b':');
    padded(out, t.minute(), 2);
    out.push(b':');
    padded(out, t.second(), 2);
    out.push(b'.');
    padded(out, fraction, digits);
    out.extend_from_slice(b"Z\"");
}

/// The unit of Avro's `timestamp-millis`, `-micros` and `-nanos`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    Millis,
    Micros,
    Nanos,
}

impl TimeUnit {
    /// The instant `raw` units after the epoch, if chrono can hold it.
    pub fn instant(self, raw: i64) -> Option<DateTime<Utc>> {
        match self {
            Self::Millis => DateTime::from_timestamp_millis(raw),
            Self::Micros => DateTime::from_timestamp_micros(raw),
            Self::Nanos => Some(DateTime::from_timestamp_nanos(raw)),
        }
    }

    /// The fractional digits its text shows.
    pub fn format(self) -> SecondsFormat {
        match self {
            Self::Millis => SecondsFormat::Millis,
            Self::Micros => SecondsFormat::Micros,
            Self::Nanos => SecondsFormat::Nanos,
        }
    }
}

/// A timestamp as an RFC 3339 string, or its number when no date can hold it.
pub fn timestamp(out: &mut Vec<u8>, raw: i64, unit: TimeUnit) {
    match unit.instant(raw) {
        Some(t) => time(out, &t, unit.format()),
        None => integer(out, raw),
    }
}

/// [`timestamp`] as a JSON value.
pub fn timestamp_value(raw: i64, unit: TimeUnit) -> Json {
    match unit.instant(raw) {
        Some(t) => Json::String(t.to_rfc3339_opts(unit.format(), true)),
        None => Json::from(raw),
    }
}

/// Avro's `date` (days since the epoch) as `YYYY-MM-DD`, if a date can hold it.
pub fn date(days: i64) -> Option<String> {
    NaiveDate::from_ymd_opt(1970, 1, 1)
        .and_then(|d| d.checked_add_signed(chrono::TimeDelta::try_days(days)?))
        .map(|d| d.format("%Y-%m-%d").to_string())
}

/// [`float`] as a JSON value.
pub fn float_value(f: f64) -> Json {
    serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number)
}

/// Bytes that are a property's value (Kafka headers arrive as bytes): text when they are
/// UTF-8, else `{"base64": …}`.
pub fn text_or_base64(bytes: &[u8]) -> Json {
    match std::str::from_utf8(bytes) {
        Ok(s) => Json::String(s.to_string()),
        Err(_) => serde_json::json!({ "base64": BASE64.encode(bytes) }),
    }
}

/// `n` in decimal, zero-padded to `width` digits (`n` has at most that many).
fn padded(out: &mut Vec<u8>, n: u32, width: usize) {
    let mut buffer = itoa::Buffer::new();
    let text = buffer.format(n).as_bytes();
    out.extend(std::iter::repeat_n(b'0', width.saturating_sub(text.len())));
    out.extend_from_slice(text);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(write: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        write(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn strings_are_escaped_exactly_as_serde_json_escapes_them() {
        let mut all: String = (0u8..128).map(char::from).collect();
        all.push_str("é€😀\u{2028}\u{7f}/ plain");
        for s in [all.as_str(), "", "\"", "\\", "a\"b\\c\nd", "\u{0}"] {
            assert_eq!(
                text(|o| string(o, s)),
                serde_json::to_string(s).unwrap(),
                "{s:?}"
            );
        }
    }

    #[test]
    fn numbers_are_written_as_serde_json_writes_them() {
        for n in [0i64, -1, 42, i64::MIN, i64::MAX] {
            assert_eq!(text(|o| integer(o, n)), n.to_string());
        }
        for f in [0.0, -0.0, 1.5, 21.3, 1e300, -2.5e-8, f64::MIN_POSITIVE] {
            assert_eq!(text(|o| float(o, f)), serde_json::to_string(&f).unwrap());
        }
        for f in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(text(|o| float(o, f)), "null");
        }
    }

    #[test]
    fn times_are_written_as_chrono_writes_them() {
        let mut samples = vec![
            0i64,
            1,
            -1,
            999,
            1_795_000_000_123,
            253_402_300_799_999,
            253_402_300_800_000,
            -62_167_219_200_000,
            -62_167_219_200_001,
        ];
        let mut rng = fastrand::Rng::with_seed(7);
        samples.extend((0..2000).map(|_| rng.i64(-70_000_000_000_000..70_000_000_000_000)));
        for ms in samples {
            for format in [
                SecondsFormat::Millis,
                SecondsFormat::Micros,
                SecondsFormat::Nanos,
                SecondsFormat::Secs,
            ] {
                let t = DateTime::from_timestamp_millis(ms).unwrap();
                let expected = serde_json::to_string(&t.to_rfc3339_opts(format, true)).unwrap();
                assert_eq!(text(|o| time(o, &t, format)), expected, "{ms} {format:?}");
            }
        }
        for unit in [TimeUnit::Millis, TimeUnit::Micros, TimeUnit::Nanos] {
            for raw in [0, -1, 1_795_000_000_123, i64::MAX, i64::MIN] {
                let value = timestamp_value(raw, unit);
                assert_eq!(
                    text(|o| timestamp(o, raw, unit)),
                    serde_json::to_string(&value).unwrap(),
                    "{raw} {unit:?}"
                );
            }
        }
        let nanos = DateTime::from_timestamp_nanos(1_795_000_000_123_456_789);
        assert_eq!(
            text(|o| time(o, &nanos, SecondsFormat::Nanos)),
            "\"2026-11-18T11:06:40.123456789Z\""
        );
    }
}
