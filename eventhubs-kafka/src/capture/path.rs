//! Where a Capture file sits says what it holds: namespace, event hub, partition and the
//! start of its window, laid out by the archive name format. The default is
//! `{Namespace}/{EventHub}/{PartitionId}/{Year}/{Month}/{Day}/{Hour}/{Minute}/{Second}`;
//! a custom format has the same nine tokens in any order with any delimiters.
//!
//! One layout, both ways: [`NameFormat::locate`] reads a path (the capture-loader),
//! [`NameFormat::render`] writes one (the consumer's own Capture files).

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};

pub const DEFAULT_FORMAT: &str =
    "{Namespace}/{EventHub}/{PartitionId}/{Year}/{Month}/{Day}/{Hour}/{Minute}/{Second}";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Namespace,
    EventHub,
    PartitionId,
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
}

const TOKENS: [(&str, Token); 9] = [
    ("{Namespace}", Token::Namespace),
    ("{EventHub}", Token::EventHub),
    ("{PartitionId}", Token::PartitionId),
    ("{Year}", Token::Year),
    ("{Month}", Token::Month),
    ("{Day}", Token::Day),
    ("{Hour}", Token::Hour),
    ("{Minute}", Token::Minute),
    ("{Second}", Token::Second),
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Token(Token),
}

/// A parsed archive name format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameFormat {
    parts: Vec<Part>,
}

/// What a capture file's path says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureLocation {
    pub namespace: String,
    pub event_hub: String,
    pub partition_id: String,
    /// Start of the capture window the file covers (UTC).
    pub window_start: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameFormatError {
    #[error(
        "the archive name format must contain each of {{Namespace}}, {{EventHub}}, {{PartitionId}}, {{Year}}, {{Month}}, {{Day}}, {{Hour}}, {{Minute}}, {{Second}} exactly once; `{token}` is {problem}"
    )]
    Tokens {
        token: &'static str,
        problem: &'static str,
    },
    #[error("two tokens with nothing between them ({0}) cannot be told apart")]
    Adjacent(String),
}

impl NameFormat {
    pub fn parse(format: &str) -> Result<Self, NameFormatError> {
        for (name, _) in TOKENS {
            match format.matches(name).count() {
                0 => {
                    return Err(NameFormatError::Tokens {
                        token: name,
                        problem: "missing",
                    });
                }
                1 => {}
                _ => {
                    return Err(NameFormatError::Tokens {
                        token: name,
                        problem: "repeated",
                    });
                }
            }
        }
        let mut parts = Vec::new();
        let mut rest = format;
        while !rest.is_empty() {
            let next = TOKENS
                .iter()
                .filter_map(|(name, t)| rest.find(name).map(|at| (at, *name, *t)))
                .min_by_key(|(at, _, _)| *at);
            match next {
                Some((0, name, token)) => {
                    if matches!(parts.last(), Some(Part::Token(_))) {
                        return Err(NameFormatError::Adjacent(format.to_string()));
                    }
                    parts.push(Part::Token(token));
                    rest = &rest[name.len()..];
                }
                Some((at, _, _)) => {
                    parts.push(Part::Literal(rest[..at].to_string()));
                    rest = &rest[at..];
                }
                None => {
                    parts.push(Part::Literal(rest.to_string()));
                    rest = "";
                }
            }
        }
        Ok(Self { parts })
    }

    /// The path of the file for `location` (without `.avro`), as Capture names it: numbers
    /// zero-padded (year 4 digits, the rest 2).
    pub fn render(&self, location: &CaptureLocation) -> String {
        let t = location.window_start;
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(l) => out.push_str(l),
                Part::Token(token) => match token {
                    Token::Namespace => out.push_str(&location.namespace),
                    Token::EventHub => out.push_str(&location.event_hub),
                    Token::PartitionId => out.push_str(&location.partition_id),
                    Token::Year => out.push_str(&format!("{:04}", t.year())),
                    Token::Month => out.push_str(&format!("{:02}", t.month())),
                    Token::Day => out.push_str(&format!("{:02}", t.day())),
                    Token::Hour => out.push_str(&format!("{:02}", t.hour())),
                    Token::Minute => out.push_str(&format!("{:02}", t.minute())),
                    Token::Second => out.push_str(&format!("{:02}", t.second())),
                },
            }
        }
        out
    }

    /// Read a blob path (or a file path: only its end has to match the format; a leading
    /// container or folder and a `.avro` extension are allowed).
    pub fn locate(&self, path: &str) -> Option<CaptureLocation> {
        let path = path.replace('\\', "/");
        let path = path.strip_suffix(".avro").unwrap_or(&path);
        // Try every start position after a `/` (and the very start), so leading folders
        // need not be known.
        let starts = std::iter::once(0).chain(path.match_indices('/').map(|(i, _)| i + 1));
        starts.filter_map(|s| self.match_at(&path[s..])).next()
    }

    fn match_at(&self, text: &str) -> Option<CaptureLocation> {
        let mut values: Vec<(Token, &str)> = Vec::with_capacity(9);
        let mut rest = text;
        for (i, part) in self.parts.iter().enumerate() {
            match part {
                Part::Literal(l) => rest = rest.strip_prefix(l.as_str())?,
                Part::Token(t) => {
                    let end = match self.parts.get(i + 1) {
                        Some(Part::Literal(next)) => rest.find(next.as_str())?,
                        _ => rest.len(),
                    };
                    let value = &rest[..end];
                    if value.is_empty() || value.contains('/') {
                        return None;
                    }
                    values.push((*t, value));
                    rest = &rest[end..];
                }
            }
        }
        if !rest.is_empty() {
            return None;
        }
        let get = |t: Token| values.iter().find(|(k, _)| *k == t).map(|(_, v)| *v);
        let num = |t: Token| get(t)?.parse::<u32>().ok();
        let date = NaiveDate::from_ymd_opt(
            num(Token::Year)? as i32,
            num(Token::Month)?,
            num(Token::Day)?,
        )?;
        let time = date.and_hms_opt(num(Token::Hour)?, num(Token::Minute)?, num(Token::Second)?)?;
        let partition_id = get(Token::PartitionId)?;
        if !partition_id.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(CaptureLocation {
            namespace: get(Token::Namespace)?.to_string(),
            event_hub: get(Token::EventHub)?.to_string(),
            partition_id: partition_id.to_string(),
            window_start: time.and_utc(),
        })
    }
}

