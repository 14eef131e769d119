//! Client quotas: AlterClientQuotas and DescribeClientQuotas, and the enforcement of the quotas
//! on each request (KIP-13 byte rates, KIP-124 request time, KIP-219 throttling).
//!
//! Enforcement, per request: a produce request's size is counted against the sender's
//! `producer_byte_rate`, a consumer fetch response's size against its `consumer_byte_rate`, and
//! the time the broker spends working on any request (time inside the handler's polls, so a
//! long poll's wait is free) against its `request_percentage`. A request over a quota is
//! answered at once with the throttle time in the response's `throttle_time_ms`, and the
//! network layer then reads nothing more from the connection until that time has passed.
//! A throttled fetch returns no records (its bytes are taken back from the rate), as Kafka's
//! does. Follower fetches, ApiVersions and the SASL exchange are exempt.
//!
//! Quotas apply to the principal's name (`User:alice` counts as user `alice`, an
//! unauthenticated connection as user `ANONYMOUS`) and the request's client id.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_client_quotas_response;
use kafka_protocol::messages::describe_client_quotas_response;
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, ApiKey, DescribeClientQuotasRequest,
    DescribeClientQuotasResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::{code, msg};
use crate::broker::Broker;
use crate::metadata::MetadataRecord;
use crate::protocol::RequestContext;
use crate::security::quota::{
    ClientQuotaEntity, ClientQuotaFilter, QuotaError, QuotaKey, QuotaManager, QuotaOp,
    request_time_percentage,
};

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn wire_entity(entity: &ClientQuotaEntity) -> Vec<alter_client_quotas_response::EntityData> {
    entity
        .to_wire()
        .into_iter()
        .map(|(t, n)| {
            alter_client_quotas_response::EntityData::default()
                .with_entity_type(s(t))
                .with_entity_name(n.map(s))
        })
        .collect()
}

/// AlterClientQuotas: validates every entry, then makes the valid ones' changes durable in one
/// metadata record. An entity named by more than one entry is refused in all of them.
pub async fn alter(
    broker: &Arc<Broker>,
    _ctx: &RequestContext,
    req: AlterClientQuotasRequest,
) -> AlterClientQuotasResponse {
    // Each entry: its entity as sent (echoed back) and its outcome.
    struct Outcome {
        echo: Vec<alter_client_quotas_response::EntityData>,
        entity: Option<ClientQuotaEntity>,
        ops: Vec<QuotaOp>,
        error: Option<QuotaError>,
    }
    let mut outcomes: Vec<Outcome> = req
        .entries
        .iter()
        .map(|entry| {
            let echo = entry
                .entity
                .iter()
                .map(|c| {
                    alter_client_quotas_response::EntityData::default()
                        .with_entity_type(c.entity_type.clone())
                        .with_entity_name(c.entity_name.clone())
                })
                .collect();
            let parsed = ClientQuotaEntity::from_wire(
                entry
                    .entity
                    .iter()
                    .map(|c| (c.entity_type.as_str(), c.entity_name.as_deref())),
            );
            let ops = entry
                .ops
                .iter()
                .map(|op| {
                    if op.remove {
                        QuotaOp::remove(op.key.as_str())
                    } else {
                        QuotaOp::set(op.key.as_str(), op.value)
                    }
                })
                .collect();
            match parsed {
                Ok(entity) => Outcome {
                    echo,
                    entity: Some(entity),
                    ops,
                    error: None,
                },
                Err(e) => Outcome {
                    echo,
                    entity: None,
                    ops,
                    error: Some(e),
                },
            }
        })
        .collect();
    let mut seen: HashMap<ClientQuotaEntity, usize> = HashMap::new();
    for o in &outcomes {
        if let Some(e) = &o.entity {
            *seen.entry(e.clone()).or_default() += 1;
        }
    }
    let mut changes = Vec::new();
    let mut changed_entries = Vec::new();
    broker.metadata.read(|state| {
        for (i, o) in outcomes.iter_mut().enumerate() {
            let Some(entity) = &o.entity else { continue };
            if seen.get(entity).copied().unwrap_or(0) > 1 {
                o.error = Some(QuotaError {
                    code: code(ResponseError::InvalidRequest),
                    message: format!("the entity {entity} appears more than once in the request"),
                });
                continue;
            }
            match state.client_quotas.plan_alter(entity, &o.ops) {
                Ok(c) if c.is_empty() => {}
                Ok(c) => {
                    changes.extend(c);
                    changed_entries.push(i);
                }
                Err(e) => o.error = Some(e),
            }
        }
    });
    if !req.validate_only && !changes.is_empty() {
        let count = changes.len();
        match broker
            .metadata
            .append(vec![MetadataRecord::ClientQuotasAltered { changes }])
            .await
        {
            Ok(_) => {
                tracing::info!(changes = count, "altered client quotas");
                refresh(broker);
            }
            Err(e) => {
                for i in changed_entries {
                    outcomes[i].error = Some(QuotaError {
                        code: code(ResponseError::RequestTimedOut),
                        message: e.to_string(),
                    });
                }
            }
        }
    }
    AlterClientQuotasResponse::default().with_entries(
        outcomes
            .into_iter()
            .map(|o| {
                let entry = alter_client_quotas_response::EntryData::default().with_entity(
                    match &o.entity {
                        // A valid entity is echoed in canonical order, as Kafka answers.
                        Some(e) => wire_entity(e),
                        None => o.echo,
                    },
                );
                match o.error {
                    Some(e) => entry
                        .with_error_code(e.code)
                        .with_error_message(msg(e.message)),
                    None => entry,
                }
            })
            .collect(),
    )
}

