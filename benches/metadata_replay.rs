//! How long a broker takes to rebuild its metadata state at start after one million offset
//! commits (issue: replay must stay under 2 seconds). The log is written once with the broker's
//! snapshot policy, stopping just before the next snapshot so replay meets the longest possible
//! tail (a snapshot plus 49,999 records); a second case replays a million records with no
//! snapshot at all. Each iteration replays from disk.
//!
//! Run: `cargo bench --bench metadata_replay`

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};

use chronik::metadata::MetadataRecord;
use chronik::metadata::wal::Wal;

const COMMITS: u64 = 1_000_000;
const SNAPSHOT_EVERY: u64 = 50_000;

fn build_log(dir: &std::path::Path, total: u64, snapshots: bool) {
    let (mut wal, mut state, _) = Wal::open(dir).expect("open");
    let mut written = 0u64;
    while written < total {
        // 100 consumer groups × 50 partitions, committing in rounds like real consumers.
        let batch: Vec<MetadataRecord> = (0..1000u64.min(total - written))
            .map(|i| {
                let n = written + i;
                MetadataRecord::OffsetCommitted {
                    group: format!("group-{}", n % 100),
                    topic: format!("topic-{}", n % 10),
                    partition: (n % 50) as i32,
                    offset: n as i64,
                    leader_epoch: 0,
                    metadata: None,
                    commit_ms: 1_700_000_000_000 + n as i64,
                }
            })
            .collect();
        wal.append(&batch, &mut state).expect("append");
        written += batch.len() as u64;
        if snapshots && wal.records_since_snapshot() >= SNAPSHOT_EVERY {
            wal.snapshot(&state).expect("snapshot");
        }
    }
}

fn replay(c: &mut Criterion) {
    let worst_tail = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    build_log(worst_tail.path(), COMMITS + SNAPSHOT_EVERY - 1, true);
    eprintln!(
        "wrote {} offset commits in {:?}",
        COMMITS + SNAPSHOT_EVERY - 1,
        started.elapsed()
    );
    let no_snapshot = tempfile::tempdir().expect("tempdir");
    build_log(no_snapshot.path(), COMMITS, false);
    let mut group = c.benchmark_group("metadata");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("replay_1M_commits_snapshot_plus_longest_tail", |b| {
        b.iter(|| {
            let (_, state, report) = Wal::open(worst_tail.path()).expect("replay");
            assert_eq!(report.records, SNAPSHOT_EVERY - 1);
            state.last_index
        })
    });
    group.bench_function("replay_1M_commits_without_snapshot", |b| {
        b.iter(|| {
            let (_, state, report) = Wal::open(no_snapshot.path()).expect("replay");
            assert_eq!(report.records, COMMITS);
            state.last_index
        })
    });
    group.finish();
}

criterion_group!(benches, replay);
criterion_main!(benches);
