//! Consumer groups on the wire: the join/sync/heartbeat protocol between two members, fencing
//! errors, bad input with precise codes, and committed offsets that survive a crash.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn join_req(group: &str, member: &str) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(s(member))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![
            join_group_request::JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(Bytes::from_static(b"\x00\x00\x00\x00\x00\x00\x00\x00")),
        ])
}

fn commit_req(
    group: &str,
    generation: i32,
    member: &str,
    topic: &str,
    partition: i32,
    offset: i64,
) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member))
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(partition)
                        .with_committed_offset(offset),
                ]),
        ])
}

async fn fetch_offset(c: &mut Client, group: &str, topic: &str, partition: i32) -> i64 {
    let r = c
        .call(
            &OffsetFetchRequest::default()
                .with_group_id(GroupId(s(group)))
                .with_topics(Some(vec![
                    offset_fetch_request::OffsetFetchRequestTopic::default()
                        .with_name(TopicName(s(topic)))
                        .with_partition_indexes(vec![partition]),
                ])),
            7,
        )
        .await;
    r.topics[0].partitions[0].committed_offset
}

fn fast_groups(c: &mut chronik::Config) {
    c.group.initial_rebalance_delay_ms = 0;
}

#[tokio::test]
async fn two_members_rebalance_and_are_fenced_by_generation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = TestBroker::start_with(dir.path(), fast_groups).await;
    let mut a = Client::connect(broker.addr).await;
    let mut b = Client::connect(broker.addr).await;
    assert_eq!(a.create_topic("gt", 2, &[]).await, 0);

    // v4+: the first join hands out a member id.
    let first = a.call(&join_req("g1", ""), 5).await;
    assert_eq!(first.error_code, ResponseError::MemberIdRequired.code());
    let a_id = first.member_id.to_string();
    let ja = a.call(&join_req("g1", &a_id), 5).await;
    assert_eq!((ja.error_code, ja.generation_id), (0, 1));
    assert_eq!(ja.leader.as_str(), a_id);
    let sa = a
        .call(
            &SyncGroupRequest::default()
                .with_group_id(GroupId(s("g1")))
                .with_generation_id(1)
                .with_member_id(s(&a_id))
                .with_assignments(vec![
                    sync_group_request::SyncGroupRequestAssignment::default()
                        .with_member_id(s(&a_id))
                        .with_assignment(Bytes::from_static(b"all")),
                ]),
            3,
        )
        .await;
    assert_eq!(sa.assignment, Bytes::from_static(b"all"));

    // b joins: a learns of the rebalance from its heartbeat and rejoins.
    let b_first = b.call(&join_req("g1", ""), 5).await;
    let b_id = b_first.member_id.to_string();
    let b_join = tokio::spawn(async move {
        let r = b.call(&join_req("g1", &b_id), 5).await;
        (b, r)
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let hb = a
        .call(
            &HeartbeatRequest::default()
                .with_group_id(GroupId(s("g1")))
                .with_generation_id(1)
                .with_member_id(s(&a_id)),
            3,
        )
        .await;
    assert_eq!(hb.error_code, ResponseError::RebalanceInProgress.code());
    let ja2 = a.call(&join_req("g1", &a_id), 5).await;
    let (mut b, jb) = b_join.await.expect("join");
    assert_eq!((ja2.generation_id, jb.generation_id), (2, 2));
    assert_eq!(ja2.members.len(), 2, "the leader sees both members");

    // A commit with the old generation is fenced; the current one is accepted.
    let old = a.call(&commit_req("g1", 1, &a_id, "gt", 0, 5), 8).await;
    assert_eq!(
        old.topics[0].partitions[0].error_code,
        ResponseError::IllegalGeneration.code()
    );
    let unknown = a
        .call(&commit_req("g1", 2, "stranger", "gt", 0, 5), 8)
        .await;
    assert_eq!(
        unknown.topics[0].partitions[0].error_code,
        ResponseError::UnknownMemberId.code()
    );
    let early = a.call(&commit_req("g1", 2, &a_id, "gt", 0, 5), 8).await;
    assert_eq!(
        early.topics[0].partitions[0].error_code,
        ResponseError::RebalanceInProgress.code(),
        "no commits before the assignment is synced"
    );
    let sync = |member: &str, assignments: Vec<(String, &'static [u8])>| {
        SyncGroupRequest::default()
            .with_group_id(GroupId(s("g1")))
            .with_generation_id(2)
            .with_member_id(s(member))
            .with_assignments(
                assignments
                    .into_iter()
                    .map(|(m, a)| {
                        sync_group_request::SyncGroupRequestAssignment::default()
                            .with_member_id(s(&m))
                            .with_assignment(Bytes::from_static(a))
                    })
                    .collect(),
            )
    };
    let jb_id = jb.member_id.to_string();
    let b_sync_req = sync(&jb_id, vec![]);
    let b_sync = tokio::spawn(async move { b.call(&b_sync_req, 3).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let sa2 = a
        .call(
            &sync(&a_id, vec![(a_id.clone(), b"p0"), (jb_id.clone(), b"p1")]),
            3,
        )
        .await;
    assert_eq!(sa2.assignment, Bytes::from_static(b"p0"));
    assert_eq!(
        b_sync.await.expect("sync").assignment,
        Bytes::from_static(b"p1")
    );
    let ok = a.call(&commit_req("g1", 2, &a_id, "gt", 0, 5), 8).await;
    assert_eq!(ok.topics[0].partitions[0].error_code, 0);
    assert_eq!(fetch_offset(&mut a, "g1", "gt", 0).await, 5);

    // A non-empty group cannot be deleted.
    let del = a
        .call(
            &DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("g1"))]),
            2,
        )
        .await;
    assert_eq!(
        del.results[0].error_code,
        ResponseError::NonEmptyGroup.code()
    );
    let desc = a
        .call(
            &DescribeGroupsRequest::default().with_groups(vec![GroupId(s("g1"))]),
            5,
        )
        .await;
    assert_eq!(desc.groups[0].group_state.as_str(), "Stable");
    assert_eq!(desc.groups[0].members.len(), 2);
    broker.stop().await;
}

