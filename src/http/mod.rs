//! The admin HTTP port (axum): `/metrics` (Prometheus text), `/health` (the process answers) and
//! `/ready` (the broker can do its job: data directory writable, enough free disk, metadata log
//! replayed, object store reachable when a topic is tiered). Each readiness check is named in the
//! JSON body so an operator sees which one failed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::broker::Broker;

#[derive(Serialize)]
struct Check {
    name: &'static str,
    ok: bool,
    detail: String,
}

#[derive(Serialize)]
struct Readiness {
    ready: bool,
    checks: Vec<Check>,
}

pub async fn serve(listener: TcpListener, broker: Arc<Broker>, mut stop: watch::Receiver<bool>) {
    let app = Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(broker);
    let shutdown = async move {
        let _ = stop.changed().await;
    };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::warn!(error = %e, "admin http server stopped");
    }
}

async fn health() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn metrics(State(broker): State<Arc<Broker>>) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        crate::metrics::get().render(&broker),
    )
}

fn data_dir_writable(broker: &Broker) -> Check {
    let probe = broker.config.data_dir.join(".ready-probe");
    let started = Instant::now();
    let result = (|| -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&probe)?;
        f.write_all(b"ok")?;
        f.sync_data()?;
        std::fs::remove_file(&probe)
    })();
    let elapsed = started.elapsed();
    match result {
        Ok(()) if elapsed < Duration::from_secs(2) => Check {
            name: "data_dir_writable",
            ok: true,
            detail: format!("write+fsync took {} ms", elapsed.as_millis()),
        },
        Ok(()) => Check {
            name: "data_dir_writable",
            ok: false,
            detail: format!("write+fsync took {} ms (too slow)", elapsed.as_millis()),
        },
        Err(e) => Check {
            name: "data_dir_writable",
            ok: false,
            detail: e.to_string(),
        },
    }
}

fn free_disk(broker: &Broker) -> Check {
    let min = broker.config.http.ready_min_free_bytes;
    match nix::sys::statvfs::statvfs(&broker.config.data_dir) {
        Ok(s) => {
            let free = s.blocks_available() * s.fragment_size();
            Check {
                name: "free_disk",
                ok: free >= min,
                detail: format!("{free} bytes free, at least {min} required"),
            }
        }
        Err(e) => Check {
            name: "free_disk",
            ok: false,
            detail: e.to_string(),
        },
    }
}

async fn object_store(broker: &Broker) -> Option<Check> {
    let remote = broker.remote.as_ref()?;
    let tiered = broker.topics().iter().any(|t| {
        t.partitions()
            .first()
            .is_some_and(|p| p.log_config().remote_storage)
    });
    if !tiered {
        return None;
    }
    Some(
        match tokio::time::timeout(Duration::from_secs(5), remote.probe()).await {
            Ok(Ok(())) => Check {
                name: "object_store",
                ok: true,
                detail: "reachable".into(),
            },
            Ok(Err(e)) => Check {
                name: "object_store",
                ok: false,
                detail: e.to_string(),
            },
            Err(_) => Check {
                name: "object_store",
                ok: false,
                detail: "no answer within 5 s".into(),
            },
        },
    )
}

async fn ready(State(broker): State<Arc<Broker>>) -> impl IntoResponse {
    let b = broker.clone();
    let local = tokio::task::spawn_blocking(move || vec![data_dir_writable(&b), free_disk(&b)])
        .await
        .unwrap_or_default();
    let mut checks = local;
    checks.push(Check {
        name: "metadata_log",
        ok: true,
        detail: format!(
            "replayed up to record {}",
            broker.metadata.read(|s| s.last_index)
        ),
    });
    if let Some(c) = object_store(&broker).await {
        checks.push(c);
    }
    let ready = checks.iter().all(|c| c.ok);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(Readiness { ready, checks }))
}
