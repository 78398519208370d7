//! The capture-loader: replays Event Hubs Capture files into PostgreSQL or SQLite, each
//! event exactly once.
//!
//! Data flow: [`load`] finds files and reads them with
//! [`eventhubs_kafka::capture::read_capture`], decodes bodies with the same
//! [`eventhubs_kafka::encoding::Decoder`] the consumer uses, and hands each file's rows to a
//! [`db::Store`], which writes them and the file's record in one transaction.

// A binary's internals are documented for its maintainers (`cargo doc
// --document-private-items`, as scripts/test runs it): its crate docs may name them.
#![allow(rustdoc::private_intra_doc_links)]

pub mod allow;
pub use eventhubs_kafka::db;
pub mod blob;
mod discover;
mod gaps;
mod health;
mod load;
mod report;
pub mod serve;
mod status;

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use eventhubs_kafka::capture::path::{DEFAULT_FORMAT, NameFormat};
use eventhubs_kafka::cli::{LogArgs, RegistryArgs};
use eventhubs_kafka::encoding::Decoder;
use eventhubs_kafka::secret::Secret;

/// Replay Event Hubs Capture files (Avro) into PostgreSQL or SQLite, exactly once. Exit
/// status: 0 when everything loaded (or was already loaded), 1 when a file failed or changed
/// since it was loaded, 2 when it could not run.
#[derive(Debug, Parser)]
#[command(name = "capture-loader", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load Capture files from files and folders (recursively)
    Load(LoadArgs),
    /// Load new Capture files as they appear: poll the sources every --interval until
    /// SIGINT/SIGTERM
    Watch(WatchArgs),
    /// The Event Grid webhook: load each Capture file as Event Grid announces it (the key
    /// comes from CAPTURE_LOADER_WEBHOOK_KEY)
    Serve(ServeArgs),
    /// Per namespace/event hub/partition: files, events, last sequence number and enqueue
    /// time, every gap in the loaded sequence numbers; failed files with their errors. Exit
    /// status 1 when there is a gap or a failed file (or a stale partition)
    Status(status::StatusArgs),
    /// Write a self-contained HTML report: events per minute per partition with the gaps on
    /// that timeline, per-sensor statistics, files per status, the loader's throughput
    Report(status::ReportArgs),
}

#[derive(Debug, Args)]
// Help text (clap) reads these comments: URLs stay plain text there.
#[allow(rustdoc::bare_urls)]
pub struct ServeArgs {
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,

    #[command(flatten)]
    pub loader: LoaderArgs,

    /// Largest request body accepted
    #[arg(long, default_value_t = 1 << 20)]
    pub max_body_bytes: usize,

    /// Where notified files may be: https://ACCOUNT.blob.core.windows.net/CONTAINER[/PREFIX]
    /// (repeatable, or comma-separated in the variable). A fileUrl anywhere else is refused
    /// (403) before anything is read
    #[arg(
        long,
        env = "CAPTURE_LOADER_ALLOWED_LOCATIONS",
        value_name = "URL",
        value_delimiter = ','
    )]
    pub allow_location: Vec<String>,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub load: LoadArgs,

    /// Time between polls
    #[arg(long, default_value = "30s", value_parser = eventhubs_kafka::cli::values::duration)]
    pub interval: std::time::Duration,
}

impl Cli {
    pub fn log(&self) -> &LogArgs {
        match &self.command {
            Command::Load(a) => &a.loader.db.log,
            Command::Watch(a) => &a.load.loader.db.log,
            Command::Serve(a) => &a.loader.db.log,
            Command::Status(a) => &a.db.log,
            Command::Report(a) => &a.db.log,
        }
    }
}

#[derive(Debug, Args)]
pub struct DbArgs {
    /// Database: postgres://… or sqlite://PATH
    #[arg(
        long,
        env = "DATABASE_URL",
        hide_env_values = true,
        default_value = "sqlite://capture.db"
    )]
    pub db: Secret,

    /// How to sign in to PostgreSQL
    #[arg(long, env = "DATABASE_AUTH", value_enum, default_value = "password")]
    pub db_auth: db::DbAuth,

    #[command(flatten)]
    pub log: LogArgs,
}