#[tokio::test]
async fn bad_group_input_gets_precise_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = TestBroker::start_with(dir.path(), fast_groups).await;
    let mut c = Client::connect(broker.addr).await;
    assert_eq!(c.create_topic("gb", 1, &[]).await, 0);

    let empty = c.call(&join_req("", ""), 5).await;
    assert_eq!(empty.error_code, ResponseError::InvalidGroupId.code());
    let short = c
        .call(&join_req("g", "").with_session_timeout_ms(10), 5)
        .await;
    assert_eq!(
        short.error_code,
        ResponseError::InvalidSessionTimeout.code()
    );
    let unknown = c.call(&join_req("g-none", "who"), 5).await;
    assert_eq!(unknown.error_code, ResponseError::UnknownMemberId.code());
    let no_protocols = c.call(&join_req("g", "").with_protocols(vec![]), 5).await;
    assert_eq!(
        no_protocols.error_code,
        ResponseError::InconsistentGroupProtocol.code()
    );

    // Offsets-only commits (generation -1) for unknown topics/partitions are refused per partition.
    let r = c
        .call(&commit_req("store", -1, "", "no-such-topic", 0, 1), 8)
        .await;
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
    let r = c.call(&commit_req("store", -1, "", "gb", 9, 1), 8).await;
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
    let r = c.call(&commit_req("", -1, "", "gb", 0, 1), 8).await;
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        ResponseError::InvalidGroupId.code()
    );
    let r = c
        .call(&commit_req("store", 3, "ghost", "gb", 0, 1), 8)
        .await;
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        ResponseError::IllegalGeneration.code()
    );
    let mut big = commit_req("store", -1, "", "gb", 0, 1);
    big.topics[0].partitions[0].committed_metadata = Some(s(&"m".repeat(5000)));
    let r = c.call(&big, 8).await;
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        ResponseError::OffsetMetadataTooLarge.code()
    );
    // Nothing refused was stored.
    assert_eq!(fetch_offset(&mut c, "store", "gb", 0).await, -1);
    let r = c.call(&commit_req("store", -1, "", "gb", 0, 7), 8).await;
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    assert_eq!(fetch_offset(&mut c, "store", "gb", 0).await, 7);

    let hb = c
        .call(
            &HeartbeatRequest::default()
                .with_group_id(GroupId(s("store")))
                .with_generation_id(1)
                .with_member_id(s("nobody")),
            3,
        )
        .await;
    assert_eq!(hb.error_code, ResponseError::UnknownMemberId.code());
    let del = c
        .call(
            &DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("never"))]),
            2,
        )
        .await;
    assert_eq!(
        del.results[0].error_code,
        ResponseError::GroupIdNotFound.code()
    );
    let fc = c
        .call(
            &FindCoordinatorRequest::default()
                .with_key_type(0)
                .with_coordinator_keys(vec![s("store"), s("")]),
            4,
        )
        .await;
    assert_eq!(fc.coordinators[0].error_code, 0);
    assert_eq!(
        fc.coordinators[1].error_code,
        ResponseError::InvalidGroupId.code()
    );
    broker.stop().await;
}

