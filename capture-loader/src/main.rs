//! `capture-loader`: parse arguments, start logging, run, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let args = capture_loader::Cli::parse();
    eventhubs_kafka::logging::init(args.log());
    let log = args.log().clone();
    eventhubs_kafka::logging::finish(capture_loader::run(args).await, &log)
}
