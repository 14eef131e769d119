//! The broker as an assembly: it opens the data directory and builds the layers — the metadata
//! log, the replica layer with every partition, the remote tier, search, the group coordinator and
//! the producer-id allocator — and wires them together. It holds no logic of its own: handlers
//! reach each layer through its field.
//!
//! Layers, bottom to top: `log/` (segments), `metadata/` (the metadata log), `replica/`
//! (partitions and topics), `objects` (the remote tier's objects), `remote/`, `search/`,
//! `group/` and `txn/` side by side, then `handlers/` with the dispatcher, `network/` and `http/`.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub mod authz;
pub mod credentials;
pub mod migrate;

use crate::config::Config;
use crate::metadata::{MetadataStore, RemoteSegmentStore};
use crate::objects::{RemoteObjects, SplitUploads};
use crate::remote::RemoteLogManager;
use crate::remote::metadata_topic::RemoteLogMetadataTopic;
use crate::replica::{DiskSpaceGuard, ReplicaManager};
use crate::search::SearchManager;
use crate::txn::ProducerIdAllocator;

const META_DIR: &str = "__chronik";
/// Records between metadata snapshots: bounds replay time at start.
const SNAPSHOT_EVERY: u64 = 50_000;

#[derive(Debug, Serialize, Deserialize)]
struct ClusterMeta {
    cluster_id: String,
    node_id: i32,
}

pub struct Broker {
    pub config: Config,
    pub cluster_id: String,
    pub node_id: i32,
    /// Host and port given to clients.
    pub advertised: (String, i32),
    pub metadata: Arc<MetadataStore>,
    /// Every topic and partition this broker holds.
    pub replicas: Arc<ReplicaManager>,
    pub producer_ids: ProducerIdAllocator,
    pub groups: crate::group::GroupCoordinator,
    pub remote: Option<Arc<RemoteLogManager>>,
    /// The indexer and query engine; `None` when `[search] enabled = false`.
    pub search: Option<Arc<SearchManager>>,
    /// Refuses produce while the data directory is nearly full.
    pub disk_space: DiskSpaceGuard,
    /// This node's voter of the controller quorum, in a cluster.
    pub controller: std::sync::OnceLock<Arc<crate::controller::Controller>>,
    /// The admin HTTP address other brokers reach this one at (`host:port`), when the admin
    /// port is on; advertised with the broker's registration.
    pub http_advertised: std::sync::OnceLock<String>,
    /// Users and credentials of the SASL mechanisms.
    pub credentials: Arc<credentials::Credentials>,
    /// Every Kafka listener as clients are told about it; advertised with the registration.
    pub listeners: std::sync::OnceLock<Vec<crate::metadata::ListenerEndpoint>>,
    /// The ACLs every request is checked against; `None` when `[authorization] enabled =
    /// false` (everything is allowed).
    pub acls: Option<authz::AclCache>,
    /// Client quotas as the metadata sets them, and the usage they limit.
    pub quotas: crate::security::quota::QuotaManager,
}

impl Broker {
    /// The principal of a new connection before any SASL exchange: from its client
    /// certificate on an mTLS listener, else `User:ANONYMOUS`.
    pub fn principal_of(&self, conn: &crate::network::ConnectionInfo) -> Arc<str> {
        let anonymous = || crate::security::ANONYMOUS.into();
        // On SASL_SSL the SASL exchange names the principal, as in Kafka.
        if conn.listener.protocol.uses_sasl() {
            return anonymous();
        }
        let Some(cert) = &conn.peer_certificate else {
            return anonymous();
        };
        let mapped = crate::security::principal::subject_dn(cert)
            .and_then(|dn| self.credentials.principal_mapper.principal(&dn));
        match mapped {
            Ok(p) => p.into(),
            Err(e) => {
                // Kafka refuses such a connection; here it stays anonymous, which ACLs then
                // treat as such.
                tracing::warn!(peer = %conn.peer, error = %e, "client certificate maps to no principal; the connection is User:ANONYMOUS");
                anonymous()
            }
        }
    }

    /// Opens the data directory: cluster identity, topics and every partition log.
    pub fn open(
        config: Config,
        bound: SocketAddr,
        cache: Option<chronik_cache::ChunkCache>,
        store_override: Option<Arc<dyn chronik_tiering::object_store::ObjectStore>>,
    ) -> io::Result<Arc<Self>> {
        Self::open_with_metadata(config, bound, cache, store_override, None)
    }