#[tokio::test]
async fn committed_offsets_survive_a_crash_and_deleted_topics_take_theirs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = TestBroker::start_with(dir.path(), fast_groups).await;
    let mut c = Client::connect(broker.addr).await;
    assert_eq!(c.create_topic("keep", 3, &[]).await, 0);
    assert_eq!(c.create_topic("drop", 1, &[]).await, 0);
    for p in 0..3 {
        let r = c
            .call(&commit_req("durable", -1, "", "keep", p, 100 + p as i64), 8)
            .await;
        assert_eq!(r.topics[0].partitions[0].error_code, 0);
    }
    let r = c
        .call(&commit_req("durable", -1, "", "drop", 0, 9), 8)
        .await;
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    broker.crash().await;

    let broker = TestBroker::start_with(dir.path(), fast_groups).await;
    let mut c = Client::connect(broker.addr).await;
    for p in 0..3 {
        assert_eq!(
            fetch_offset(&mut c, "durable", "keep", p).await,
            100 + p as i64
        );
    }
    assert_eq!(fetch_offset(&mut c, "durable", "drop", 0).await, 9);
    let listed = c.call(&ListGroupsRequest::default(), 4).await;
    assert!(
        listed
            .groups
            .iter()
            .any(|g| g.group_id.0.as_str() == "durable")
    );
    let del = c
        .call(
            &DeleteTopicsRequest::default().with_topic_names(vec![TopicName(s("drop"))]),
            5,
        )
        .await;
    assert_eq!(del.responses[0].error_code, 0);
    assert_eq!(fetch_offset(&mut c, "durable", "drop", 0).await, -1);
    let od = c
        .call(
            &OffsetDeleteRequest::default()
                .with_group_id(GroupId(s("durable")))
                .with_topics(vec![
                    offset_delete_request::OffsetDeleteRequestTopic::default()
                        .with_name(TopicName(s("keep")))
                        .with_partitions(vec![
                            offset_delete_request::OffsetDeleteRequestPartition::default()
                                .with_partition_index(1),
                        ]),
                ]),
            0,
        )
        .await;
    assert_eq!(od.error_code, 0);
    assert_eq!(fetch_offset(&mut c, "durable", "keep", 1).await, -1);
    assert_eq!(fetch_offset(&mut c, "durable", "keep", 2).await, 102);
    broker.stop().await;
}

async fn list_and_describe(c: &mut Client, group: &str) -> (String, String, String) {
    let list = c.call(&ListGroupsRequest::default(), 4).await;
    let listed = list
        .groups
        .iter()
        .find(|g| g.group_id.as_str() == group)
        .map(|g| g.protocol_type.to_string())
        .unwrap_or_else(|| "<not listed>".into());
    let d = c
        .call(
            &DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]),
            5,
        )
        .await;
    let g = &d.groups[0];
    (
        listed,
        g.protocol_type.to_string(),
        g.group_state.to_string(),
    )
}

/// After its last member leaves, a classic group keeps the protocol type it was joined with
/// (librdkafka would otherwise call it a simple group), also once the coordinator forgot it in
/// memory and after a crash and restart.
#[tokio::test]
async fn an_empty_group_keeps_its_protocol_type() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = TestBroker::start_with(dir.path(), fast_groups).await;
    let mut c = Client::connect(broker.addr).await;
    assert_eq!(c.create_topic("pt", 1, &[]).await, 0);
    let id = c.call(&join_req("pg", ""), 5).await.member_id.to_string();
    let j = c.call(&join_req("pg", &id), 5).await;
    assert_eq!(j.error_code, 0);
    let sync = c
        .call(
            &SyncGroupRequest::default()
                .with_group_id(GroupId(s("pg")))
                .with_generation_id(j.generation_id)
                .with_member_id(s(&id)),
            3,
        )
        .await;
    assert_eq!(sync.error_code, 0);
    let r = c
        .call(&commit_req("pg", j.generation_id, &id, "pt", 0, 42), 8)
        .await;
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    let leave = c
        .call(
            &LeaveGroupRequest::default()
                .with_group_id(GroupId(s("pg")))
                .with_member_id(s(&id)),
            0,
        )
        .await;
    assert_eq!(leave.error_code, 0);
    let expect = (
        "consumer".to_string(),
        "consumer".to_string(),
        "Empty".to_string(),
    );
    assert_eq!(list_and_describe(&mut c, "pg").await, expect);
    // The coordinator drops idle empty groups from memory after a while.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(list_and_describe(&mut c, "pg").await, expect);
    broker.crash().await;
    let broker = TestBroker::start_with(dir.path(), fast_groups).await;
    let mut c = Client::connect(broker.addr).await;
    assert_eq!(list_and_describe(&mut c, "pg").await, expect);
    // A group that only commits offsets (never joins) is a simple group: no protocol type.
    let r = c.call(&commit_req("simple", -1, "", "pt", 0, 1), 8).await;
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    let (listed, described, state) = list_and_describe(&mut c, "simple").await;
    assert_eq!(
        (listed.as_str(), described.as_str(), state.as_str()),
        ("", "", "Empty")
    );
    broker.stop().await;
}
