//! The `chronik` command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use chronik::config::{CONFIG_ENV, Config, Overrides};

mod probe;

/// mimalloc rather than glibc's malloc: indexing allocates and frees several small strings and
/// maps per record; with glibc's the broker's RSS grew from 343 to 864 MB over three indexing
/// runs of 1 M records (376-425 MB with mimalloc), and a stand-alone indexing run of the same
/// records used 9 % less CPU (docs/performance.md, "Search").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Search a topic through a running broker's admin HTTP port.
    Search {
        /// The topic (it needs search.enabled=true).
        topic: String,
        /// Query string: `disk full`, `value:error AND json.level:warn`, `json.amount:[10 TO 20]`.
        query: String,
        /// Only records at or after this time (RFC 3339 or milliseconds since the epoch).
        #[arg(long)]
        from: Option<String>,
        /// Only records before this time (RFC 3339 or milliseconds since the epoch).
        #[arg(long)]
        to: Option<String>,
        /// Number of hits.
        #[arg(long, default_value_t = 20)]
        size: u64,
        /// Only these partitions (repeatable).
        #[arg(long = "partition")]
        partitions: Vec<i32>,
        /// score, timestamp, -timestamp (newest first), offset or -offset.
        #[arg(long, default_value = "score")]
        sort: String,
        /// Print the broker's JSON answer instead of a table.
        #[arg(long)]
        json: bool,
        /// The broker's admin HTTP address.
        #[arg(long, default_value = "127.0.0.1:9644", env = "CHRONIK_SEARCH_HTTP")]
        http: String,
    },
    /// Ask a node for the brokers its Metadata lists (one line each: node_id host:port rack),
    /// the controller id and the cluster id; fails when nothing answers.
    Brokers {
        /// A node's Kafka listener, host:port.
        #[arg(long, default_value = "127.0.0.1:9092")]
        bootstrap: String,
        /// Print one JSON object instead of lines.
        #[arg(long)]
        json: bool,
        /// Give up after this many milliseconds (connect, send and answer together).
        #[arg(long, default_value_t = 5000)]
        timeout_ms: u64,
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
        Command::Search {
            topic,
            query,
            from,
            to,
            size,
            partitions,
            sort,
            json,
            http,
        } => {
            let args = search_cli::Args {
                topic,
                query,
                from,
                to,
                size,
                partitions,
                sort,
                json,
                http,
            };
            match search_cli::run(&args) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("chronik search: {e}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
        Command::Brokers {
            bootstrap,
            json,
            timeout_ms,
        } => match probe::run(
            &bootstrap,
            json,
            std::time::Duration::from_millis(timeout_ms),
        ) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("chronik brokers: {e}");
                std::process::ExitCode::FAILURE
            }
        },
    }
}

mod search_cli {
    //! `chronik search`: one query against the admin HTTP port, printed as a table or JSON.

    use serde_json::{Value, json};

    pub struct Args {
        pub topic: String,
        pub query: String,
        pub from: Option<String>,
        pub to: Option<String>,
        pub size: u64,
        pub partitions: Vec<i32>,
        pub sort: String,
        pub json: bool,
        pub http: String,
    }

    fn time(s: &str) -> Value {
        match s.parse::<i64>() {
            Ok(ms) => json!(ms),
            Err(_) => json!(s),
        }
    }

    pub fn body(a: &Args) -> Result<Value, String> {
        let mut body = json!({
            "query": { "query_string": { "query": a.query } },
            "size": a.size,
        });
        let sort = match a.sort.as_str() {
            "score" | "_score" => json!(["_score"]),
            "timestamp" => json!([{ "timestamp": "asc" }]),
            "-timestamp" => json!([{ "timestamp": "desc" }]),
            "offset" => json!([{ "offset": "asc" }]),
            "-offset" => json!([{ "offset": "desc" }]),
            other => {
                return Err(format!(
                    "--sort {other}: use score, timestamp, -timestamp, offset or -offset"
                ));
            }
        };
        body["sort"] = sort;
        if a.from.is_some() || a.to.is_some() {
            let mut t = serde_json::Map::new();
            if let Some(f) = &a.from {
                t.insert("from".into(), time(f));
            }
            if let Some(to) = &a.to {
                t.insert("to".into(), time(to));
            }
            body["time"] = Value::Object(t);
        }
        if !a.partitions.is_empty() {
            body["partitions"] = json!(a.partitions);
        }
        Ok(body)
    }

