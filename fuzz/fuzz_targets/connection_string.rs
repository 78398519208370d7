//! Any text as an Event Hubs connection string: parsed or refused, never a panic, and a
//! refusal never repeats the key.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = eventhubs_kafka::connection_string::ConnectionString::parse(text) {
        let message = e.to_string();
        for segment in text.split(';') {
            if let Some((name, key)) = segment.split_once('=')
                && name.trim().eq_ignore_ascii_case("SharedAccessKey")
                && key.trim().len() >= 8
            {
                assert!(!message.contains(key.trim()), "the key leaked: {message}");
            }
        }
    }
});
