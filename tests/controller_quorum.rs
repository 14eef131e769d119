//! The controller quorum on loopback: three voters in one process, each with its own directory
//! and internal listener, talking over real TCP. They elect a leader, replicate proposals from
//! any of them, elect a new leader when the leader stops, and a restarted voter catches up.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chronik::controller::{Controller, ControllerConfig};
use chronik::metadata::MetadataRecord;
use tokio::net::TcpListener;

async fn leader_of(voters: &[&Controller], timeout: Duration) -> u64 {
    let deadline = Instant::now() + timeout;
    loop {
        let leaders: Vec<u64> = voters
            .iter()
            .filter(|c| c.status().is_leader)
            .map(|c| c.node_id())
            .collect();
        if let [one] = leaders[..]
            && voters.iter().all(|c| c.status().leader == Some(one))
        {
            return one;
        }
        assert!(
            Instant::now() < deadline,
            "no single leader within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn reserve(end: i64) -> Vec<MetadataRecord> {
    vec![MetadataRecord::ProducerIdsReserved { end }]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_voters_elect_replicate_fail_over_and_catch_up() {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().expect("dir")).collect();
    let mut listeners = Vec::new();
    let mut voters = BTreeMap::new();
    for id in 1..=3u64 {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        voters.insert(id, l.local_addr().expect("addr").to_string());
        listeners.push(l);
    }
    let config = |id: u64| {
        ControllerConfig::new(
            id,
            voters.clone(),
            dirs[id as usize - 1].path().to_path_buf(),
        )
    };
    let mut nodes = Vec::new();
    for (i, l) in listeners.into_iter().enumerate() {
        nodes.push(
            Controller::start(config(i as u64 + 1), l)
                .await
                .expect("start"),
        );
    }
    let all: Vec<&Controller> = nodes.iter().map(|n| n.as_ref()).collect();
    let first = leader_of(&all, Duration::from_secs(10)).await;

    // A proposal from every voter, leader or not, is applied everywhere in one order.
    let mut last = 0;
    for (i, n) in nodes.iter().enumerate() {
        last = n
            .propose(reserve(1000 * (i as i64 + 1)))
            .await
            .expect("propose");
    }
    for n in &nodes {
        n.wait_applied(last, Duration::from_secs(5))
            .await
            .expect("applied");
        assert_eq!(n.read(|s| s.producer_id_end), 3000);
    }

    // The leader stops: the other two elect one of them and keep taking proposals.
    let old = nodes
        .iter()
        .position(|n| n.node_id() == first)
        .expect("leader");
    nodes[old].shutdown().await;
    let stopped = Instant::now();
    let survivors: Vec<&Controller> = nodes
        .iter()
        .filter(|n| n.node_id() != first)
        .map(|n| n.as_ref())
        .collect();
    let second = leader_of(&survivors, Duration::from_secs(10)).await;
    let failover = stopped.elapsed();
    assert_ne!(second, first);
    assert!(
        failover < Duration::from_secs(2),
        "new leader after {failover:?}"
    );
    let index = survivors[0].propose(reserve(5000)).await.expect("propose");
    for n in &survivors {
        n.wait_applied(index, Duration::from_secs(5))
            .await
            .expect("applied");
        assert_eq!(n.read(|s| s.producer_id_end), 5000);
    }

    // The old leader comes back on its directory and address and catches up.
    let addr = voters[&first].clone();
    let listener = TcpListener::bind(&addr).await.expect("rebind");
    let back = Controller::start(config(first), listener)
        .await
        .expect("restart");
    back.wait_applied(index, Duration::from_secs(10))
        .await
        .expect("caught up");
    assert_eq!(back.read(|s| s.producer_id_end), 5000);
    let index = back
        .propose(reserve(6000))
        .await
        .expect("propose from the restarted voter");
    for n in survivors.iter().copied().chain([back.as_ref()]) {
        n.wait_applied(index, Duration::from_secs(5))
            .await
            .expect("applied");
        assert_eq!(n.read(|s| s.producer_id_end), 6000);
    }
    for n in survivors.iter().copied().chain([back.as_ref()]) {
        n.shutdown().await;
    }
}

/// A voter that was down while the others took more records than a snapshot holds catches up
/// with them on restart. (openraft's leader keeps the log a lagging voter still needs rather than
/// purge it behind the snapshot, so the catch-up here comes from the leader's log.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_voter_that_missed_a_snapshot_catches_up() {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().expect("dir")).collect();
    let mut listeners = Vec::new();
    let mut voters = BTreeMap::new();
    for id in 1..=3u64 {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        voters.insert(id, l.local_addr().expect("addr").to_string());
        listeners.push(l);
    }
    let config = |id: u64| ControllerConfig {
        snapshot_every: 20,
        keep_behind_snapshot: 0,
        ..ControllerConfig::new(
            id,
            voters.clone(),
            dirs[id as usize - 1].path().to_path_buf(),
        )
    };
    let mut nodes = Vec::new();
    for (i, l) in listeners.into_iter().enumerate() {
        nodes.push(Some(
            Controller::start(config(i as u64 + 1), l)
                .await
                .expect("start"),
        ));
    }
    let all: Vec<&Controller> = nodes.iter().flatten().map(|n| n.as_ref()).collect();
    let leader = leader_of(&all, Duration::from_secs(10)).await;
    let follower = (1..=3).find(|id| *id != leader).expect("a follower");
    let down = nodes[follower as usize - 1].take().expect("running");
    down.shutdown().await;
    drop(down);

    let up: Vec<&Controller> = nodes.iter().flatten().map(|n| n.as_ref()).collect();
    let mut last = 0;
    for i in 1..=100 {
        last = up[0].propose(reserve(i)).await.expect("propose");
    }
    let log_dir = dirs[leader as usize - 1].path();
    assert!(
        log_dir.join("raft-snapshot").exists(),
        "the leader took a snapshot"
    );

    let listener = TcpListener::bind(&voters[&follower]).await.expect("rebind");
    let back = Controller::start(config(follower), listener)
        .await
        .expect("restart");
    back.wait_applied(last, Duration::from_secs(10))
        .await
        .expect("caught up");
    assert_eq!(back.read(|s| s.producer_id_end), 100);
    assert_eq!(
        back.read(|s| s.clone()),
        up[0].read(|s| s.clone()),
        "the same state as the others"
    );
    back.shutdown().await;
    for n in up {
        n.shutdown().await;
    }
}

/// A node outside the voters joins as a learner: it applies every entry, its proposals go to the
/// leader, and the leader describes it as an observer, not a voter.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_learner_follows_proposes_and_does_not_vote() {
    let dirs: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().expect("dir")).collect();
    let mut listeners = Vec::new();
    let mut voters = BTreeMap::new();
    for id in 1..=3u64 {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        voters.insert(id, l.local_addr().expect("addr").to_string());
        listeners.push(l);
    }
    let mut nodes = Vec::new();
    for (i, l) in listeners.into_iter().enumerate() {
        let config = ControllerConfig::new(i as u64 + 1, voters.clone(), dirs[i].path().into());
        nodes.push(Controller::start(config, l).await.expect("start"));
    }
    let all: Vec<&Controller> = nodes.iter().map(|n| n.as_ref()).collect();
    leader_of(&all, Duration::from_secs(10)).await;
    let before = nodes[0].propose(reserve(1000)).await.expect("propose");

    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let learner_addr = l.local_addr().expect("addr").to_string();
    let learner = Controller::start(
        ControllerConfig {
            learner_addr: Some(learner_addr),
            ..ControllerConfig::new(4, voters.clone(), dirs[3].path().into())
        },
        l,
    )
    .await
    .expect("start the learner");
    learner
        .wait_applied(before, Duration::from_secs(10))
        .await
        .expect("the learner received the log");
    assert_eq!(learner.read(|s| s.producer_id_end), 1000);
    let index = learner
        .propose(reserve(2000))
        .await
        .expect("a learner's proposal goes to the leader");
    for n in all.iter().copied().chain([learner.as_ref()]) {
        n.wait_applied(index, Duration::from_secs(5))
            .await
            .expect("applied");
        assert_eq!(n.read(|s| s.producer_id_end), 2000);
    }
    assert!(!learner.status().is_leader);

    // The leader counts it as an observer, not a voter.
    let d = learner
        .describe_quorum(Duration::from_secs(5))
        .await
        .expect("describe");
    let ids =
        |v: &[chronik::controller::VoterState]| v.iter().map(|s| s.node_id).collect::<Vec<_>>();
    assert_eq!(ids(&d.voters), vec![1, 2, 3]);
    assert_eq!(ids(&d.observers), vec![4]);
    assert!(d.observers[0].log_end_offset >= index as i64);
    for n in &nodes {
        n.shutdown().await;
    }
    learner.shutdown().await;
}
