//! One consumer group under the classic protocol: members, generation, the chosen protocol and
//! the Empty → PreparingRebalance → CompletingRebalance → Stable state machine.
//!
//! This file is pure logic over an in-memory group: it never does I/O and never waits. Pending
//! JoinGroup and SyncGroup calls are parked as one-shot senders on their member and answered
//! when the state machine moves on — by another member's request or by a deadline checked in
//! `tick`. Assignments are opaque bytes: client-side assignors of every kind pass through.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use tokio::sync::oneshot;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// The answer to a JoinGroup call.
#[derive(Debug, Clone, Default)]
pub struct JoinResult {
    pub error: i16,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Only the leader gets the members and their metadata for the chosen protocol.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

impl JoinResult {
    pub fn error(error: ResponseError, member_id: &str) -> Self {
        Self {
            error: error.code(),
            generation: -1,
            member_id: member_id.to_string(),
            ..Default::default()
        }
    }
}

/// The answer to a SyncGroup call.
#[derive(Debug, Clone, Default)]
pub struct SyncResult {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    pub fn error(error: ResponseError) -> Self {
        Self {
            error: error.code(),
            ..Default::default()
        }
    }
}

pub struct JoinRequest {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+ requires a member id handed out by the coordinator first.
    pub require_known_member_id: bool,
}

/// A SyncGroup call: the member, its generation, and (from the leader) the assignments.
pub struct SyncRequest {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
}

pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    join_seq: u64,
    last_seen: Instant,
    join_waiter: Option<oneshot::Sender<JoinResult>>,
    sync_waiter: Option<oneshot::Sender<SyncResult>>,
}

