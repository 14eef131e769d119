//! Broker configuration: one TOML file, overridable by `CHRONIK_*` environment variables and by
//! command-line flags, in that order of precedence (flags win).
//!
//! Every key has a default, so an empty file runs a complete single-node broker. Unknown keys,
//! in the file or in the environment, are an error that names the key: a typo must never be
//! silently ignored.

pub mod topic;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error("unknown environment variable {0}: no configuration key matches it")]
    UnknownEnv(String),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// This broker's id in the cluster.
    pub node_id: i32,
    /// Where partition logs and broker metadata live.
    pub data_dir: PathBuf,
    pub kafka: KafkaConfig,
    pub log: LogDefaults,
    pub group: GroupConfig,
    pub tiering: TieringConfig,
    pub cache: CacheSettings,
    pub http: HttpConfig,
    pub search: SearchConfig,
    pub cluster: ClusterConfig,
    pub tls: TlsConfig,
    pub sasl: SaslConfig,
    pub authorization: AuthorizationConfig,
    pub quota: QuotaSettings,
}

/// The controller quorum (`[cluster]`). With no voters (the default) the node keeps its metadata
/// in its own log, a complete single-node broker; with voters, the metadata log is replicated by
/// Raft among them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// The controller voters as `id@host:port` (each one's internal listener), this node's
    /// included, e.g. `["1@127.0.0.1:9095", "2@127.0.0.1:9096", "3@127.0.0.1:9097"]`.
    pub voters: Vec<String>,
    /// What this node runs: `broker`, `controller` or both. A controller-only node serves no
    /// Kafka clients; it holds a voter's copy of the metadata log. A broker-only node is not in
    /// `voters`: it follows the metadata log without a vote (a Raft learner).
    pub roles: Vec<String>,
    /// The internal listener of a broker-only node, `host:port`, where the controller leader
    /// sends it the metadata log. Voters listen at their `voters` address instead.
    pub listen: String,
    /// Raft heartbeats of the controller leader.
    pub heartbeat_ms: u64,
    /// A voter that hears no leader for this long (up to 1.5 times it) stands for election.
    pub election_timeout_ms: u64,
    /// This broker's rack (Kafka's `broker.rack`): replicas of a partition go to different
    /// racks first. Empty: no rack.
    pub rack: String,
    /// How often a broker tells the controller leader it is alive.
    pub broker_heartbeat_ms: u64,
    /// A broker the controller leader has not heard from for this long is fenced: it is no
    /// longer listed to clients and its partitions get new leaders.
    pub session_timeout_ms: u64,
    /// Partitions of the internal `__consumer_offsets` topic, whose leaders coordinate groups.
    pub offsets_partitions: i32,
    /// Partitions of the internal `__remote_log_metadata` topic, which holds the states of
    /// remote segments in a cluster.
    pub remote_log_metadata_partitions: i32,
    /// The controller's Raft log is compacted into a snapshot every this many entries; a voter
    /// further behind than that is sent the snapshot instead of the entries.
    pub snapshot_every: u64,
    /// A follower that has not caught up with its leader for this long leaves the partition's
    /// in-sync set (Kafka's `replica.lag.time.max.ms`).
    pub replica_lag_time_max_ms: u64,
    /// How this node reaches other brokers' Kafka listeners to copy partitions from them, as
    /// `id@host:port`, where that differs from what they registered (a separate replication
    /// network, address translation, or a test's proxy). Brokers not named here are reached at
    /// their registered address.
    pub broker_addresses: Vec<String>,
    /// How often the controller moves leaderships back to each partition's preferred (first)
    /// replica when it is live and in sync (Kafka's `auto.leader.rebalance.enable` with
    /// `leader.imbalance.check.interval.seconds`); 0 turns it off.
    pub leader_rebalance_interval_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            voters: Vec::new(),
            roles: vec!["broker".into(), "controller".into()],
            listen: String::new(),
            heartbeat_ms: 100,
            election_timeout_ms: 300,
            rack: String::new(),
            broker_heartbeat_ms: 2000,
            session_timeout_ms: 9000,
            offsets_partitions: 50,
            remote_log_metadata_partitions: 10,
            snapshot_every: 50_000,
            replica_lag_time_max_ms: 30_000,
            broker_addresses: Vec::new(),
            leader_rebalance_interval_ms: 300_000,
        }
    }
}

impl ClusterConfig {
    /// The voters by id, with their internal `host:port`.
    pub fn voter_map(&self) -> Result<std::collections::BTreeMap<u64, String>, ConfigError> {
        parse_addresses("voters", &self.voters)
    }

    /// `broker_addresses` by broker id.
    pub fn broker_address_map(
        &self,
    ) -> Result<std::collections::BTreeMap<u64, String>, ConfigError> {
        parse_addresses("broker_addresses", &self.broker_addresses)
    }

    pub fn is_broker(&self) -> bool {
        self.roles.iter().any(|r| r == "broker")
    }

    pub fn is_controller(&self) -> bool {
        self.roles.iter().any(|r| r == "controller")
    }
}

/// Parses `id@host:port` entries of `cluster.<key>`.
fn parse_addresses(
    key: &str,
    entries: &[String],
) -> Result<std::collections::BTreeMap<u64, String>, ConfigError> {
    let mut out = std::collections::BTreeMap::new();
    for v in entries {
        let bad = || {
            ConfigError::Invalid(format!(
                "cluster.{key} entry {v:?}: expected id@host:port, e.g. 1@127.0.0.1:9095"
            ))
        };
        let (id, addr) = v.split_once('@').ok_or_else(bad)?;
        let id: u64 = id.trim().parse().map_err(|_| bad())?;
        let addr = addr.trim();
        addr.parse::<SocketAddr>().map_err(|_| bad())?;
        if out.insert(id, addr.to_string()).is_some() {
            return Err(ConfigError::Invalid(format!(
                "cluster.{key} names node {id} twice"
            )));
        }
    }
    Ok(out)
}

