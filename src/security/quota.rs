//! Client quotas as Kafka brokers apply them: the stored configuration (`QuotaConfigs`), the
//! validation of AlterClientQuotas and DescribeClientQuotas input, the precedence that picks the
//! quota for a request, and the windowed rates that turn usage into a throttle time
//! (`QuotaManager`).
//!
//! Choices, where Kafka leaves room or where this module differs:
//!
//! * Entities are `user`, `client-id` or both; `ip` entities are refused (connection-rate quotas
//!   are not implemented). A describe filter may still name `ip`; nothing matches it.
//! * Quotas are resolved per key, in Kafka's order of eight levels (see [`QuotaLevel`]).
//! * Usage is counted on a sensor named like Kafka's metric tags: the level that matched decides
//!   which of the request's real names are part of the sensor. A `/users/<default>` quota thus
//!   gives every user their own sensor with that limit; it is not a pool shared by all users.
//!   Unlike Kafka's tags, a part that is absent is `None` rather than an empty string, so an
//!   empty client id cannot be mistaken for "no client part".
//! * Rates follow Kafka's sampled `Rate`: `samples` windows of `window` each (plus one extra kept
//!   for overlap), samples idle for `samples × window` are dropped, and the elapsed time is
//!   padded to `samples - 1` full windows so a first burst is not measured over a few
//!   milliseconds.
//! * Throttle time is `(rate - limit) / limit × window_span`, rounded, the time needed without
//!   further usage for the rate to fall back to the limit. Like Kafka, byte-rate throttles are
//!   not capped by the quota window (only clamped to `i32::MAX`, the protocol field), and
//!   request-percentage throttles are capped at one window (`quota.window.size.seconds`).
//! * Unknown keys are refused in removals too (Kafka ignores the removal of an unknown key).
//! * `controller_mutation_rate` is validated, stored and resolved; the controller's token-bucket
//!   enforcement of it is not part of this module.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Kafka error code INVALID_REQUEST.
pub const INVALID_REQUEST: i16 = 42;
/// Kafka error code UNSUPPORTED_VERSION (an unknown entity type in a describe filter).
pub const UNSUPPORTED_VERSION: i16 = 35;

/// The entity type of a user principal's name.
pub const ENTITY_USER: &str = "user";
/// The entity type of a client id.
pub const ENTITY_CLIENT_ID: &str = "client-id";
/// The entity type of a client IP address (accepted in filters only).
pub const ENTITY_IP: &str = "ip";

/// DescribeClientQuotas match type: the name given.
pub const MATCH_TYPE_EXACT: i8 = 0;
/// DescribeClientQuotas match type: the default entity of the type.
pub const MATCH_TYPE_DEFAULT: i8 = 1;
/// DescribeClientQuotas match type: any entity with a component of the type.
pub const MATCH_TYPE_SPECIFIED: i8 = 2;

/// Kafka's default `quota.window.num`.
pub const DEFAULT_QUOTA_WINDOW_NUM: u32 = 11;
/// Kafka's default `quota.window.size.seconds`.
pub const DEFAULT_QUOTA_WINDOW_SIZE: Duration = Duration::from_secs(1);
/// How long a sensor may go unused before it is dropped (Kafka: one hour).
pub const DEFAULT_SENSOR_EXPIRY: Duration = Duration::from_secs(3600);

/// How often `record` looks for idle sensors to drop.
const SWEEP_INTERVAL_MS: u64 = 30_000;
/// The number of independently locked sensor maps.
const SENSOR_SHARDS: usize = 16;
/// Allowed distance of a whole-number quota from an integer.
const INTEGRAL_TOLERANCE: f64 = 1e-6;

/// A refused quota request: the Kafka error code and a message for the response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct QuotaError {
    /// Kafka error code ([`INVALID_REQUEST`] or [`UNSUPPORTED_VERSION`]).
    pub code: i16,
    /// Human-readable reason.
    pub message: String,
}

impl QuotaError {
    fn invalid(message: impl Into<String>) -> Self {
        QuotaError {
            code: INVALID_REQUEST,
            message: message.into(),
        }
    }

    fn unsupported(message: impl Into<String>) -> Self {
        QuotaError {
            code: UNSUPPORTED_VERSION,
            message: message.into(),
        }
    }
}

/// The name of one entity component: a specific name or the type's default (`<default>`, a
/// null name on the wire).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EntityName {
    /// A specific user or client id.
    Specific(String),
    /// The default entity of its type.
    Default,
}

impl EntityName {
    /// The name as the protocol carries it (`None` for the default).
    pub fn from_wire(name: Option<&str>) -> Self {
        match name {
            Some(n) => EntityName::Specific(n.to_string()),
            None => EntityName::Default,
        }
    }

    /// The name as the protocol carries it.
    pub fn as_wire(&self) -> Option<&str> {
        match self {
            EntityName::Specific(n) => Some(n),
            EntityName::Default => None,
        }
    }

    fn matches(&self, m: &EntityMatch) -> bool {
        match (m, self) {
            (EntityMatch::Exact(want), EntityName::Specific(have)) => want == have,
            (EntityMatch::Exact(_), EntityName::Default) => false,
            (EntityMatch::Default, name) => *name == EntityName::Default,
            (EntityMatch::Specified, _) => true,
        }
    }
}

impl fmt::Display for EntityName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntityName::Specific(n) => f.write_str(n),
            EntityName::Default => f.write_str("<default>"),
        }
    }
}

/// What a quota is set on: a user, a client id, or a user's client id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ClientQuotaEntity {
    /// The `user` component, if any.
    pub user: Option<EntityName>,
    /// The `client-id` component, if any.
    pub client_id: Option<EntityName>,
}

impl ClientQuotaEntity {
    /// An entity from its two optional components.
    pub fn new(user: Option<EntityName>, client_id: Option<EntityName>) -> Self {
        ClientQuotaEntity { user, client_id }
    }

    /// Builds and validates an entity from AlterClientQuotas `(entity_type, entity_name)` pairs.
    pub fn from_wire<'a, I>(components: I) -> Result<Self, QuotaError>
    where
        I: IntoIterator<Item = (&'a str, Option<&'a str>)>,
    {
        let mut entity = ClientQuotaEntity::default();
        let mut any = false;
        for (entity_type, name) in components {
            any = true;
            let slot = match entity_type {
                ENTITY_USER => &mut entity.user,
                ENTITY_CLIENT_ID => &mut entity.client_id,
                ENTITY_IP => {
                    return Err(QuotaError::invalid(
                        "client quota entity type ip is not supported by this broker",
                    ));
                }
                other => {
                    return Err(QuotaError::invalid(format!(
                        "unknown client quota entity type '{other}'"
                    )));
                }
            };
            if slot.is_some() {
                return Err(QuotaError::invalid(format!(
                    "client quota entity names the type {entity_type} more than once"
                )));
            }
            *slot = Some(EntityName::from_wire(name));
        }
        if !any {
            return Err(QuotaError::invalid("client quota entity has no components"));
        }
        entity.validate()?;
        Ok(entity)
    }

    /// The entity as `(entity_type, entity_name)` pairs, user first.
    pub fn to_wire(&self) -> Vec<(&'static str, Option<&str>)> {
        let mut out = Vec::with_capacity(2);
        if let Some(u) = &self.user {
            out.push((ENTITY_USER, u.as_wire()));
        }
        if let Some(c) = &self.client_id {
            out.push((ENTITY_CLIENT_ID, c.as_wire()));
        }
        out
    }

    /// Checks that the entity has a component and that no specific name is empty.
    pub fn validate(&self) -> Result<(), QuotaError> {
        if self.user.is_none() && self.client_id.is_none() {
            return Err(QuotaError::invalid("client quota entity has no components"));
        }
        for (entity_type, name) in [
            (ENTITY_USER, &self.user),
            (ENTITY_CLIENT_ID, &self.client_id),
        ] {
            if let Some(EntityName::Specific(n)) = name
                && n.is_empty()
            {
                return Err(QuotaError::invalid(format!(
                    "an empty {entity_type} name is not allowed"
                )));
            }
        }
        Ok(())
    }

    /// The number of components (1 or 2 for a valid entity).
    pub fn component_count(&self) -> usize {
        usize::from(self.user.is_some()) + usize::from(self.client_id.is_some())
    }
}

impl fmt::Display for ClientQuotaEntity {
    /// Kafka's path notation, e.g. `/users/alice/clients/<default>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(u) = &self.user {
            write!(f, "/users/{u}")?;
        }
        if let Some(c) = &self.client_id {
            write!(f, "/clients/{c}")?;
        }
        if self.user.is_none() && self.client_id.is_none() {
            f.write_str("/")?;
        }
        Ok(())
    }
}

/// A quota configuration key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuotaKey {
    /// `producer_byte_rate`: produced bytes per second.
    ProducerByteRate,
    /// `consumer_byte_rate`: fetched bytes per second.
    ConsumerByteRate,
    /// `request_percentage`: percent of one request thread's time, per quota window.
    RequestPercentage,
    /// `controller_mutation_rate`: partition mutations per second (stored only).
    ControllerMutationRate,
}

impl QuotaKey {
    /// Every key, in a fixed order.
    pub const ALL: [QuotaKey; 4] = [
        QuotaKey::ProducerByteRate,
        QuotaKey::ConsumerByteRate,
        QuotaKey::RequestPercentage,
        QuotaKey::ControllerMutationRate,
    ];

