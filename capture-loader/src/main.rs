//! `capture-loader`: parse arguments, start logging, run, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let args = capture_loader::Cli::parse();
    eventhubs_kafka::logging::init(args.log());
    match capture_loader::run(args).await {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
