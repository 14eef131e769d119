//! Chronik Stream: a Kafka-compatible broker.
//!
//! `serve` runs a complete single-node broker on an already-bound listener until the shutdown
//! future resolves, then closes every log cleanly. Tests bind `127.0.0.1:0` and run the real
//! server in-process; the `chronik` binary does the same with the configured address.

pub mod broker;
pub mod config;
pub mod controller;
pub mod group;
pub mod handlers;
pub mod http;
pub mod log;
pub mod metadata;
pub mod metrics;
pub mod network;
pub mod objects;
pub mod protocol;
pub mod remote;
pub mod replica;
pub mod search;
pub mod security;
pub mod shm;
pub mod txn;
pub mod util;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

pub use broker::Broker;
pub use config::Config;

/// Runs the broker on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    // The admin port is auxiliary: if it cannot be bound the Kafka listener still serves, and
    // the failure is logged (probes against it then fail visibly).
    let http = if config.http.listen.is_empty() {
        None
    } else {
        match TcpListener::bind(&config.http.listen).await {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::error!(listen = %config.http.listen, error = %e, "cannot bind the admin http port; serving Kafka without it");
                None
            }
        }
    };
    serve_full(listener, http, config, None, shutdown).await
}

/// `serve` with the remote tier given as an object store instead of `[tiering] url` — for tests
/// that wrap a store (fault injection, request counting).
pub async fn serve_with_store(
    listener: TcpListener,
    config: Config,
    store: Option<Arc<dyn chronik_tiering::object_store::ObjectStore>>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    serve_full(listener, None, config, store, shutdown).await
}

