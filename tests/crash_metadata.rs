//! `kill -9` of the real broker process during heavy metadata churn (topic create/alter/delete,
//! offset commits): after the restart the metadata equals the acknowledged operations, nothing
//! more and nothing less — only the one operation per key that was in flight at the kill may
//! have landed or not.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn spawn(dir: &std::path::Path, port: u16) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chronik"));
    cmd.arg("serve")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(dir)
        .arg("--http-listen")
        .arg("")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, _) in std::env::vars() {
        if k.starts_with("CHRONIK_") {
            cmd.env_remove(k);
        }
    }
    cmd.spawn().expect("spawn chronik")
}

/// What a key may look like after the crash: the last acknowledged state, or the state the
/// operation in flight would have produced.
#[derive(Clone, Debug, PartialEq)]
enum TopicState {
    Absent,
    Present(i64),
}

#[derive(Default)]
struct Ledger {
    topics: Vec<(TopicState, Option<TopicState>)>,
    offsets: Vec<(i64, Option<i64>)>,
}

async fn describe_retention(c: &mut Client, topic: &str) -> Option<i64> {
    let d = c
        .call(
            &DescribeConfigsRequest::default().with_resources(vec![
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s(topic))
                    .with_configuration_keys(Some(vec![s("retention.ms")])),
            ]),
            4,
        )
        .await;
    if d.results[0].error_code != 0 {
        return None;
    }
    d.results[0].configs[0]
        .value
        .as_ref()
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_survives_kill_9_during_churn() {
    const TOPIC_TASKS: usize = 4;
    const OFFSET_TASKS: usize = 4;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut child = spawn(dir.path(), port);
    let mut c = connect_port(port).await;
    assert_eq!(c.create_topic("base", 1, &[]).await, 0);
    let ledger = Arc::new(Mutex::new(Ledger {
        topics: vec![(TopicState::Absent, None); TOPIC_TASKS],
        offsets: vec![(-1, None); OFFSET_TASKS],
    }));
    let stop = Instant::now() + Duration::from_millis(1500);
    let mut tasks = Vec::new();
    for i in 0..TOPIC_TASKS {
        let ledger = ledger.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = connect_port(port).await;
            let name = format!("churn-{i}");
            let mut n: i64 = 1000;
            while Instant::now() < stop {
                // create → alter → delete, each acknowledged before the next.
                let steps: [(TopicState, u8); 3] = [
                    (TopicState::Present(n), 0),
                    (TopicState::Present(n + 1), 1),
                    (TopicState::Absent, 2),
                ];
                for (next, step) in steps {
                    ledger.lock().expect("ledger").topics[i].1 = Some(next.clone());
                    let ok = match step {
                        0 => c.create_topic(&name, 1, &[("retention.ms", &n.to_string())]).await == 0,
                        1 => {
                            let r = c
                                .call(
                                    &IncrementalAlterConfigsRequest::default().with_resources(vec![
                                        incremental_alter_configs_request::AlterConfigsResource::default()
                                            .with_resource_type(2)
                                            .with_resource_name(s(&name))
                                            .with_configs(vec![
                                                incremental_alter_configs_request::AlterableConfig::default()
                                                    .with_name(s("retention.ms"))
                                                    .with_config_operation(0)
                                                    .with_value(Some(s(&(n + 1).to_string()))),
                                            ]),
                                    ]),
                                    1,
                                )
                                .await;
                            r.responses[0].error_code == 0
                        }
                        _ => {
                            let r = c
                                .call(
                                    &DeleteTopicsRequest::default()
                                        .with_topic_names(vec![TopicName(s(&name))]),
                                    5,
                                )
                                .await;
                            r.responses[0].error_code == 0
                        }
                    };
                    assert!(ok, "{name} step {step} failed while the broker was up");
                    let mut l = ledger.lock().expect("ledger");
                    l.topics[i] = (next, None);
                }
                n += 10;
            }
        }));
    }
    for j in 0..OFFSET_TASKS {
        let ledger = ledger.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = connect_port(port).await;
            let mut k: i64 = 0;
            while Instant::now() < stop {
                ledger.lock().expect("ledger").offsets[j].1 = Some(k);
                let req = OffsetCommitRequest::default()
                    .with_group_id(GroupId(s(&format!("churn-group-{j}"))))
                    .with_generation_id_or_member_epoch(-1)
                    .with_topics(vec![
                        offset_commit_request::OffsetCommitRequestTopic::default()
                            .with_name(TopicName(s("base")))
                            .with_partitions(vec![
                                offset_commit_request::OffsetCommitRequestPartition::default()
                                    .with_partition_index(0)
                                    .with_committed_offset(k),
                            ]),
                    ]);
                let r = c.call(&req, 8).await;
                assert_eq!(r.topics[0].partitions[0].error_code, 0);
                ledger.lock().expect("ledger").offsets[j] = (k, None);
                k += 1;
            }
        }));
    }
    // Kill mid-churn, while every task still has a request in flight.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    child.kill().expect("kill -9");
    let _ = child.wait();
    for t in tasks {
        // Tasks end with a failed call (connection gone) or when their time is up.
        let _ = t.await;
    }
    let ledger = std::mem::take(&mut *ledger.lock().expect("ledger"));

    let mut child = spawn(dir.path(), port);
    let mut c = connect_port(port).await;
    let mut acked_ops = 0;
    for (i, (acked, in_flight)) in ledger.topics.iter().enumerate() {
        let name = format!("churn-{i}");
        let found = match describe_retention(&mut c, &name).await {
            Some(r) => TopicState::Present(r),
            None => TopicState::Absent,
        };
        assert!(
            found == *acked || Some(&found) == in_flight.as_ref(),
            "{name}: found {found:?}, acknowledged {acked:?}, in flight {in_flight:?}"
        );
        acked_ops += 1;
    }
    for (j, (acked, in_flight)) in ledger.offsets.iter().enumerate() {
        let r = c
            .call(
                &OffsetFetchRequest::default()
                    .with_group_id(GroupId(s(&format!("churn-group-{j}"))))
                    .with_topics(Some(vec![
                        offset_fetch_request::OffsetFetchRequestTopic::default()
                            .with_name(TopicName(s("base")))
                            .with_partition_indexes(vec![0]),
                    ])),
                7,
            )
            .await;
        let found = r.topics[0].partitions[0].committed_offset;
        assert!(
            found == *acked || Some(found) == *in_flight,
            "group {j}: found {found}, acknowledged {acked}, in flight {in_flight:?}"
        );
        assert!(*acked > 0, "group {j} committed nothing before the kill");
        acked_ops += 1;
    }
    assert_eq!(acked_ops, TOPIC_TASKS + OFFSET_TASKS);
    child.kill().expect("kill");
    let _ = child.wait();
}