impl DbArgs {
    pub fn database(&self) -> anyhow::Result<db::Database> {
        db::Database::new(self.db.clone(), self.db_auth)
    }
}

/// What every loading command needs: the database, the registry for Confluent Avro
/// bodies, and how files are laid out.
#[derive(Debug, Args)]
pub struct LoaderArgs {
    #[command(flatten)]
    pub db: DbArgs,

    #[command(flatten)]
    pub registry: RegistryArgs,

    /// Archive name format the files are laid out by (all nine tokens, any order)
    #[arg(long, default_value = DEFAULT_FORMAT)]
    pub name_format: String,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Capture files and folders
    #[arg(required = true, value_name = "SOURCE")]
    pub sources: Vec<String>,

    #[command(flatten)]
    pub loader: LoaderArgs,

    /// Namespace for every file, instead of the one in its path
    #[arg(long)]
    pub namespace: Option<String>,

    /// Event hub for every file, instead of the one in its path
    #[arg(long)]
    pub event_hub: Option<String>,

    /// Partition for every file, instead of the one in its path
    #[arg(long)]
    pub partition: Option<String>,

    /// Only files whose window starts at or after this time (RFC 3339 or YYYY-MM-DD)
    #[arg(long, value_parser = discover::parse_time)]
    pub since: Option<chrono::DateTime<chrono::Utc>>,

    /// Only files whose window starts before this time (RFC 3339 or YYYY-MM-DD)
    #[arg(long, value_parser = discover::parse_time)]
    pub until: Option<chrono::DateTime<chrono::Utc>>,

    /// Print one JSON summary object on stdout
    #[arg(long)]
    pub summary_json: bool,

    /// Partitions loaded in parallel (files of one partition always load in order)
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Load(args) => run_load(args).await,
        Command::Watch(args) => run_watch(args).await,
        Command::Serve(args) => run_serve(args).await,
        Command::Status(args) => {
            tokio::task::spawn_blocking(move || status::run_status(args)).await?
        }
        Command::Report(args) => {
            tokio::task::spawn_blocking(move || status::run_report(args)).await?
        }
    }
}

/// A load, ready to run as often as needed.
pub struct Loader {
    db: db::Database,
    decoder: Decoder,
    options: std::sync::Arc<load::LoadOptions>,
    jobs: usize,
}

impl Loader {
    fn new(args: LoadArgs) -> anyhow::Result<Self> {
        let jobs = usize::from(args.jobs);
        Self::with_options(args.loader, jobs, |o| {
            o.sources = args.sources;
            o.namespace = args.namespace;
            o.event_hub = args.event_hub;
            o.partition = args.partition;
            o.since = args.since;
            o.until = args.until;
        })
    }

    /// A loader with no sources of its own: each call names its files (the webhook).
    fn without_sources(args: LoaderArgs) -> anyhow::Result<Self> {
        Self::with_options(args, 1, |_| {})
    }

    fn with_options(
        args: LoaderArgs,
        jobs: usize,
        customize: impl FnOnce(&mut load::LoadOptions),
    ) -> anyhow::Result<Self> {
        let mut options = load::LoadOptions::new(NameFormat::parse(&args.name_format)?);
        customize(&mut options);
        Ok(Self {
            db: args.db.database()?,
            decoder: Decoder::for_tools(args.registry.settings().as_ref())?,
            options: std::sync::Arc::new(options),
            jobs,
        })
    }

    /// One pass over the sources, on a blocking thread (the database clients are synchronous).
    async fn run(&self) -> anyhow::Result<load::Summary> {
        self.run_with(self.options.clone()).await
    }

