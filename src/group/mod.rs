//! The group coordinator: consumer groups under the classic protocol and their committed offsets.
//!
//! Membership lives in memory (members rejoin after a broker restart, as they do after a
//! coordinator move in Kafka); committed offsets are made durable in the metadata log before a
//! commit is acknowledged and are served from the log's replayed state. A periodic tick applies
//! session, rebalance and sync deadlines and expires offsets of empty groups after the
//! retention period.

pub mod state;
pub mod store;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use crate::config::GroupConfig;
use crate::metadata::{CommittedOffset, MetadataRecord, MetadataState};
use state::Group;
pub use state::{GroupState, JoinRequest, JoinResult, Reply, SyncRequest, SyncResult, Timing};
pub use store::{GroupStore, OffsetsTopic};

/// One partition's offset in a commit.
pub struct OffsetToCommit {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

pub struct MemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

pub struct GroupDescription {
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberDescription>,
}

pub struct GroupCoordinator {
    groups: Mutex<HashMap<String, Group>>,
    store: Arc<dyn GroupStore>,
    config: GroupConfig,
}

impl GroupCoordinator {
    pub fn new(store: Arc<dyn GroupStore>, config: GroupConfig) -> Self {
        Self {
            groups: Mutex::new(HashMap::new()),
            store,
            config,
        }
    }

    /// Reads the durable state holding `group`.
    fn stored<R>(&self, group: &str, f: impl FnOnce(&MetadataState) -> R) -> Option<R> {
        let mut f = Some(f);
        let mut out = None;
        self.store.read(Some(group), &mut |s| {
            if let Some(f) = f.take() {
                out = Some(f(s));
            }
        });
        out
    }

    /// Whether this broker can coordinate `group` now (0), or the error to answer with
    /// (`NOT_COORDINATOR`, `COORDINATOR_LOAD_IN_PROGRESS`).
    pub fn readiness(&self, group: &str) -> i16 {
        self.store.ready(group).err().unwrap_or(0)
    }

    /// Drops stored state this broker no longer coordinates.
    pub fn forget_unled(&self) {
        self.store.forget_unled();
    }

    fn groups(&self) -> std::sync::MutexGuard<'_, HashMap<String, Group>> {
        self.groups.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn timing(&self) -> Timing {
        Timing {
            initial_rebalance_delay: Duration::from_millis(self.config.initial_rebalance_delay_ms),
        }
    }

    fn has_offsets(&self, group: &str) -> bool {
        self.stored(group, |s| s.offsets.contains_key(group))
            .unwrap_or(false)
    }

    pub async fn join(&self, group_id: &str, req: JoinRequest) -> JoinResult {
        if group_id.is_empty() {
            return JoinResult::error(ResponseError::InvalidGroupId, &req.member_id);
        }
        let session = req.session_timeout.as_millis() as u64;
        if session < self.config.min_session_timeout_ms
            || session > self.config.max_session_timeout_ms
        {
            return JoinResult::error(ResponseError::InvalidSessionTimeout, &req.member_id);
        }
        let protocol_type = req.protocol_type.clone();
        let reply = {
            let mut groups = self.groups();
            if !groups.contains_key(group_id) && !req.member_id.is_empty() {
                return JoinResult::error(ResponseError::UnknownMemberId, &req.member_id);
            }
            let group = groups.entry(group_id.to_string()).or_insert_with(|| {
                let mut g = Group::new(group_id);
                // A group forgotten while empty (or before a restart) keeps its protocol type.
                g.protocol_type = self.stored_protocol_type(group_id);
                g
            });
            group.join(req, Instant::now(), &self.timing())
        };
        let result = match reply {
            Reply::Now(r) => r,
            Reply::Later(rx) => rx
                .await
                .unwrap_or_else(|_| JoinResult::error(ResponseError::CoordinatorNotAvailable, "")),
        };
        if result.error == 0
            && self.stored_protocol_type(group_id).as_deref() != Some(protocol_type.as_str())
        {
            let record = MetadataRecord::GroupProtocolTypeSet {
                group: group_id.to_string(),
                protocol_type,
            };
            if let Err(e) = self.store.append(group_id, vec![record]).await {
                // The member joined; only what an empty group reports after a restart is at
                // stake, and the next join writes it again.
                tracing::warn!(group = group_id, error = %e, "cannot persist the group's protocol type");
            }
        }
        result
    }

