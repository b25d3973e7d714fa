//! The `trackedge` binary: arguments → config → run until a signal.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use trackedge::config::{Config, ConfigError};

/// Exit code for bad configuration (EX_USAGE).
const EXIT_CONFIG: u8 = 64;

#[derive(Parser)]
#[command(
    name = "trackedge",
    version,
    about = "Affiliate click and conversion tracking edge service"
)]
struct Args {
    /// TOML config file; a missing default file is fine, a missing named
    /// one is an error.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (migrates ClickHouse first).
    Serve {
        /// Skip the schema migration.
        #[arg(long)]
        no_migrate: bool,
    },
    /// Create or upgrade the ClickHouse schema and set the retention TTLs,
    /// then exit.
    Migrate,
    /// Validate and print the effective config, secrets masked.
    CheckConfig,
    /// Print the admin API's OpenAPI document (committed as
    /// `docs/openapi.json`), or with `--partner` the partner API's
    /// (`docs/partner-openapi.json`), then exit.
    Openapi {
        /// The partner API's document instead of the admin API's.
        #[arg(long)]
        partner: bool,
    },
}

fn main() -> ExitCode {
    tune_malloc();
    let args = Args::parse();
    if let Command::Openapi { partner } = args.command {
        let doc = if partner {
            trackedge::http::partner::openapi()
        } else {
            trackedge::http::admin::openapi()
        };
        let doc = doc
            .to_pretty_json()
            .expect("the generated document serializes");
        println!("{doc}");
        return ExitCode::SUCCESS;
    }
    let (path, required) = match &args.config {
        Some(p) => (p.clone(), true),
        None => (PathBuf::from("config/trackedge.toml"), false),
    };
    let config = match Config::load(&path, required, std::env::vars()) {
        Ok(c) => c,
        Err(e) => return config_error(e),
    };
    if let Command::CheckConfig = args.command {
        print!("{}", config.masked_toml());
        return ExitCode::SUCCESS;
    }
    if let Command::Serve { .. } = args.command {
        if let Err(e) = config.validate_for_serve() {
            return config_error(e);
        }
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    // One CPU: one thread runs everything, requests and the shipper's
    // slices alike, with no work-stealing bookkeeping; more: the requests
    // get a thread per core (trackedge::http::cores) and this runtime
    // keeps the rest.
    let mut builder = if trackedge::http::cores::request_threads() == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = match builder
        .enable_all()
        // Workers and the blocking pool alike (see trackedge::sched).
        .on_thread_start(|| {
            trackedge::sched::shorten_slice();
        })
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match args.command {
            Command::Serve { no_migrate } => {
                let stop = CancellationToken::new();
                tokio::spawn(cancel_on_signal(stop.clone()));
                trackedge::app::run(config, !no_migrate, stop).await
            }
            Command::Migrate => {
                let n = trackedge::app::migrate(&config)
                    .await
                    .map_err(|e| anyhow::anyhow!("migration failed at {}: {e}", config.clickhouse.url))?;
                info!(database = %config.clickhouse.database, statements = n, "clickhouse schema is up to date");
                Ok(())
            }
            Command::CheckConfig | Command::Openapi { .. } => {
                unreachable!("handled before the runtime starts")
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<ConfigError>().is_some() => {
            let ce = e.downcast::<ConfigError>().expect("checked just above");
            error!("{ce}");
            config_error(ce)
        }
        Err(e) => {
            error!("{e:#}");
            eprintln!("trackedge: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Keeps glibc malloc from handing freed memory back to the kernel after
/// every shipped batch (tens of MB), which costs a page fault per page when
/// the next batch touches it again (~0.1 µs per redirect, measured), while
/// bounding what it retains.
fn tune_malloc() {
    // SAFETY: mallopt only sets allocator parameters; called before any
    // thread starts.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, 16 << 20);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        // An arena for each thread that allocates (main, request worker,
        // shipper, spool upkeep, blocking pool): threads sharing one wait
        // on its lock, and a thread preempted while holding it (the
        // low-priority shipper often is) would stall the request worker.
        libc::mallopt(libc::M_ARENA_MAX, 8);
    }
}

fn config_error(e: ConfigError) -> ExitCode {
    eprintln!("trackedge: {e}");
    ExitCode::from(EXIT_CONFIG)
}

/// Cancels `stop` on SIGTERM or SIGINT.
async fn cancel_on_signal(stop: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    tokio::select! {
        _ = term.recv() => info!(signal = "SIGTERM", "stopping"),
        _ = int.recv() => info!(signal = "SIGINT", "stopping"),
    }
    stop.cancel();
}