/// DescribeClientQuotas: the entities matching the filter with their quotas.
pub async fn describe(
    broker: &Arc<Broker>,
    _ctx: &RequestContext,
    req: DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    let filter = ClientQuotaFilter::from_wire(
        req.components
            .iter()
            .map(|c| (c.entity_type.as_str(), c.match_type, c._match.as_deref())),
        req.strict,
    );
    let filter = match filter {
        Ok(f) => f,
        Err(e) => {
            return DescribeClientQuotasResponse::default()
                .with_error_code(e.code)
                .with_error_message(msg(e.message))
                .with_entries(None);
        }
    };
    let found = broker.metadata.read(|s| s.client_quotas.describe(&filter));
    let entries = found
        .into_iter()
        .map(|(entity, values)| {
            describe_client_quotas_response::EntryData::default()
                .with_entity(
                    entity
                        .to_wire()
                        .into_iter()
                        .map(|(t, n)| {
                            describe_client_quotas_response::EntityData::default()
                                .with_entity_type(s(t))
                                .with_entity_name(n.map(s))
                        })
                        .collect(),
                )
                .with_values(
                    values
                        .into_iter()
                        .map(|(k, v)| {
                            describe_client_quotas_response::ValueData::default()
                                .with_key(s(k.name()))
                                .with_value(v)
                        })
                        .collect(),
                )
        })
        .collect();
    DescribeClientQuotasResponse::default().with_entries(Some(entries))
}

/// When the latest throttle ends (ms since the epoch); the metric falls back to 0 a window
/// after.
static LAST_THROTTLE_END_MS: AtomicI64 = AtomicI64::new(0);

/// Brings the broker's quota manager up to date with the metadata (called after an alteration
/// and periodically, so changes another broker made arrive too).
pub fn refresh(broker: &Broker) {
    if broker
        .metadata
        .read(|s| broker.quotas.sync(&s.client_quotas))
    {
        tracing::debug!("client quotas reloaded from the metadata");
    }
    let end = LAST_THROTTLE_END_MS.load(Ordering::Relaxed);
    if end != 0 && crate::util::now_ms() - end > broker.quotas.window_ms() as i64 {
        LAST_THROTTLE_END_MS.store(0, Ordering::Relaxed);
        crate::metrics::get().throttle_ms.set(0);
    }
}

/// The user a principal's quotas are looked up by: its name without the type.
pub fn quota_user(principal: &str) -> &str {
    principal
        .split_once(':')
        .map_or(principal, |(_, name)| name)
}

/// One request's dealings with the quotas: what it used and how long its client is throttled.
/// With no quota configured, creating it costs three atomic loads and nothing else happens.
pub struct RequestQuota<'a> {
    quotas: &'a QuotaManager,
    user: &'a str,
    client_id: &'a str,
    /// `request_percentage` applies and the handler's time has not been recorded yet.
    timed: bool,
    /// Time spent inside the handler's polls.
    spent: Duration,
    /// The request's size, for `producer_byte_rate`.
    request_bytes: usize,
    throttle_ms: u64,
}