/// Everything `serve` does, with the admin HTTP listener given (already bound) instead of
/// bound from `[http] listen`.
pub async fn serve_full(
    listener: TcpListener,
    http: Option<TcpListener>,
    config: Config,
    store: Option<Arc<dyn chronik_tiering::object_store::ObjectStore>>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    // The first configured listener comes bound; the others are bound here, before anything
    // else starts, so that a taken address stops the broker at once.
    let specs = config.listeners();
    let mut listeners = vec![(specs[0].clone(), listener)];
    for spec in &specs[1..] {
        let l = TcpListener::bind(&spec.listen).await.map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot bind listener {} at {}: {e}", spec.name, spec.listen),
            )
        })?;
        listeners.push((spec.clone(), l));
    }
    let inter = config.inter_broker_listener();
    let mut bound = listeners[0].1.local_addr()?;
    let mut endpoints = Vec::with_capacity(listeners.len());
    for (spec, l) in &listeners {
        let addr = l.local_addr()?;
        if spec.name == inter {
            bound = addr;
        }
        let (host, port) = Config::advertised_for(spec, addr);
        endpoints.push(metadata::ListenerEndpoint {
            name: spec.name.clone(),
            protocol: spec.protocol.name().to_string(),
            host,
            port,
        });
    }
    let mut contexts = Vec::with_capacity(listeners.len());
    for (spec, l) in listeners {
        let tls = if spec.protocol.uses_tls() {
            let source = network::tls::TlsSource::new(&config.tls, spec.client_auth)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
            Some(Arc::new(source))
        } else {
            None
        };
        let sasl_mechanisms = if spec.protocol.uses_sasl() {
            config.sasl_mechanisms(&spec)
        } else {
            Vec::new()
        };
        let context = network::ListenerContext {
            name: spec.name.as_str().into(),
            protocol: spec.protocol,
            tls,
            sasl_mechanisms,
        };
        contexts.push((Arc::new(context), l));
    }
    let controller = start_controller(&config).await?;
    let cache_config = config.cache.cache_config(&config.data_dir);
    let cache = chronik_cache::ChunkCache::open(cache_config)
        .await
        .map_err(|e| std::io::Error::other(format!("remote chunk cache: {e}")))?;
    let replicated = controller
        .clone()
        .map(|c| c as Arc<dyn metadata::ReplicatedLog>);
    if let Some(log) = &replicated {
        broker::migrate::migrate(
            &broker::single_node_metadata_dir(&config.data_dir),
            log.clone(),
            config.node_id,
            &broker::own_cluster_id(&config.data_dir).unwrap_or_default(),
        )
        .await?;
    }
    let broker = Broker::open_with_metadata(config, bound, Some(cache), store, replicated)?;
    let _ = broker.listeners.set(endpoints);
    if let Some(l) = &http {
        let _ = broker
            .http_advertised
            .set(http_advertised(l.local_addr()?, &broker.advertised.0));
    }
    let membership = match &controller {
        Some(c) => {
            let _ = broker.controller.set(c.clone());
            Some(register_broker(&broker, c).await?)
        }
        None => None,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let dispatcher = Arc::new(handlers::dispatch::Dispatcher::new(broker.clone()));
    let mut acceptors = Vec::with_capacity(contexts.len());
    for (context, l) in contexts {
        tracing::info!(
            listener = %context.name,
            protocol = context.protocol.name(),
            listen = %l.local_addr()?,
            "kafka listener ready"
        );
        acceptors.push(tokio::spawn(network::accept_loop(
            l,
            context,
            dispatcher.clone(),
            broker.listener_limits(),
            stop_rx.clone(),
        )));
    }
    tracing::info!(
        listen = %bound,
        advertised = %format!("{}:{}", broker.advertised.0, broker.advertised.1),
        cluster_id = %broker.cluster_id,
        topics = broker.replicas.topics().len(),
        "broker ready"
    );
    let tiering = tokio::spawn(tiering_loop(broker.clone(), stop_rx.clone()));
    let indexer = tokio::spawn(search_loop(broker.clone(), stop_rx.clone()));
    let admin = match http {
        Some(l) => {
            tracing::info!(listen = %l.local_addr()?, "admin http ready: /metrics /health /ready");
            Some(tokio::spawn(http::serve(
                l,
                broker.clone(),
                stop_rx.clone(),
            )))
        }
        None => None,
    };
    let cluster_tasks = match (&controller, &membership) {
        (Some(c), Some(m)) => vec![
            tokio::spawn(broker_heartbeats(
                broker.clone(),
                c.clone(),
                m.clone(),
                stop_rx.clone(),
            )),
            tokio::spawn(reconcile_loop(broker.clone(), stop_rx.clone())),
            tokio::spawn(isr_loop(broker.clone(), stop_rx.clone())),
        ],
        _ => Vec::new(),
    };
    let housekeeping = tokio::spawn(housekeeping(broker.clone(), stop_rx));
    // If this future is dropped instead of shut down (a test simulating a crash), the broker's
    // tasks must die with it rather than keep writing to files a new broker opens.
    let mut handles = vec![
        tiering.abort_handle(),
        indexer.abort_handle(),
        housekeeping.abort_handle(),
    ];
    if let Some(a) = &admin {
        handles.push(a.abort_handle());
    }
    handles.extend(cluster_tasks.iter().map(|t| t.abort_handle()));
    handles.extend(acceptors.iter().map(|t| t.abort_handle()));
    let _tasks = AbortOnDrop(handles);
    shutdown.await;
    tracing::info!("shutting down");
    if let (Some(c), Some(m)) = (&controller, &membership) {
        controlled_shutdown(&broker, c, m).await;
    }
    let _ = stop_tx.send(true);
    for t in cluster_tasks {
        let _ = t.await;
    }
    for a in acceptors {
        let _ = a.await;
    }
    let _ = housekeeping.await;
    let _ = tiering.await;
    let _ = indexer.await;
    if let Some(a) = admin {
        let _ = a.await;
    }
    let closing = broker.clone();
    tokio::task::spawn_blocking(move || {
        if let Some(search) = &closing.search {
            search.close();
        }
        closing.close()
    })
    .await
    .map_err(std::io::Error::other)?;
    if let Some(cache) = broker.remote.as_ref().and_then(|r| r.objects().cache())
        && let Err(e) = cache.close().await
    {
        tracing::warn!(error = %e, "cache did not close cleanly; its disk tier starts cold");
    }
    if let Some(c) = controller {
        c.shutdown().await;
    }
    tracing::info!("logs closed cleanly");
    Ok(())
}