    /// `open`, with the metadata log kept by a controller quorum when `replicated` is given
    /// (instead of this node's own metadata log).
    pub fn open_with_metadata(
        config: Config,
        bound: SocketAddr,
        cache: Option<chronik_cache::ChunkCache>,
        store_override: Option<Arc<dyn chronik_tiering::object_store::ObjectStore>>,
        replicated: Option<Arc<dyn crate::metadata::ReplicatedLog>>,
    ) -> io::Result<Arc<Self>> {
        let data_dir = config.data_dir.clone();
        let meta_dir = data_dir.join(META_DIR);
        std::fs::create_dir_all(&meta_dir)?;
        let meta = cluster_meta(&meta_dir, config.node_id)?;
        let started = std::time::Instant::now();
        let metadata = match replicated {
            Some(log) => {
                if migrate::holds_single_node_metadata(&meta_dir.join("metadata"))? {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "the single-node metadata log was not moved into the cluster",
                    ));
                }
                Arc::new(MetadataStore::replicated(log))
            }
            None => {
                let (metadata, report) =
                    MetadataStore::open(&meta_dir.join("metadata"), SNAPSHOT_EVERY)?;
                tracing::info!(
                    snapshot_index = report.snapshot_index,
                    records = report.records,
                    truncated_bytes = report.truncated_bytes,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "metadata log replayed"
                );
                Arc::new(metadata)
            }
        };
        let url = config.tiering.effective_url(&data_dir);
        let options = chronik_tiering::StoreOptions {
            endpoint: (!config.tiering.endpoint.is_empty())
                .then(|| config.tiering.endpoint.clone()),
            region: (!config.tiering.region.is_empty()).then(|| config.tiering.region.clone()),
            allow_http: config.tiering.allow_http,
            ..Default::default()
        };
        let store = match store_override {
            Some(s) => s,
            None => chronik_tiering::open_store(&url, &options)
                .map_err(|e| io::Error::other(format!("remote tier {url}: {e}")))?,
        };
        // A cluster's id is the quorum's, shared by every node; a single node keeps its own.
        let cluster_id = metadata
            .read(|s| s.cluster_id.clone())
            .unwrap_or(meta.cluster_id);
        let objects = Arc::new(RemoteObjects::new(store, cluster_id.clone(), cache));
        let replicas = Arc::new(ReplicaManager::open(&config, metadata.clone())?);
        // Remote segment states: in the metadata log on a single node, in the internal topic
        // `__remote_log_metadata` in a cluster.
        let segments: Arc<dyn RemoteSegmentStore> = if replicas.is_clustered() {
            let overrides = config
                .cluster
                .broker_address_map()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?
                .into_iter()
                .map(|(id, addr)| (id as i32, addr))
                .collect();
            let topic = Arc::new(RemoteLogMetadataTopic::new(
                metadata.clone(),
                replicas.clone(),
                config.cluster.remote_log_metadata_partitions,
                config.cluster.voters.len().clamp(1, 3),
                overrides,
            ));
            topic.start();
            topic
        } else {
            metadata.clone()
        };
        let search = config.search.enabled.then(|| {
            Arc::new(SearchManager::new(
                config.search.clone(),
                replicas.clone(),
                segments.clone(),
                Some(objects.clone()),
            ))
        });
        let remote = Arc::new(RemoteLogManager::new(
            objects,
            segments,
            replicas.clone(),
            search.clone().map(|s| s as Arc<dyn SplitUploads>),
            config.tiering.part_size_bytes as usize,
        ));
        replicas.set_remote_tier(&(remote.clone() as Arc<dyn crate::replica::RemoteTier>));
        let advertised = config.advertised(bound);
        let plain_users = match config.sasl.plain_users_file.trim() {
            "" => crate::security::plain::PlainUsers::new(Vec::new()),
            path => crate::security::plain::PlainUsers::from_file(path).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("sasl.plain_users_file: {e}"),
                )
            })?,
        };
        let jwks = if config.sasl.oauthbearer_jwks.trim().is_empty() {
            None
        } else {
            let source = credentials::JwksSource::open(&config.sasl, &config.tls)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            Some(Arc::new(source))
        };
        let mapper =
            crate::security::principal::PrincipalMapper::parse(&config.tls.principal_mapping_rules)
                .map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("tls.principal_mapping_rules: {e}"),
                    )
                })?;
        let credentials = Arc::new(credentials::Credentials::new(
            plain_users,
            metadata.clone(),
            jwks,
            mapper,
        ));
        let acls = config
            .authorization
            .enabled
            .then(|| authz::AclCache::new(config.authorization.clone(), metadata.clone()));
        let quotas =
            crate::security::quota::QuotaManager::new(crate::security::quota::QuotaManagerConfig {
                samples: config.quota.window_num,
                window: std::time::Duration::from_millis(config.quota.window_size_ms),
                ..Default::default()
            });
        metadata.read(|s| quotas.sync(&s.client_quotas));

        Ok(Arc::new(Self {
            acls,
            quotas,
            credentials,
            cluster_id,
            node_id: config.node_id,
            advertised,
            disk_space: DiskSpaceGuard::new(
                &config.data_dir,
                config.log.min_free_bytes,
                config.log.min_free_percent,
            ),
            groups: crate::group::GroupCoordinator::new(
                if replicas.is_clustered() {
                    Arc::new(crate::group::OffsetsTopic::new(
                        replicas.clone(),
                        metadata.clone(),
                    ))
                } else {
                    metadata.clone()
                },
                config.group.clone(),
            ),
            producer_ids: ProducerIdAllocator::new(
                metadata.clone(),
                replicas.is_clustered().then_some(config.node_id),
            ),
            remote: Some(remote),
            search,
            replicas,
            metadata,
            config,
            controller: std::sync::OnceLock::new(),
            http_advertised: std::sync::OnceLock::new(),
            listeners: std::sync::OnceLock::new(),
        }))
    }

    /// The Kafka listener's limits from the configuration.
    pub fn listener_limits(&self) -> crate::network::Limits {
        crate::network::Limits {
            max_connections: self.config.kafka.max_connections,
            request_max_bytes: self.config.kafka.request_max_bytes,
            idle_timeout: std::time::Duration::from_millis(self.config.kafka.idle_timeout_ms),
        }
    }

    /// Flushes and closes every log and the metadata log cleanly (graceful shutdown).
    pub fn close(&self) {
        self.replicas.close();
        self.metadata.close();
    }
}

