//! `producer`: parse arguments, start logging, run, map the outcome to an exit code.

use std::process::ExitCode;

use eventhubs_kafka::cli;

#[tokio::main]
async fn main() -> ExitCode {
    let (args, secrets_on_command_line) = cli::parse_args::<producer::Cli>();
    eventhubs_kafka::logging::init(args.log());
    for warning in secrets_on_command_line {
        tracing::warn!("{warning}");
    }
    let log = args.log().clone();
    eventhubs_kafka::logging::finish(producer::run(args).await, &log)
}