    /// The configuration name.
    pub fn name(self) -> &'static str {
        match self {
            QuotaKey::ProducerByteRate => "producer_byte_rate",
            QuotaKey::ConsumerByteRate => "consumer_byte_rate",
            QuotaKey::RequestPercentage => "request_percentage",
            QuotaKey::ControllerMutationRate => "controller_mutation_rate",
        }
    }

    /// The key with this configuration name.
    pub fn parse(name: &str) -> Option<Self> {
        QuotaKey::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether values must be whole numbers (the byte rates are LONG configs in Kafka).
    pub fn is_integral(self) -> bool {
        matches!(
            self,
            QuotaKey::ProducerByteRate | QuotaKey::ConsumerByteRate
        )
    }

    /// Checks a value to be set: finite, above zero, and whole for the byte rates.
    pub fn validate_value(self, value: f64) -> Result<(), QuotaError> {
        let name = self.name();
        if !value.is_finite() {
            return Err(QuotaError::invalid(format!(
                "{name} must be a finite number"
            )));
        }
        if value <= 0.0 {
            return Err(QuotaError::invalid(format!("{name} must be above 0")));
        }
        if self.is_integral() {
            if value > i64::MAX as f64 {
                return Err(QuotaError::invalid(format!(
                    "{name} is too large for a 64-bit integer"
                )));
            }
            if value.fract() > INTEGRAL_TOLERANCE {
                return Err(QuotaError::invalid(format!(
                    "{name} must be a whole number"
                )));
            }
        }
        Ok(())
    }

    fn slot(self) -> usize {
        match self {
            QuotaKey::ProducerByteRate => 0,
            QuotaKey::ConsumerByteRate => 1,
            QuotaKey::RequestPercentage => 2,
            QuotaKey::ControllerMutationRate => 3,
        }
    }
}

impl fmt::Display for QuotaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One AlterClientQuotas operation: set `key` to `value`, or remove it when `value` is `None`.
#[derive(Debug, Clone, PartialEq)]
pub struct QuotaOp {
    /// The configuration key as sent.
    pub key: String,
    /// The new value; `None` removes the key.
    pub value: Option<f64>,
}

impl QuotaOp {
    /// An operation setting `key` to `value`.
    pub fn set(key: impl Into<String>, value: f64) -> Self {
        QuotaOp {
            key: key.into(),
            value: Some(value),
        }
    }

    /// An operation removing `key`.
    pub fn remove(key: impl Into<String>) -> Self {
        QuotaOp {
            key: key.into(),
            value: None,
        }
    }
}

/// One effective change to the stored quotas (the metadata record of an alteration).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuotaChange {
    /// The entity changed.
    pub entity: ClientQuotaEntity,
    /// The key changed.
    pub key: QuotaKey,
    /// The new value, or `None` for a removal.
    pub value: Option<f64>,
}

/// How a describe filter component matches names of its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntityMatch {
    /// The specific name given.
    Exact(String),
    /// The default entity (`<default>`).
    Default,
    /// Any name, the default included, as long as the entity has this type.
    Specified,
}

/// A DescribeClientQuotas filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientQuotaFilter {
    /// The component for `user`, if the filter has one.
    pub user: Option<EntityMatch>,
    /// The component for `client-id`, if the filter has one.
    pub client_id: Option<EntityMatch>,
    /// The component for `ip`, if the filter has one (no stored entity has it).
    pub ip: Option<EntityMatch>,
    /// Only entities with exactly the filter's component types match.
    pub strict: bool,
}

impl ClientQuotaFilter {
    /// Builds and validates a filter from `(entity_type, match_type, match)` components.
    pub fn from_wire<'a, I>(components: I, strict: bool) -> Result<Self, QuotaError>
    where
        I: IntoIterator<Item = (&'a str, i8, Option<&'a str>)>,
    {
        let mut filter = ClientQuotaFilter {
            strict,
            ..Default::default()
        };
        for (entity_type, match_type, name) in components {
            if entity_type.is_empty() {
                return Err(QuotaError::invalid(
                    "filter component has an empty entity type",
                ));
            }
            let slot = match entity_type {
                ENTITY_USER => &mut filter.user,
                ENTITY_CLIENT_ID => &mut filter.client_id,
                ENTITY_IP => &mut filter.ip,
                other => {
                    return Err(QuotaError::unsupported(format!(
                        "unknown entity type '{other}' in filter"
                    )));
                }
            };
            if slot.is_some() {
                return Err(QuotaError::invalid(format!(
                    "entity type {entity_type} appears more than once in the filter"
                )));
            }
            let m = match (match_type, name) {
                (MATCH_TYPE_EXACT, Some(n)) => EntityMatch::Exact(n.to_string()),
                (MATCH_TYPE_EXACT, None) => {
                    return Err(QuotaError::invalid("exact match without a name"));
                }
                (MATCH_TYPE_DEFAULT, None) => EntityMatch::Default,
                (MATCH_TYPE_DEFAULT, Some(_)) => {
                    return Err(QuotaError::invalid("default match with a name"));
                }
                (MATCH_TYPE_SPECIFIED, None) => EntityMatch::Specified,
                (MATCH_TYPE_SPECIFIED, Some(_)) => {
                    return Err(QuotaError::invalid("specified match with a name"));
                }
                (other, _) => {
                    return Err(QuotaError::invalid(format!("unknown match type {other}")));
                }
            };
            *slot = Some(m);
        }
        if filter.ip.is_some() && (filter.user.is_some() || filter.client_id.is_some()) {
            return Err(QuotaError::invalid(
                "an ip filter component cannot be combined with user or client-id",
            ));
        }
        Ok(filter)
    }

    /// Whether `entity` passes the filter.
    pub fn matches(&self, entity: &ClientQuotaEntity) -> bool {
        if self.ip.is_some() {
            return false;
        }
        let wanted = usize::from(self.user.is_some()) + usize::from(self.client_id.is_some());
        if self.strict && entity.component_count() != wanted {
            return false;
        }
        for (m, name) in [
            (&self.user, &entity.user),
            (&self.client_id, &entity.client_id),
        ] {
            if let Some(m) = m {
                match name {
                    Some(name) if name.matches(m) => {}
                    _ => return false,
                }
            }
        }
        true
    }
}

/// The levels of Kafka's quota precedence, most specific first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QuotaLevel {
    /// `/users/<user>/clients/<client-id>`
    UserClient,
    /// `/users/<user>/clients/<default>`
    UserDefaultClient,
    /// `/users/<user>`
    User,
    /// `/users/<default>/clients/<client-id>`
    DefaultUserClient,
    /// `/users/<default>/clients/<default>`
    DefaultUserDefaultClient,
    /// `/users/<default>`
    DefaultUser,
    /// `/clients/<client-id>`
    Client,
    /// `/clients/<default>`
    DefaultClient,
}

impl QuotaLevel {
    /// All levels in precedence order.
    pub const ORDER: [QuotaLevel; 8] = [
        QuotaLevel::UserClient,
        QuotaLevel::UserDefaultClient,
        QuotaLevel::User,
        QuotaLevel::DefaultUserClient,
        QuotaLevel::DefaultUserDefaultClient,
        QuotaLevel::DefaultUser,
        QuotaLevel::Client,
        QuotaLevel::DefaultClient,
    ];

    /// The configured entity this level looks up for a request from `user`/`client_id`.
    pub fn entity(self, user: &str, client_id: &str) -> ClientQuotaEntity {
        let u = || Some(EntityName::Specific(user.to_string()));
        let c = || Some(EntityName::Specific(client_id.to_string()));
        let d = || Some(EntityName::Default);
        let (user, client) = match self {
            QuotaLevel::UserClient => (u(), c()),
            QuotaLevel::UserDefaultClient => (u(), d()),
            QuotaLevel::User => (u(), None),
            QuotaLevel::DefaultUserClient => (d(), c()),
            QuotaLevel::DefaultUserDefaultClient => (d(), d()),
            QuotaLevel::DefaultUser => (d(), None),
            QuotaLevel::Client => (None, c()),
            QuotaLevel::DefaultClient => (None, d()),
        };
        ClientQuotaEntity::new(user, client)
    }

    /// Which of the request's names are part of the sensor when this level applies.
    pub fn scope(self) -> SensorScope {
        match self {
            QuotaLevel::UserClient
            | QuotaLevel::UserDefaultClient
            | QuotaLevel::DefaultUserClient
            | QuotaLevel::DefaultUserDefaultClient => SensorScope::UserAndClient,
            QuotaLevel::User | QuotaLevel::DefaultUser => SensorScope::User,
            QuotaLevel::Client | QuotaLevel::DefaultClient => SensorScope::Client,
        }
    }
}

/// Which names a sensor is keyed on (Kafka's metric tags).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SensorScope {
    /// The user and the client id.
    UserAndClient,
    /// The user only.
    User,
    /// The client id only.
    Client,
}

/// Where usage is counted: the quota key and the request's real names that the matched level
/// keeps.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SensorKey {
    /// The quota key the usage counts against.
    pub key: QuotaKey,
    /// The user principal's name, if the matched level has a user part.
    pub user: Option<String>,
    /// The client id, if the matched level has a client part.
    pub client_id: Option<String>,
}

