//! Percent-decoding, once for the workspace: lenient (`%` not followed by two hex digits stays
//! as it is, as libpq and query strings are read) or strict (any malformed escape or
//! non-UTF-8 result refuses the text, as the webhook's allow-list needs).

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// `%XY` escapes decoded; anything else kept as it is.
pub fn decode_lenient(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(high), Some(low)) => {
                out.push(high * 16 + low);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// `None` for a malformed escape or a result that is not UTF-8.
pub fn decode_strict(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(hex(*bytes.get(i + 1)?)? * 16 + hex(*bytes.get(i + 2)?)?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_keeps_what_is_not_an_escape_and_strict_refuses_it() {
        assert_eq!(decode_lenient("a%2Fb%zz%4"), b"a/b%zz%4");
        assert_eq!(decode_lenient("é%"), "é%".as_bytes());
        assert_eq!(decode_strict("a%2Fb"), Some("a/b".into()));
        assert_eq!(decode_strict("a%zz"), None);
        assert_eq!(decode_strict("%4"), None);
        assert_eq!(decode_strict("%ff"), None);
    }
}