/// With `[cluster] voters`, starts this node's controller on its internal listener and waits
/// until it has applied everything the quorum committed before it started, so the broker opens
/// on current metadata. `None` for a single node, which keeps its own metadata log.
async fn start_controller(config: &Config) -> std::io::Result<Option<Arc<controller::Controller>>> {
    let voters = config
        .cluster
        .voter_map()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    if voters.is_empty() {
        return Ok(None);
    }
    let node_id = config.node_id as u64;
    // A broker-only node follows the log as a learner on its own internal listener.
    let learner_addr =
        (!voters.contains_key(&node_id)).then(|| config.cluster.listen.trim().to_string());
    let addr = match (voters.get(&node_id), &learner_addr) {
        (Some(a), _) => a.clone(),
        (None, Some(a)) if !a.is_empty() => a.clone(),
        _ => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("node {node_id} is not among cluster.voters and has no cluster.listen"),
            ));
        }
    };
    let listener = TcpListener::bind(&addr).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot bind the controller listener {addr}: {e}"),
        )
    })?;
    let controller_config = controller::ControllerConfig {
        learner_addr,
        heartbeat_ms: config.cluster.heartbeat_ms,
        election_timeout_ms: config.cluster.election_timeout_ms,
        session_timeout_ms: config.cluster.session_timeout_ms,
        leader_rebalance_interval_ms: config.cluster.leader_rebalance_interval_ms,
        snapshot_every: config.cluster.snapshot_every,
        keep_behind_snapshot: (config.cluster.snapshot_every / 50).max(5),
        ..controller::ControllerConfig::new(
            node_id,
            voters,
            config.data_dir.join("__chronik").join("controller"),
        )
    };
    let c = controller::Controller::start(controller_config, listener)
        .await
        .map_err(std::io::Error::other)?;
    tracing::info!(node_id, listen = %addr, "controller started; waiting for the quorum");
    // An empty proposal commits after everything before it: once applied here, this node's
    // metadata is current. Waits as long as it takes a majority of voters to come up.
    loop {
        match c.propose(Vec::new()).await {
            Ok(index) => {
                c.wait_applied(index, Duration::from_secs(30))
                    .await
                    .map_err(std::io::Error::other)?;
                break;
            }
            Err(controller::ControllerError::NoLeader(_)) => {
                tracing::warn!(
                    node_id,
                    "no controller leader yet; is a majority of cluster.voters up?"
                );
            }
            Err(e) => return Err(std::io::Error::other(e)),
        }
    }
    // A new cluster gets its id from whichever node proposes first; every node reads the same.
    // A node that ran alone before offers its own id (its remote-tier objects live under it) at
    // once; the others give such a node a moment to do so when the cluster forms.
    if c.read(|s| s.cluster_id.is_none()) {
        let own = broker::migrate::holds_single_node_metadata(&broker::single_node_metadata_dir(
            &config.data_dir,
        ))?
        .then(|| broker::own_cluster_id(&config.data_dir))
        .flatten();
        if own.is_none() {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
            while c.read(|s| s.cluster_id.is_none()) && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        if c.read(|s| s.cluster_id.is_some()) {
            tracing::info!(node_id, status = ?c.status(), "controller quorum ready");
            return Ok(Some(c));
        }
        let index = c
            .propose(vec![metadata::MetadataRecord::ClusterIdSet {
                cluster_id: own.unwrap_or_else(broker::random_cluster_id),
            }])
            .await
            .map_err(std::io::Error::other)?;
        c.wait_applied(index, Duration::from_secs(30))
            .await
            .map_err(std::io::Error::other)?;
    }
    tracing::info!(node_id, status = ?c.status(), "controller quorum ready");
    Ok(Some(c))
}