impl SensorKey {
    /// The sensor for a request from `user`/`client_id` when `level` applies.
    pub fn for_level(key: QuotaKey, level: QuotaLevel, user: &str, client_id: &str) -> Self {
        let (u, c) = match level.scope() {
            SensorScope::UserAndClient => (Some(user), Some(client_id)),
            SensorScope::User => (Some(user), None),
            SensorScope::Client => (None, Some(client_id)),
        };
        SensorKey {
            key,
            user: u.map(str::to_string),
            client_id: c.map(str::to_string),
        }
    }

    /// The levels that can supply this sensor's limit, in precedence order.
    fn levels(&self) -> &'static [QuotaLevel] {
        match (&self.user, &self.client_id) {
            (Some(_), Some(_)) => &[
                QuotaLevel::UserClient,
                QuotaLevel::UserDefaultClient,
                QuotaLevel::DefaultUserClient,
                QuotaLevel::DefaultUserDefaultClient,
            ],
            (Some(_), None) => &[QuotaLevel::User, QuotaLevel::DefaultUser],
            (None, Some(_)) => &[QuotaLevel::Client, QuotaLevel::DefaultClient],
            (None, None) => &[],
        }
    }
}

/// The quota that applies to a request for one key.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedQuota {
    /// The limit (bytes/s, percent, or mutations/s).
    pub limit: f64,
    /// The precedence level that matched.
    pub level: QuotaLevel,
    /// The configured entity that matched.
    pub entity: ClientQuotaEntity,
    /// Where the request's usage is counted.
    pub sensor: SensorKey,
}

/// The quotas configured for one entity.
pub type QuotaValues = BTreeMap<QuotaKey, f64>;

/// Values of a change are finite (validated before a change is made), so equality is total.
impl Eq for QuotaChange {}

/// The stored client quotas: entity → key → value. Entities without keys are not kept.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "Vec<StoredEntity>", into = "Vec<StoredEntity>")]
pub struct QuotaConfigs {
    entries: BTreeMap<ClientQuotaEntity, QuotaValues>,
}

/// Values are always finite (`apply` drops anything else), so equality is total.
impl Eq for QuotaConfigs {}

/// The serialized form of one entity's quotas (a list, so any format can carry it).
#[derive(Serialize, Deserialize)]
struct StoredEntity {
    entity: ClientQuotaEntity,
    quotas: Vec<(QuotaKey, f64)>,
}

impl From<Vec<StoredEntity>> for QuotaConfigs {
    fn from(list: Vec<StoredEntity>) -> Self {
        let mut configs = QuotaConfigs::default();
        for stored in list {
            for (key, value) in stored.quotas {
                configs.apply(&QuotaChange {
                    entity: stored.entity.clone(),
                    key,
                    value: Some(value),
                });
            }
        }
        configs
    }
}

impl From<QuotaConfigs> for Vec<StoredEntity> {
    fn from(configs: QuotaConfigs) -> Self {
        configs
            .entries
            .into_iter()
            .map(|(entity, quotas)| StoredEntity {
                entity,
                quotas: quotas.into_iter().collect(),
            })
            .collect()
    }
}

impl QuotaConfigs {
    /// No quotas.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether no quota is configured.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The number of entities with quotas.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The quotas of one entity.
    pub fn get(&self, entity: &ClientQuotaEntity) -> Option<&QuotaValues> {
        self.entries.get(entity)
    }

    /// Every entity with its quotas, in entity order.
    pub fn iter(&self) -> impl Iterator<Item = (&ClientQuotaEntity, &QuotaValues)> {
        self.entries.iter()
    }

    /// Validates an alteration of `entity` and returns the changes it makes, without applying
    /// them. Unchanged values and removals of absent keys produce no change. Either every
    /// operation is valid or the whole alteration is refused.
    pub fn plan_alter(
        &self,
        entity: &ClientQuotaEntity,
        ops: &[QuotaOp],
    ) -> Result<Vec<QuotaChange>, QuotaError> {
        entity.validate()?;
        let mut seen: Vec<QuotaKey> = Vec::with_capacity(ops.len());
        let mut parsed = Vec::with_capacity(ops.len());
        for op in ops {
            let key = QuotaKey::parse(&op.key)
                .ok_or_else(|| QuotaError::invalid(format!("unknown quota key '{}'", op.key)))?;
            if seen.contains(&key) {
                return Err(QuotaError::invalid(format!(
                    "quota key {key} appears more than once for {entity}"
                )));
            }
            seen.push(key);
            if let Some(v) = op.value {
                key.validate_value(v)?;
            }
            parsed.push((key, op.value));
        }
        let current = self.entries.get(entity);
        let mut changes = Vec::new();
        for (key, value) in parsed {
            let old = current.and_then(|m| m.get(&key)).copied();
            if old != value {
                changes.push(QuotaChange {
                    entity: entity.clone(),
                    key,
                    value,
                });
            }
        }
        Ok(changes)
    }

    /// Applies one change (replaying a metadata record). A removal that empties an entity
    /// drops it; a non-finite or non-positive value is ignored.
    pub fn apply(&mut self, change: &QuotaChange) {
        match change.value {
            Some(v) if v.is_finite() && v > 0.0 => {
                self.entries
                    .entry(change.entity.clone())
                    .or_default()
                    .insert(change.key, v);
            }
            Some(_) => {}
            None => {
                if let Some(values) = self.entries.get_mut(&change.entity) {
                    values.remove(&change.key);
                    if values.is_empty() {
                        self.entries.remove(&change.entity);
                    }
                }
            }
        }
    }

    /// Validates and applies an alteration; returns the changes made.
    pub fn alter(
        &mut self,
        entity: &ClientQuotaEntity,
        ops: &[QuotaOp],
    ) -> Result<Vec<QuotaChange>, QuotaError> {
        let changes = self.plan_alter(entity, ops)?;
        for change in &changes {
            self.apply(change);
        }
        Ok(changes)
    }

    /// The entities passing `filter`, with their quotas (DescribeClientQuotas).
    pub fn describe(&self, filter: &ClientQuotaFilter) -> Vec<(ClientQuotaEntity, QuotaValues)> {
        self.entries
            .iter()
            .filter(|(entity, _)| filter.matches(entity))
            .map(|(entity, values)| (entity.clone(), values.clone()))
            .collect()
    }

    /// The quota for `key` that applies to a request from `user` (the principal's name) and
    /// `client_id`, by Kafka's precedence.
    pub fn resolve(&self, key: QuotaKey, user: &str, client_id: &str) -> Option<ResolvedQuota> {
        QuotaLevel::ORDER.into_iter().find_map(|level| {
            let entity = level.entity(user, client_id);
            let limit = *self.entries.get(&entity)?.get(&key)?;
            Some(ResolvedQuota {
                limit,
                level,
                sensor: SensorKey::for_level(key, level, user, client_id),
                entity,
            })
        })
    }

    /// Whether any entity has a value for `key`.
    pub fn has_key(&self, key: QuotaKey) -> bool {
        self.entries.values().any(|m| m.contains_key(&key))
    }
}

/// One key's quotas arranged for allocation-free lookups by `&str` on the hot path.
#[derive(Debug, Default)]
struct LevelIndex {
    user_client: HashMap<String, HashMap<String, f64>>,
    user_default_client: HashMap<String, f64>,
    user: HashMap<String, f64>,
    default_user_client: HashMap<String, f64>,
    default_user_default_client: Option<f64>,
    default_user: Option<f64>,
    client: HashMap<String, f64>,
    default_client: Option<f64>,
}

impl LevelIndex {
    fn insert(&mut self, entity: &ClientQuotaEntity, value: f64) {
        use EntityName::{Default as D, Specific as S};
        match (&entity.user, &entity.client_id) {
            (Some(S(u)), Some(S(c))) => {
                self.user_client
                    .entry(u.clone())
                    .or_default()
                    .insert(c.clone(), value);
            }
            (Some(S(u)), Some(D)) => {
                self.user_default_client.insert(u.clone(), value);
            }
            (Some(S(u)), None) => {
                self.user.insert(u.clone(), value);
            }
            (Some(D), Some(S(c))) => {
                self.default_user_client.insert(c.clone(), value);
            }
            (Some(D), Some(D)) => self.default_user_default_client = Some(value),
            (Some(D), None) => self.default_user = Some(value),
            (None, Some(S(c))) => {
                self.client.insert(c.clone(), value);
            }
            (None, Some(D)) => self.default_client = Some(value),
            (None, None) => {}
        }
    }

    fn lookup(&self, level: QuotaLevel, user: &str, client_id: &str) -> Option<f64> {
        match level {
            QuotaLevel::UserClient => self.user_client.get(user)?.get(client_id).copied(),
            QuotaLevel::UserDefaultClient => self.user_default_client.get(user).copied(),
            QuotaLevel::User => self.user.get(user).copied(),
            QuotaLevel::DefaultUserClient => self.default_user_client.get(client_id).copied(),
            QuotaLevel::DefaultUserDefaultClient => self.default_user_default_client,
            QuotaLevel::DefaultUser => self.default_user,
            QuotaLevel::Client => self.client.get(client_id).copied(),
            QuotaLevel::DefaultClient => self.default_client,
        }
    }

    fn resolve(&self, user: &str, client_id: &str) -> Option<(QuotaLevel, f64)> {
        QuotaLevel::ORDER
            .into_iter()
            .find_map(|level| Some((level, self.lookup(level, user, client_id)?)))
    }