    /// One pass over other sources, with the same options.
    pub async fn run_sources(&self, sources: Vec<String>) -> anyhow::Result<load::Summary> {
        let options = load::LoadOptions {
            sources,
            ..(*self.options).clone()
        };
        self.run_with(std::sync::Arc::new(options)).await
    }

    /// What the database knows of one source.
    pub async fn known_file(&self, source: &str) -> anyhow::Result<Option<db::KnownFile>> {
        let (db, source) = (self.db.clone(), source.to_string());
        tokio::task::spawn_blocking(move || db.open()?.known_file(&source)).await?
    }

    async fn run_with(
        &self,
        options: std::sync::Arc<load::LoadOptions>,
    ) -> anyhow::Result<load::Summary> {
        let (db, decoder, jobs) = (self.db.clone(), self.decoder.clone(), self.jobs);
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || load::load(&db, &decoder, &options, &runtime, jobs))
            .await?
    }
}

fn print_summary(summary: &load::Summary, json: bool) -> anyhow::Result<()> {
    if json {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", serde_json::to_string(summary)?)?;
        out.flush()?;
    } else {
        eprintln!(
            "capture-loader: {} files loaded, {} empty, {} already loaded, {} loaded elsewhere, {} changed, {} failed; {} events inserted, {} duplicates, {} bodies kept as bytes only; {:.2} s ({:.0} events/s)",
            summary.files_loaded,
            summary.files_empty,
            summary.files_skipped,
            summary.files_loaded_elsewhere,
            summary.files_changed,
            summary.files_failed,
            summary.events_inserted,
            summary.duplicates,
            summary.undecodable_bodies,
            summary.elapsed_ms as f64 / 1000.0,
            summary.events_per_sec
        );
    }
    Ok(())
}

async fn run_load(args: LoadArgs) -> anyhow::Result<ExitCode> {
    let json = args.summary_json;
    let summary = Loader::new(args)?.run().await?;
    print_summary(&summary, json)?;
    Ok(if summary.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn run_watch(args: WatchArgs) -> anyhow::Result<ExitCode> {
    let json = args.load.summary_json;
    let loader = Loader::new(args.load)?;
    let cancel = eventhubs_kafka::shutdown::on_signal();
    // The first pass must work (a wrong location or database is not worth polling); later
    // failures (a storage outage) are logged and retried at the next interval.
    let mut first = true;
    loop {
        match loader.run().await {
            Ok(summary) => {
                let news = summary.files_loaded
                    + summary.files_empty
                    + summary.files_failed
                    + summary.files_changed;
                if first || news > 0 {
                    print_summary(&summary, json)?;
                }
            }
            Err(e) if first => return Err(e),
            Err(e) => tracing::error!("poll failed, retrying in {:?}: {e:#}", args.interval),
        }
        first = false;
        tokio::select! {
            _ = cancel.cancelled() => return Ok(ExitCode::SUCCESS),
            _ = tokio::time::sleep(args.interval) => {}
        }
    }
}

async fn run_serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let key = std::env::var("CAPTURE_LOADER_WEBHOOK_KEY")
        .ok()
        .filter(|k| !k.is_empty())
        .context(
            "set CAPTURE_LOADER_WEBHOOK_KEY: the webhook refuses to run without a shared secret",
        )?;
    let allowed = allow::AllowList::parse(&args.allow_location).map_err(anyhow::Error::msg)?;
    if allowed.is_empty() {
        anyhow::bail!(
            "give --allow-location (CAPTURE_LOADER_ALLOWED_LOCATIONS): the storage locations notifications may name, e.g. https://<account>.blob.core.windows.net/capture; the webhook loads nothing else"
        );
    }
    let loader = Loader::without_sources(args.loader)?;
    // Migrate (and check the database) before accepting notifications.
    loader.known_file("").await?;
    serve::serve(
        args.listen,
        serve::Webhook {
            loader,
            key: Secret::new(key),
            allowed,
            max_body_bytes: args.max_body_bytes,
            lock: tokio::sync::Mutex::new(()),
        },
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}
