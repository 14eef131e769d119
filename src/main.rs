//! The `chronik` command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use chronik::config::{CONFIG_ENV, Config, Overrides};

#[derive(Parser)]
#[command(
    name = "chronik",
    version,
    about = "A Kafka-compatible broker with tiered storage and search"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a broker.
    Serve {
        /// TOML configuration file (also CHRONIK_CONFIG).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Kafka listener address, e.g. 127.0.0.1:9092.
        #[arg(long)]
        listen: Option<String>,
        /// host:port advertised to clients.
        #[arg(long)]
        advertised: Option<String>,
        /// Data directory.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Broker id.
        #[arg(long)]
        node_id: Option<i32>,
        /// Admin HTTP address (/metrics, /health, /ready); empty turns it off.
        #[arg(long)]
        http_listen: Option<String>,
        /// Log format: text or json.
        #[arg(long, default_value = "text")]
        log_format: String,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            config,
            listen,
            advertised,
            data_dir,
            node_id,
            http_listen,
            log_format,
        } => {
            let filter =
                EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
            if log_format == "json" {
                tracing_subscriber::fmt()
                    .with_env_filter(filter)
                    .json()
                    .init();
            } else {
                tracing_subscriber::fmt().with_env_filter(filter).init();
            }
            let path = config.or_else(|| std::env::var_os(CONFIG_ENV).map(PathBuf::from));
            let overrides = Overrides {
                listen,
                advertised,
                data_dir,
                node_id,
                http_listen,
            };
            let config = match Config::load(path.as_deref(), std::env::vars(), &overrides) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("chronik: {e}");
                    return std::process::ExitCode::from(2);
                }
            };
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("chronik: cannot start runtime: {e}");
                    return std::process::ExitCode::FAILURE;
                }
            };
            match runtime.block_on(run(config)) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "broker failed");
                    eprintln!("chronik: {e}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
    }
}

async fn run(config: Config) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(&config.kafka.listen)
        .await
        .map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot bind {}: {e}", config.kafka.listen),
            )
        })?;
    chronik::serve(listener, config, shutdown_signal()).await
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; only Ctrl-C stops the broker");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