    /// The limit of an existing sensor, looked up from its names as Kafka does from tags.
    fn limit_for(&self, sensor: &SensorKey) -> Option<f64> {
        let user = sensor.user.as_deref().unwrap_or("");
        let client = sensor.client_id.as_deref().unwrap_or("");
        sensor
            .levels()
            .iter()
            .find_map(|&level| self.lookup(level, user, client))
    }
}

/// Rate and sensor settings (`quota.window.num`, `quota.window.size.seconds`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaManagerConfig {
    /// Number of sample windows a rate is measured over (`quota.window.num`, at least 1).
    pub samples: u32,
    /// Length of one sample window (`quota.window.size.seconds`, at least 1 ms).
    pub window: Duration,
    /// How long an unused sensor is kept.
    pub sensor_expiry: Duration,
}

impl Default for QuotaManagerConfig {
    fn default() -> Self {
        QuotaManagerConfig {
            samples: DEFAULT_QUOTA_WINDOW_NUM,
            window: DEFAULT_QUOTA_WINDOW_SIZE,
            sensor_expiry: DEFAULT_SENSOR_EXPIRY,
        }
    }
}

/// The settings in milliseconds, clamped to sane minimums.
#[derive(Debug, Clone, Copy)]
struct RateConfig {
    samples: u64,
    window_ms: u64,
    expiry_ms: u64,
}