/// The search indexer and query API (`[search]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SearchConfig {
    /// Run the indexer and serve queries; topics still opt in with `search.enabled`.
    pub enabled: bool,
    /// How often newly indexed records are committed and become searchable.
    pub commit_interval_ms: u64,
    /// How often the indexer commits while it is behind the log (a pass ended with records
    /// left): fewer, larger segments and fewer merges while it catches up; it goes back to
    /// `commit_interval_ms` as soon as a pass reaches the end of the log.
    pub behind_commit_interval_ms: u64,
    /// Tantivy's indexing buffer for each indexing thread of an indexed partition. It fills
    /// only while records arrive faster than commits empty it; a larger buffer makes fewer,
    /// larger segments and so less flush and merge work (128 MiB indexed 1 M records with a
    /// fifth less CPU than 64 MiB, and 64 MiB twice as fast as 16 MiB).
    pub writer_memory_bytes: u64,
    /// Tantivy indexing threads per indexed partition; 0 (the default) means one per CPU the
    /// indexer may use (`index_cpus` and `spill_cpus`), at most 4. They run in the idle
    /// scheduling class, so they only take CPU time nothing else wants.
    pub index_threads: usize,
    /// CPUs the indexer runs on (e.g. `[0]`); empty (the default) keeps those the broker was
    /// started on.
    pub index_cpus: Vec<usize>,
    /// CPUs the indexing threads may use as well while the indexer is far behind the log (more
    /// than `spill_after_records` records wait to be read), until every record is searchable
    /// again; empty (the default): never. For CPUs that belong to other work, such as a
    /// co-located client: idle time there is only borrowed to catch up, since even idle-class
    /// threads leave their caches worse for that work.
    pub spill_cpus: Vec<usize>,
    /// Records waiting to be read by the indexer, over all partitions, above which it spreads
    /// onto `spill_cpus`.
    pub spill_after_records: u64,
    /// Largest `from + size` of one query.
    pub max_result_window: u64,
    /// In a cluster, how long a query waits for the leaders of the partitions this broker does
    /// not lead; partitions whose leader has not answered by then are listed as missing.
    pub peer_timeout_ms: u64,
}

impl SearchConfig {
    /// The indexing threads per partition: `index_threads`, or for 0 one per CPU the indexer
    /// may use, at most 4.
    pub fn effective_index_threads(&self) -> usize {
        match self.index_threads {
            0 => self.all_index_cpus().len().clamp(1, 4),
            n => n,
        }
    }

    /// The CPUs the indexer runs on while it is not far behind: `index_cpus`, or when that is
    /// empty the calling thread's (at start, the broker's).
    pub fn home_cpus(&self) -> Vec<usize> {
        let mut cpus = if self.index_cpus.is_empty() {
            crate::util::allowed_cpus()
        } else {
            self.index_cpus.clone()
        };
        cpus.sort_unstable();
        cpus.dedup();
        cpus
    }

    /// [`home_cpus`](Self::home_cpus) and `spill_cpus`, without repeats.
    pub fn all_index_cpus(&self) -> Vec<usize> {
        let mut cpus = self.home_cpus();
        cpus.extend(&self.spill_cpus);
        cpus.sort_unstable();
        cpus.dedup();
        cpus
    }
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            commit_interval_ms: 500,
            behind_commit_interval_ms: 15_000,
            writer_memory_bytes: 128 << 20,
            index_threads: 0,
            index_cpus: Vec::new(),
            spill_cpus: Vec::new(),
            spill_after_records: 500_000,
            max_result_window: 10_000,
            peer_timeout_ms: 5_000,
        }
    }
}

/// The admin HTTP port: metrics, health and readiness.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address of the admin HTTP listener; empty turns it off.
    pub listen: String,
    /// `/ready` fails when the data directory's file system has less free space than this.
    pub ready_min_free_bytes: u64,
    /// Serve HTTPS with `[tls]`'s certificate.
    pub tls: bool,
    /// `none`, or `required`: every request but those of `open_paths` authenticates with HTTP
    /// basic (a PLAIN or SCRAM user's name and password) or a bearer JWT (OAUTHBEARER's keys).
    pub auth: String,
    /// Paths answered without authentication when `auth` is `required`.
    pub open_paths: Vec<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9644".into(),
            ready_min_free_bytes: 256 << 20,
            tls: false,
            auth: "none".into(),
            open_paths: vec!["/health".into(), "/ready".into(), "/metrics".into()],
        }
    }
}

/// The hybrid memory/disk cache of remote-tier chunks.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSettings {
    pub memory_bytes: u64,
    pub disk_bytes: u64,
    /// Directory of the disk tier; empty means `<data_dir>/cache`.
    pub dir: String,
    pub chunk_bytes: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            memory_bytes: 256 << 20,
            disk_bytes: 4 << 30,
            dir: String::new(),
            chunk_bytes: chronik_cache::DEFAULT_CHUNK_BYTES,
        }
    }
}

impl CacheSettings {
    pub fn cache_config(&self, data_dir: &Path) -> chronik_cache::CacheConfig {
        chronik_cache::CacheConfig {
            memory_bytes: self.memory_bytes,
            disk_bytes: self.disk_bytes,
            dir: if self.dir.is_empty() {
                data_dir.join("cache")
            } else {
                PathBuf::from(&self.dir)
            },
            chunk_bytes: self.chunk_bytes,
        }
    }
}

/// The remote tier (object storage) for topics with `remote.storage.enable=true`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TieringConfig {
    /// `file://DIR`, `s3://bucket/prefix` or `memory://`; empty means `file://<data_dir>/remote`.
    pub url: String,
    /// S3 endpoint override (LocalStack, MinIO), e.g. `http://127.0.0.1:4566`.
    pub endpoint: String,
    /// S3 region; empty takes `AWS_REGION`/`AWS_DEFAULT_REGION` or `us-east-1`.
    pub region: String,
    /// Allow plain-HTTP endpoints (LocalStack, MinIO on loopback).
    pub allow_http: bool,
    /// How often sealed segments are looked for and retention is applied across tiers.
    pub interval_ms: u64,
    /// Uploads above this size go multipart, in parts of this size (at least 5 MiB).
    pub part_size_bytes: u64,
}