/// The cluster id and node id the data directory belongs to, made on first start.
/// The cluster id this data directory was given when it first started (none for a new one).
pub fn own_cluster_id(data_dir: &std::path::Path) -> Option<String> {
    let raw = std::fs::read(data_dir.join(META_DIR).join("cluster.json")).ok()?;
    serde_json::from_slice::<ClusterMeta>(&raw)
        .ok()
        .map(|m| m.cluster_id)
}

/// Where a data directory keeps its single-node metadata log.
pub fn single_node_metadata_dir(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join(META_DIR).join("metadata")
}

fn cluster_meta(meta_dir: &std::path::Path, node_id: i32) -> io::Result<ClusterMeta> {
    let meta_path = meta_dir.join("cluster.json");
    let meta = match std::fs::read(&meta_path) {
        Ok(raw) => serde_json::from_slice::<ClusterMeta>(&raw)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let meta = ClusterMeta {
                cluster_id: random_cluster_id(),
                node_id,
            };
            crate::util::write_atomically(&meta_path, &serde_json::to_vec_pretty(&meta)?)?;
            meta
        }
        Err(e) => return Err(e),
    };
    if meta.node_id != node_id {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "data directory belongs to node {} but node_id is {node_id}",
                meta.node_id
            ),
        ));
    }
    Ok(meta)
}

pub fn random_cluster_id() -> String {
    // Kafka cluster ids are 22-character URL-safe base64 of a UUID.
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bits = Uuid::new_v4().as_u128();
    (0..22)
        .map(|i| ALPHABET[((bits >> (i * 6)) & 63) as usize] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stands in for a controller quorum: this test never gets as far as using it.
    struct NoQuorum;

    impl crate::metadata::ReplicatedLog for NoQuorum {
        fn propose(
            &self,
            _records: Vec<crate::metadata::MetadataRecord>,
        ) -> futures::future::BoxFuture<'_, io::Result<u64>> {
            Box::pin(async { Err(io::Error::other("no quorum in this test")) })
        }

        fn with_state(&self, f: &mut dyn FnMut(&crate::metadata::MetadataState)) {
            f(&crate::metadata::MetadataState::default())
        }
    }

    /// A data directory with topics in its own metadata log is refused by a node configured with
    /// voters unless it was moved into the cluster first (`serve` does that, see `migrate`),
    /// instead of losing sight of those topics.
    #[tokio::test]
    async fn single_node_metadata_is_not_silently_dropped_by_a_cluster_node() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = Config {
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        };
        let addr: SocketAddr = "127.0.0.1:9092".parse().expect("addr");
        let broker = Broker::open(config.clone(), addr, None, None).expect("open");
        broker
            .replicas
            .create_topic("kept", 1, 1, Default::default(), false)
            .await
            .expect("create");
        broker.close();
        drop(broker);
        let refused =
            Broker::open_with_metadata(config.clone(), addr, None, None, Some(Arc::new(NoQuorum)));
        let err = refused.err().expect("refused");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
        assert!(
            err.to_string().contains("not moved into the cluster"),
            "{err}"
        );
        // The data is untouched: the single-node broker still has its topic.
        let again = Broker::open(config, addr, None, None).expect("reopen");
        assert!(again.replicas.topic("kept").is_some());
    }
}