/// This broker's registration with the controller quorum: its epoch changes with every start.
#[derive(Clone)]
struct Membership {
    epoch: Arc<std::sync::atomic::AtomicI64>,
}

impl Membership {
    fn epoch(&self) -> i64 {
        self.epoch.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// The admin HTTP address other brokers use: the bound one, with the advertised Kafka host in
/// place of a wildcard address.
fn http_advertised(bound: std::net::SocketAddr, advertised_host: &str) -> String {
    if bound.ip().is_unspecified() {
        let host = if advertised_host.contains(':') {
            format!("[{advertised_host}]")
        } else {
            advertised_host.to_string()
        };
        format!("{host}:{}", bound.port())
    } else {
        bound.to_string()
    }
}

/// Registers the broker (its id, advertised endpoint, rack and admin HTTP address) and returns
/// its epoch.
async fn register(broker: &Broker, c: &controller::Controller) -> std::io::Result<i64> {
    let rack = broker.config.cluster.rack.trim();
    let incarnation = uuid::Uuid::new_v4();
    let mut records = vec![metadata::MetadataRecord::BrokerRegistered {
        id: broker.node_id,
        incarnation,
        host: broker.advertised.0.clone(),
        port: broker.advertised.1,
        rack: (!rack.is_empty()).then(|| rack.to_string()),
    }];
    if let Some(http) = broker.http_advertised.get() {
        records.push(metadata::MetadataRecord::BrokerHttpAdvertised {
            id: broker.node_id,
            incarnation,
            http: http.clone(),
        });
    }
    if let Some(listeners) = broker.listeners.get() {
        records.push(metadata::MetadataRecord::BrokerListenersAdvertised {
            id: broker.node_id,
            incarnation,
            listeners: listeners.clone(),
        });
    }
    let index = c.propose(records).await.map_err(std::io::Error::other)?;
    c.wait_applied(index, Duration::from_secs(30))
        .await
        .map_err(std::io::Error::other)?;
    tracing::info!(
        broker = broker.node_id,
        epoch = index,
        "broker registered with the controller quorum"
    );
    Ok(index as i64)
}

async fn register_broker(
    broker: &Arc<Broker>,
    c: &Arc<controller::Controller>,
) -> std::io::Result<Membership> {
    let epoch = register(broker, c).await?;
    let b = broker.clone();
    tokio::task::spawn_blocking(move || b.replicas.reconcile())
        .await
        .map_err(std::io::Error::other)??;
    Ok(Membership {
        epoch: Arc::new(std::sync::atomic::AtomicI64::new(epoch)),
    })
}

/// Tells the controller leader this broker is alive, every `[cluster] broker_heartbeat_ms`;
/// registers again when the quorum no longer knows this registration.
async fn broker_heartbeats(
    broker: Arc<Broker>,
    c: Arc<controller::Controller>,
    membership: Membership,
    mut stop: watch::Receiver<bool>,
) {
    let every = Duration::from_millis(broker.config.cluster.broker_heartbeat_ms);
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut fenced = false;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.changed() => return,
        }
        match c.heartbeat(broker.node_id, membership.epoch(), every).await {
            Ok(reply) if reply.stale => {
                tracing::warn!(
                    broker = broker.node_id,
                    "the controller no longer knows this broker's registration; registering again"
                );
                match register(&broker, &c).await {
                    Ok(epoch) => membership
                        .epoch
                        .store(epoch, std::sync::atomic::Ordering::Release),
                    Err(e) => tracing::warn!(error = %e, "registration failed"),
                }
            }
            Ok(reply) => {
                if reply.fenced != fenced {
                    fenced = reply.fenced;
                    tracing::info!(broker = broker.node_id, fenced, "broker fencing changed");
                }
            }
            Err(e) => {
                tracing::warn!(broker = broker.node_id, error = %e, "broker heartbeat failed")
            }
        }
    }
}