impl Default for TieringConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            endpoint: String::new(),
            region: String::new(),
            allow_http: false,
            interval_ms: 1000,
            part_size_bytes: 8 << 20,
        }
    }
}

impl TieringConfig {
    /// The store URL in effect for a data directory.
    pub fn effective_url(&self, data_dir: &Path) -> String {
        if self.url.is_empty() {
            let dir = data_dir.join("remote");
            format!("file://{}", dir.display())
        } else {
            self.url.clone()
        }
    }
}

/// Consumer group coordinator settings (Kafka's `group.*` and `offsets.*`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GroupConfig {
    pub min_session_timeout_ms: u64,
    pub max_session_timeout_ms: u64,
    /// How long the first rebalance of an empty group waits for more members.
    pub initial_rebalance_delay_ms: u64,
    /// Offsets of groups without members expire this long after their last commit.
    pub offsets_retention_ms: u64,
    pub offset_metadata_max_bytes: usize,
}

impl Default for GroupConfig {
    fn default() -> Self {
        Self {
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            offsets_retention_ms: 7 * 24 * 3600 * 1000,
            offset_metadata_max_bytes: 4096,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Address the Kafka listener binds to.
    pub listen: String,
    /// `host:port` given to clients in Metadata; empty means the bound address.
    pub advertised: String,
    /// Connections beyond this wait in the accept queue (`max.connections`).
    pub max_connections: usize,
    /// Largest request frame accepted (`socket.request.max.bytes`).
    pub request_max_bytes: u32,
    /// Connections idle this long are closed (`connections.max.idle.ms`).
    pub idle_timeout_ms: u64,
    /// Requests slower than this are logged with their request id (client id:correlation id);
    /// long-polling Fetch and group joins are exempt.
    pub slow_request_ms: u64,
    /// Named listeners (`[[kafka.listeners]]`), each with its address and security protocol.
    /// Empty: one PLAINTEXT listener named `PLAINTEXT` at `listen`, advertised as `advertised`.
    pub listeners: Vec<ListenerConfig>,
    /// The listener brokers use to reach each other (Kafka's `inter.broker.listener.name`);
    /// empty: the first listener.
    pub inter_broker_listener: String,
}

/// How a listener's connections are secured (Kafka's `security.protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn name(self) -> &'static str {
        match self {
            Self::Plaintext => "PLAINTEXT",
            Self::Ssl => "SSL",
            Self::SaslPlaintext => "SASL_PLAINTEXT",
            Self::SaslSsl => "SASL_SSL",
        }
    }

    pub fn uses_tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }

    pub fn uses_sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }
}

/// Whether a TLS listener asks clients for a certificate (Kafka's `ssl.client.auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    #[default]
    None,
    Requested,
    Required,
}

/// One Kafka listener (`[[kafka.listeners]]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// The listener's name (Kafka's listener name, as in `advertised.listeners`); default: the
    /// protocol's name.
    #[serde(default)]
    pub name: String,
    /// `host:port` to bind.
    pub listen: String,
    /// `host:port` clients that came in on this listener are told; empty: the bound address.
    #[serde(default)]
    pub advertised: String,
    pub protocol: SecurityProtocol,
    /// TLS listeners: `none`, `requested` or `required` client certificates (mTLS).
    #[serde(default)]
    pub client_auth: ClientAuth,
    /// SASL listeners: the mechanisms offered; empty: every mechanism configured in `[sasl]`.
    #[serde(default)]
    pub sasl_mechanisms: Vec<String>,
}

/// The certificates of the TLS listeners and the admin HTTP port (`[tls]`), PEM files. They are
/// read again when they change on disk: new connections get the new certificate, open ones keep
/// theirs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// The server certificate chain (leaf first).
    pub cert_file: String,
    /// Its private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: String,
    /// CA certificates that sign client certificates, for listeners with `client_auth`.
    pub client_ca_file: String,
    /// CA certificates the broker trusts for its own HTTPS requests (other brokers' admin ports
    /// in a cluster with `http.tls`, a JWKS URL); empty: the public Web PKI roots.
    pub ca_file: String,
    /// How a client certificate's subject becomes a principal name (Kafka's
    /// `ssl.principal.mapping.rules`): `RULE:regex/replacement/[LU]` entries and `DEFAULT`.
    pub principal_mapping_rules: String,
    /// Oldest protocol version accepted: `1.2` or `1.3`.
    pub min_version: String,
    /// How often the files are checked for changes.
    pub reload_check_ms: u64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            cert_file: String::new(),
            key_file: String::new(),
            client_ca_file: String::new(),
            ca_file: String::new(),
            principal_mapping_rules: "DEFAULT".into(),
            min_version: "1.2".into(),
            reload_check_ms: 1000,
        }
    }
}

/// SASL authentication (`[sasl]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SaslConfig {
    /// Mechanisms SASL listeners offer: `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`,
    /// `OAUTHBEARER`.
    pub mechanisms: Vec<String>,
    /// PLAIN's static users, one `user:password` per line. PLAIN also accepts the password of a
    /// SCRAM user.
    pub plain_users_file: String,
    /// Longest an authenticated session lasts before the client must re-authenticate (Kafka's
    /// `connections.max.reauth.ms`); 0: only a token's expiry limits it.
    pub max_reauth_ms: u64,
    /// OAUTHBEARER: the JWKS (a file, or an `https://`/`http://` URL) whose keys sign the tokens. Empty:
    /// OAUTHBEARER is not offered.
    pub oauthbearer_jwks: String,
    /// How often a JWKS URL is fetched again (a file is read again when it changes).
    pub oauthbearer_jwks_refresh_ms: u64,
    /// The `iss` tokens must have; empty: not checked.
    pub oauthbearer_issuer: String,
    /// Tokens' `aud` must hold one of these; empty: not checked.
    pub oauthbearer_audience: Vec<String>,
    /// The claim that names the user.
    pub oauthbearer_principal_claim: String,
    /// Clock difference tolerated for `exp`, `nbf` and `iat`.
    pub oauthbearer_clock_skew_s: u64,
}