impl<'a> RequestQuota<'a> {
    pub fn new(quotas: &'a QuotaManager, ctx: &'a RequestContext, request_bytes: usize) -> Self {
        let exempt = matches!(
            ctx.api,
            ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
        );
        RequestQuota {
            quotas,
            user: quota_user(&ctx.principal),
            client_id: ctx.client_id.as_deref().unwrap_or(""),
            timed: !exempt && quotas.is_enabled(QuotaKey::RequestPercentage),
            spent: Duration::ZERO,
            request_bytes,
            throttle_ms: 0,
        }
    }

    /// Whether no quota of any kind is configured.
    pub fn idle(&self) -> bool {
        !self.timed
            && !self.quotas.is_enabled(QuotaKey::ProducerByteRate)
            && !self.quotas.is_enabled(QuotaKey::ConsumerByteRate)
            && !self.quotas.is_enabled(QuotaKey::RequestPercentage)
    }

    /// Takes this request out of every quota (a follower's fetch).
    pub fn exempt(&mut self) {
        self.timed = false;
    }

    /// Runs a handler, measuring the time spent in its polls when `request_percentage` applies.
    pub async fn run<F: Future>(&mut self, f: F) -> F::Output {
        if !self.timed {
            return f.await;
        }
        let mut f = std::pin::pin!(f);
        let spent = &mut self.spent;
        std::future::poll_fn(|cx| {
            let start = Instant::now();
            let r = f.as_mut().poll(cx);
            *spent += start.elapsed();
            r
        })
        .await
    }

    fn note(&mut self, throttle_ms: u64) -> u64 {
        self.throttle_ms = self.throttle_ms.max(throttle_ms);
        throttle_ms
    }

    /// Records the request's size against `producer_byte_rate`.
    pub fn record_produce(&mut self) -> u64 {
        let t = self.quotas.record_usage(
            QuotaKey::ProducerByteRate,
            self.user,
            self.client_id,
            self.request_bytes as f64,
            Instant::now(),
        );
        self.note(t)
    }

    /// The most a consumer fetch may return under `consumer_byte_rate` (Kafka's bound on fetch
    /// sizes), when a quota applies.
    pub fn fetch_bytes_cap(&self) -> Option<i32> {
        if !self.quotas.is_enabled(QuotaKey::ConsumerByteRate) {
            return None;
        }
        let cap =
            self.quotas
                .max_value_in_window(QuotaKey::ConsumerByteRate, self.user, self.client_id);
        (cap < i32::MAX as f64).then(|| cap.max(0.0) as i32)
    }

    /// Records a fetch response's size against `consumer_byte_rate`; the throttle it earns.
    pub fn record_fetch(&mut self, bytes: usize) -> u64 {
        let t = self.quotas.record_usage(
            QuotaKey::ConsumerByteRate,
            self.user,
            self.client_id,
            bytes as f64,
            Instant::now(),
        );
        self.note(t)
    }

    /// Takes back a fetch response's size (the response is replaced by an empty one).
    pub fn unrecord_fetch(&self, bytes: usize) {
        if let Some(sensor) =
            self.quotas
                .sensor_key(QuotaKey::ConsumerByteRate, self.user, self.client_id)
        {
            self.quotas.unrecord(&sensor, bytes as f64, Instant::now());
        }
    }

    /// Records the handler's time against `request_percentage` (once) and returns the
    /// request's throttle time so far, for the response's `throttle_time_ms`.
    pub fn response_throttle_ms(&mut self) -> i32 {
        if self.timed {
            self.timed = false;
            let t = self.quotas.record_usage(
                QuotaKey::RequestPercentage,
                self.user,
                self.client_id,
                request_time_percentage(u64::try_from(self.spent.as_nanos()).unwrap_or(u64::MAX)),
                Instant::now(),
            );
            self.note(t);
        }
        i32::try_from(self.throttle_ms).unwrap_or(i32::MAX)
    }

    /// The request's throttle time, once it is answered: how long the connection is muted.
    pub fn finish(mut self) -> u64 {
        let t = self.response_throttle_ms();
        if t > 0 {
            LAST_THROTTLE_END_MS.store(crate::util::now_ms() + i64::from(t), Ordering::Relaxed);
            crate::metrics::get().throttle_ms.set(i64::from(t));
        }
        self.throttle_ms
    }
}
