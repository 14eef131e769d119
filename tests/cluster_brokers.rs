//! Three brokers of one cluster in one process (each a controller voter, on loopback TCP): the
//! wire answers a client gets about a cluster — every broker listed, partitions led by different
//! brokers, NOT_LEADER_OR_FOLLOWER with the current leader and its endpoint (KIP-951) from a
//! broker that does not lead, NOT_COORDINATOR from one that does not coordinate a group, and a
//! controlled shutdown that takes a broker's leaderships away at once.

mod common;

use common::{Client, TestBroker, batch, free_port, produce_request, wait_until};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;

const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const NOT_COORDINATOR: i16 = 16;
const LEADER_NOT_AVAILABLE: i16 = 5;

async fn metadata(c: &mut Client, topic: &str) -> MetadataResponse {
    let req = MetadataRequest::default().with_topics(Some(vec![
        metadata_request::MetadataRequestTopic::default()
            .with_name(Some(TopicName(StrBytes::from_string(topic.to_string())))),
    ]));
    c.call(&req, 12).await
}

async fn broker_ids(c: &mut Client) -> Vec<i32> {
    let resp: MetadataResponse = c.call(&MetadataRequest::default(), 12).await;
    let mut ids: Vec<i32> = resp.brokers.iter().map(|b| b.node_id.0).collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn brokers_answer_for_partitions_and_groups_they_do_not_own() {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().expect("dir")).collect();
    let voters: Vec<String> = (1..=3)
        .map(|id| format!("{id}@127.0.0.1:{}", free_port()))
        .collect();
    let mut brokers = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        let voters = voters.clone();
        brokers.push(
            TestBroker::start_with(dir.path(), move |c| {
                c.node_id = i as i32 + 1;
                c.cluster.voters = voters;
                c.cluster.broker_heartbeat_ms = 200;
                c.cluster.session_timeout_ms = 2000;
                c.cluster.offsets_partitions = 6;
                c.http.listen = String::new();
            })
            .await,
        );
    }
    let mut clients = Vec::new();
    for b in &brokers {
        clients.push(Client::connect(b.addr).await);
    }
    wait_until("three brokers listed", async || {
        broker_ids(&mut clients[0]).await == [1, 2, 3]
    })
    .await;
    assert_eq!(clients[0].create_topic("placed", 6, &[]).await, 0);
    let md = metadata(&mut clients[0], "placed").await;
    let leaders: Vec<i32> = md.topics[0]
        .partitions
        .iter()
        .map(|p| p.leader_id.0)
        .collect();
    let mut distinct = leaders.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct, [1, 2, 3], "leaders spread: {leaders:?}");
    assert!(md.controller_id.0 >= 1, "an active controller is named");
    let cluster_ids: Vec<_> = {
        let mut ids = Vec::new();
        for c in clients.iter_mut() {
            ids.push(metadata(c, "placed").await.cluster_id);
        }
        ids
    };
    assert!(
        cluster_ids.windows(2).all(|w| w[0] == w[1]),
        "one cluster id"
    );

    // Producing to a broker that does not lead: NOT_LEADER_OR_FOLLOWER naming the leader.
    let p = leaders
        .iter()
        .position(|l| *l == 2)
        .expect("a partition led by 2") as i32;
    let req = produce_request(
        "placed",
        p,
        batch(&[b"x"], common::now_ms(), Compression::None),
        1,
    );
    let resp = clients[0].call(&req, 11).await;
    let part = &resp.responses[0].partition_responses[0];
    assert_eq!(part.error_code, NOT_LEADER_OR_FOLLOWER);
    assert_eq!(part.current_leader.leader_id.0, 2);
    assert_eq!(part.current_leader.leader_epoch, 0);
    let e = resp
        .node_endpoints
        .iter()
        .find(|e| e.node_id.0 == 2)
        .expect("the leader's endpoint");
    assert_eq!(e.port, brokers[1].addr.port() as i32);
    // The leader takes it, once it has applied the new topic (brokers learn of it from the
    // quorum, as Kafka's do: a moment of UNKNOWN_TOPIC_OR_PARTITION, which clients retry).
    let leader = &mut clients[1];
    wait_until("the leader serves the new partition", async || {
        let ok = leader.call(&req, 11).await;
        ok.responses[0].partition_responses[0].error_code == 0
    })
    .await;
    // Fetch from a broker that does not lead.
    let fetched = clients[0].fetch("placed", p, 0, 0, 1 << 20).await;
    assert_eq!(fetched.error_code, NOT_LEADER_OR_FOLLOWER);

    // Groups: FindCoordinator names one broker; another answers NOT_COORDINATOR.
    let found: FindCoordinatorResponse = clients[0]
        .call(
            &FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("grp")),
            3,
        )
        .await;
    assert_eq!(found.error_code, 0);
    let coordinator = found.node_id.0;
    let other = (coordinator % 3) as usize; // index of a broker that is not the coordinator
    let hb: HeartbeatResponse = clients[other]
        .call(
            &HeartbeatRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str("grp")))
                .with_member_id(StrBytes::from_static_str("m"))
                .with_generation_id(1),
            3,
        )
        .await;
    assert_eq!(hb.error_code, NOT_COORDINATOR);

    // A controlled shutdown takes broker 2's leaderships away before it is gone.
    let mut brokers = brokers.into_iter();
    let b1 = brokers.next().expect("1");
    let b2 = brokers.next().expect("2");
    let b3 = brokers.next().expect("3");
    b2.stop().await;
    assert_eq!(broker_ids(&mut clients[0]).await, [1, 3]);
    let md = metadata(&mut clients[0], "placed").await;
    let gone = &md.topics[0].partitions[p as usize];
    assert_eq!(gone.leader_id.0, -1);
    assert_eq!(gone.error_code, LEADER_NOT_AVAILABLE);
    assert_eq!(
        gone.offline_replicas
            .iter()
            .map(|b| b.0)
            .collect::<Vec<_>>(),
        [2]
    );
    b1.stop().await;
    b3.stop().await;
}