impl Default for SaslConfig {
    fn default() -> Self {
        Self {
            mechanisms: vec![
                "PLAIN".into(),
                "SCRAM-SHA-256".into(),
                "SCRAM-SHA-512".into(),
            ],
            plain_users_file: String::new(),
            max_reauth_ms: 0,
            oauthbearer_jwks: String::new(),
            oauthbearer_jwks_refresh_ms: 3_600_000,
            oauthbearer_issuer: String::new(),
            oauthbearer_audience: Vec::new(),
            oauthbearer_principal_claim: "sub".into(),
            oauthbearer_clock_skew_s: 30,
        }
    }
}

/// ACL authorization (`[authorization]`), Kafka's `authorizer.class.name`, `super.users` and
/// `allow.everyone.if.no.acl.found`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthorizationConfig {
    /// Checks every request against the cluster's ACLs; off: everything is allowed.
    pub enabled: bool,
    /// Principals (`User:name`) allowed everything.
    pub super_users: Vec<String>,
    /// Whether a resource that no ACL names is open to everyone (else only to super users).
    pub allow_everyone_if_no_acl_found: bool,
}

/// How client quotas measure rates (`[quota]`; the quotas themselves are set with
/// AlterClientQuotas).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct QuotaSettings {
    /// Samples a rate is measured over (Kafka's `quota.window.num`).
    pub window_num: u32,
    /// Length of one sample (Kafka's `quota.window.size.seconds`, in ms).
    pub window_size_ms: u64,
}

impl Default for QuotaSettings {
    fn default() -> Self {
        Self {
            window_num: 11,
            window_size_ms: 1000,
        }
    }
}

/// Broker-wide defaults for topic configurations (Kafka's `log.*` settings).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogDefaults {
    pub num_partitions: i32,
    pub auto_create_topics: bool,
    pub segment_bytes: i64,
    pub segment_ms: i64,
    pub retention_ms: i64,
    pub retention_bytes: i64,
    pub index_interval_bytes: i64,
    pub max_message_bytes: i64,
    pub message_timestamp_type: String,
    pub message_timestamp_before_max_ms: i64,
    pub message_timestamp_after_max_ms: i64,
    pub flush_interval_messages: i64,
    pub flush_interval_ms: i64,
    pub min_insync_replicas: i64,
    /// Default of `remote.storage.enable` for new topics.
    pub remote_storage_enable: bool,
    pub local_retention_ms: i64,
    pub local_retention_bytes: i64,
    /// Default of `search.enabled` for new topics.
    pub search_enabled: bool,
    /// How often retention is applied.
    pub retention_check_interval_ms: u64,
    /// Produce is refused (retriable `KAFKA_STORAGE_ERROR`) while the data directory's file
    /// system has less free space than the smaller of this and `min_free_percent` of its size;
    /// `0` turns this bound off.
    pub min_free_bytes: u64,
    /// The same floor as a percentage of the file system's size (`0` turns it off).
    pub min_free_percent: f64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            node_id: 1,
            data_dir: PathBuf::from("./data"),
            kafka: KafkaConfig::default(),
            log: LogDefaults::default(),
            group: GroupConfig::default(),
            tiering: TieringConfig::default(),
            cache: CacheSettings::default(),
            http: HttpConfig::default(),
            search: SearchConfig::default(),
            cluster: ClusterConfig::default(),
            tls: TlsConfig::default(),
            sasl: SaslConfig::default(),
            authorization: AuthorizationConfig::default(),
            quota: QuotaSettings::default(),
        }
    }
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9092".into(),
            advertised: String::new(),
            max_connections: 50_000,
            request_max_bytes: 100 * 1024 * 1024,
            idle_timeout_ms: 600_000,
            slow_request_ms: 1000,
            listeners: Vec::new(),
            inter_broker_listener: String::new(),
        }
    }
}

impl Default for LogDefaults {
    fn default() -> Self {
        Self {
            num_partitions: 1,
            auto_create_topics: true,
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            index_interval_bytes: 4096,
            max_message_bytes: 1_048_588,
            message_timestamp_type: "CreateTime".into(),
            message_timestamp_before_max_ms: i64::MAX,
            message_timestamp_after_max_ms: 3_600_000,
            flush_interval_messages: i64::MAX,
            flush_interval_ms: i64::MAX,
            min_insync_replicas: 1,
            remote_storage_enable: false,
            local_retention_ms: -2,
            local_retention_bytes: -2,
            search_enabled: false,
            retention_check_interval_ms: 300_000,
            min_free_bytes: 1 << 30,
            min_free_percent: 5.0,
        }
    }
}

/// Command-line overrides; `None` leaves the file/env value alone.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<String>,
    pub advertised: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub node_id: Option<i32>,
    pub http_listen: Option<String>,
}

/// The environment variable that names a config file when `--config` is not given.
pub const CONFIG_ENV: &str = "CHRONIK_CONFIG";