impl From<QuotaManagerConfig> for RateConfig {
    fn from(c: QuotaManagerConfig) -> Self {
        RateConfig {
            samples: u64::from(c.samples.max(1)),
            window_ms: duration_ms(c.window).max(1),
            expiry_ms: duration_ms(c.sensor_expiry),
        }
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// One sample window of a rate.
#[derive(Debug, Clone, Copy)]
struct Sample {
    start_ms: u64,
    last_ms: u64,
    sum: f64,
}

impl Sample {
    fn new(now: u64) -> Self {
        Sample {
            start_ms: now,
            last_ms: now,
            sum: 0.0,
        }
    }
}

/// A sum over sliding sample windows, measured per second (Kafka's `Rate` over a windowed sum).
#[derive(Debug, Clone, Default)]
struct WindowedRate {
    samples: Vec<Sample>,
    current: usize,
}

impl WindowedRate {
    fn record(&mut self, cfg: &RateConfig, value: f64, now: u64) {
        if self.samples.is_empty() {
            self.samples.push(Sample::new(now));
            self.current = 0;
        }
        let complete = now.saturating_sub(self.samples[self.current].start_ms) >= cfg.window_ms;
        if complete {
            // One sample more than `samples` is kept, so the oldest still overlaps the span.
            let slots = usize::try_from(cfg.samples.saturating_add(1)).unwrap_or(usize::MAX);
            self.current = (self.current + 1) % slots;
            if self.current >= self.samples.len() {
                self.samples.push(Sample::new(now));
                self.current = self.samples.len() - 1;
            } else {
                self.samples[self.current] = Sample::new(now);
            }
        }
        let sample = &mut self.samples[self.current];
        sample.sum += value;
        sample.last_ms = now;
    }

    /// Resets samples with no event within the whole span.
    fn purge(&mut self, cfg: &RateConfig, now: u64) {
        let expire = cfg.samples.saturating_mul(cfg.window_ms);
        for s in &mut self.samples {
            if now.saturating_sub(s.last_ms) >= expire {
                *s = Sample::new(now);
            }
        }
    }

    /// The time the rate is measured over, padded to `samples - 1` full windows.
    fn span_ms(&mut self, cfg: &RateConfig, now: u64) -> u64 {
        self.purge(cfg, now);
        let oldest = self.samples.iter().map(|s| s.start_ms).min().unwrap_or(now);
        let mut elapsed = now.saturating_sub(oldest);
        let full = elapsed / cfg.window_ms;
        let min_full = cfg.samples - 1;
        if full < min_full {
            elapsed = elapsed.saturating_add((min_full - full).saturating_mul(cfg.window_ms));
        }
        elapsed.max(1)
    }

    /// The rate per second and the span it was measured over.
    fn measure(&mut self, cfg: &RateConfig, now: u64) -> (f64, u64) {
        let span = self.span_ms(cfg, now);
        let total: f64 = self.samples.iter().map(|s| s.sum).sum();
        (total * 1000.0 / span as f64, span)
    }
}

/// Usage counted for one sensor key.
#[derive(Debug)]
struct Sensor {
    rate: WindowedRate,
    /// The limit as of configuration `generation`.
    limit: Option<f64>,
    generation: u64,
    last_record_ms: u64,
}

impl Sensor {
    fn new(now_ms: u64) -> Self {
        Sensor {
            rate: WindowedRate::default(),
            limit: None,
            // No configuration has this generation: the first use looks the limit up.
            generation: u64::MAX,
            last_record_ms: now_ms,
        }
    }
}

/// The per-key indexes built from one `QuotaConfigs`.
#[derive(Debug, Default)]
struct QuotaIndex {
    keys: [LevelIndex; 4],
}

impl QuotaIndex {
    fn build(configs: &QuotaConfigs) -> Self {
        let mut index = QuotaIndex::default();
        for (entity, values) in configs.iter() {
            for (&key, &value) in values {
                if value.is_finite() && value > 0.0 {
                    index.keys[key.slot()].insert(entity, value);
                }
            }
        }
        index
    }
}

/// Converts request handling time to `request_percentage` units (100 = one thread-second).
pub fn request_time_percentage(nanos: u64) -> f64 {
    nanos as f64 * 100.0 / 1_000_000_000.0
}

/// Tracks usage per sensor and computes throttle times; shared by all connections.
///
/// With no quota configured for a key, every call for that key returns at once after one
/// atomic load: no lock, no allocation, no sensor.
#[derive(Debug)]
pub struct QuotaManager {
    cfg: RateConfig,
    epoch: Instant,
    enabled: [AtomicBool; 4],
    generation: AtomicU64,
    index: RwLock<Arc<QuotaIndex>>,
    hasher: RandomState,
    shards: Box<[Mutex<HashMap<SensorKey, Sensor>>]>,
    next_sweep_ms: AtomicU64,
    /// The configuration last given to [`QuotaManager::sync`].
    synced: Mutex<QuotaConfigs>,
}

impl Default for QuotaManager {
    fn default() -> Self {
        Self::new(QuotaManagerConfig::default())
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl QuotaManager {
    /// A manager with no quotas configured.
    pub fn new(config: QuotaManagerConfig) -> Self {
        let cfg = RateConfig::from(config);
        QuotaManager {
            cfg,
            epoch: Instant::now(),
            enabled: Default::default(),
            generation: AtomicU64::new(0),
            index: RwLock::new(Arc::new(QuotaIndex::default())),
            hasher: RandomState::new(),
            shards: (0..SENSOR_SHARDS)
                .map(|_| Mutex::new(HashMap::new()))
                .collect(),
            next_sweep_ms: AtomicU64::new(SWEEP_INTERVAL_MS),
            synced: Mutex::new(QuotaConfigs::new()),
        }
    }

    /// Takes `configs` (the metadata's current quotas) when they differ from those of the last
    /// call; true when the manager changed. Cheap when nothing changed.
    pub fn sync(&self, configs: &QuotaConfigs) -> bool {
        let mut synced = lock(&self.synced);
        if *synced == *configs {
            return false;
        }
        self.update(configs);
        *synced = configs.clone();
        true
    }

    /// The length of one quota window.
    pub fn window_ms(&self) -> u64 {
        self.cfg.window_ms
    }

    /// Replaces the quota configuration (call after every change). Existing sensors keep
    /// their usage and take their new limit on their next use.
    pub fn update(&self, configs: &QuotaConfigs) {
        let index = Arc::new(QuotaIndex::build(configs));
        let enabled: Vec<bool> = index.keys.iter().map(LevelIndex::has_any).collect();
        *self.index.write().unwrap_or_else(|e| e.into_inner()) = index;
        self.generation.fetch_add(1, Ordering::Release);
        for (flag, on) in self.enabled.iter().zip(enabled) {
            flag.store(on, Ordering::Release);
        }
    }

    /// Whether any quota is configured for `key`.
    pub fn is_enabled(&self, key: QuotaKey) -> bool {
        self.enabled[key.slot()].load(Ordering::Acquire)
    }

    fn current_index(&self) -> Arc<QuotaIndex> {
        Arc::clone(&self.index.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// The quota that applies to a request from `user`/`client_id`, or `None` when no quota
    /// for `key` matches.
    pub fn resolve(&self, key: QuotaKey, user: &str, client_id: &str) -> Option<ResolvedQuota> {
        if !self.is_enabled(key) {
            return None;
        }
        let index = self.current_index();
        let (level, limit) = index.keys[key.slot()].resolve(user, client_id)?;
        Some(ResolvedQuota {
            limit,
            level,
            entity: level.entity(user, client_id),
            sensor: SensorKey::for_level(key, level, user, client_id),
        })
    }

    /// The sensor a request's usage of `key` is counted on, or `None` when no quota applies.
    pub fn sensor_key(&self, key: QuotaKey, user: &str, client_id: &str) -> Option<SensorKey> {
        if !self.is_enabled(key) {
            return None;
        }
        let index = self.current_index();
        let (level, _) = index.keys[key.slot()].resolve(user, client_id)?;
        Some(SensorKey::for_level(key, level, user, client_id))
    }

    fn now_ms(&self, now: Instant) -> u64 {
        duration_ms(now.saturating_duration_since(self.epoch))
    }

    fn shard(&self, key: &SensorKey) -> &Mutex<HashMap<SensorKey, Sensor>> {
        let h = self.hasher.hash_one(key);
        &self.shards[(h as usize) % self.shards.len()]
    }

    /// Runs `f` on the sensor of `key`, creating it and refreshing its limit as needed.
    fn with_sensor<R>(
        &self,
        key: &SensorKey,
        now_ms: u64,
        f: impl FnOnce(&mut Sensor, &RateConfig) -> R,
    ) -> R {
        self.maybe_sweep(now_ms);
        let generation = self.generation.load(Ordering::Acquire);
        let mut map = lock(self.shard(key));
        if !map.contains_key(key) {
            map.insert(key.clone(), Sensor::new(now_ms));
        }
        let mut spare;
        let sensor = match map.get_mut(key) {
            Some(s) => s,
            None => {
                // Not reachable (inserted above under the same lock); a throwaway sensor keeps
                // this path free of panics.
                spare = Sensor::new(now_ms);
                &mut spare
            }
        };
        if sensor.generation != generation {
            sensor.limit = self.current_index().keys[key.key.slot()].limit_for(key);
            sensor.generation = generation;
        }
        sensor.last_record_ms = sensor.last_record_ms.max(now_ms);
        f(sensor, &self.cfg)
    }

    /// Records `value` (bytes, or percent units for `request_percentage`) on `sensor` at `now`
    /// and returns how long to throttle the client, in ms (0 within quota).
    pub fn record(&self, sensor: &SensorKey, value: f64, now: Instant) -> u64 {
        if !self.is_enabled(sensor.key) || !value.is_finite() {
            return 0;
        }
        let now_ms = self.now_ms(now);
        let max_ms = self.max_throttle_ms(sensor.key);
        self.with_sensor(sensor, now_ms, |s, cfg| {
            s.rate.record(cfg, value, now_ms);
            let Some(limit) = s.limit else { return 0 };
            let (rate, span) = s.rate.measure(cfg, now_ms);
            throttle_ms(rate, limit, span).min(max_ms)
        })
    }

    /// Resolves the sensor for `user`/`client_id` and records `value` on it; 0 when no quota
    /// applies.
    pub fn record_usage(
        &self,
        key: QuotaKey,
        user: &str,
        client_id: &str,
        value: f64,
        now: Instant,
    ) -> u64 {
        match self.sensor_key(key, user, client_id) {
            Some(sensor) => self.record(&sensor, value, now),
            None => 0,
        }
    }

    /// Records `value` without computing a throttle (usage noticed after the response, such as
    /// network-thread time).
    pub fn record_no_throttle(&self, sensor: &SensorKey, value: f64, now: Instant) {
        if !self.is_enabled(sensor.key) || !value.is_finite() {
            return;
        }
        let now_ms = self.now_ms(now);
        self.with_sensor(sensor, now_ms, |s, cfg| s.rate.record(cfg, value, now_ms));
    }

    /// Takes back `value` recorded earlier (a throttled fetch that returns no data).
    pub fn unrecord(&self, sensor: &SensorKey, value: f64, now: Instant) {
        self.record_no_throttle(sensor, -value, now);
    }

    /// The observed rate of `sensor` at `now` (per second), if the sensor exists.
    pub fn observed_rate(&self, sensor: &SensorKey, now: Instant) -> Option<f64> {
        let now_ms = self.now_ms(now);
        let mut map = lock(self.shard(sensor));
        let s = map.get_mut(sensor)?;
        Some(s.rate.measure(&self.cfg, now_ms).0)
    }

    /// The largest value that can be recorded at once without certain throttling (Kafka
    /// bounds fetch sizes with it); `f64::MAX` when no quota applies.
    pub fn max_value_in_window(&self, key: QuotaKey, user: &str, client_id: &str) -> f64 {
        match self.resolve(key, user, client_id) {
            Some(q) => q.limit * (self.cfg.samples - 1) as f64 * self.cfg.window_ms as f64 / 1000.0,
            None => f64::MAX,
        }
    }

    /// The longest throttle returned for `key`: one window for request percentage, the
    /// protocol's `i32::MAX` otherwise.
    pub fn max_throttle_ms(&self, key: QuotaKey) -> u64 {
        match key {
            QuotaKey::RequestPercentage => self.cfg.window_ms,
            _ => i32::MAX as u64,
        }
    }

    /// Drops sensors unused for longer than the expiry; returns how many were dropped.
    pub fn expire_idle(&self, now: Instant) -> usize {
        self.expire_idle_ms(self.now_ms(now))
    }

    fn expire_idle_ms(&self, now_ms: u64) -> usize {
        let mut dropped = 0;
        for shard in self.shards.iter() {
            let mut map = lock(shard);
            let before = map.len();
            map.retain(|_, s| now_ms.saturating_sub(s.last_record_ms) <= self.cfg.expiry_ms);
            dropped += before - map.len();
        }
        dropped
    }

    /// Sweeps idle sensors at most every 30 s, from whichever caller gets there first.
    fn maybe_sweep(&self, now_ms: u64) {
        let due = self.next_sweep_ms.load(Ordering::Relaxed);
        if now_ms < due {
            return;
        }
        let next = now_ms.saturating_add(SWEEP_INTERVAL_MS);
        if self
            .next_sweep_ms
            .compare_exchange(due, next, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            self.expire_idle_ms(now_ms);
        }
    }

    /// The number of live sensors.
    pub fn sensor_count(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }
}

impl LevelIndex {
    fn has_any(&self) -> bool {
        !self.user_client.is_empty()
            || !self.user_default_client.is_empty()
            || !self.user.is_empty()
            || !self.default_user_client.is_empty()
            || self.default_user_default_client.is_some()
            || self.default_user.is_some()
            || !self.client.is_empty()
            || self.default_client.is_some()
    }
}

/// Kafka's throttle time: how long, with no further usage, until the rate measured over
/// `span_ms` falls back to `limit`: `(rate - limit) / limit × span`.
pub fn throttle_ms(rate: f64, limit: f64, span_ms: u64) -> u64 {
    if limit.is_nan() || rate.is_nan() || limit <= 0.0 || rate <= limit {
        return 0;
    }
    let t = (rate - limit) / limit * span_ms as f64;
    // `as` saturates: an infinite or huge value becomes u64::MAX, never a panic.
    t.round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(n: &str) -> Option<EntityName> {
        Some(EntityName::Specific(n.to_string()))
    }

    fn dflt() -> Option<EntityName> {
        Some(EntityName::Default)
    }

    fn entity(u: Option<EntityName>, c: Option<EntityName>) -> ClientQuotaEntity {
        ClientQuotaEntity::new(u, c)
    }

    fn set(configs: &mut QuotaConfigs, e: &ClientQuotaEntity, key: QuotaKey, v: f64) {
        configs
            .alter(e, &[QuotaOp::set(key.name(), v)])
            .expect("valid alteration");
    }

    fn manager_with(configs: &QuotaConfigs) -> (QuotaManager, Instant) {
        let m = QuotaManager::default();
        m.update(configs);
        (m, Instant::now())
    }

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    // ---- entities and validation ----

    #[test]
    fn entity_from_wire_accepts_user_client_and_defaults() {
        let e = ClientQuotaEntity::from_wire([("user", Some("alice")), ("client-id", None)])
            .expect("valid");
        assert_eq!(e, entity(user("alice"), dflt()));
        assert_eq!(e.to_string(), "/users/alice/clients/<default>");
        assert_eq!(
            e.to_wire(),
            vec![("user", Some("alice")), ("client-id", None)]
        );
        let e = ClientQuotaEntity::from_wire([("client-id", Some("c1"))]).expect("valid");
        assert_eq!(e, entity(None, user("c1")));
        assert_eq!(e.to_string(), "/clients/c1");
    }

    #[test]
    fn entity_from_wire_refuses_bad_entities() {
        let cases: Vec<Vec<(&str, Option<&str>)>> = vec![
            vec![],
            vec![("user", Some("a")), ("user", Some("b"))],
            vec![("client-id", None), ("client-id", None)],
            vec![("group", Some("g"))],
            vec![("ip", Some("10.0.0.1"))],
            vec![("user", Some(""))],
            vec![("user", Some("a")), ("client-id", Some(""))],
        ];
        for c in cases {
            let err = ClientQuotaEntity::from_wire(c.clone()).expect_err("invalid");
            assert_eq!(err.code, INVALID_REQUEST, "{c:?}: {err}");
            assert!(!err.message.is_empty());
        }
        assert!(ClientQuotaEntity::default().validate().is_err());
    }

    #[test]
    fn quota_keys_parse_and_values_validate() {
        for k in QuotaKey::ALL {
            assert_eq!(QuotaKey::parse(k.name()), Some(k));
        }
        assert_eq!(QuotaKey::parse("connection_creation_rate"), None);
        let pb = QuotaKey::ProducerByteRate;
        assert!(pb.validate_value(1024.0).is_ok());
        assert!(pb.validate_value(1_024.000_000_1).is_ok());
        for bad in [0.0, -1.0, 1.5, f64::NAN, f64::INFINITY, 1e30] {
            let err = pb.validate_value(bad).expect_err("invalid");
            assert_eq!(err.code, INVALID_REQUEST, "{bad}");
        }
        let rp = QuotaKey::RequestPercentage;
        assert!(rp.validate_value(0.5).is_ok());
        assert!(rp.validate_value(0.0).is_err());
        assert!(rp.validate_value(-3.0).is_err());
        assert!(QuotaKey::ControllerMutationRate.validate_value(2.5).is_ok());
        assert!(QuotaKey::ConsumerByteRate.validate_value(0.25).is_err());
    }

    #[test]
    fn alter_sets_removes_and_reports_changes() {
        let mut c = QuotaConfigs::new();
        let e = entity(user("alice"), None);
        let changes = c
            .alter(
                &e,
                &[
                    QuotaOp::set("producer_byte_rate", 1000.0),
                    QuotaOp::set("controller_mutation_rate", 2.5),
                ],
            )
            .expect("valid");
        assert_eq!(changes.len(), 2);
        assert_eq!(c.get(&e).map(|m| m.len()), Some(2));

        // Same value again and removal of an absent key change nothing.
        let changes = c
            .alter(
                &e,
                &[
                    QuotaOp::set("producer_byte_rate", 1000.0),
                    QuotaOp::remove("consumer_byte_rate"),
                ],
            )
            .expect("valid");
        assert!(changes.is_empty());

        let changes = c
            .alter(&e, &[QuotaOp::remove("producer_byte_rate")])
            .expect("valid");
        assert_eq!(
            changes,
            vec![QuotaChange {
                entity: e.clone(),
                key: QuotaKey::ProducerByteRate,
                value: None
            }]
        );
        c.alter(&e, &[QuotaOp::remove("controller_mutation_rate")])
            .expect("valid");
        // An entity whose last key is removed is gone.
        assert!(c.get(&e).is_none());
        assert!(c.is_empty());
    }

    #[test]
    fn alter_is_all_or_nothing_and_refuses_bad_ops() {
        let mut c = QuotaConfigs::new();
        let e = entity(user("alice"), user("c1"));
        let bad_ops: Vec<Vec<QuotaOp>> = vec![
            vec![QuotaOp::set("bogus_rate", 1.0)],
            vec![QuotaOp::remove("bogus_rate")],
            vec![QuotaOp::set("producer_byte_rate", 0.0)],
            vec![QuotaOp::set("producer_byte_rate", -5.0)],
            vec![QuotaOp::set("consumer_byte_rate", 10.5)],
            vec![QuotaOp::set("request_percentage", f64::NAN)],
            vec![
                QuotaOp::set("producer_byte_rate", 10.0),
                QuotaOp::remove("producer_byte_rate"),
            ],
            vec![
                QuotaOp::set("producer_byte_rate", 10.0),
                QuotaOp::set("consumer_byte_rate", -1.0),
            ],
        ];
        for ops in bad_ops {
            let err = c.alter(&e, &ops).expect_err("invalid");
            assert_eq!(err.code, INVALID_REQUEST, "{ops:?}");
            assert!(c.is_empty(), "{ops:?} changed the configs");
        }
        let err = c
            .alter(
                &ClientQuotaEntity::default(),
                &[QuotaOp::set("producer_byte_rate", 1.0)],
            )
            .expect_err("no components");
        assert_eq!(err.code, INVALID_REQUEST);
        let err = c
            .alter(
                &entity(user(""), None),
                &[QuotaOp::set("producer_byte_rate", 1.0)],
            )
            .expect_err("empty name");
        assert_eq!(err.code, INVALID_REQUEST);
    }

    #[test]
    fn plan_alter_does_not_mutate_and_apply_replays() {
        let mut c = QuotaConfigs::new();
        let e = entity(None, dflt());
        let changes = c
            .plan_alter(&e, &[QuotaOp::set("request_percentage", 25.0)])
            .expect("valid");
        assert!(c.is_empty());
        let mut replica = QuotaConfigs::new();
        for ch in &changes {
            c.apply(ch);
            replica.apply(ch);
        }
        assert_eq!(c, replica);
        assert_eq!(
            c.get(&e).and_then(|m| m.get(&QuotaKey::RequestPercentage)),
            Some(&25.0)
        );
        // Replay ignores values no alteration could have produced.
        replica.apply(&QuotaChange {
            entity: e.clone(),
            key: QuotaKey::ProducerByteRate,
            value: Some(f64::NAN),
        });
        assert_eq!(c, replica);
    }

    #[test]
    fn configs_round_trip_through_json_and_postcard() {
        let mut c = QuotaConfigs::new();
        set(
            &mut c,
            &entity(user("alice"), dflt()),
            QuotaKey::ProducerByteRate,
            1e6,
        );
        set(
            &mut c,
            &entity(dflt(), None),
            QuotaKey::RequestPercentage,
            12.5,
        );
        set(
            &mut c,
            &entity(None, user("c1")),
            QuotaKey::ConsumerByteRate,
            42.0,
        );
        let json = serde_json::to_string(&c).expect("json");
        assert!(json.contains("producer_byte_rate"), "{json}");
        let back: QuotaConfigs = serde_json::from_str(&json).expect("json back");
        assert_eq!(back, c);
        let bytes = postcard::to_allocvec(&c).expect("postcard");
        let back: QuotaConfigs = postcard::from_bytes(&bytes).expect("postcard back");
        assert_eq!(back, c);
    }

    // ---- describe filters ----

    fn filter_fixture() -> QuotaConfigs {
        let mut c = QuotaConfigs::new();
        for e in [
            entity(user("alice"), None),
            entity(dflt(), None),
            entity(None, user("c1")),
            entity(None, dflt()),
            entity(user("alice"), user("c1")),
            entity(user("alice"), dflt()),
            entity(dflt(), dflt()),
        ] {
            set(&mut c, &e, QuotaKey::ProducerByteRate, 100.0);
        }
        c
    }

    fn describe(
        c: &QuotaConfigs,
        components: &[(&str, i8, Option<&str>)],
        strict: bool,
    ) -> Result<Vec<ClientQuotaEntity>, QuotaError> {
        let f = ClientQuotaFilter::from_wire(components.iter().copied(), strict)?;
        Ok(c.describe(&f).into_iter().map(|(e, _)| e).collect())
    }

    fn sorted(mut v: Vec<ClientQuotaEntity>) -> Vec<ClientQuotaEntity> {
        v.sort();
        v
    }

    #[test]
    fn describe_without_components() {
        let c = filter_fixture();
        assert_eq!(describe(&c, &[], false).expect("ok").len(), 7);
        assert!(describe(&c, &[], true).expect("ok").is_empty());
    }

    #[test]
    fn describe_exact_matches() {
        let c = filter_fixture();
        let got = describe(&c, &[("user", MATCH_TYPE_EXACT, Some("alice"))], false).expect("ok");
        assert_eq!(
            sorted(got),
            sorted(vec![
                entity(user("alice"), None),
                entity(user("alice"), user("c1")),
                entity(user("alice"), dflt()),
            ])
        );
        let got = describe(&c, &[("user", MATCH_TYPE_EXACT, Some("alice"))], true).expect("ok");
        assert_eq!(got, vec![entity(user("alice"), None)]);
        let got = describe(
            &c,
            &[
                ("user", MATCH_TYPE_EXACT, Some("alice")),
                ("client-id", MATCH_TYPE_EXACT, Some("c1")),
            ],
            true,
        )
        .expect("ok");
        assert_eq!(got, vec![entity(user("alice"), user("c1"))]);
        assert!(
            describe(&c, &[("user", MATCH_TYPE_EXACT, Some("bob"))], false)
                .expect("ok")
                .is_empty()
        );
    }

    #[test]
    fn describe_default_matches() {
        let c = filter_fixture();
        let got = describe(&c, &[("user", MATCH_TYPE_DEFAULT, None)], false).expect("ok");
        assert_eq!(
            sorted(got),
            sorted(vec![entity(dflt(), None), entity(dflt(), dflt())])
        );
        let got = describe(&c, &[("user", MATCH_TYPE_DEFAULT, None)], true).expect("ok");
        assert_eq!(got, vec![entity(dflt(), None)]);
        // Default user with an exact client: not stored.
        assert!(
            describe(
                &c,
                &[
                    ("user", MATCH_TYPE_DEFAULT, None),
                    ("client-id", MATCH_TYPE_EXACT, Some("c1")),
                ],
                false,
            )
            .expect("ok")
            .is_empty()
        );
    }

    #[test]
    fn describe_specified_matches_any_name_including_default() {
        let c = filter_fixture();
        let got = describe(&c, &[("user", MATCH_TYPE_SPECIFIED, None)], false).expect("ok");
        assert_eq!(got.len(), 5);
        assert!(got.iter().all(|e| e.user.is_some()));
        let got = describe(&c, &[("user", MATCH_TYPE_SPECIFIED, None)], true).expect("ok");
        assert_eq!(
            sorted(got),
            sorted(vec![entity(user("alice"), None), entity(dflt(), None)])
        );
        let got = describe(
            &c,
            &[
                ("user", MATCH_TYPE_SPECIFIED, None),
                ("client-id", MATCH_TYPE_SPECIFIED, None),
            ],
            true,
        )
        .expect("ok");
        assert_eq!(
            sorted(got),
            sorted(vec![
                entity(user("alice"), user("c1")),
                entity(user("alice"), dflt()),
                entity(dflt(), dflt()),
            ])
        );
        let got = describe(
            &c,
            &[
                ("client-id", MATCH_TYPE_SPECIFIED, None),
                ("user", MATCH_TYPE_EXACT, Some("alice")),
            ],
            false,
        )
        .expect("ok");
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn describe_ip_component_matches_nothing() {
        let c = filter_fixture();
        assert!(
            describe(&c, &[("ip", MATCH_TYPE_SPECIFIED, None)], false)
                .expect("ok")
                .is_empty()
        );
        assert!(
            describe(&c, &[("ip", MATCH_TYPE_DEFAULT, None)], true)
                .expect("ok")
                .is_empty()
        );
    }

    #[test]
    fn describe_filter_validation() {
        let c = filter_fixture();
        type Case<'a> = (Vec<(&'a str, i8, Option<&'a str>)>, i16);
        let cases: Vec<Case> = vec![
            (vec![("", MATCH_TYPE_SPECIFIED, None)], INVALID_REQUEST),
            (
                vec![
                    ("user", MATCH_TYPE_SPECIFIED, None),
                    ("user", MATCH_TYPE_DEFAULT, None),
                ],
                INVALID_REQUEST,
            ),
            (
                vec![("group", MATCH_TYPE_SPECIFIED, None)],
                UNSUPPORTED_VERSION,
            ),
            (vec![("user", MATCH_TYPE_EXACT, None)], INVALID_REQUEST),
            (
                vec![("user", MATCH_TYPE_DEFAULT, Some("a"))],
                INVALID_REQUEST,
            ),
            (
                vec![("user", MATCH_TYPE_SPECIFIED, Some("a"))],
                INVALID_REQUEST,
            ),
            (vec![("user", 7, None)], INVALID_REQUEST),
            (vec![("user", -1, Some("a"))], INVALID_REQUEST),
            (
                vec![
                    ("ip", MATCH_TYPE_SPECIFIED, None),
                    ("client-id", MATCH_TYPE_DEFAULT, None),
                ],
                INVALID_REQUEST,
            ),
        ];
        for (components, code) in cases {
            let err = describe(&c, &components, false).expect_err("invalid filter");
            assert_eq!(err.code, code, "{components:?}: {err}");
        }
    }

    // ---- precedence ----

    const LEVEL_CLIENT: &str = "c1";

    #[test]
    fn precedence_walks_all_eight_levels() {
        let mut c = QuotaConfigs::new();
        for (i, level) in QuotaLevel::ORDER.into_iter().enumerate() {
            set(
                &mut c,
                &level.entity("alice", LEVEL_CLIENT),
                QuotaKey::ProducerByteRate,
                (i + 1) as f64,
            );
        }
        let m = QuotaManager::default();
        for (i, level) in QuotaLevel::ORDER.into_iter().enumerate() {
            m.update(&c);
            let got = c
                .resolve(QuotaKey::ProducerByteRate, "alice", LEVEL_CLIENT)
                .expect("a level applies");
            assert_eq!(got.level, level);
            assert_eq!(got.limit, (i + 1) as f64);
            assert_eq!(got.entity, level.entity("alice", LEVEL_CLIENT));
            let (u, cl) = match level.scope() {
                SensorScope::UserAndClient => (Some("alice"), Some(LEVEL_CLIENT)),
                SensorScope::User => (Some("alice"), None),
                SensorScope::Client => (None, Some(LEVEL_CLIENT)),
            };
            assert_eq!(got.sensor.user.as_deref(), u, "{level:?}");
            assert_eq!(got.sensor.client_id.as_deref(), cl, "{level:?}");
            // The manager's index agrees with the configs.
            assert_eq!(
                m.resolve(QuotaKey::ProducerByteRate, "alice", LEVEL_CLIENT),
                Some(got.clone())
            );
            // Other keys are unaffected.
            assert!(
                c.resolve(QuotaKey::ConsumerByteRate, "alice", LEVEL_CLIENT)
                    .is_none()
            );
            c.alter(&got.entity, &[QuotaOp::remove("producer_byte_rate")])
                .expect("valid");
        }
        m.update(&c);
        assert!(
            c.resolve(QuotaKey::ProducerByteRate, "alice", LEVEL_CLIENT)
                .is_none()
        );
        assert!(
            m.resolve(QuotaKey::ProducerByteRate, "alice", LEVEL_CLIENT)
                .is_none()
        );
        assert!(!m.is_enabled(QuotaKey::ProducerByteRate));
    }

    #[test]
    fn precedence_is_per_key_and_per_name() {
        let mut c = QuotaConfigs::new();
        set(
            &mut c,
            &entity(user("alice"), None),
            QuotaKey::ProducerByteRate,
            10.0,
        );
        set(
            &mut c,
            &entity(None, user("c1")),
            QuotaKey::ConsumerByteRate,
            20.0,
        );
        set(
            &mut c,
            &entity(None, user("c1")),
            QuotaKey::ProducerByteRate,
            30.0,
        );
        let r = c
            .resolve(QuotaKey::ProducerByteRate, "alice", "c1")
            .expect("q");
        assert_eq!((r.level, r.limit), (QuotaLevel::User, 10.0));
        let r = c
            .resolve(QuotaKey::ConsumerByteRate, "alice", "c1")
            .expect("q");
        assert_eq!((r.level, r.limit), (QuotaLevel::Client, 20.0));
        let r = c
            .resolve(QuotaKey::ProducerByteRate, "bob", "c1")
            .expect("q");
        assert_eq!((r.level, r.limit), (QuotaLevel::Client, 30.0));
        assert!(c.resolve(QuotaKey::ProducerByteRate, "bob", "c2").is_none());
        // An empty client id only matches default-client levels.
        set(
            &mut c,
            &entity(None, dflt()),
            QuotaKey::RequestPercentage,
            5.0,
        );
        let r = c
            .resolve(QuotaKey::RequestPercentage, "bob", "")
            .expect("q");
        assert_eq!(r.level, QuotaLevel::DefaultClient);
        assert_eq!(r.sensor.client_id.as_deref(), Some(""));
    }

    #[test]
    fn default_user_quota_gives_each_user_a_sensor() {
        let mut c = QuotaConfigs::new();
        set(
            &mut c,
            &entity(dflt(), None),
            QuotaKey::ProducerByteRate,
            1000.0,
        );
        let (m, t0) = manager_with(&c);
        let a = m
            .sensor_key(QuotaKey::ProducerByteRate, "alice", "c1")
            .expect("q");
        let b = m
            .sensor_key(QuotaKey::ProducerByteRate, "bob", "c1")
            .expect("q");
        assert_ne!(a, b);
        // Alice's client ids share her sensor at a user-level quota.
        assert_eq!(
            m.sensor_key(QuotaKey::ProducerByteRate, "alice", "c2"),
            Some(a.clone())
        );
        assert!(m.record(&a, 20_000.0, t0) > 0);
        assert_eq!(m.record(&b, 100.0, t0), 0);
        assert!(m.record(&a, 1.0, at(t0, 1)) > 0);
    }

    #[test]
    fn client_quota_is_shared_by_users_of_the_client() {
        let mut c = QuotaConfigs::new();
        set(
            &mut c,
            &entity(None, dflt()),
            QuotaKey::ProducerByteRate,
            1000.0,
        );
        let (m, t0) = manager_with(&c);
        let a = m
            .sensor_key(QuotaKey::ProducerByteRate, "alice", "app")
            .expect("q");
        let b = m
            .sensor_key(QuotaKey::ProducerByteRate, "bob", "app")
            .expect("q");
        assert_eq!(a, b);
        assert_eq!(m.record(&a, 9_000.0, t0), 0);
        assert!(m.record(&b, 9_000.0, t0) > 0);
        let other = m
            .sensor_key(QuotaKey::ProducerByteRate, "bob", "other")
            .expect("q");
        assert_eq!(m.record(&other, 9_000.0, t0), 0);
    }

    // ---- rates and throttle math ----

    fn producer_quota(limit: f64) -> QuotaConfigs {
        let mut c = QuotaConfigs::new();
        set(
            &mut c,
            &entity(None, dflt()),
            QuotaKey::ProducerByteRate,
            limit,
        );
        c
    }

    #[test]
    fn throttle_formula() {
        assert_eq!(throttle_ms(2000.0, 1000.0, 10_000), 10_000);
        assert_eq!(throttle_ms(1500.0, 1000.0, 11_000), 5_500);
        assert_eq!(throttle_ms(1000.0, 1000.0, 10_000), 0);
        assert_eq!(throttle_ms(10.0, 1000.0, 10_000), 0);
        assert_eq!(throttle_ms(f64::NAN, 1000.0, 10_000), 0);
        assert_eq!(throttle_ms(10.0, 0.0, 10_000), 0);
        assert_eq!(throttle_ms(f64::INFINITY, 1.0, 10_000), u64::MAX);
    }

    #[test]
    fn first_burst_is_measured_over_padded_windows() {
        let (m, t0) = manager_with(&producer_quota(1000.0));
        let s = m
            .sensor_key(QuotaKey::ProducerByteRate, "u", "c")
            .expect("q");
        // 5 000 bytes over a padded span of 10 s is 500 B/s: within quota.
        assert_eq!(m.record(&s, 5_000.0, t0), 0);
        // 20 000 bytes over 10 s is 2 000 B/s: one more 10 s span brings it back to 1 000.
        assert_eq!(m.record(&s, 15_000.0, t0), 10_000);
    }

    #[test]
    fn producer_at_twice_its_quota_is_throttled_about_one_quota_window() {
        let (m, t0) = manager_with(&producer_quota(1000.0));
        let mut last = 0;
        for i in 0..300u64 {
            // 200 bytes every 100 ms = 2 000 B/s.
            last = m.record_usage(QuotaKey::ProducerByteRate, "u", "c", 200.0, at(t0, i * 100));
        }
        // Rate ~2 000 over a span of 10-11 s: (2000 - 1000) / 1000 × span.
        assert!((9_500..=11_500).contains(&last), "throttle {last}");
        let s = m
            .sensor_key(QuotaKey::ProducerByteRate, "u", "c")
            .expect("q");
        let rate = m.observed_rate(&s, at(t0, 29_900)).expect("sensor");
        assert!((1_900.0..=2_100.0).contains(&rate), "rate {rate}");
    }

    #[test]
    fn producer_under_quota_is_never_throttled() {
        let (m, t0) = manager_with(&producer_quota(1000.0));
        for i in 0..300u64 {
            let t = m.record_usage(QuotaKey::ProducerByteRate, "u", "c", 50.0, at(t0, i * 100));
            assert_eq!(t, 0, "at {i}");
        }
    }

    #[test]
    fn rate_falls_once_windows_pass() {
        let (m, t0) = manager_with(&producer_quota(1000.0));
        let s = m
            .sensor_key(QuotaKey::ProducerByteRate, "u", "c")
            .expect("q");
        for i in 0..200u64 {
            m.record(&s, 200.0, at(t0, i * 100));
        }
        let busy = m.observed_rate(&s, at(t0, 19_900)).expect("sensor");
        let later = m.observed_rate(&s, at(t0, 25_000)).expect("sensor");
        assert!(later < busy * 0.7, "{busy} -> {later}");
        // After a whole span (11 windows) of silence the old samples are gone.
        assert_eq!(m.record(&s, 200.0, at(t0, 31_000)), 0);
        let rate = m.observed_rate(&s, at(t0, 31_000)).expect("sensor");
        assert!(rate <= 20.0 + 1e-9, "rate {rate}");
    }

    #[test]
    fn request_percentage_is_capped_at_one_window() {
        let mut c = QuotaConfigs::new();
        set(
            &mut c,
            &entity(user("u"), None),
            QuotaKey::RequestPercentage,
            10.0,
        );
        set(
            &mut c,
            &entity(user("u"), None),
            QuotaKey::ProducerByteRate,
            10.0,
        );
        let (m, t0) = manager_with(&c);
        assert_eq!(request_time_percentage(10_000_000), 1.0);
        let r = m
            .sensor_key(QuotaKey::RequestPercentage, "u", "c")
            .expect("q");
        // 0.5 s of thread time = 50 units over 10 s = 5 %: within a 10 % quota.
        assert_eq!(m.record(&r, request_time_percentage(500_000_000), t0), 0);
        // 3.5 s in all = 35 % against 10 %: uncapped it would be 25 s.
        let t = m.record(&r, request_time_percentage(3_000_000_000), t0);
        assert_eq!(t, 1_000);
        // The same ratio on a byte rate is not capped.
        let p = m
            .sensor_key(QuotaKey::ProducerByteRate, "u", "c")
            .expect("q");
        assert_eq!(m.record(&p, 350.0, t0), 25_000);
    }

    #[test]
    fn config_changes_reach_existing_sensors() {
        let c = producer_quota(1000.0);
        let (m, t0) = manager_with(&c);
        let s = m
            .sensor_key(QuotaKey::ProducerByteRate, "u", "c")
            .expect("q");
        assert_eq!(m.record(&s, 20_000.0, t0), 10_000);
        m.update(&producer_quota(100_000.0));
        assert_eq!(m.record(&s, 1.0, at(t0, 1)), 0);
        m.update(&producer_quota(500.0));
        assert!(m.record(&s, 1.0, at(t0, 2)) > 10_000);
        m.update(&QuotaConfigs::new());
        assert_eq!(m.record(&s, 1e9, at(t0, 3)), 0);
        assert!(m.sensor_key(QuotaKey::ProducerByteRate, "u", "c").is_none());
    }

    #[test]
    fn unrecord_takes_usage_back() {
        let mut c = QuotaConfigs::new();
        set(
            &mut c,
            &entity(None, dflt()),
            QuotaKey::ConsumerByteRate,
            1000.0,
        );
        let (m, t0) = manager_with(&c);
        let s = m
            .sensor_key(QuotaKey::ConsumerByteRate, "u", "c")
            .expect("q");
        assert!(m.record(&s, 50_000.0, t0) > 0);
        m.unrecord(&s, 50_000.0, t0);
        assert_eq!(m.observed_rate(&s, t0), Some(0.0));
        assert_eq!(m.record(&s, 100.0, at(t0, 10)), 0);
        m.record_no_throttle(&s, 100.0, at(t0, 20));
        // 200 bytes over the padded span of 10 s plus the 20 ms elapsed.
        let rate = m.observed_rate(&s, at(t0, 20)).expect("sensor");
        assert!((rate - 200.0 / 10.02).abs() < 1e-6, "rate {rate}");
    }

    #[test]
    fn max_value_in_window_follows_the_quota() {
        let (m, _) = manager_with(&producer_quota(1000.0));
        assert_eq!(
            m.max_value_in_window(QuotaKey::ProducerByteRate, "u", "c"),
            10_000.0
        );
        assert_eq!(
            m.max_value_in_window(QuotaKey::ConsumerByteRate, "u", "c"),
            f64::MAX
        );
    }

    #[test]
    fn small_windows_and_one_sample_do_not_panic() {
        let m = QuotaManager::new(QuotaManagerConfig {
            samples: 0,
            window: Duration::ZERO,
            sensor_expiry: Duration::ZERO,
        });
        m.update(&producer_quota(1.0));
        let t0 = Instant::now();
        let s = m
            .sensor_key(QuotaKey::ProducerByteRate, "u", "c")
            .expect("q");
        assert!(m.record(&s, 1e300, t0) > 0);
        assert_eq!(m.record(&s, f64::NAN, t0), 0);
        assert_eq!(m.record(&s, 0.0, at(t0, 5)), 0);
    }

    // ---- sensors: expiry and zero cost ----

    #[test]
    fn idle_sensors_expire_after_an_hour() {
        let (m, t0) = manager_with(&producer_quota(1000.0));
        let s = m
            .sensor_key(QuotaKey::ProducerByteRate, "u", "c")
            .expect("q");
        m.record(&s, 1.0, t0);
        assert_eq!(m.sensor_count(), 1);
        assert_eq!(m.expire_idle(at(t0, 3_599_000)), 0);
        assert_eq!(m.sensor_count(), 1);
        assert_eq!(m.expire_idle(at(t0, 3_601_000)), 1);
        assert_eq!(m.sensor_count(), 0);
    }

    #[test]
    fn recording_sweeps_idle_sensors() {
        let (m, t0) = manager_with(&producer_quota(1000.0));
        // A client-level quota: one sensor per client id.
        m.record_usage(QuotaKey::ProducerByteRate, "u", "old", 1.0, t0);
        m.record_usage(
            QuotaKey::ProducerByteRate,
            "u",
            "busy",
            1.0,
            at(t0, 3_000_000),
        );
        assert_eq!(m.sensor_count(), 2);
        m.record_usage(
            QuotaKey::ProducerByteRate,
            "u",
            "busy",
            1.0,
            at(t0, 3_700_000),
        );
        assert_eq!(m.sensor_count(), 1);
    }

    #[test]
    fn sync_updates_only_on_change() {
        let m = QuotaManager::default();
        assert!(!m.sync(&QuotaConfigs::new()));
        let c = producer_quota(1000.0);
        assert!(m.sync(&c));
        assert!(m.is_enabled(QuotaKey::ProducerByteRate));
        assert!(!m.sync(&c.clone()));
        assert!(m.sync(&QuotaConfigs::new()));
        assert!(!m.is_enabled(QuotaKey::ProducerByteRate));
    }

    #[test]
    fn unconfigured_manager_does_no_work() {
        let m = QuotaManager::default();
        let t0 = Instant::now();
        for key in QuotaKey::ALL {
            assert!(!m.is_enabled(key));
            assert!(m.sensor_key(key, "u", "c").is_none());
            for i in 0..1000 {
                assert_eq!(m.record_usage(key, "u", "c", 1e12, at(t0, i)), 0);
            }
            let forged = SensorKey {
                key,
                user: Some("u".into()),
                client_id: None,
            };
            assert_eq!(m.record(&forged, 1e12, t0), 0);
        }
        assert_eq!(m.sensor_count(), 0);
        // A quota on one key leaves the others free.
        m.update(&producer_quota(1000.0));
        assert_eq!(
            m.record_usage(QuotaKey::ConsumerByteRate, "u", "c", 1e12, t0),
            0
        );
        assert_eq!(m.sensor_count(), 0);
    }
}
