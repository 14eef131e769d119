//! The controller quorum: the metadata log replicated by Raft among the configured voters.
//!
//! Consensus comes from `openraft` (pinned exactly in `Cargo.toml`); nothing outside this module
//! names an openraft type — the rest of the broker sees [`Controller`]: propose records, read the
//! applied state, ask who leads. A Raft entry carries a batch of [`MetadataRecord`]s; the log is
//! kept by [`store::LogStore`] in the metadata log's own CRC frames (`metadata::raft_log`), the
//! state machine ([`store::StateMachine`]) applies committed entries to the same
//! [`MetadataState`] a single node replays, with its snapshots, and the voters talk over their
//! internal listener ([`network`]).

pub mod brokers;
pub mod network;
pub mod store;

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, Raft, ServerState, SnapshotPolicy};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::metadata::{MetadataRecord, MetadataState};
pub use brokers::{HeartbeatReply, QuorumDescription, VoterState};

/// What a controller proposes: records that take effect together, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    pub records: Vec<MetadataRecord>,
}

/// What applying an entry answers: the Raft index it took effect at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub index: u64,
}

openraft::declare_raft_types!(
    /// The Raft type configuration of the metadata log: nodes are numbered by `node_id` and
    /// addressed by their internal listener's `host:port`.
    pub ControllerTypes:
        D = Proposal,
        R = Applied,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<ControllerTypes>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// How one controller runs.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    pub node_id: u64,
    /// Every voter's id and internal `host:port`; this node's included unless it is a learner.
    pub voters: BTreeMap<u64, String>,
    /// This node's internal `host:port` when it is not a voter: it follows the metadata log as a
    /// learner, without a vote, and asks the leader to add it at this address.
    pub learner_addr: Option<String>,
    /// Where the Raft log, vote and snapshot live.
    pub dir: PathBuf,
    /// Leader heartbeats; a follower that hears none for the election timeout (a random value
    /// between `election_timeout_ms` and 1.5 times it) stands for election.
    pub heartbeat_ms: u64,
    pub election_timeout_ms: u64,
    /// Entries between snapshots.
    pub snapshot_every: u64,
    /// Entries kept in the log behind a snapshot, so a voter that lags by fewer catches up from
    /// the log rather than by a snapshot transfer.
    pub keep_behind_snapshot: u64,
    /// A broker not heard from for this long is fenced by the leader.
    pub session_timeout_ms: u64,
    /// How often leaderships go back to preferred replicas (0: never).
    pub leader_rebalance_interval_ms: u64,
}

impl ControllerConfig {
    pub fn new(node_id: u64, voters: BTreeMap<u64, String>, dir: PathBuf) -> Self {
        Self {
            node_id,
            voters,
            learner_addr: None,
            dir,
            heartbeat_ms: 100,
            election_timeout_ms: 300,
            snapshot_every: 50_000,
            keep_behind_snapshot: 1000,
            session_timeout_ms: 9000,
            leader_rebalance_interval_ms: 300_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("no controller leader within {0:?}")]
    NoLeader(Duration),
    #[error("controller: {0}")]
    Raft(String),
    #[error("controller storage: {0}")]
    Io(#[from] std::io::Error),
}

/// Who leads and what this node applied, for DescribeQuorum and health checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumStatus {
    pub node_id: u64,
    pub leader: Option<u64>,
    pub term: u64,
    pub last_log_index: Option<u64>,
    pub last_applied: Option<u64>,
    pub is_leader: bool,
}

/// One member of the controller quorum.
pub struct Controller {
    node_id: u64,
    raft: Raft<ControllerTypes>,
    state: store::StateMachine,
    voters: BTreeMap<u64, String>,
    shutdown: watch::Sender<bool>,
    leader: LeaderSide,
}

/// What only the leader does: proposals, brokers' heartbeats and shutdowns, fencing, the
/// quorum's description. Every voter has one; it answers only while its voter leads.
#[derive(Clone)]
struct LeaderSide {
    raft: Raft<ControllerTypes>,
    state: store::StateMachine,
    liveness: Arc<std::sync::Mutex<brokers::Liveness>>,
    session: Duration,
    rebalance: Option<Duration>,
}

const NOT_LEADER: &str = "not the controller leader";

impl LeaderSide {
    fn liveness(&self) -> std::sync::MutexGuard<'_, brokers::Liveness> {
        self.liveness.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The term this voter leads in, if it leads and a majority acknowledged it within the
    /// session timeout: a leader cut off from the others answers brokers no more (they go to
    /// the new leader) instead of deciding about them alone.
    fn leading(&self) -> Option<u64> {
        let m = self.raft.metrics().borrow().clone();
        let heard = m
            .millis_since_quorum_ack
            .is_none_or(|ms| u128::from(ms) <= self.session.as_millis());
        (m.state == ServerState::Leader && heard).then_some(m.current_term)
    }