impl Config {
    /// Loads the file (if any), applies `CHRONIK_*` variables from `env`, then `overrides`.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &Overrides,
    ) -> Result<Self, ConfigError> {
        let mut table = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.to_path_buf(),
                    source,
                })?;
                text.parse::<toml::Table>()
                    .map_err(|e| ConfigError::Invalid(format!("{}: {e}", p.display())))?
            }
            None => toml::Table::new(),
        };
        apply_env(&mut table, env)?;
        let mut config = from_table(table)?;
        // With named listeners, the flags address the first one.
        if let Some(v) = &overrides.listen {
            match config.kafka.listeners.first_mut() {
                Some(first) => first.listen = v.clone(),
                None => config.kafka.listen = v.clone(),
            }
        }
        if let Some(v) = &overrides.advertised {
            match config.kafka.listeners.first_mut() {
                Some(first) => first.advertised = v.clone(),
                None => config.kafka.advertised = v.clone(),
            }
        }
        if let Some(v) = &overrides.data_dir {
            config.data_dir = v.clone();
        }
        if let Some(v) = overrides.node_id {
            config.node_id = v;
        }
        if let Some(v) = &overrides.http_listen {
            config.http.listen = v.clone();
        }
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.quota.window_num == 0 || self.quota.window_size_ms == 0 {
            return Err(ConfigError::Invalid(
                "quota.window_num and quota.window_size_ms must be above 0".into(),
            ));
        }
        let voters = self.cluster.voter_map()?;
        self.cluster.broker_address_map()?;
        if let Some(r) = self
            .cluster
            .roles
            .iter()
            .find(|r| *r != "broker" && *r != "controller")
        {
            return Err(ConfigError::Invalid(format!(
                "cluster.roles {r:?}: use broker, controller or both"
            )));
        }
        if !self.cluster.is_broker() && !self.cluster.is_controller() {
            return Err(ConfigError::Invalid(
                "cluster.roles is empty: a node is a broker, a controller or both".into(),
            ));
        }
        if voters.is_empty() && self.cluster.roles != ["broker", "controller"] {
            return Err(ConfigError::Invalid(
                "cluster.roles other than both need cluster.voters: a single node is its own \
                 broker and controller"
                    .into(),
            ));
        }
        if !voters.is_empty() {
            if self.cluster.is_controller() != voters.contains_key(&(self.node_id as u64)) {
                return Err(ConfigError::Invalid(format!(
                    "node {} {} cluster.voters but its roles {:?} say it {} a controller",
                    self.node_id,
                    if voters.contains_key(&(self.node_id as u64)) {
                        "is in"
                    } else {
                        "is not in"
                    },
                    self.cluster.roles,
                    if self.cluster.is_controller() {
                        "is"
                    } else {
                        "is not"
                    },
                )));
            }
            let own = voters.get(&(self.node_id as u64));
            match own {
                None if self.cluster.listen.trim().is_empty() => {
                    return Err(ConfigError::Invalid(format!(
                        "node {} is a broker-only node (not in cluster.voters): set cluster.listen \
                         to its internal host:port, where the controllers reach it",
                        self.node_id
                    )));
                }
                Some(addr)
                    if !self.cluster.listen.trim().is_empty()
                        && self.cluster.listen.trim() != addr =>
                {
                    return Err(ConfigError::Invalid(format!(
                        "cluster.listen {:?} differs from node {}'s address {addr:?} in \
                         cluster.voters: a voter listens at its voters address",
                        self.cluster.listen, self.node_id
                    )));
                }
                _ => {}
            }
            if self.node_id < 0 {
                return Err(ConfigError::Invalid("node_id must be >= 0".into()));
            }
        }
        if self.cluster.heartbeat_ms == 0
            || self.cluster.election_timeout_ms <= self.cluster.heartbeat_ms
        {
            return Err(ConfigError::Invalid(
                "cluster.election_timeout_ms must be larger than cluster.heartbeat_ms (> 0)".into(),
            ));
        }
        if self.cluster.broker_heartbeat_ms == 0
            || self.cluster.session_timeout_ms <= self.cluster.broker_heartbeat_ms
        {
            return Err(ConfigError::Invalid(
                "cluster.session_timeout_ms must be larger than cluster.broker_heartbeat_ms (> 0)"
                    .into(),
            ));
        }
        if self.cluster.replica_lag_time_max_ms < 100 {
            return Err(ConfigError::Invalid(format!(
                "cluster.replica_lag_time_max_ms must be at least 100, not {}",
                self.cluster.replica_lag_time_max_ms
            )));
        }
        if self.cluster.snapshot_every < 10 {
            return Err(ConfigError::Invalid(format!(
                "cluster.snapshot_every must be at least 10, not {}",
                self.cluster.snapshot_every
            )));
        }
        if !(1..=10_000).contains(&self.cluster.offsets_partitions) {
            return Err(ConfigError::Invalid(format!(
                "cluster.offsets_partitions must be within 1..=10000, not {}",
                self.cluster.offsets_partitions
            )));
        }
        if !(1..=1_000).contains(&self.cluster.remote_log_metadata_partitions) {
            return Err(ConfigError::Invalid(format!(
                "cluster.remote_log_metadata_partitions must be within 1..=1000, not {}",
                self.cluster.remote_log_metadata_partitions
            )));
        }
        self.validate_listeners(!voters.is_empty())?;
        if !self.http.listen.is_empty() {
            self.http.listen.parse::<SocketAddr>().map_err(|e| {
                ConfigError::Invalid(format!("http.listen {:?}: {e}", self.http.listen))
            })?;
        }
        if self.node_id < 0 {
            return Err(ConfigError::Invalid("node_id must be >= 0".into()));
        }
        if !(0.0..=100.0).contains(&self.log.min_free_percent) {
            return Err(ConfigError::Invalid(format!(
                "log.min_free_percent must be within 0..=100, not {}",
                self.log.min_free_percent
            )));
        }
        if self.kafka.request_max_bytes < 1024 {
            return Err(ConfigError::Invalid(
                "kafka.request_max_bytes must be at least 1024".into(),
            ));
        }
        if self.kafka.max_connections == 0 {
            return Err(ConfigError::Invalid(
                "kafka.max_connections must be > 0".into(),
            ));
        }
        if self.tiering.part_size_bytes < 5 << 20 {
            return Err(ConfigError::Invalid(
                "tiering.part_size_bytes must be at least 5 MiB (the S3 minimum)".into(),
            ));
        }
        chronik_tiering::RemoteStorageUrl::parse(&self.tiering.effective_url(&self.data_dir))
            .map_err(|e| ConfigError::Invalid(format!("tiering.url: {e}")))?;
        if self.log.num_partitions < 1 {
            return Err(ConfigError::Invalid(
                "log.num_partitions must be >= 1".into(),
            ));
        }
        if self.search.index_threads > 16 {
            return Err(ConfigError::Invalid(
                "search.index_threads must be between 0 (one per CPU) and 16".into(),
            ));
        }
        for (key, cpus) in [
            ("search.index_cpus", &self.search.index_cpus),
            ("search.spill_cpus", &self.search.spill_cpus),
        ] {
            if let Some(cpu) = cpus.iter().find(|&&c| c >= nix::sched::CpuSet::count()) {
                return Err(ConfigError::Invalid(format!(
                    "{key} names CPU {cpu}, beyond the {} this system can address",
                    nix::sched::CpuSet::count()
                )));
            }
        }
        // Tantivy takes 15 MiB to just under 4 GiB of indexing buffer per thread.
        let per_thread = self.search.writer_memory_bytes;
        if !((15 << 20)..(4 << 30) - (1 << 20)).contains(&per_thread) {
            return Err(ConfigError::Invalid(format!(
                "search.writer_memory_bytes must be 15 MiB to 4095 MiB per indexing thread \
                 (it is {per_thread} bytes)"
            )));
        }
        // The topic-level rules check every broker default too.
        topic::TopicConfigs::default()
            .resolve(&self.log)
            .map_err(|e| ConfigError::Invalid(format!("log defaults: {e}")))?;
        Ok(())
    }

    /// The Kafka listeners, `[[kafka.listeners]]` with their names filled in, or the one
    /// PLAINTEXT listener of `kafka.listen` when none is configured.
    pub fn listeners(&self) -> Vec<ListenerConfig> {
        if self.kafka.listeners.is_empty() {
            return vec![ListenerConfig {
                name: "PLAINTEXT".into(),
                listen: self.kafka.listen.clone(),
                advertised: self.kafka.advertised.clone(),
                protocol: SecurityProtocol::Plaintext,
                client_auth: ClientAuth::None,
                sasl_mechanisms: Vec::new(),
            }];
        }
        self.kafka
            .listeners
            .iter()
            .map(|l| {
                let mut l = l.clone();
                if l.name.trim().is_empty() {
                    l.name = l.protocol.name().to_string();
                }
                l
            })
            .collect()
    }

    /// The name of the listener brokers use between themselves.
    pub fn inter_broker_listener(&self) -> String {
        let name = self.kafka.inter_broker_listener.trim();
        if name.is_empty() {
            self.listeners()[0].name.clone()
        } else {
            name.to_string()
        }
    }

    /// The SASL mechanisms `listener` offers.
    pub fn sasl_mechanisms(&self, listener: &ListenerConfig) -> Vec<String> {
        if listener.sasl_mechanisms.is_empty() {
            self.sasl.mechanisms.clone()
        } else {
            listener.sasl_mechanisms.clone()
        }
    }

    fn validate_listeners(&self, clustered: bool) -> Result<(), ConfigError> {
        let listeners = self.listeners();
        let mut names = std::collections::BTreeSet::new();
        let mut addrs = std::collections::BTreeSet::new();
        for l in &listeners {
            let what = format!("kafka listener {:?}", l.name);
            if !names.insert(l.name.clone()) {
                return Err(ConfigError::Invalid(format!(
                    "{what}: two listeners have this name; give each its own `name`"
                )));
            }
            if !l
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(ConfigError::Invalid(format!(
                    "{what}: a name has letters, digits, `_` and `-` only"
                )));
            }
            let addr = l
                .listen
                .parse::<SocketAddr>()
                .map_err(|e| ConfigError::Invalid(format!("{what}: listen {:?}: {e}", l.listen)))?;
            if addr.port() != 0 && !addrs.insert(addr) {
                return Err(ConfigError::Invalid(format!(
                    "{what}: {addr} is the address of another listener too"
                )));
            }
            if !l.advertised.is_empty() && parse_host_port(&l.advertised).is_none() {
                return Err(ConfigError::Invalid(format!(
                    "{what}: advertised {:?} is not host:port",
                    l.advertised
                )));
            }
            if l.protocol.uses_tls() {
                if self.tls.cert_file.trim().is_empty() || self.tls.key_file.trim().is_empty() {
                    return Err(ConfigError::Invalid(format!(
                        "{what} is {}: set tls.cert_file and tls.key_file",
                        l.protocol.name()
                    )));
                }
                if l.client_auth != ClientAuth::None && self.tls.client_ca_file.trim().is_empty() {
                    return Err(ConfigError::Invalid(format!(
                        "{what} asks for client certificates: set tls.client_ca_file to the CA \
                         that signs them"
                    )));
                }
            } else if l.client_auth != ClientAuth::None {
                return Err(ConfigError::Invalid(format!(
                    "{what}: client_auth needs a TLS listener (SSL or SASL_SSL), not {}",
                    l.protocol.name()
                )));
            }
            if l.protocol.uses_sasl() {
                let mechanisms = self.sasl_mechanisms(l);
                if mechanisms.is_empty() {
                    return Err(ConfigError::Invalid(format!(
                        "{what} is {} but offers no SASL mechanism",
                        l.protocol.name()
                    )));
                }
                for m in &mechanisms {
                    if !SASL_MECHANISMS.contains(&m.as_str()) {
                        return Err(ConfigError::Invalid(format!(
                            "{what}: unknown SASL mechanism {m:?} (known: {})",
                            SASL_MECHANISMS.join(", ")
                        )));
                    }
                }
            } else if !l.sasl_mechanisms.is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "{what}: sasl_mechanisms needs a SASL listener, not {}",
                    l.protocol.name()
                )));
            }
        }
        let oauth = listeners
            .iter()
            .filter(|l| l.protocol.uses_sasl())
            .any(|l| self.sasl_mechanisms(l).iter().any(|m| m == "OAUTHBEARER"));
        if oauth && self.sasl.oauthbearer_jwks.trim().is_empty() {
            return Err(ConfigError::Invalid(
                "a SASL listener offers OAUTHBEARER: set sasl.oauthbearer_jwks to the JWKS \
                 (a file or a URL) whose keys sign the tokens"
                    .into(),
            ));
        }
        crate::security::principal::PrincipalMapper::parse(&self.tls.principal_mapping_rules)
            .map_err(|e| ConfigError::Invalid(format!("tls.principal_mapping_rules: {e}")))?;
        for m in &self.sasl.mechanisms {
            if !SASL_MECHANISMS.contains(&m.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "sasl.mechanisms: unknown mechanism {m:?} (known: {})",
                    SASL_MECHANISMS.join(", ")
                )));
            }
        }
        if self.http.tls
            && (self.tls.cert_file.trim().is_empty() || self.tls.key_file.trim().is_empty())
        {
            return Err(ConfigError::Invalid(
                "http.tls is on: set tls.cert_file and tls.key_file".into(),
            ));
        }
        if !matches!(self.http.auth.as_str(), "none" | "required") {
            return Err(ConfigError::Invalid(format!(
                "http.auth {:?}: use \"none\" or \"required\"",
                self.http.auth
            )));
        }
        let inter = self.inter_broker_listener();
        let Some(inter) = listeners.iter().find(|l| l.name == inter) else {
            return Err(ConfigError::Invalid(format!(
                "kafka.inter_broker_listener {inter:?} names no listener"
            )));
        };
        if clustered && inter.protocol != SecurityProtocol::Plaintext {
            return Err(ConfigError::Invalid(format!(
                "kafka.inter_broker_listener {:?} is {}: brokers of a cluster reach each other \
                 over a PLAINTEXT listener so far (keep it on a private network)",
                inter.name,
                inter.protocol.name()
            )));
        }
        if let Some(bad) = self
            .authorization
            .super_users
            .iter()
            .find(|p| !crate::security::acl::is_valid_principal(p))
        {
            return Err(ConfigError::Invalid(format!(
                "authorization.super_users: {bad:?} is not a principal of the form User:name"
            )));
        }
        if !matches!(self.tls.min_version.as_str(), "1.2" | "1.3") {
            return Err(ConfigError::Invalid(format!(
                "tls.min_version {:?}: use \"1.2\" or \"1.3\"",
                self.tls.min_version
            )));
        }
        Ok(())
    }

    /// The `(host, port)` clients of `listener` are told to connect to, given the address it is
    /// bound to.
    pub fn advertised_for(listener: &ListenerConfig, bound: SocketAddr) -> (String, i32) {
        if let Some((h, p)) = parse_host_port(&listener.advertised) {
            return (h, p);
        }
        (bound.ip().to_string(), bound.port() as i32)
    }

    /// The `(host, port)` of the inter-broker listener, given the address it is bound to.
    pub fn advertised(&self, bound: SocketAddr) -> (String, i32) {
        let inter = self.inter_broker_listener();
        match self.listeners().into_iter().find(|l| l.name == inter) {
            Some(l) => Self::advertised_for(&l, bound),
            None => (bound.ip().to_string(), bound.port() as i32),
        }
    }
}