    /// The protocol type the metadata log keeps for `group_id`.
    fn stored_protocol_type(&self, group_id: &str) -> Option<String> {
        self.stored(group_id, |s| s.group_protocol_types.get(group_id).cloned())
            .flatten()
    }

    pub async fn sync(&self, group_id: &str, req: SyncRequest) -> SyncResult {
        if group_id.is_empty() {
            return SyncResult::error(ResponseError::InvalidGroupId);
        }
        let reply = {
            let mut groups = self.groups();
            let Some(group) = groups.get_mut(group_id) else {
                return SyncResult::error(ResponseError::UnknownMemberId);
            };
            group.sync(req, Instant::now())
        };
        match reply {
            Reply::Now(r) => r,
            Reply::Later(rx) => rx
                .await
                .unwrap_or_else(|_| SyncResult::error(ResponseError::CoordinatorNotAvailable)),
        }
    }

    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> i16 {
        if group_id.is_empty() {
            return ResponseError::InvalidGroupId.code();
        }
        let mut groups = self.groups();
        let Some(group) = groups.get_mut(group_id) else {
            return ResponseError::UnknownMemberId.code();
        };
        match group.heartbeat(member_id, instance_id, generation, Instant::now()) {
            Ok(()) => 0,
            Err(e) => e.code(),
        }
    }

