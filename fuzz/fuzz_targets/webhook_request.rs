//! Any bytes as a webhook request body: a validation code, files, or a 400 reason, never a
//! panic; and no fileUrl outside the allowed location passes the allow-list.
#![no_main]

use std::sync::LazyLock;

use capture_loader::allow::AllowList;
use capture_loader::serve::{Request, parse_request};

static ALLOWED: LazyLock<AllowList> = LazyLock::new(|| {
    AllowList::parse(&["https://acme.blob.core.windows.net/capture/ns1".to_string()])
        .expect("allow-list")
});

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(Request::Files(files)) = parse_request(data) {
        for (url, _) in files {
            if let Ok(canonical) = ALLOWED.check(&url) {
                assert!(
                    canonical.starts_with("https://acme.blob.core.windows.net/capture/ns1/"),
                    "{url} passed as {canonical}"
                );
            }
        }
    }
});