    fn heartbeat(&self, broker: i32, epoch: i64) -> Result<HeartbeatReply, String> {
        let term = self.leading().ok_or(NOT_LEADER)?;
        let mut l = self.liveness();
        l.enter_term(term);
        Ok(self.state.read(|s| l.heard(s, broker, epoch)))
    }

    /// One round of duties; proposes what they decided. Only on the leader.
    async fn run_duties(&self) -> Result<(), String> {
        let term = self.leading().ok_or(NOT_LEADER)?;
        let records = {
            let mut l = self.liveness();
            l.enter_term(term);
            let (matched, end) = self.replication();
            l.observe_voters(&matched, end);
            self.state
                .read(|s| l.duties(s, self.session, self.rebalance))
        };
        if records.is_empty() {
            return Ok(());
        }
        self.raft
            .client_write(Proposal { records })
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn shutdown_broker(&self, broker: i32, epoch: i64) -> Result<(), String> {
        let term = self.leading().ok_or(NOT_LEADER)?;
        {
            let mut l = self.liveness();
            l.enter_term(term);
            l.shutting_down(broker, epoch);
        }
        self.run_duties().await
    }

    /// (voter, last matched index) for every voter, and the leader's own last index.
    fn replication(&self) -> (Vec<(u64, Option<u64>)>, Option<u64>) {
        let m = self.raft.metrics().borrow().clone();
        let voters: Vec<u64> = m.membership_config.membership().voter_ids().collect();
        Self::matched(&m, voters)
    }

    /// (learner, last matched index) for every learner (broker-only node).
    fn learners(&self) -> Vec<(u64, Option<u64>)> {
        let m = self.raft.metrics().borrow().clone();
        let learners: Vec<u64> = m.membership_config.membership().learner_ids().collect();
        Self::matched(&m, learners).0
    }

    fn matched(
        m: &openraft::RaftMetrics<u64, BasicNode>,
        nodes: Vec<u64>,
    ) -> (Vec<(u64, Option<u64>)>, Option<u64>) {
        let mut matched: Vec<(u64, Option<u64>)> = nodes
            .into_iter()
            .map(|v| {
                let at = if v == m.id {
                    m.last_log_index
                } else {
                    m.replication
                        .as_ref()
                        .and_then(|r| r.get(&v).cloned().flatten())
                        .map(|l| l.index)
                };
                (v, at)
            })
            .collect();
        matched.sort();
        (matched, m.last_log_index)
    }

    fn describe(&self) -> Result<QuorumDescription, String> {
        let term = self.leading().ok_or(NOT_LEADER)?;
        let m = self.raft.metrics().borrow().clone();
        let (matched, end) = self.replication();
        let learners = self.learners();
        let mut l = self.liveness();
        l.enter_term(term);
        l.observe_voters(&matched, end);
        l.observe_voters(&learners, end);
        Ok(QuorumDescription {
            leader: m.id,
            term,
            high_watermark: m.last_applied.map(|a| a.index as i64 + 1).unwrap_or(0),
            voters: l.voter_states(&matched),
            observers: l.voter_states(&learners),
        })
    }

    /// Adds a broker-only node as a learner at `addr`, unless it already is one there (every
    /// membership change is a log entry, so a restarted learner asking again costs nothing).
    async fn add_learner(&self, node: u64, addr: String) -> Result<(), String> {
        self.leading().ok_or(NOT_LEADER)?;
        let membership = self.raft.metrics().borrow().membership_config.clone();
        let membership = membership.membership();
        if membership.voter_ids().any(|v| v == node) {
            return Err(format!("node {node} is a controller voter, not a learner"));
        }
        if membership.get_node(&node).is_some_and(|n| n.addr == addr) {
            return Ok(());
        }
        tracing::info!(node, %addr, "adding a broker-only node as a metadata learner");
        self.raft
            .add_learner(node, BasicNode::new(&addr), false)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn handle(&self, request: network::Request) -> network::Response {
        use network::{Request, Response};
        match request {
            Request::Propose(p) => Response::Propose(
                self.raft
                    .client_write(p)
                    .await
                    .map(|r| r.data)
                    .map_err(|e| e.to_string()),
            ),
            Request::Heartbeat { broker, epoch } => {
                Response::Heartbeat(self.heartbeat(broker, epoch))
            }
            Request::ShutdownBroker { broker, epoch } => {
                Response::ShutdownBroker(self.shutdown_broker(broker, epoch).await)
            }
            Request::DescribeQuorum => Response::DescribeQuorum(self.describe()),
            Request::AddLearner { node, addr } => {
                Response::AddLearner(self.add_learner(node, addr).await)
            }
            Request::AppendEntries(_) | Request::Vote(_) | Request::InstallSnapshot(_) => {
                Response::Propose(Err("raft request on the leader path".into()))
            }
        }
    }
}

/// The leader's duties every quarter second, while this voter leads.
async fn run_leader_duties(leader: LeaderSide, mut stop: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(Duration::from_millis(250));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {
                if leader.leading().is_some() {
                    // Without a majority a proposal waits for ever; the next round tries again.
                    match tokio::time::timeout(Duration::from_secs(5), leader.run_duties()).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => tracing::debug!(error = %e, "controller duties"),
                        Err(_) => tracing::debug!("controller duties: no majority within 5 s"),
                    }
                }
            }
            _ = stop.changed() => return,
        }
    }
}