    pub fn run(a: &Args) -> Result<(), String> {
        let body = body(a)?;
        let url = format!("http://{}/topics/{}/_search", a.http, a.topic);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut resp = agent
            .post(&url)
            .header("content-type", "application/json")
            .send(body.to_string())
            .map_err(|e| format!("{url}: {e}"))?;
        let status = resp.status();
        let text = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| format!("{url}: {e}"))?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| format!("{url} answered {status} with something that is not JSON: {e}"))?;
        if !status.is_success() {
            let reason = v["error"]["reason"].as_str().unwrap_or(&text);
            let kind = v["error"]["type"].as_str().unwrap_or("error");
            return Err(format!("{kind}: {reason}"));
        }
        if a.json {
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or(text));
            return Ok(());
        }
        print!("{}", table(&v));
        Ok(())
    }

    fn clip(s: &str, n: usize) -> String {
        let one_line: String = s
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        if one_line.chars().count() <= n {
            one_line
        } else {
            let mut out: String = one_line.chars().take(n - 1).collect();
            out.push('…');
            out
        }
    }

    fn rfc3339(ms: i64) -> String {
        use tantivy::time::{OffsetDateTime, format_description::well_known::Rfc3339};
        OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_else(|| ms.to_string())
    }

    pub fn table(v: &Value) -> String {
        let hits = v["hits"].as_array().cloned().unwrap_or_default();
        let mut out = format!(
            "{} hits in {} ms ({} shown)\n",
            v["total"],
            v["took_ms"],
            hits.len()
        );
        if hits.is_empty() {
            return out;
        }
        out.push_str(&format!(
            "{:>9} {:>12} {:<24} {:<20} {}\n",
            "PARTITION", "OFFSET", "TIMESTAMP", "KEY", "VALUE"
        ));
        for h in hits {
            let s = |k: &str| match &h[k] {
                Value::Null => "-".to_string(),
                Value::String(s) if h[format!("{k}_encoding")] == "base64" => format!("base64:{s}"),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out.push_str(&format!(
                "{:>9} {:>12} {:<24} {:<20} {}\n",
                h["partition"].to_string(),
                h["offset"].to_string(),
                rfc3339(h["timestamp"].as_i64().unwrap_or(-1)),
                clip(&s("key"), 20),
                clip(&s("value"), 100)
            ));
        }
        out
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn args() -> Args {
            Args {
                topic: "t".into(),
                query: "disk full".into(),
                from: Some("2026-03-01T00:00:00Z".into()),
                to: Some("1800000000000".into()),
                size: 5,
                partitions: vec![1],
                sort: "-timestamp".into(),
                json: false,
                http: "127.0.0.1:1".into(),
            }
        }

        #[test]
        fn flags_become_the_request_body() {
            let b = body(&args()).unwrap();
            assert_eq!(b["query"]["query_string"]["query"], "disk full");
            assert_eq!(b["time"]["from"], "2026-03-01T00:00:00Z");
            assert_eq!(b["time"]["to"], 1800000000000i64);
            assert_eq!(b["sort"], json!([{ "timestamp": "desc" }]));
            assert_eq!(b["partitions"], json!([1]));
            let mut bad = args();
            bad.sort = "size".into();
            assert!(body(&bad).is_err());
        }

        #[test]
        fn table_shows_text_and_marks_base64() {
            let v = json!({"total": 2, "took_ms": 3, "hits": [
                {"partition": 0, "offset": 7, "timestamp": 0, "key": null, "value": "disk full\non node 3"},
                {"partition": 1, "offset": 9, "timestamp": 1000, "key": "k", "value": "AAE=", "value_encoding": "base64"}
            ]});
            let t = table(&v);
            assert!(t.starts_with("2 hits in 3 ms (2 shown)"), "{t}");
            assert!(t.contains("disk full on node 3"), "{t}");
            assert!(t.contains("base64:AAE="), "{t}");
            assert!(t.contains("1970-01-01T00:00:01Z"), "{t}");
            // Columns line up: numbers are padded like the header.
            assert!(t.contains("        0            7 "), "{t}");
        }

        #[test]
        fn an_unreachable_broker_is_a_clear_error() {
            let e = run(&args()).unwrap_err();
            assert!(e.contains("127.0.0.1:1"), "{e}");
        }
    }
}

/// Raises the soft limit of open files to the hard limit: a broker needs about one descriptor
/// per partition plus one per connection (docs/operations.md, "Open files"), more than the usual
/// soft default of 1,024.
fn raise_open_file_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => tracing::info!(from = soft, to = hard, "raised the open-file limit"),
            Err(e) => tracing::warn!(soft, hard, error = %e, "cannot raise the open-file limit"),
        },
        Ok((soft, _)) => tracing::debug!(limit = soft, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot read the open-file limit"),
    }
}

async fn run(config: Config) -> std::io::Result<()> {
    raise_open_file_limit();
    if !config.cluster.is_broker() {
        return chronik::serve_controller(config, shutdown_signal()).await;
    }
    let first = config.listeners().remove(0);
    let listener = tokio::net::TcpListener::bind(&first.listen)
        .await
        .map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "cannot bind listener {} at {}: {e}",
                    first.name, first.listen
                ),
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