impl Default for NameFormat {
    fn default() -> Self {
        Self::parse(DEFAULT_FORMAT).unwrap_or(Self { parts: Vec::new() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_and_locate_are_one_layout() {
        let location = CaptureLocation {
            namespace: "myns".into(),
            event_hub: "telemetry".into(),
            partition_id: "3".into(),
            window_start: "2026-01-02T03:04:05Z".parse().unwrap(),
        };
        let default = NameFormat::default();
        assert_eq!(
            default.render(&location),
            "myns/telemetry/3/2026/01/02/03/04/05"
        );
        for format in [
            DEFAULT_FORMAT,
            "{Year}-{Month}-{Day}/{EventHub}_{Namespace}/p{PartitionId}/{Hour}h{Minute}m{Second}s",
        ] {
            let f = NameFormat::parse(format).unwrap();
            assert_eq!(
                f.locate(&f.render(&location)),
                Some(location.clone()),
                "{format}"
            );
        }
    }

    #[test]
    fn default_layout_with_container_prefix_and_extension() {
        let f = NameFormat::default();
        let loc = f
            .locate("https://acct.blob.core.windows.net/capture/myns/telemetry/3/2026/11/22/08/05/00.avro")
            .unwrap();
        assert_eq!(loc.namespace, "myns");
        assert_eq!(loc.event_hub, "telemetry");
        assert_eq!(loc.partition_id, "3");
        assert_eq!(loc.window_start.to_rfc3339(), "2026-11-22T08:05:00+00:00");
        // Files without `.avro` are Capture files too.
        assert!(f.locate("myns/telemetry/0/2026/01/02/03/04/05").is_some());
        assert!(
            f.locate("myns/telemetry/0/2026/13/02/03/04/05").is_none(),
            "month 13"
        );
        assert!(f.locate("myns/telemetry/p0/2026/01/02/03/04/05").is_none());
    }

    #[test]
    fn custom_formats_in_any_order_with_any_delimiters() {
        let f = NameFormat::parse(
            "{Year}-{Month}-{Day}/{EventHub}_{Namespace}/p{PartitionId}/{Hour}h{Minute}m{Second}s",
        )
        .unwrap();
        let loc = f
            .locate("archive/2025-06-30/orders_shop/p12/23h59m58s.avro")
            .unwrap();
        assert_eq!(
            (
                loc.namespace.as_str(),
                loc.event_hub.as_str(),
                loc.partition_id.as_str()
            ),
            ("shop", "orders", "12")
        );
        assert_eq!(loc.window_start.to_rfc3339(), "2025-06-30T23:59:58+00:00");
    }

    #[test]
    fn formats_without_all_nine_tokens_are_rejected() {
        let e = NameFormat::parse(
            "{Namespace}/{EventHub}/{Year}/{Month}/{Day}/{Hour}/{Minute}/{Second}",
        )
        .unwrap_err();
        assert!(e.to_string().contains("`{PartitionId}` is missing"), "{e}");
        let e = NameFormat::parse(&format!("{DEFAULT_FORMAT}/{{Year}}")).unwrap_err();
        assert!(e.to_string().contains("`{Year}` is repeated"), "{e}");
        assert!(matches!(
            NameFormat::parse(
                "{Namespace}{EventHub}/{PartitionId}/{Year}/{Month}/{Day}/{Hour}/{Minute}/{Second}"
            ),
            Err(NameFormatError::Adjacent(_))
        ));
    }
}
