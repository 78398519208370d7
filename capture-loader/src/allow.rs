//! Where `serve` may load from. An Event Grid notification names a `fileUrl`; without this
//! check the webhook would fetch any URL it is told to (a local file, another container, a
//! host of the sender's choosing) with the loader's own credentials, handing a SAS token or
//! an Entra ID bearer token to that host. Every `fileUrl` must fall under an allowed location
//! before anything is read; the check is pure (no I/O) and returns the canonical URL, the
//! one name the file is loaded and confirmed under.
//!
//! Allowed locations: `https://<account>.blob.core.windows.net/<container>[/<prefix>]` (any
//! cloud's suffix; a `dfs` host names the same account), or `http://` on a loopback host for
//! a storage emulator (`http://127.0.0.1:10000/devstoreaccount1/<container>[/<prefix>]`).
//! Paths match by whole segments after percent-decoding; `.`, `..`, empty segments,
//! backslashes, user info, queries and fragments are refused.

#[derive(Debug, Clone, PartialEq, Eq)]
struct Location {
    scheme: String,
    /// Lower-case host (and port), `dfs` folded into `blob`.
    authority: String,
    segments: Vec<String>,
}

/// Why a URL is refused. Says what was wrong, never anything fetched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("not an https Blob Storage URL (plain http only on a loopback emulator)")]
    Scheme,
    #[error("the URL has user info, a query or a fragment")]
    Decoration,
    #[error("the path has `.`, `..`, empty or malformed segments")]
    Path,
    #[error("not under any location this webhook was started with (--allow-location)")]
    NotAllowed,
}

#[derive(Debug, Clone, Default)]
pub struct AllowList(Vec<Location>);

impl AllowList {
    /// Parse `--allow-location` values; each must name at least a container.
    pub fn parse(locations: &[String]) -> Result<Self, String> {
        let mut allowed = Vec::new();
        for l in locations {
            let location = parse(l.trim_end_matches('/'))
                .map_err(|e| format!("--allow-location `{l}`: {e}"))?;
            let needed = if is_loopback(&location.authority) {
                2
            } else {
                1
            };
            if location.segments.len() < needed {
                return Err(format!(
                    "--allow-location `{l}` names no container: give https://<account>.blob.core.windows.net/<container>[/<prefix>]"
                ));
            }
            allowed.push(location);
        }
        Ok(Self(allowed))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The canonical URL of `file_url` when it is under an allowed location.
    pub fn check(&self, file_url: &str) -> Result<String, Refused> {
        let location = parse(file_url)?;
        let allowed = self.0.iter().any(|a| {
            a.scheme == location.scheme
                && a.authority == location.authority
                && location.segments.len() > a.segments.len()
                && location.segments.starts_with(&a.segments)
        });
        if !allowed {
            return Err(Refused::NotAllowed);
        }
        Ok(format!(
            "{}://{}/{}",
            location.scheme,
            location.authority,
            location
                .segments
                .iter()
                .map(|s| encode_segment(s))
                .collect::<Vec<_>>()
                .join("/")
        ))
    }
}

fn is_loopback(authority: &str) -> bool {
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    matches!(host, "127.0.0.1" | "::1" | "localhost")
}

fn parse(url: &str) -> Result<Location, Refused> {
    let (scheme, rest) = url.split_once("://").ok_or(Refused::Scheme)?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "https" && scheme != "http" {
        return Err(Refused::Scheme);
    }
    if rest.contains(['?', '#']) {
        return Err(Refused::Decoration);
    }
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if authority.contains('@') || authority.is_empty() {
        return Err(Refused::Decoration);
    }
    let mut authority = authority.to_ascii_lowercase();
    match scheme.as_str() {
        "https" => {
            // <account>.dfs.<suffix> is the same account as <account>.blob.<suffix>.
            if let Some((account, suffix)) = authority.split_once(".dfs.") {
                authority = format!("{account}.blob.{suffix}");
            }
            if !authority.contains(".blob.") {
                return Err(Refused::Scheme);
            }
        }
        "http" if is_loopback(&authority) => {}
        _ => return Err(Refused::Scheme),
    }
    let mut segments = Vec::new();
    for raw in path.split('/') {
        let segment = eventhubs_kafka::percent::decode_strict(raw).ok_or(Refused::Path)?;
        if segment.is_empty()
            || segment == "."
            || segment == ".."
            || segment.contains(['/', '\\'])
            || segment.chars().any(char::is_control)
        {
            return Err(Refused::Path);
        }
        segments.push(segment);
    }
    Ok(Location {
        scheme,
        authority,
        segments,
    })
}

fn encode_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'=' | b':' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> AllowList {
        AllowList::parse(&[
            "https://acme.blob.core.windows.net/capture/ns1".to_string(),
            "http://127.0.0.1:10000/devstoreaccount1/capture".to_string(),
        ])
        .unwrap()
    }