impl Member {
    pub fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

/// What a caller of `join`/`sync` gets: an answer now, or one later.
pub enum Reply<T> {
    Now(T),
    Later(oneshot::Receiver<T>),
}

pub struct Group {
    pub id: String,
    pub state: GroupState,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: HashMap<String, Member>,
    static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, until they join or their session passes.
    pending: HashMap<String, Instant>,
    next_seq: u64,
    rebalance_deadline: Option<Instant>,
    join_not_before: Option<Instant>,
    initial_rebalance: bool,
    sync_deadline: Option<Instant>,
}

pub struct Timing {
    pub initial_rebalance_delay: Duration,
}

impl Group {
    pub fn new(id: &str) -> Self {
        Self {
            id: id.to_string(),
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: HashMap::new(),
            static_members: HashMap::new(),
            pending: HashMap::new(),
            next_seq: 0,
            rebalance_deadline: None,
            join_not_before: None,
            initial_rebalance: false,
            sync_deadline: None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Nothing left to remember: no members and no member ids waiting to be used.
    pub fn is_idle(&self) -> bool {
        self.members.is_empty() && self.pending.is_empty()
    }

    pub fn has_member(&self, id: &str) -> bool {
        self.members.contains_key(id)
    }

    /// Protocols every member (and the candidate, if any) supports.
    fn common_protocols(&self, candidate: Option<&[(String, Bytes)]>) -> Vec<String> {
        let mut sets: Vec<HashSet<&str>> = self
            .members
            .values()
            .map(|m| m.protocols.iter().map(|(n, _)| n.as_str()).collect())
            .collect();
        if let Some(c) = candidate {
            sets.push(c.iter().map(|(n, _)| n.as_str()).collect());
        }
        let Some(first) = sets.first() else {
            return Vec::new();
        };
        let mut out: Vec<String> = first
            .iter()
            .filter(|p| sets.iter().all(|s| s.contains(*p)))
            .map(|p| p.to_string())
            .collect();
        out.sort();
        out
    }

    fn select_protocol(&self) -> Option<String> {
        let candidates = self.common_protocols(None);
        let mut votes: HashMap<&str, usize> = HashMap::new();
        for m in self.members.values() {
            if let Some((n, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(n)) {
                *votes.entry(n.as_str()).or_default() += 1;
            }
        }
        let best = votes.values().copied().max()?;
        // Ties go to the leader's preference order.
        let leader = self.leader.as_ref().and_then(|l| self.members.get(l));
        let order: Vec<&str> = match leader {
            Some(l) => l.protocols.iter().map(|(n, _)| n.as_str()).collect(),
            None => candidates.iter().map(String::as_str).collect(),
        };
        order
            .into_iter()
            .find(|n| votes.get(n) == Some(&best))
            .map(str::to_string)
    }

    fn max_rebalance_timeout(&self) -> Duration {
        self.members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or(Duration::from_secs(0))
    }

    fn add_member(&mut self, id: String, req: &JoinRequest, now: Instant) {
        self.next_seq += 1;
        if let Some(inst) = &req.instance_id {
            self.static_members.insert(inst.clone(), id.clone());
        }
        self.members.insert(
            id.clone(),
            Member {
                id,
                instance_id: req.instance_id.clone(),
                client_id: req.client_id.clone(),
                client_host: req.client_host.clone(),
                session_timeout: req.session_timeout,
                rebalance_timeout: req.rebalance_timeout,
                protocols: req.protocols.clone(),
                assignment: Bytes::new(),
                join_seq: self.next_seq,
                last_seen: now,
                join_waiter: None,
                sync_waiter: None,
            },
        );
        if self.protocol_type.is_none() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
    }

    fn remove_member(&mut self, id: &str, error: ResponseError) -> Option<Member> {
        let mut m = self.members.remove(id)?;
        if let Some(inst) = &m.instance_id
            && self.static_members.get(inst).map(String::as_str) == Some(id)
        {
            self.static_members.remove(inst);
        }
        if let Some(w) = m.join_waiter.take() {
            let _ = w.send(JoinResult::error(error, id));
        }
        if let Some(w) = m.sync_waiter.take() {
            let _ = w.send(SyncResult::error(error));
        }
        if self.leader.as_deref() == Some(id) {
            self.leader = None;
        }
        Some(m)
    }

    fn prepare_rebalance(&mut self, now: Instant, timing: &Timing) {
        if self.state == GroupState::CompletingRebalance {
            // Members waiting for an assignment must rejoin instead.
            for m in self.members.values_mut() {
                if let Some(w) = m.sync_waiter.take() {
                    let _ = w.send(SyncResult::error(ResponseError::RebalanceInProgress));
                }
            }
        }
        let was_empty = self.state == GroupState::Empty;
        self.state = GroupState::PreparingRebalance;
        self.sync_deadline = None;
        let deadline = now + self.max_rebalance_timeout();
        self.rebalance_deadline = Some(deadline);
        self.initial_rebalance = was_empty;
        self.join_not_before = Some(if was_empty {
            (now + timing.initial_rebalance_delay).min(deadline)
        } else {
            now
        });
    }

    fn all_joined(&self) -> bool {
        self.members.values().all(|m| m.join_waiter.is_some())
    }

    /// Completes the join phase when everybody has rejoined (after the initial delay), or when
    /// the rebalance deadline has passed (dropping members that did not rejoin).
    fn maybe_complete_join(&mut self, now: Instant) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let delay_over = self.join_not_before.is_none_or(|t| now >= t);
        let deadline_passed = self.rebalance_deadline.is_some_and(|t| now >= t);
        if !(deadline_passed || (delay_over && self.all_joined())) {
            return;
        }
        if deadline_passed {
            let late: Vec<String> = self
                .members
                .values()
                .filter(|m| m.join_waiter.is_none())
                .map(|m| m.id.clone())
                .collect();
            for id in late {
                self.remove_member(&id, ResponseError::UnknownMemberId);
            }
        }
        self.generation += 1;
        self.rebalance_deadline = None;
        self.join_not_before = None;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.protocol = None;
            self.leader = None;
            return;
        }
        if self
            .leader
            .as_ref()
            .is_none_or(|l| !self.members.contains_key(l))
        {
            self.leader = self
                .members
                .values()
                .min_by_key(|m| m.join_seq)
                .map(|m| m.id.clone());
        }
        self.protocol = self.select_protocol();
        self.state = GroupState::CompletingRebalance;
        self.sync_deadline = Some(now + self.max_rebalance_timeout());
        let protocol = self.protocol.clone().unwrap_or_default();
        let leader = self.leader.clone().unwrap_or_default();
        let mut listing: Vec<(u64, String, Option<String>, Bytes)> = self
            .members
            .values()
            .map(|m| {
                (
                    m.join_seq,
                    m.id.clone(),
                    m.instance_id.clone(),
                    m.metadata_for(&protocol),
                )
            })
            .collect();
        listing.sort_by_key(|(seq, ..)| *seq);
        let listing: Vec<(String, Option<String>, Bytes)> =
            listing.into_iter().map(|(_, a, b, c)| (a, b, c)).collect();
        for m in self.members.values_mut() {
            m.last_seen = now;
            if let Some(w) = m.join_waiter.take() {
                let _ = w.send(JoinResult {
                    error: 0,
                    generation: self.generation,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol.clone(),
                    leader: leader.clone(),
                    member_id: m.id.clone(),
                    members: if m.id == leader {
                        listing.clone()
                    } else {
                        Vec::new()
                    },
                });
            }
        }
    }

    fn current_join_result(&self, member_id: &str) -> JoinResult {
        JoinResult {
            error: 0,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }

    pub fn join(&mut self, req: JoinRequest, now: Instant, timing: &Timing) -> Reply<JoinResult> {
        let now_reply = |r| Reply::Now(r);
        if req.protocols.is_empty()
            || req.protocol_type.is_empty()
            || (!self.is_empty()
                && self.protocol_type.as_deref() != Some(req.protocol_type.as_str()))
            || (!self.is_empty() && self.common_protocols(Some(&req.protocols)).is_empty())
        {
            return now_reply(JoinResult::error(
                ResponseError::InconsistentGroupProtocol,
                &req.member_id,
            ));
        }
        if self.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        let (tx, rx) = oneshot::channel();
        if req.member_id.is_empty() {
            let new_id = format!("{}-{}", req.client_id, uuid::Uuid::new_v4());
            if let Some(inst) = &req.instance_id
                && let Some(old_id) = self.static_members.get(inst).cloned()
            {
                // A static member restarted: the new id replaces (fences) the old one.
                let was_leader = self.leader.as_deref() == Some(old_id.as_str());
                let old = self.remove_member(&old_id, ResponseError::FencedInstanceId);
                let same = old.as_ref().is_some_and(|o| o.protocols == req.protocols);
                self.add_member(new_id.clone(), &req, now);
                if let Some(o) = old
                    && let Some(m) = self.members.get_mut(&new_id)
                {
                    m.assignment = o.assignment;
                    m.join_seq = o.join_seq;
                }
                if self.state == GroupState::Stable && same && !was_leader {
                    return now_reply(self.current_join_result(&new_id));
                }
                if was_leader {
                    self.leader = Some(new_id.clone());
                }
                if let Some(m) = self.members.get_mut(&new_id) {
                    m.join_waiter = Some(tx);
                }
                if self.state != GroupState::PreparingRebalance {
                    self.prepare_rebalance(now, timing);
                }
                self.maybe_complete_join(now);
                return Reply::Later(rx);
            }
            if req.require_known_member_id && req.instance_id.is_none() {
                self.pending
                    .insert(new_id.clone(), now + req.session_timeout);
                return now_reply(JoinResult::error(ResponseError::MemberIdRequired, &new_id));
            }
            return self.join_new_member(new_id, req, now, timing, tx, rx);
        }
        if let Some(inst) = &req.instance_id
            && let Some(owner) = self.static_members.get(inst)
            && *owner != req.member_id
        {
            return now_reply(JoinResult::error(
                ResponseError::FencedInstanceId,
                &req.member_id,
            ));
        }
        if self.pending.remove(&req.member_id).is_some() {
            let id = req.member_id.clone();
            return self.join_new_member(id, req, now, timing, tx, rx);
        }
        let state = self.state;
        let Some(m) = self.members.get_mut(&req.member_id) else {
            return now_reply(JoinResult::error(
                ResponseError::UnknownMemberId,
                &req.member_id,
            ));
        };
        let same = m.protocols == req.protocols;
        m.protocols = req.protocols.clone();
        m.session_timeout = req.session_timeout;
        m.rebalance_timeout = req.rebalance_timeout;
        m.last_seen = now;
        let is_leader = self.leader.as_deref() == Some(req.member_id.as_str());
        match state {
            GroupState::Stable | GroupState::CompletingRebalance if same && !is_leader => {
                now_reply(self.current_join_result(&req.member_id))
            }
            _ => {
                if let Some(m) = self.members.get_mut(&req.member_id)
                    && let Some(old) = m.join_waiter.replace(tx)
                {
                    let _ = old.send(JoinResult::error(
                        ResponseError::RebalanceInProgress,
                        &req.member_id,
                    ));
                }
                if self.state != GroupState::PreparingRebalance {
                    self.prepare_rebalance(now, timing);
                }
                self.maybe_complete_join(now);
                Reply::Later(rx)
            }
        }
    }

    fn join_new_member(
        &mut self,
        id: String,
        req: JoinRequest,
        now: Instant,
        timing: &Timing,
        tx: oneshot::Sender<JoinResult>,
        rx: oneshot::Receiver<JoinResult>,
    ) -> Reply<JoinResult> {
        self.add_member(id.clone(), &req, now);
        if let Some(m) = self.members.get_mut(&id) {
            m.join_waiter = Some(tx);
        }
        if self.state == GroupState::PreparingRebalance {
            if self.initial_rebalance {
                // New members during the initial delay push it back, up to the deadline.
                let deadline = now + self.max_rebalance_timeout();
                self.rebalance_deadline = Some(
                    self.rebalance_deadline
                        .map_or(deadline, |d| d.max(deadline)),
                );
                let extended = now + timing.initial_rebalance_delay;
                self.join_not_before = Some(
                    self.rebalance_deadline
                        .map_or(extended, |d| extended.min(d)),
                );
            } else {
                let deadline = now + self.max_rebalance_timeout();
                self.rebalance_deadline = Some(
                    self.rebalance_deadline
                        .map_or(deadline, |d| d.max(deadline)),
                );
            }
        } else {
            self.prepare_rebalance(now, timing);
        }
        self.maybe_complete_join(now);
        Reply::Later(rx)
    }

    fn check_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), ResponseError> {
        if let Some(inst) = instance_id
            && let Some(owner) = self.static_members.get(inst)
            && owner != member_id
        {
            return Err(ResponseError::FencedInstanceId);
        }
        if !self.members.contains_key(member_id) {
            return Err(ResponseError::UnknownMemberId);
        }
        Ok(())
    }

    pub fn sync(&mut self, req: SyncRequest, now: Instant) -> Reply<SyncResult> {
        let SyncRequest {
            member_id,
            instance_id,
            generation,
            protocol_type,
            protocol_name,
            assignments,
        } = req;
        let (member_id, instance_id) = (member_id.as_str(), instance_id.as_deref());
        let (protocol_type, protocol_name) = (protocol_type.as_deref(), protocol_name.as_deref());
        if let Err(e) = self.check_member(member_id, instance_id) {
            return Reply::Now(SyncResult::error(e));
        }
        if generation != self.generation {
            return Reply::Now(SyncResult::error(ResponseError::IllegalGeneration));
        }
        if protocol_type.is_some_and(|t| Some(t) != self.protocol_type.as_deref())
            || protocol_name.is_some_and(|n| Some(n) != self.protocol.as_deref())
        {
            return Reply::Now(SyncResult::error(ResponseError::InconsistentGroupProtocol));
        }
        let ok = |g: &Group, assignment: Bytes| SyncResult {
            error: 0,
            protocol_type: g.protocol_type.clone(),
            protocol_name: g.protocol.clone(),
            assignment,
        };
        match self.state {
            GroupState::PreparingRebalance => {
                Reply::Now(SyncResult::error(ResponseError::RebalanceInProgress))
            }
            GroupState::Stable => {
                let a = self
                    .members
                    .get(member_id)
                    .map(|m| m.assignment.clone())
                    .unwrap_or_default();
                if let Some(m) = self.members.get_mut(member_id) {
                    m.last_seen = now;
                }
                Reply::Now(ok(self, a))
            }
            GroupState::CompletingRebalance => {
                if self.leader.as_deref() == Some(member_id) {
                    let given: HashMap<String, Bytes> = assignments.into_iter().collect();
                    for m in self.members.values_mut() {
                        m.assignment = given.get(&m.id).cloned().unwrap_or_default();
                    }
                    self.state = GroupState::Stable;
                    self.sync_deadline = None;
                    let (pt, pn) = (self.protocol_type.clone(), self.protocol.clone());
                    for m in self.members.values_mut() {
                        m.last_seen = now;
                        if let Some(w) = m.sync_waiter.take() {
                            let _ = w.send(SyncResult {
                                error: 0,
                                protocol_type: pt.clone(),
                                protocol_name: pn.clone(),
                                assignment: m.assignment.clone(),
                            });
                        }
                    }
                    let a = self
                        .members
                        .get(member_id)
                        .map(|m| m.assignment.clone())
                        .unwrap_or_default();
                    Reply::Now(ok(self, a))
                } else {
                    let (tx, rx) = oneshot::channel();
                    if let Some(m) = self.members.get_mut(member_id) {
                        m.last_seen = now;
                        m.sync_waiter = Some(tx);
                    }
                    Reply::Later(rx)
                }
            }
            GroupState::Empty | GroupState::Dead => {
                Reply::Now(SyncResult::error(ResponseError::UnknownMemberId))
            }
        }
    }

    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> Result<(), ResponseError> {
        self.check_member(member_id, instance_id)?;
        if let Some(m) = self.members.get_mut(member_id) {
            m.last_seen = now;
        }
        if generation != self.generation {
            return Err(ResponseError::IllegalGeneration);
        }
        match self.state {
            GroupState::PreparingRebalance => Err(ResponseError::RebalanceInProgress),
            _ => Ok(()),
        }
    }

    /// Removes a member that leaves on purpose; the rest rebalance.
    pub fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        now: Instant,
        timing: &Timing,
    ) -> Result<(), ResponseError> {
        let id = match (member_id.is_empty(), instance_id) {
            (true, Some(inst)) => self
                .static_members
                .get(inst)
                .cloned()
                .ok_or(ResponseError::UnknownMemberId)?,
            _ => {
                self.check_member(member_id, instance_id)?;
                member_id.to_string()
            }
        };
        self.remove_member(&id, ResponseError::UnknownMemberId);
        self.after_removal(now, timing);
        Ok(())
    }

