//! The admin HTTP port (axum): `/metrics` (Prometheus text), `/health` (the process answers) and
//! `/ready` (the broker can do its job: data directory writable, enough free disk, metadata log
//! replayed, object store reachable when a topic is tiered). Each readiness check is named in the
//! JSON body so an operator sees which one failed.

mod auth;
mod cluster_search;
mod metrics;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::broker::Broker;
use crate::search::{SearchError, SearchManager};

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
        .route("/topics/{topic}/_search", get(search_get).post(search_post))
        .route("/topics/{topic}/_search/status", get(search_status))
        .layer(axum::middleware::from_fn_with_state(
            broker.clone(),
            auth::authenticate,
        ))
        .with_state(broker.clone())
        .into_make_service_with_connect_info::<auth::PeerAddr>();
    let shutdown = async move {
        let _ = stop.changed().await;
    };
    let served = if broker.config.http.tls {
        let source = match crate::network::tls::TlsSource::with_alpn(
            &broker.config.tls,
            crate::config::ClientAuth::None,
            vec![b"http/1.1".to_vec()],
        ) {
            Ok(s) => Arc::new(s),
            Err(e) => {
                tracing::error!(error = %e, "admin http: cannot set TLS up; the port stays closed");
                return;
            }
        };
        let tls = match crate::network::tls::TlsListener::new(listener, source) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "admin http: cannot listen");
                return;
            }
        };
        axum::serve(tls, app).with_graceful_shutdown(shutdown).await
    } else {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
    };
    if let Err(e) = served {
        tracing::warn!(error = %e, "admin http server stopped");
    }
}

type Reply = (StatusCode, Json<serde_json::Value>);

fn error_reply(status: StatusCode, kind: &str, reason: impl std::fmt::Display) -> Reply {
    (
        status,
        Json(serde_json::json!({ "error": { "type": kind, "reason": reason.to_string() } })),
    )
}

fn search_error(e: SearchError) -> Reply {
    match &e {
        SearchError::BadRequest(b) if b.parse => {
            error_reply(StatusCode::BAD_REQUEST, "parse_error", e)
        }
        SearchError::BadRequest(_) => error_reply(StatusCode::BAD_REQUEST, "bad_request", e),
        SearchError::UnknownTopic(_) => error_reply(StatusCode::NOT_FOUND, "unknown_topic", e),
        SearchError::Disabled(_) => error_reply(StatusCode::BAD_REQUEST, "search_disabled", e),
        SearchError::Unavailable(_) => {
            error_reply(StatusCode::SERVICE_UNAVAILABLE, "unavailable", e)
        }
    }
}

/// The topic if it exists and is searchable on a broker with search on.
fn searchable_topic(
    broker: &Broker,
    name: &str,
) -> Result<(Arc<SearchManager>, Arc<crate::replica::Topic>), SearchError> {
    let search = broker.search.clone().ok_or_else(|| {
        SearchError::Unavailable("[search] enabled is false on this broker".into())
    })?;
    let topic = broker
        .replicas
        .topic(name)
        .ok_or_else(|| SearchError::UnknownTopic(name.to_string()))?;
    // A broker of a cluster may hold no partition of the topic: then its configs tell.
    let enabled = match topic.partitions().first() {
        Some(p) => p.log_config().search_enabled,
        None => topic
            .configs
            .resolve(&broker.config.log)
            .is_ok_and(|c| c.search_enabled),
    };
    if !enabled {
        return Err(SearchError::Disabled(name.to_string()));
    }
    Ok((search, topic))
}

async fn run_search(
    broker: Arc<Broker>,
    caller: auth::Caller,
    topic: String,
    body: serde_json::Value,
    local_only: bool,
) -> Reply {
    if let Err(denied) = caller.may_read(&broker, &topic) {
        return denied;
    }
    let access = cluster_search::PeerAccess {
        https: broker.config.http.tls,
        authorization: caller.authorization.clone(),
        tls: broker.config.tls.clone(),
    };
    match cluster_search::search(broker, topic, body, local_only, access).await {
        Ok(v) => (StatusCode::OK, Json(v)),
        Err(e) => search_error(e),
    }
}

async fn search_post(
    State(broker): State<Arc<Broker>>,
    axum::Extension(caller): axum::Extension<auth::Caller>,
    Path(topic): Path<String>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Reply {
    // Another broker asking for the partitions this one leads.
    let local_only = headers
        .get(cluster_search::SCOPE_HEADER)
        .is_some_and(|v| v.as_bytes() == b"local");
    let body: serde_json::Value = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return error_reply(
                    StatusCode::BAD_REQUEST,
                    "parse_error",
                    format!("the body is not JSON: {e}"),
                );
            }
        }
    };
    run_search(broker, caller, topic, body, local_only).await
}

async fn search_get(
    State(broker): State<Arc<Broker>>,
    axum::Extension(caller): axum::Extension<auth::Caller>,
    Path(topic): Path<String>,
    Query(params): Query<std::collections::HashMap<String, String>>,
) -> Reply {
    let mut body = serde_json::Map::new();
    for (k, v) in &params {
        match k.as_str() {
            "q" => {
                body.insert(
                    "query".into(),
                    serde_json::json!({ "query_string": { "query": v } }),
                );
            }
            "size" | "from" => match v.parse::<u64>() {
                Ok(n) => {
                    body.insert(k.clone(), n.into());
                }
                Err(_) => {
                    return error_reply(
                        StatusCode::BAD_REQUEST,
                        "bad_request",
                        format!("{k} must be a number"),
                    );
                }
            },
            "sort" => {
                let (field, order) = match v.strip_prefix('-') {
                    Some(f) => (f, "desc"),
                    None => (v.as_str(), "asc"),
                };
                body.insert("sort".into(), serde_json::json!([{ field: order }]));
            }
            other => {
                return error_reply(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!("unknown parameter {other}; use q, size, from, sort"),
                );
            }
        }
    }
    run_search(
        broker,
        caller,
        topic,
        serde_json::Value::Object(body),
        false,
    )
    .await
}

async fn search_status(
    State(broker): State<Arc<Broker>>,
    axum::Extension(caller): axum::Extension<auth::Caller>,
    Path(topic): Path<String>,
) -> Reply {
    // The indexing state of a topic is what Kafka would call describing it.
    if let Err(denied) = caller.may(
        &broker,
        crate::security::acl::AclOperation::Describe,
        &topic,
    ) {
        return denied;
    }
    let Some(search) = broker.search.clone() else {
        return search_error(SearchError::Unavailable(
            "[search] enabled is false on this broker".into(),
        ));
    };
    let Some(t) = broker.replicas.topic(&topic) else {
        return search_error(SearchError::UnknownTopic(topic));
    };
    let enabled = t
        .partitions()
        .first()
        .is_some_and(|p| p.log_config().search_enabled);
    let partitions = search.status(&t);
    (
        StatusCode::OK,
        Json(serde_json::json!({ "topic": topic, "enabled": enabled, "partitions": partitions })),
    )
}

async fn health() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn metrics(State(broker): State<Arc<Broker>>) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        metrics::render(&broker),
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
    let tiered = broker.replicas.topics().iter().any(|t| {
        t.partitions()
            .first()
            .is_some_and(|p| p.log_config().remote_storage)
    });
    if !tiered {
        return None;
    }
    Some(
        match tokio::time::timeout(Duration::from_secs(5), remote.objects().probe()).await {
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