    #[test]
    fn files_under_an_allowed_location_pass_in_canonical_form() {
        let l = list();
        assert_eq!(
            l.check(
                "https://acme.blob.core.windows.net/capture/ns1/hub/0/2026/11/22/08/00/00.avro"
            ),
            Ok(
                "https://acme.blob.core.windows.net/capture/ns1/hub/0/2026/11/22/08/00/00.avro"
                    .into()
            )
        );
        // ADLS Gen2's dfs name is the same account, loaded and confirmed under the blob name.
        assert_eq!(
            l.check("https://ACME.dfs.core.windows.net/capture/ns1/hub/0/x.avro"),
            Ok("https://acme.blob.core.windows.net/capture/ns1/hub/0/x.avro".into())
        );
        assert!(
            l.check("http://127.0.0.1:10000/devstoreaccount1/capture/a/b.avro")
                .is_ok()
        );
    }

    #[test]
    fn everything_else_is_refused() {
        let l = list();
        for (url, why) in [
            ("/etc/passwd", Refused::Scheme),
            ("file:///etc/passwd", Refused::Scheme),
            ("az://capture/ns1/x.avro", Refused::Scheme),
            (
                "https://evil.example.com/capture/ns1/x.avro",
                Refused::Scheme,
            ),
            (
                "http://acme.blob.core.windows.net/capture/ns1/x.avro",
                Refused::Scheme,
            ),
            (
                "https://other.blob.core.windows.net/capture/ns1/x.avro",
                Refused::NotAllowed,
            ),
            (
                "https://acme.blob.core.windows.net/other/ns1/x.avro",
                Refused::NotAllowed,
            ),
            (
                "https://acme.blob.core.windows.net/capture/ns10/x.avro",
                Refused::NotAllowed,
            ),
            (
                "https://acme.blob.core.windows.net/capture/ns1",
                Refused::NotAllowed,
            ),
            (
                "https://acme.blob.core.windows.net/capture/ns1/../../other/x.avro",
                Refused::Path,
            ),
            (
                "https://acme.blob.core.windows.net/capture/ns1/%2e%2e/x.avro",
                Refused::Path,
            ),
            (
                "https://acme.blob.core.windows.net/capture/ns1/a%2Fb.avro",
                Refused::Path,
            ),
            (
                "https://acme.blob.core.windows.net/capture/ns1//x.avro",
                Refused::Path,
            ),
            (
                "https://acme.blob.core.windows.net/capture/ns1/%zz.avro",
                Refused::Path,
            ),
            (
                "https://acme.blob.core.windows.net@evil.example.com/capture/ns1/x.avro",
                Refused::Decoration,
            ),
            (
                "https://acme.blob.core.windows.net/capture/ns1/x.avro?sv=1&sig=x",
                Refused::Decoration,
            ),
            (
                "http://127.0.0.1:10001/devstoreaccount1/capture/x.avro",
                Refused::NotAllowed,
            ),
            (
                "http://127.0.0.1:10000/devstoreaccount1/capture2/x.avro",
                Refused::NotAllowed,
            ),
        ] {
            assert_eq!(l.check(url), Err(why), "{url}");
        }
    }

    #[test]
    fn allowed_locations_must_name_a_container() {
        for bad in [
            "https://acme.blob.core.windows.net",
            "https://acme.blob.core.windows.net/",
            "http://127.0.0.1:10000/devstoreaccount1",
            "http://example.com/devstoreaccount1/capture",
            "https://example.com/capture",
        ] {
            assert!(AllowList::parse(&[bad.to_string()]).is_err(), "{bad}");
        }
    }
}