    fn after_removal(&mut self, now: Instant, timing: &Timing) {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                if self.members.is_empty() {
                    self.state = GroupState::Empty;
                    self.generation += 1;
                    self.protocol = None;
                    self.leader = None;
                } else {
                    self.prepare_rebalance(now, timing);
                }
            }
            GroupState::PreparingRebalance => self.maybe_complete_join(now),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    /// Applies deadlines: expired sessions, the rebalance and sync timeouts, the initial delay.
    pub fn tick(&mut self, now: Instant, timing: &Timing) {
        self.pending.retain(|_, until| *until > now);
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                let waiting_to_join =
                    m.join_waiter.is_some() && self.state == GroupState::PreparingRebalance;
                !waiting_to_join && now.duration_since(m.last_seen) > m.session_timeout
            })
            .map(|m| m.id.clone())
            .collect();
        if !expired.is_empty() {
            for id in &expired {
                tracing::info!(group = %self.id, member = %id, "member session expired");
                self.remove_member(id, ResponseError::UnknownMemberId);
            }
            self.after_removal(now, timing);
        }
        if self.state == GroupState::CompletingRebalance
            && self.sync_deadline.is_some_and(|d| now >= d)
        {
            // The leader never sent the assignment: members that did not sync are dropped.
            let stale: Vec<String> = self
                .members
                .values()
                .filter(|m| m.sync_waiter.is_none())
                .map(|m| m.id.clone())
                .collect();
            for id in stale {
                self.remove_member(&id, ResponseError::UnknownMemberId);
            }
            self.state = GroupState::Stable;
            self.after_removal(now, timing);
            if self.state == GroupState::Stable {
                self.prepare_rebalance(now, timing);
            }
        }
        self.maybe_complete_join(now);
    }

    /// The topics the members subscribe to, when they speak the consumer protocol.
    pub fn subscribed_topics(&self) -> HashSet<String> {
        use kafka_protocol::messages::ConsumerProtocolSubscription;
        use kafka_protocol::protocol::Decodable;
        let mut out = HashSet::new();
        if self.protocol_type.as_deref() != Some("consumer") {
            return out;
        }
        let Some(protocol) = &self.protocol else {
            return out;
        };
        for m in self.members.values() {
            let mut meta = m.metadata_for(protocol);
            if meta.len() < 2 {
                continue;
            }
            let version = i16::from_be_bytes([meta[0], meta[1]]);
            let _ = bytes::Buf::get_i16(&mut meta);
            if let Ok(sub) = ConsumerProtocolSubscription::decode(&mut meta, version.clamp(0, 3)) {
                out.extend(sub.topics.iter().map(|t| t.to_string()));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timing = Timing {
        initial_rebalance_delay: Duration::from_millis(0),
    };

    fn req(member: &str, instance: Option<&str>) -> JoinRequest {
        JoinRequest {
            member_id: member.into(),
            instance_id: instance.map(String::from),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(30),
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from_static(b"m"))],
            require_known_member_id: true,
        }
    }

    fn sync_req(
        member: &str,
        instance: Option<&str>,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
    ) -> SyncRequest {
        SyncRequest {
            member_id: member.to_string(),
            instance_id: instance.map(String::from),
            generation,
            protocol_type: None,
            protocol_name: None,
            assignments,
        }
    }

    fn now_value<T>(r: Reply<T>) -> T {
        match r {
            Reply::Now(v) => v,
            Reply::Later(mut rx) => rx.try_recv().expect("answered"),
        }
    }

    fn join_two(g: &mut Group, now: Instant) -> (String, String) {
        let a = now_value(g.join(req("", None), now, &T));
        assert_eq!(a.error, ResponseError::MemberIdRequired.code());
        let Reply::Later(mut ra) = g.join(req(&a.member_id, None), now, &T) else {
            panic!("first member waits? no: completes at once")
        };
        let ja = ra.try_recv().expect("single member completes");
        assert_eq!(ja.generation, 1);
        let b = now_value(g.join(req("", None), now, &T));
        let Reply::Later(mut rb) = g.join(req(&b.member_id, None), now, &T) else {
            panic!("waits for the others")
        };
        assert!(rb.try_recv().is_err(), "a is not rejoined yet");
        let Reply::Later(mut ra2) = g.join(req(&a.member_id, None), now, &T) else {
            panic!("rejoin waits")
        };
        let ja = ra2.try_recv().expect("complete");
        let jb = rb.try_recv().expect("complete");
        assert_eq!((ja.generation, jb.generation), (2, 2));
        assert_eq!(ja.leader, a.member_id);
        assert_eq!(ja.members.len(), 2);
        assert!(jb.members.is_empty());
        (a.member_id, b.member_id)
    }

    #[test]
    fn join_sync_heartbeat_and_fencing() {
        let mut g = Group::new("g");
        let now = Instant::now();
        let (a, b) = join_two(&mut g, now);
        assert_eq!(g.state, GroupState::CompletingRebalance);
        let Reply::Later(mut wb) = g.sync(sync_req(&b, None, 2, vec![]), now) else {
            panic!("follower waits for the leader")
        };
        let mut leader = sync_req(
            &a,
            None,
            2,
            vec![
                (a.clone(), Bytes::from_static(b"A")),
                (b.clone(), Bytes::from_static(b"B")),
            ],
        );
        leader.protocol_type = Some("consumer".into());
        leader.protocol_name = Some("range".into());
        let sa = now_value(g.sync(leader, now));
        assert_eq!(sa.assignment, Bytes::from_static(b"A"));
        assert_eq!(
            wb.try_recv().expect("answered").assignment,
            Bytes::from_static(b"B")
        );
        assert_eq!(g.state, GroupState::Stable);
        assert_eq!(g.heartbeat(&a, None, 2, now), Ok(()));
        assert_eq!(
            g.heartbeat(&a, None, 1, now),
            Err(ResponseError::IllegalGeneration)
        );
        assert_eq!(
            g.heartbeat("nobody", None, 2, now),
            Err(ResponseError::UnknownMemberId)
        );
        // b leaves: the group rebalances and a learns it from its heartbeat.
        assert_eq!(g.leave(&b, None, now, &T), Ok(()));
        assert_eq!(
            g.heartbeat(&a, None, 2, now),
            Err(ResponseError::RebalanceInProgress)
        );
        let Reply::Later(mut ra) = g.join(req(&a, None), now, &T) else {
            panic!("rejoin")
        };
        assert_eq!(ra.try_recv().expect("done").generation, 3);
    }

    #[test]
    fn expired_sessions_trigger_a_rebalance() {
        let mut g = Group::new("g");
        let now = Instant::now();
        let (a, b) = join_two(&mut g, now);
        let _ = g.sync(sync_req(&a, None, 2, vec![]), now);
        let later = now + Duration::from_secs(8);
        assert_eq!(g.heartbeat(&a, None, 2, later), Ok(()));
        g.tick(now + Duration::from_secs(11), &T);
        assert!(!g.has_member(&b));
        assert!(g.has_member(&a));
        assert_eq!(g.state, GroupState::PreparingRebalance);
    }

    #[test]
    fn static_members_are_fenced_and_rejoin_without_rebalance() {
        let mut g = Group::new("g");
        let now = Instant::now();
        let Reply::Later(mut r1) = g.join(req("", Some("i1")), now, &T) else {
            panic!("static members skip MEMBER_ID_REQUIRED")
        };
        let j1 = r1.try_recv().expect("done");
        let Reply::Later(mut r2) = g.join(req("", Some("i2")), now, &T) else {
            panic!("join")
        };
        let Reply::Later(mut r1b) = g.join(req(&j1.member_id, Some("i1")), now, &T) else {
            panic!("rejoin")
        };
        let j1 = r1b.try_recv().expect("done");
        let j2 = r2.try_recv().expect("done");
        let _ = g.sync(
            sync_req(
                &j1.member_id,
                Some("i1"),
                j1.generation,
                vec![(j2.member_id.clone(), Bytes::from_static(b"P"))],
            ),
            now,
        );
        assert_eq!(g.state, GroupState::Stable);
        // i2 restarts with a new member id: no rebalance, same generation, old id fenced.
        let again = now_value(g.join(req("", Some("i2")), now, &T));
        assert_eq!(again.error, 0);
        assert_eq!(again.generation, j2.generation);
        assert_eq!(g.state, GroupState::Stable);
        assert_eq!(
            g.heartbeat(&j2.member_id, Some("i2"), j2.generation, now),
            Err(ResponseError::FencedInstanceId)
        );
        let s = now_value(g.sync(
            sync_req(&again.member_id, Some("i2"), again.generation, vec![]),
            now,
        ));
        assert_eq!(s.assignment, Bytes::from_static(b"P"));
    }

    #[test]
    fn a_handed_out_member_id_outlives_ticks_until_its_session_passes() {
        let mut g = Group::new("g");
        let now = Instant::now();
        let first = now_value(g.join(req("", None), now, &T));
        assert_eq!(first.error, ResponseError::MemberIdRequired.code());
        g.tick(now + Duration::from_secs(1), &T);
        assert!(
            !g.is_idle(),
            "the coordinator must keep the group for the pending member"
        );
        let Reply::Later(mut r) = g.join(req(&first.member_id, None), now, &T) else {
            panic!("join")
        };
        assert_eq!(r.try_recv().expect("done").error, 0);
        let mut other = Group::new("h");
        let _ = other.join(req("", None), now, &T);
        other.tick(now + Duration::from_secs(11), &T);
        assert!(
            other.is_idle(),
            "an unused member id expires with its session"
        );
    }

    #[test]
    fn inconsistent_protocols_are_refused() {
        let mut g = Group::new("g");
        let now = Instant::now();
        let _ = join_two(&mut g, now);
        let mut other = req("", None);
        other.protocols = vec![("roundrobin".into(), Bytes::new())];
        assert_eq!(
            now_value(g.join(other, now, &T)).error,
            ResponseError::InconsistentGroupProtocol.code()
        );
    }
}
