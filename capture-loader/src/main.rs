//! `capture-loader`: parse arguments, start logging, run, map the outcome to an exit code.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let (args, secrets_on_command_line) = eventhubs_kafka::cli::parse_args::<capture_loader::Cli>();
    eventhubs_kafka::logging::init(args.log());
    for warning in secrets_on_command_line {
        tracing::warn!("{warning}");
    }
    let log = args.log().clone();
    eventhubs_kafka::logging::finish(capture_loader::run(args).await, &log)
}
