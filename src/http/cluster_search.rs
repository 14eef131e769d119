//! A search in a cluster: this broker answers for the partitions it leads (their local index and
//! remote splits) and asks the leader of every other partition for its best `from + size` hits
//! of those partitions, then merges them into one page. The leader answers for the whole
//! partition, so the hits, their order, `total` and the pages are those a single node holding
//! every partition would give. A leader that does not answer within `[search] peer_timeout_ms`
//! (or has no admin address, or no leader at all) does not hold the query up: its partitions are
//! searched in the remote tier only and listed under `missing`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::broker::Broker;
use crate::search::query::SortKey;
use crate::search::{Collected, Missing, Part, PeerAnswer, SearchError};

/// Set on the requests brokers send each other: answer from this broker alone.
pub const SCOPE_HEADER: &str = "x-chronik-search-scope";
/// Largest answer read from another broker.
const PEER_BODY_LIMIT: u64 = 256 << 20;

/// Who answers for the partitions of a query.
struct Plan {
    /// Searched here.
    local: Vec<Part>,
    /// leader → (its admin address, the partitions asked of it)
    peers: BTreeMap<i32, (String, Vec<i32>)>,
    /// Not answered in full, and why.
    missing: Vec<Missing>,
}

fn plan(
    broker: &Broker,
    topic: &crate::replica::Topic,
    wanted: &dyn Fn(i32) -> bool,
    local_only: bool,
) -> Plan {
    let mut plan = Plan {
        local: Vec::new(),
        peers: BTreeMap::new(),
        missing: Vec::new(),
    };
    let remote_only = |plan: &mut Plan, partition: i32, leader: i32, reason: String| {
        plan.local.push(Part {
            partition,
            remote_only: true,
        });
        plan.missing.push(Missing {
            partition,
            leader,
            remote_searched: true,
            reason,
        });
    };
    for index in 0..topic.partition_count() {
        if !wanted(index) {
            continue;
        }
        let full = Part {
            partition: index,
            remote_only: false,
        };
        let held = topic.partition(index);
        if held.as_ref().is_some_and(|p| p.is_leader()) {
            plan.local.push(full);
            continue;
        }
        let (leader, http) = broker.metadata.read(|s| {
            let leader = s.placement(topic.id, index).map(|pl| pl.leader);
            let http = leader.and_then(|l| s.broker_http.get(&l).cloned());
            (leader, http)
        });
        match (leader, http) {
            // A single node: no placements, it holds every partition.
            (None, _) if held.is_some() => plan.local.push(full),
            (None, _) => continue,
            (Some(l), _) if l == broker.node_id => plan.local.push(full),
            (Some(l), _) if local_only => remote_only(
                &mut plan,
                index,
                l,
                format!(
                    "broker {} does not lead it (broker {l} does)",
                    broker.node_id
                ),
            ),
            (Some(-1), _) => remote_only(&mut plan, index, -1, "it has no leader".into()),
            (Some(l), None) => remote_only(
                &mut plan,
                index,
                l,
                format!("its leader, broker {l}, advertised no admin HTTP address"),
            ),
            (Some(l), Some(addr)) => plan
                .peers
                .entry(l)
                .or_insert_with(|| (addr, Vec::new()))
                .1
                .push(index),
        }
    }
    plan
}

/// How this broker reaches its peers' admin ports: over HTTPS when its own port is, with the
/// asking client's credentials (the peer checks them again).
#[derive(Clone)]
pub struct PeerAccess {
    pub https: bool,
    pub authorization: Option<String>,
    pub tls: crate::config::TlsConfig,
}