    /// Removes members; returns the per-member error codes.
    pub fn leave(
        &self,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Result<Vec<i16>, ResponseError> {
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        let mut groups = self.groups();
        let Some(group) = groups.get_mut(group_id) else {
            return Err(ResponseError::UnknownMemberId);
        };
        let now = Instant::now();
        let timing = self.timing();
        Ok(members
            .iter()
            .map(|(m, i)| match group.leave(m, i.as_deref(), now, &timing) {
                Ok(()) => 0,
                Err(e) => e.code(),
            })
            .collect())
    }

    /// Commits offsets for a group member (or, with generation -1 and no member, for a group
    /// that only stores offsets). Returns per-offset error codes in input order; a group-level
    /// failure is the `Err`.
    pub async fn commit(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        offsets: Vec<OffsetToCommit>,
        valid: impl Fn(&str, i32) -> bool,
    ) -> Result<Vec<i16>, ResponseError> {
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        {
            let groups = self.groups();
            match groups.get(group_id) {
                None if generation >= 0 => return Err(ResponseError::IllegalGeneration),
                None => {}
                Some(g) => {
                    if generation < 0 && member_id.is_empty() {
                        if !g.is_empty() {
                            return Err(ResponseError::UnknownMemberId);
                        }
                    } else {
                        if let Some(inst) = instance_id
                            && g.members.values().any(|m| {
                                m.instance_id.as_deref() == Some(inst) && m.id != member_id
                            })
                        {
                            return Err(ResponseError::FencedInstanceId);
                        }
                        if !g.has_member(member_id) {
                            return Err(ResponseError::UnknownMemberId);
                        }
                        if generation != g.generation {
                            return Err(ResponseError::IllegalGeneration);
                        }
                        if g.state == GroupState::CompletingRebalance {
                            return Err(ResponseError::RebalanceInProgress);
                        }
                    }
                }
            }
        }
        let now_ms = crate::util::now_ms();
        let mut codes = Vec::with_capacity(offsets.len());
        let mut records = Vec::new();
        for o in offsets {
            if !valid(&o.topic, o.partition) {
                codes.push(ResponseError::UnknownTopicOrPartition.code());
                continue;
            }
            if o.metadata
                .as_ref()
                .is_some_and(|m| m.len() > self.config.offset_metadata_max_bytes)
            {
                codes.push(ResponseError::OffsetMetadataTooLarge.code());
                continue;
            }
            codes.push(0);
            records.push(MetadataRecord::OffsetCommitted {
                group: group_id.to_string(),
                topic: o.topic,
                partition: o.partition,
                offset: o.offset,
                leader_epoch: o.leader_epoch,
                metadata: o.metadata,
                commit_ms: now_ms,
            });
        }
        if let Err(e) = self.store.append(group_id, records).await {
            tracing::error!(group = group_id, error = %e, "offset commit could not be made durable");
            return Ok(codes
                .into_iter()
                .map(|c| {
                    if c == 0 {
                        ResponseError::KafkaStorageError.code()
                    } else {
                        c
                    }
                })
                .collect());
        }
        Ok(codes)
    }

    /// Committed offsets of a group: all of them, or those asked for (missing ones absent).
    pub fn committed(&self, group_id: &str) -> BTreeMap<(String, i32), CommittedOffset> {
        self.stored(group_id, |s| s.offsets.get(group_id).cloned())
            .flatten()
            .unwrap_or_default()
    }

    /// Whether a group is in the middle of a rebalance (for OffsetFetch's require_stable).
    pub fn is_rebalancing(&self, group_id: &str) -> bool {
        self.groups().get(group_id).is_some_and(|g| {
            matches!(
                g.state,
                GroupState::PreparingRebalance | GroupState::CompletingRebalance
            )
        })
    }

    /// Every known group: (id, protocol type, state).
    pub fn list(&self) -> Vec<(String, String, GroupState)> {
        let mut out: BTreeMap<String, (String, GroupState)> = BTreeMap::new();
        let mut with_offsets = Vec::new();
        let mut stored: BTreeMap<String, String> = BTreeMap::new();
        self.store.read(None, &mut |s| {
            with_offsets.extend(s.offsets.keys().cloned());
            stored.extend(s.group_protocol_types.clone());
        });
        for name in with_offsets {
            out.insert(name, (String::new(), GroupState::Empty));
        }
        for (id, g) in self.groups().iter() {
            if g.state == GroupState::Empty && !self.has_offsets(id) && g.members.is_empty() {
                continue;
            }
            out.insert(
                id.clone(),
                (g.protocol_type.clone().unwrap_or_default(), g.state),
            );
        }
        for (id, (t, _)) in out.iter_mut() {
            if t.is_empty()
                && let Some(stored) = stored.get(id)
            {
                t.clone_from(stored);
            }
        }
        out.into_iter().map(|(id, (t, s))| (id, t, s)).collect()
    }

    pub fn describe(&self, group_id: &str) -> GroupDescription {
        let groups = self.groups();
        let Some(g) = groups.get(group_id) else {
            let state = if self.has_offsets(group_id) {
                GroupState::Empty
            } else {
                GroupState::Dead
            };
            let protocol_type = match state {
                GroupState::Dead => String::new(),
                _ => self.stored_protocol_type(group_id).unwrap_or_default(),
            };
            return GroupDescription {
                state,
                protocol_type,
                protocol: String::new(),
                members: Vec::new(),
            };
        };
        let protocol = g.protocol.clone().unwrap_or_default();
        let stable = g.state == GroupState::Stable;
        let mut members: Vec<MemberDescription> = g
            .members
            .values()
            .map(|m| MemberDescription {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                metadata: m.metadata_for(&protocol),
                assignment: if stable {
                    m.assignment.clone()
                } else {
                    Bytes::new()
                },
            })
            .collect();
        members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
        GroupDescription {
            state: g.state,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol,
            members,
        }
    }

    /// Deletes empty groups and their offsets.
    pub async fn delete_group(&self, group_id: &str) -> i16 {
        {
            let mut groups = self.groups();
            match groups.get(group_id) {
                Some(g) if !g.is_empty() => return ResponseError::NonEmptyGroup.code(),
                Some(_) => {
                    groups.remove(group_id);
                }
                None if !self.has_offsets(group_id) => {
                    return ResponseError::GroupIdNotFound.code();
                }
                None => {}
            }
        }
        match self
            .store
            .append(
                group_id,
                vec![MetadataRecord::GroupDeleted {
                    group: group_id.to_string(),
                }],
            )
            .await
        {
            Ok(_) => 0,
            Err(e) => {
                tracing::error!(group = group_id, error = %e, "group deletion could not be made durable");
                ResponseError::KafkaStorageError.code()
            }
        }
    }

    /// OffsetDelete: refuses partitions of topics the live group subscribes to.
    pub async fn delete_offsets(
        &self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<Vec<i16>, ResponseError> {
        let subscribed = {
            let groups = self.groups();
            match groups.get(group_id) {
                Some(g) if !g.is_empty() => g.subscribed_topics(),
                Some(_) => Default::default(),
                None if self.has_offsets(group_id) => Default::default(),
                None => return Err(ResponseError::GroupIdNotFound),
            }
        };
        let mut codes = Vec::with_capacity(partitions.len());
        let mut records = Vec::new();
        for (topic, partition) in partitions {
            if subscribed.contains(topic) {
                codes.push(ResponseError::GroupSubscribedToTopic.code());
                continue;
            }
            codes.push(0);
            records.push(MetadataRecord::OffsetDeleted {
                group: group_id.to_string(),
                topic: topic.clone(),
                partition: *partition,
            });
        }
        self.store
            .append(group_id, records)
            .await
            .map_err(|_| ResponseError::KafkaStorageError)?;
        Ok(codes)
    }

    /// Forgets the groups `keep` refuses (in a cluster: their coordination moved to another
    /// broker). Members waiting in a join or sync are told the coordinator is not available and
    /// find the new one; committed offsets stay in the metadata log.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.groups().retain(|id, _| {
            let kept = keep(id);
            if !kept {
                tracing::info!(group = %id, "group coordination moved away; forgetting its members");
            }
            kept
        });
    }