/// Applies metadata changes to this broker's partitions as they arrive from the quorum.
async fn reconcile_loop(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(Duration::from_millis(50));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.changed() => return,
        }
        let b = broker.clone();
        match tokio::task::spawn_blocking(move || b.replicas.reconcile()).await {
            Ok(Ok(())) => {
                broker
                    .groups
                    .retain(|g| handlers::cluster::is_coordinator(&broker, g));
                broker.groups.forget_unled();
            }
            Ok(Err(e)) => tracing::error!(error = %e, "cannot apply metadata to local partitions"),
            Err(e) => tracing::error!(error = %e, "reconcile task failed"),
        }
    }
}

/// Leaders of replicated partitions keep their in-sync sets true: every half second each one
/// asks the controller to drop followers that lag more than `replica_lag_time_max_ms` and to
/// take back those that caught up (Kafka's `AlterPartition`, here an `IsrAltered` record that
/// applies only against the partition epoch it was made for).
async fn isr_loop(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(Duration::from_millis(500));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let max_lag = broker.config.cluster.replica_lag_time_max_ms as i64;
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.changed() => return,
        }
        let now = util::now_ms();
        for t in broker.replicas.topics() {
            for p in t.partitions() {
                let Some(change) = p.isr_change(max_lag, now) else {
                    continue;
                };
                tracing::info!(topic = %t.name, partition = p.index, from = ?p.isr(), to = ?change.isr, "asking the controller to change the in-sync set");
                let record = metadata::MetadataRecord::IsrAltered {
                    id: t.id,
                    partition: p.index,
                    leader: broker.node_id,
                    leader_epoch: change.leader_epoch,
                    partition_epoch: change.partition_epoch,
                    isr: change.isr.clone(),
                };
                let sent = tokio::time::timeout(
                    Duration::from_secs(5),
                    broker.metadata.append(vec![record]),
                )
                .await;
                let applied = broker.metadata.read(|s| {
                    s.placement(t.id, p.index).is_some_and(|pl| {
                        pl.isr == change.isr && pl.partition_epoch == change.partition_epoch + 1
                    })
                });
                if !matches!(sent, Ok(Ok(_))) || !applied {
                    tracing::info!(topic = %t.name, partition = p.index, "in-sync set change not applied; will look again");
                    p.clear_pending_isr();
                }
            }
        }
    }
}

/// Before a broker of a cluster stops: the controller moves its leaderships to other brokers
/// and fences it, so clients move on at once instead of after the session timeout.
async fn controlled_shutdown(
    broker: &Arc<Broker>,
    c: &Arc<controller::Controller>,
    membership: &Membership,
) {
    let started = std::time::Instant::now();
    match c
        .shutdown_broker(broker.node_id, membership.epoch(), Duration::from_secs(10))
        .await
    {
        Ok(()) => {
            let b = broker.clone();
            let _ = tokio::task::spawn_blocking(move || b.replicas.reconcile()).await;
            tracing::info!(
                broker = broker.node_id,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "controlled shutdown: leaderships moved away"
            );
        }
        Err(e) => {
            tracing::warn!(broker = broker.node_id, error = %e, "controlled shutdown incomplete; other brokers take over after the session timeout")
        }
    }
}

/// A controller-only node (`[cluster] roles = ["controller"]`): its voter until `shutdown`.
pub async fn serve_controller(
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let Some(c) = start_controller(&config).await? else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "a controller-only node needs cluster.voters",
        ));
    };
    shutdown.await;
    tracing::info!("shutting down the controller");
    c.shutdown().await;
    Ok(())
}