/// One log line per change of leader or term, as this node sees it.
async fn log_leader_changes(
    raft: Raft<ControllerTypes>,
    node_id: u64,
    mut stop: watch::Receiver<bool>,
) {
    let mut metrics = raft.metrics();
    let mut seen = (None, 0);
    loop {
        let now = {
            let m = metrics.borrow_and_update();
            (m.current_leader, m.current_term)
        };
        if now != seen {
            seen = now;
            tracing::info!(node_id, leader = ?now.0, term = now.1, "controller leader changed");
        }
        tokio::select! {
            changed = metrics.changed() => if changed.is_err() { return },
            _ = stop.changed() => return,
        }
    }
}

/// A learner asks the voters, one after another, to add it at `addr` until its own membership
/// lists it there (the leader's entry reached it).
async fn join_as_learner(
    raft: Raft<ControllerTypes>,
    node: u64,
    addr: String,
    voters: BTreeMap<u64, String>,
    mut stop: watch::Receiver<bool>,
) {
    let joined = |raft: &Raft<ControllerTypes>| {
        raft.metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&node)
            .is_some_and(|n| n.addr == addr)
    };
    let mut said = false;
    for voter in voters.values().cycle() {
        if joined(&raft) {
            tracing::info!(node, %addr, "following the metadata log as a learner");
            return;
        }
        let request = network::Request::AddLearner {
            node,
            addr: addr.clone(),
        };
        match network::call(voter, &request, Duration::from_secs(2)).await {
            Ok(network::Response::AddLearner(Ok(()))) => {}
            Ok(network::Response::AddLearner(Err(e))) if e != NOT_LEADER && !said => {
                tracing::warn!(node, voter = %voter, error = %e, "the controller refused to add this broker as a learner");
                said = true;
            }
            _ => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// How long a proposal waits for a leader before giving up.
const PROPOSE_TIMEOUT: Duration = Duration::from_secs(10);

impl Controller {
    /// Starts this node's member of the quorum on `listener`: a voter at its address in
    /// `voters`, or a learner at `learner_addr`. A voter whose log is empty proposes the
    /// configured voters as the first membership; every voter may do so, as they all propose the
    /// same one. A learner asks the leader to add it, and from then on receives the log.
    pub async fn start(
        config: ControllerConfig,
        listener: TcpListener,
    ) -> Result<Arc<Self>, ControllerError> {
        let voter = config.voters.contains_key(&config.node_id);
        if !voter && config.learner_addr.is_none() {
            return Err(ControllerError::Raft(format!(
                "node {} is not among the controller voters {:?} and has no learner address",
                config.node_id, config.voters
            )));
        }
        let raft_config = openraft::Config {
            cluster_name: "chronik-controllers".into(),
            heartbeat_interval: config.heartbeat_ms,
            election_timeout_min: config.election_timeout_ms,
            election_timeout_max: config.election_timeout_ms * 3 / 2,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_every),
            max_in_snapshot_log_to_keep: config.keep_behind_snapshot,
            ..Default::default()
        }
        .validate()
        .map_err(|e| ControllerError::Raft(e.to_string()))?;
        let log = store::LogStore::open(&config.dir)?;
        let state = store::StateMachine::open(&config.dir)?;
        let raft = Raft::new(
            config.node_id,
            Arc::new(raft_config),
            network::Network,
            log,
            state.clone(),
        )
        .await
        .map_err(|e| ControllerError::Raft(e.to_string()))?;
        let members: BTreeMap<u64, BasicNode> = config
            .voters
            .iter()
            .map(|(id, addr)| (*id, BasicNode::new(addr)))
            .collect();
        if voter {
            match raft.initialize(members).await {
                Ok(()) => {
                    tracing::info!(node_id = config.node_id, voters = ?config.voters, "controller quorum initialized")
                }
                // Already part of a formed quorum (a restart): nothing to do.
                Err(RaftError::APIError(_)) => {}
                Err(e) => return Err(ControllerError::Raft(e.to_string())),
            }
        }
        let (shutdown, rx) = watch::channel(false);
        if let (false, Some(addr)) = (voter, &config.learner_addr) {
            tokio::spawn(join_as_learner(
                raft.clone(),
                config.node_id,
                addr.clone(),
                config.voters.clone(),
                rx.clone(),
            ));
        }
        let leader = LeaderSide {
            raft: raft.clone(),
            state: state.clone(),
            liveness: Default::default(),
            session: Duration::from_millis(config.session_timeout_ms),
            rebalance: (config.leader_rebalance_interval_ms > 0)
                .then(|| Duration::from_millis(config.leader_rebalance_interval_ms)),
        };
        let handler: network::LeaderHandler = {
            let leader = leader.clone();
            Arc::new(move |r: network::Request| {
                let leader = leader.clone();
                Box::pin(async move { leader.handle(r).await })
                    as futures::future::BoxFuture<'static, network::Response>
            })
        };
        tokio::spawn(network::serve(listener, raft.clone(), handler, rx.clone()));
        tokio::spawn(log_leader_changes(raft.clone(), config.node_id, rx.clone()));
        tokio::spawn(run_leader_duties(leader.clone(), rx));
        Ok(Arc::new(Self {
            node_id: config.node_id,
            raft,
            state,
            voters: config.voters,
            shutdown,
            leader,
        }))
    }

    /// Every voter's id and internal `host:port`.
    pub fn voter_addresses(&self) -> Vec<(u64, String)> {
        self.voters.iter().map(|(k, v)| (*k, v.clone())).collect()
    }

    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    /// Reads the applied metadata state (what this node knows is committed).
    pub fn read<T>(&self, f: impl FnOnce(&MetadataState) -> T) -> T {
        self.state.read(f)
    }

    pub fn status(&self) -> QuorumStatus {
        let m = self.raft.metrics().borrow().clone();
        QuorumStatus {
            node_id: self.node_id,
            leader: m.current_leader,
            term: m.current_term,
            last_log_index: m.last_log_index,
            last_applied: m.last_applied.map(|l| l.index),
            is_leader: m.state == ServerState::Leader,
        }
    }

    /// Makes `records` durable on a majority of voters and applied on the leader, in order, and
    /// returns the Raft index they took effect at. A follower forwards them to the leader.
    pub async fn propose(&self, records: Vec<MetadataRecord>) -> Result<u64, ControllerError> {
        let proposal = Proposal { records };
        let deadline = tokio::time::Instant::now() + PROPOSE_TIMEOUT;
        loop {
            // A leader cut off from the majority never commits: give up at the deadline (the
            // entry it holds is replaced by the next leader's log, or commits if it returns).
            let written =
                tokio::time::timeout_at(deadline, self.raft.client_write(proposal.clone())).await;
            let leader = match written {
                Err(_) => return Err(ControllerError::NoLeader(PROPOSE_TIMEOUT)),
                Ok(Ok(r)) => return Ok(r.data.index),
                Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => f.leader_id,
                Ok(Err(e)) => return Err(ControllerError::Raft(e.to_string())),
            };
            if let Some(addr) = leader
                .filter(|l| *l != self.node_id)
                .and_then(|l| self.voters.get(&l))
            {
                let request = network::Request::Propose(proposal.clone());
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                // Any failure (the leader just changed, it is unreachable) is retried below.
                if let Ok(network::Response::Propose(Ok(applied))) =
                    network::call(addr, &request, left).await
                {
                    return Ok(applied.index);
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ControllerError::NoLeader(PROPOSE_TIMEOUT));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends `request` to the leader (answering it here when this voter leads) until it is
    /// answered or `timeout` passes; `Err` texts of the answer are retried as well.
    async fn ask_leader<T>(
        &self,
        request: network::Request,
        timeout: Duration,
        unpack: impl Fn(network::Response) -> Option<Result<T, String>>,
    ) -> Result<T, ControllerError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last = String::from("no leader");
        loop {
            let leader = self.raft.metrics().borrow().current_leader;
            let answer = match leader {
                Some(l) if l == self.node_id => {
                    // A leader without a majority never commits: give up at the deadline.
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    match tokio::time::timeout(left, self.leader.handle(request.clone())).await {
                        Ok(r) => unpack(r),
                        Err(_) => Some(Err("no majority answered in time".into())),
                    }
                }
                Some(l) => match self.voters.get(&l) {
                    Some(addr) => {
                        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                        match network::call(addr, &request, left).await {
                            Ok(r) => unpack(r),
                            Err(e) => Some(Err(e.to_string())),
                        }
                    }
                    None => None,
                },
                None => None,
            };
            match answer {
                Some(Ok(v)) => return Ok(v),
                Some(Err(e)) => last = e,
                None => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ControllerError::Raft(format!(
                    "the controller leader did not answer within {timeout:?}: {last}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A broker's heartbeat, answered by the leader.
    pub async fn heartbeat(
        &self,
        broker: i32,
        epoch: i64,
        timeout: Duration,
    ) -> Result<HeartbeatReply, ControllerError> {
        self.ask_leader(
            network::Request::Heartbeat { broker, epoch },
            timeout,
            |r| match r {
                network::Response::Heartbeat(r) => Some(r),
                _ => None,
            },
        )
        .await
    }

    /// A broker's controlled shutdown: returns once the leader committed moving its
    /// leaderships away (and fencing it).
    pub async fn shutdown_broker(
        &self,
        broker: i32,
        epoch: i64,
        timeout: Duration,
    ) -> Result<(), ControllerError> {
        self.ask_leader(
            network::Request::ShutdownBroker { broker, epoch },
            timeout,
            |r| match r {
                network::Response::ShutdownBroker(r) => Some(r),
                _ => None,
            },
        )
        .await
    }

    /// The quorum as its leader describes it.
    pub async fn describe_quorum(
        &self,
        timeout: Duration,
    ) -> Result<QuorumDescription, ControllerError> {
        self.ask_leader(network::Request::DescribeQuorum, timeout, |r| match r {
            network::Response::DescribeQuorum(r) => Some(r),
            _ => None,
        })
        .await
    }

    /// Waits until this node applied `index` (a follower catching up on a proposal).
    pub async fn wait_applied(&self, index: u64, timeout: Duration) -> Result<(), ControllerError> {
        let mut metrics = self.raft.metrics();
        let wait = async {
            loop {
                if metrics
                    .borrow()
                    .last_applied
                    .is_some_and(|l| l.index >= index)
                {
                    return Ok(());
                }
                if metrics.changed().await.is_err() {
                    return Err(ControllerError::Raft(format!(
                        "the controller stopped before applying index {index}"
                    )));
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.map_err(|_| {
            ControllerError::Raft(format!("index {index} not applied within {timeout:?}"))
        })?
    }

    /// Stops this voter: its RPC listener and its Raft task.
    pub async fn shutdown(&self) {
        let _ = self.shutdown.send(true);
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "controller shutdown");
        }
    }
}

/// The broker's metadata store keeps its log here when the node is a controller voter.
impl crate::metadata::ReplicatedLog for Controller {
    fn propose(
        &self,
        records: Vec<MetadataRecord>,
    ) -> futures::future::BoxFuture<'_, std::io::Result<u64>> {
        Box::pin(async move {
            let index = Controller::propose(self, records)
                .await
                .map_err(std::io::Error::other)?;
            // A follower forwarded the records: the caller reads them next, so wait until this
            // node applied them too.
            self.wait_applied(index, PROPOSE_TIMEOUT)
                .await
                .map_err(std::io::Error::other)?;
            Ok(index)
        })
    }

    fn with_state(&self, f: &mut dyn FnMut(&MetadataState)) {
        self.state.read(|s| f(s))
    }
}