    /// Applies deadlines to every group; forgets empty groups that hold nothing.
    pub fn tick(&self) {
        let now = Instant::now();
        let timing = self.timing();
        let mut groups = self.groups();
        for g in groups.values_mut() {
            g.tick(now, &timing);
        }
        groups.retain(|_, g| !(g.state == GroupState::Empty && g.is_idle()));
    }

    /// Deletes offsets of groups without members that were committed longer ago than the
    /// retention period (`offsets.retention.minutes`).
    /// Only groups `mine` accepts are looked at (in a cluster: the groups this broker
    /// coordinates, the only ones whose members it knows).
    pub async fn expire_offsets(&self, now_ms: i64, mine: impl Fn(&str) -> bool) {
        let retention = self.config.offsets_retention_ms as i64;
        let live: Vec<String> = self
            .groups()
            .iter()
            .filter(|(_, g)| !g.is_empty())
            .map(|(id, _)| id.clone())
            .collect();
        let mut expired: Vec<(String, Vec<MetadataRecord>)> = Vec::new();
        self.store.read(None, &mut |s| {
            for (g, offsets) in s
                .offsets
                .iter()
                .filter(|(g, _)| !live.contains(g) && mine(g))
            {
                let old = |o: &CommittedOffset| now_ms.saturating_sub(o.commit_ms) > retention;
                let records = if offsets.values().all(old) {
                    // Nothing of the empty group is left: it goes as a whole, protocol
                    // type included, as Kafka removes such a group.
                    vec![MetadataRecord::GroupDeleted { group: g.clone() }]
                } else {
                    offsets
                        .iter()
                        .filter(|(_, o)| old(o))
                        .map(|((t, p), _)| MetadataRecord::OffsetDeleted {
                            group: g.clone(),
                            topic: t.clone(),
                            partition: *p,
                        })
                        .collect()
                };
                if !records.is_empty() {
                    expired.push((g.clone(), records));
                }
            }
        });
        for (group, records) in expired {
            let n = records.len();
            match self.store.append(&group, records).await {
                Ok(()) => {
                    tracing::info!(group = %group, offsets = n, "expired committed offsets of an empty group")
                }
                Err(e) => tracing::warn!(group = %group, error = %e, "offset expiry failed"),
            }
        }
    }
}