/// The SASL mechanisms this broker implements.
pub const SASL_MECHANISMS: &[&str] = &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"];

fn parse_host_port(s: &str) -> Option<(String, i32)> {
    let (host, port) = s.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    if host.is_empty() {
        return None;
    }
    Some((host.trim_matches(['[', ']']).to_string(), port as i32))
}

/// The typed configuration of the merged file and environment. A value of the wrong type is an
/// error that names its key (`log.segment_bytes: invalid type: string "abc", expected i64`):
/// the table is written out as TOML and read back, so that the error has a place in a text.
fn from_table(table: toml::Table) -> Result<Config, ConfigError> {
    let text = toml::to_string(&table).map_err(|e| ConfigError::Invalid(e.to_string()))?;
    toml::from_str(&text).map_err(|e: toml::de::Error| {
        let message = e.message().to_string();
        ConfigError::Invalid(match e.span().and_then(|s| key_at(&text, s.start)) {
            Some(key) => format!("{key}: {message}"),
            None => message,
        })
    })
}

/// The dotted key of the `key = value` line of TOML `text` that holds byte `at`.
fn key_at(text: &str, at: usize) -> Option<String> {
    let before = text.get(..at)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let key = text[line_start..].split('=').next()?.trim();
    if key.is_empty() || key.starts_with('[') || key.contains('\n') {
        return None;
    }
    let section = before[..line_start]
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('['))
        .map(|l| l.trim().trim_matches(['[', ']']).to_string());
    Some(match section {
        Some(s) => format!("{s}.{key}"),
        None => key.to_string(),
    })
}

