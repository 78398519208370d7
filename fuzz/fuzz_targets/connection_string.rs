//! Any text as an Event Hubs connection string: parsed or refused, never a panic, and a
//! refusal never repeats the key. The key check is differential: every `SharedAccessKey`
//! value is replaced by a sentinel no refusal may contain, so text that merely happens to
//! match the message's own words cannot pass for a leak.
#![no_main]

const SENTINEL: &str = "Zq7SENTINELkey9x";

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = eventhubs_kafka::connection_string::ConnectionString::parse(text);
    let with_sentinel: Vec<String> = text
        .split(';')
        .map(|segment| match segment.split_once('=') {
            Some((name, _)) if name.trim().eq_ignore_ascii_case("SharedAccessKey") => {
                format!("{name}={SENTINEL}")
            }
            _ => segment.to_string(),
        })
        .collect();
    if let Err(e) =
        eventhubs_kafka::connection_string::ConnectionString::parse(&with_sentinel.join(";"))
    {
        let message = e.to_string();
        assert!(!message.contains(SENTINEL), "the key leaked: {message}");
    }
});