/// Asks `addr` for the best `limit` hits of `partitions`. Blocking.
#[allow(clippy::too_many_arguments)]
fn ask(
    addr: &str,
    access: &PeerAccess,
    topic: &str,
    body: &Value,
    partitions: &[i32],
    limit: usize,
    sort: crate::search::query::Sort,
    timeout: Duration,
) -> Result<(PeerAnswer, Vec<Missing>), String> {
    let mut body = body.clone();
    if let Some(obj) = body.as_object_mut() {
        obj.insert("partitions".into(), serde_json::json!(partitions));
        obj.insert("from".into(), 0.into());
        obj.insert("size".into(), limit.into());
    }
    let scheme = if access.https { "https" } else { "http" };
    let url = format!("{scheme}://{addr}/topics/{topic}/_search");
    let agent = crate::network::tls::http_agent(&access.tls, timeout);
    let mut request = agent
        .post(&url)
        .header("content-type", "application/json")
        .header(SCOPE_HEADER, "local");
    if let Some(a) = &access.authorization {
        request = request.header("authorization", a);
    }
    let mut resp = request.send(body.to_string()).map_err(|e| e.to_string())?;
    let status = resp.status();
    let text = resp
        .body_mut()
        .with_config()
        .limit(PEER_BODY_LIMIT)
        .read_to_string()
        .map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))?;
    if !status.is_success() {
        let reason = v["error"]["reason"].as_str().unwrap_or(&text);
        return Err(format!("it answered {status}: {reason}"));
    }
    let count = |name: &str| v["splits"][name].as_u64().unwrap_or(0) as usize;
    let mut hits = Vec::new();
    for hit in v["hits"].as_array().into_iter().flatten() {
        let key = hit["sort"]
            .as_array()
            .ok_or("a hit without its sort key")
            .and_then(|a| SortKey::from_values(sort, a).map_err(|_| "a hit with a bad sort key"))?;
        hits.push((key, hit.clone()));
    }
    let missing: Vec<Missing> = v["missing"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| Missing {
            partition: m["partition"].as_i64().unwrap_or(-1) as i32,
            leader: m["leader"].as_i64().unwrap_or(-1) as i32,
            remote_searched: m["remote_searched"].as_bool().unwrap_or(false),
            reason: m["reason"].as_str().unwrap_or("").to_string(),
        })
        .collect();
    Ok((
        PeerAnswer {
            total: v["total"].as_u64().unwrap_or(0),
            searched: count("searched"),
            remote: count("remote"),
            pruned: count("pruned"),
            hits,
        },
        missing,
    ))
}

/// Answers a query on `topic` for every partition it asks for (`local_only`: only from what
/// this broker holds; the partitions it does not lead are searched in the remote tier and
/// listed as missing).
pub async fn search(
    broker: Arc<Broker>,
    topic_name: String,
    body: Value,
    local_only: bool,
    access: PeerAccess,
) -> Result<Value, SearchError> {
    let (search, topic) = super::searchable_topic(&broker, &topic_name)?;
    let req = Arc::new(search.parse(&body)?);
    let started = Instant::now();
    let wanted = |i: i32| req.partitions.as_ref().is_none_or(|ps| ps.contains(&i));
    let Plan {
        local,
        peers,
        mut missing,
    } = plan(&broker, &topic, &wanted, local_only);
    let limit = req.from + req.size;
    let timeout = Duration::from_millis(search.config().peer_timeout_ms.max(1));
    let body = Arc::new(body);
    let asked: Vec<_> = peers
        .into_iter()
        .map(|(leader, (addr, partitions))| {
            let (body, topic, sort) = (body.clone(), topic_name.clone(), req.sort);
            let parts = partitions.clone();
            let access = access.clone();
            let task = tokio::task::spawn_blocking(move || {
                ask(&addr, &access, &topic, &body, &parts, limit, sort, timeout)
            });
            (leader, partitions, task)
        })
        .collect();
    let handle = tokio::runtime::Handle::current();
    let local_task = {
        let (search, topic, req, handle) =
            (search.clone(), topic.clone(), req.clone(), handle.clone());
        tokio::task::spawn_blocking(move || search.collect(&topic, &req, &handle, &local))
    };
    let mut answers = Vec::new();
    let mut fallback = Vec::new();
    for (leader, partitions, task) in asked {
        // The agent's own timeout ends the request; this one only guards against a stuck task.
        let outcome = match tokio::time::timeout(timeout + Duration::from_secs(1), task).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
        };
        match outcome {
            Ok((answer, their_missing)) => {
                answers.push(answer);
                missing.extend(their_missing);
            }
            Err(reason) => {
                tracing::warn!(topic = %topic_name, leader, ?partitions, %reason, "a partition leader did not answer a search; answering without its local records");
                for partition in partitions {
                    fallback.push(Part {
                        partition,
                        remote_only: true,
                    });
                    missing.push(Missing {
                        partition,
                        leader,
                        remote_searched: true,
                        reason: format!("its leader, broker {leader}, failed: {reason}"),
                    });
                }
            }
        }
    }
    let result = async {
        let mut collected: Collected = local_task
            .await
            .map_err(|e| SearchError::Unavailable(e.to_string()))??;
        if !fallback.is_empty() {
            let (search, topic, req) = (search.clone(), topic.clone(), req.clone());
            let more = tokio::task::spawn_blocking(move || {
                search.collect(&topic, &req, &handle, &fallback)
            })
            .await
            .map_err(|e| SearchError::Unavailable(e.to_string()))??;
            collected.extend(more);
        }
        missing.sort_by_key(|m| m.partition);
        let (search, topic, req) = (search.clone(), topic.clone(), req.clone());
        tokio::task::spawn_blocking(move || {
            search.answer(&topic, &req, collected, answers, missing, started)
        })
        .await
        .map_err(|e| SearchError::Unavailable(e.to_string()))?
    }
    .await;
    search.count_query(started, result.is_ok());
    result
}
