//! Any bytes as a Capture file: a reason or a file, never a panic, a hang or a huge
//! allocation.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(file) = eventhubs_kafka::capture::read_capture(data) {
        // Every event read came out of these bytes.
        assert!(file.events.len() <= data.len());
    }
});
