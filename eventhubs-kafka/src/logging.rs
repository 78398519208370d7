//! Logging setup shared by the binaries: `tracing` to stderr (stdout is for data), text or
//! JSON, levels from `RUST_LOG` (default `info`). librdkafka's own log lines arrive through
//! the client context with target `librdkafka`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::cli::{LogArgs, LogFormat};

pub fn init(args: &LogArgs) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    // A second init (tests) is harmless: keep the first subscriber.
    let _ = match args.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// How every binary ends: the exit status for `result`. A fatal error is printed once: as
/// `error: …` in text mode, as one JSON log line under `--log-format json`. A closed stdout
/// (`… | head`) is not an error: the program ends quietly with status 0, as ripgrep does;
/// whatever was not written out was never committed.
pub fn finish<E>(
    result: Result<std::process::ExitCode, E>,
    args: &LogArgs,
) -> std::process::ExitCode
where
    E: std::ops::Deref<Target = dyn std::error::Error + Send + Sync + 'static>,
{
    let error = match result {
        Ok(code) => return code,
        Err(e) => e,
    };
    let mut chain: Vec<&(dyn std::error::Error + 'static)> = Vec::new();
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(&*error);
    while let Some(e) = next {
        chain.push(e);
        next = e.source();
    }
    if chain.iter().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    }) {
        return std::process::ExitCode::SUCCESS;
    }
    let mut message = String::new();
    for e in chain {
        let text = e.to_string();
        // Wrappers often repeat their cause's words: say each thing once.
        if !message.contains(&text) {
            if !message.is_empty() {
                message.push_str(": ");
            }
            message.push_str(&text);
        }
    }
    match args.log_format {
        LogFormat::Text => eprintln!("error: {message}"),
        LogFormat::Json => tracing::error!("{message}"),
    }
    std::process::ExitCode::from(2)
}