struct AbortOnDrop(Vec<tokio::task::AbortHandle>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// Copies sealed segments of tiered topics and applies retention across both tiers.
async fn tiering_loop(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) {
    let Some(remote) = broker.remote.clone() else {
        return;
    };
    let mut every = tokio::time::interval(Duration::from_millis(
        broker.config.tiering.interval_ms.max(10),
    ));
    loop {
        tokio::select! {
            _ = every.tick() => {
                // A pass finishes its current upload before shutdown is noticed.
                remote.run_once().await;
            }
            _ = stop.changed() => return,
        }
    }
}

/// Indexes new records of searchable topics on a thread of its own, a pass every 100 ms. The
/// thread runs at a lower scheduling priority (nice 10, inherited by Tantivy's indexing and
/// merge threads it starts), so that on a busy machine produce and fetch go first and the indexer
/// takes the spare CPU; its lag is a metric.
async fn search_loop(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let Some(search) = broker.search.clone() else {
        return;
    };
    /// Stops the thread when the loop ends, also when its task is aborted.
    struct StopOnDrop(Arc<AtomicBool>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(false, Ordering::Release);
        }
    }
    let running = Arc::new(AtomicBool::new(true));
    let guard = StopOnDrop(running.clone());
    let thread = std::thread::Builder::new()
        .name("chronik-indexer".into())
        .spawn(move || {
            place_indexer(&search.config().index_cpus);
            while running.load(Ordering::Acquire) {
                let started = std::time::Instant::now();
                search.index_pass();
                let pause = Duration::from_millis(100).saturating_sub(started.elapsed());
                std::thread::sleep(pause.max(Duration::from_millis(5)));
            }
        });
    let thread = match thread {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the search indexer");
            return;
        }
    };
    let _ = stop.changed().await;
    drop(guard);
    let _ = tokio::task::spawn_blocking(move || thread.join()).await;
}

/// Places the indexer thread: on the CPUs of `cpus` when that is not empty, at nice 19. It
/// stays in the normal scheduling class because it takes broker locks (the log's, the high
/// watermark's) for moments: in the idle class a thread preempted while holding one would stall
/// produce until the CPU had nothing else to do. The Tantivy threads that do the bulk of the
/// work hold no broker lock and run in the idle class (`search::on_idle_thread`).
fn place_indexer(cpus: &[usize]) {
    if let Err(e) = util::run_on(cpus) {
        tracing::warn!(cpus = ?cpus, error = %e, "cannot run the indexer on search.index_cpus");
    }
    if !util::lowest_nice() {
        tracing::debug!("could not lower the indexer's priority");
    }
}

/// Periodic work: retention, time-based flushes, group deadlines and offset expiry.
async fn housekeeping(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) {
    let retention_every =
        Duration::from_millis(broker.config.log.retention_check_interval_ms.max(100));
    let mut retention = tokio::time::interval(retention_every);
    let mut flush = tokio::time::interval(Duration::from_millis(100));
    let mut groups = tokio::time::interval(Duration::from_millis(100));
    // Quota changes made through another broker arrive with the metadata.
    let mut quotas = tokio::time::interval(Duration::from_millis(200));
    let mut offsets = tokio::time::interval(Duration::from_secs(60));
    let mut disk_space = tokio::time::interval(replica::disk_space::POLL_INTERVAL);
    loop {
        tokio::select! {
            _ = disk_space.tick() => broker.disk_space.poll(),
            _ = groups.tick() => broker.groups.tick(),
            _ = quotas.tick() => handlers::quotas::refresh(&broker),
            _ = offsets.tick() => {
                let b = &broker;
                b.groups
                    .expire_offsets(util::now_ms(), |g| handlers::cluster::is_coordinator(b, g))
                    .await
            }
            _ = retention.tick() => {
                let b = broker.clone();
                let _ = tokio::task::spawn_blocking(move || b.replicas.enforce_retention(util::now_ms())).await;
            }
            _ = flush.tick() => broker.replicas.flush_due(util::now_ms()),
            _ = stop.changed() => return,
        }
    }
}