/// Maps `CHRONIK_SECTION_KEY=value` onto `[section] key = value`, e.g. `CHRONIK_LOG_SEGMENT_BYTES`
/// onto `log.segment_bytes` and `CHRONIK_DATA_DIR` onto `data_dir`.
fn apply_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    let defaults = toml::Value::try_from(Config::default())
        .map_err(|e| ConfigError::Invalid(e.to_string()))?;
    let Some(defaults) = defaults.as_table() else {
        return Ok(());
    };
    // Known keys as (ENV_NAME, section, key).
    let mut known = Vec::new();
    for (k, v) in defaults {
        match v.as_table() {
            Some(section) => {
                for key in section.keys() {
                    known.push((
                        format!("CHRONIK_{}_{}", k.to_uppercase(), key.to_uppercase()),
                        Some(k.clone()),
                        key.clone(),
                    ));
                }
            }
            None => known.push((format!("CHRONIK_{}", k.to_uppercase()), None, k.clone())),
        }
    }
    for (name, raw) in env {
        if !name.starts_with("CHRONIK_") || name == CONFIG_ENV {
            continue;
        }
        // Kubernetes adds `<SERVICE>_SERVICE_HOST`, `<SERVICE>_PORT…` for every Service, so a
        // Service named `chronik` must not stop the broker. No config section is called
        // `service` or `port`, so these names can never be a misspelt key.
        if name.starts_with("CHRONIK_SERVICE_") || name.starts_with("CHRONIK_PORT") {
            continue;
        }
        let Some((_, section, key)) = known.iter().find(|(n, _, _)| *n == name) else {
            return Err(ConfigError::UnknownEnv(name));
        };
        let value = format!("v = {raw}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or(toml::Value::String(raw));
        let target = match section {
            Some(s) => table
                .entry(s.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .ok_or_else(|| ConfigError::Invalid(format!("{s} must be a table")))?,
            None => &mut *table,
        };
        target.insert(key.clone(), value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_valid() {
        let c = Config::load(None, env(&[]), &Overrides::default()).expect("defaults");
        assert_eq!(c.kafka.listen, "127.0.0.1:9092");
        assert_eq!(c.data_dir, PathBuf::from("./data"));
    }

    #[test]
    fn file_env_and_flags_layer_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("chronik.toml");
        std::fs::write(
            &path,
            "node_id = 3\n[log]\nsegment_bytes = 2048\nnum_partitions = 4\n",
        )
        .expect("write");
        let c = Config::load(
            Some(&path),
            env(&[
                ("CHRONIK_LOG_NUM_PARTITIONS", "6"),
                ("CHRONIK_KAFKA_LISTEN", "127.0.0.1:19092"),
                ("PATH", "/bin"),
                // Kubernetes service links of a Service named "chronik".
                ("CHRONIK_SERVICE_HOST", "10.0.0.1"),
                ("CHRONIK_PORT_9092_TCP_ADDR", "10.0.0.1"),
            ]),
            &Overrides {
                node_id: Some(7),
                ..Default::default()
            },
        )
        .expect("load");
        assert_eq!(c.node_id, 7);
        assert_eq!(c.log.segment_bytes, 2048);
        assert_eq!(c.log.num_partitions, 6);
        assert_eq!(c.kafka.listen, "127.0.0.1:19092");
    }

    #[test]
    fn unknown_keys_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("chronik.toml");
        std::fs::write(&path, "[log]\nsegment_byte = 1\n").expect("write");
        let err =
            Config::load(Some(&path), env(&[]), &Overrides::default()).expect_err("unknown key");
        assert!(err.to_string().contains("segment_byte"), "{err}");
        let err = Config::load(
            None,
            env(&[("CHRONIK_LOG_SEGMNT_BYTES", "1")]),
            &Overrides::default(),
        )
        .expect_err("unknown env");
        assert!(
            err.to_string().contains("CHRONIK_LOG_SEGMNT_BYTES"),
            "{err}"
        );
    }

    #[test]
    fn a_value_of_the_wrong_type_names_its_key() {
        for (k, v, key) in [
            ("CHRONIK_LOG_SEGMENT_BYTES", "abc", "log.segment_bytes"),
            ("CHRONIK_SEARCH_INDEX_CPUS", "0,1", "search.index_cpus"),
            ("CHRONIK_NODE_ID", "one", "node_id"),
        ] {
            let e =
                Config::load(None, env(&[(k, v)]), &Overrides::default()).expect_err("wrong type");
            assert!(e.to_string().contains(key), "{k}={v}: {e}");
        }
    }

    #[test]
    fn bad_values_are_refused() {
        for (k, v) in [
            ("CHRONIK_KAFKA_LISTEN", "nonsense"),
            ("CHRONIK_LOG_MESSAGE_TIMESTAMP_TYPE", "Sometimes"),
            ("CHRONIK_LOG_SEGMENT_BYTES", "5"),
            ("CHRONIK_KAFKA_ADVERTISED", "nohostport"),
            ("CHRONIK_SEARCH_INDEX_THREADS", "17"),
            ("CHRONIK_SEARCH_INDEX_CPUS", "[0, 100000]"),
            ("CHRONIK_SEARCH_SPILL_CPUS", "[100000]"),
            ("CHRONIK_SEARCH_WRITER_MEMORY_BYTES", "1048576"),
            ("CHRONIK_SEARCH_WRITER_MEMORY_BYTES", "8589934592"),
        ] {
            assert!(
                Config::load(None, env(&[(k, v)]), &Overrides::default()).is_err(),
                "{k}={v} must be refused"
            );
        }
    }

    #[test]
    fn a_broker_only_node_names_its_internal_listener() {
        let voters = (
            "CHRONIK_CLUSTER_VOTERS",
            r#"["1@127.0.0.1:9101","2@127.0.0.1:9102"]"#,
        );
        let load = |vars: &[(&str, &str)]| {
            Config::load(None, env(vars), &Overrides::default()).map_err(|e| e.to_string())
        };
        let broker_only = [
            voters,
            ("CHRONIK_NODE_ID", "4"),
            ("CHRONIK_CLUSTER_ROLES", r#"["broker"]"#),
        ];
        let e = load(&broker_only).expect_err("no listen");
        assert!(e.contains("cluster.listen"), "{e}");
        let c = load(
            &[
                broker_only.as_slice(),
                &[("CHRONIK_CLUSTER_LISTEN", "127.0.0.1:9104")],
            ]
            .concat(),
        )
        .expect("a learner with its listener");
        assert!(c.cluster.is_broker() && !c.cluster.is_controller());
        // A voter listens at its voters address; another one in `listen` is a mistake.
        let e = load(&[
            voters,
            ("CHRONIK_NODE_ID", "1"),
            ("CHRONIK_CLUSTER_LISTEN", "127.0.0.1:9999"),
        ])
        .expect_err("voter with another listen");
        assert!(e.contains("differs"), "{e}");
        // A node in the voters list must have the controller role, and the reverse.
        let e = load(&[
            voters,
            ("CHRONIK_NODE_ID", "1"),
            ("CHRONIK_CLUSTER_ROLES", r#"["broker"]"#),
        ])
        .expect_err("listed voter without the controller role");
        assert!(e.contains("is in cluster.voters"), "{e}");
    }
}
