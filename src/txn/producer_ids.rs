//! Hands out producer ids for InitProducerId, never the same one twice, even across restarts.
//!
//! Ids are reserved in blocks through the metadata log: the end of a block is durable before any
//! id from it is given out, so a crash can skip ids but never repeat them.

use std::io;
use std::sync::Arc;

use crate::metadata::{MetadataRecord, MetadataStore};

const BLOCK: i64 = 1000;

pub struct ProducerIdAllocator {
    metadata: Arc<MetadataStore>,
    /// (next id to give, end of the durable block)
    state: tokio::sync::Mutex<(i64, i64)>,
    /// In a cluster, this broker's id: blocks are taken from the sequence all brokers share.
    broker: Option<i32>,
}

impl ProducerIdAllocator {
    /// `broker` is this broker's id in a cluster (`None` on a single node, which owns the
    /// whole sequence).
    pub fn new(metadata: Arc<MetadataStore>, broker: Option<i32>) -> Self {
        let end = metadata.read(|s| s.producer_id_end);
        Self {
            metadata,
            state: tokio::sync::Mutex::new((end, end)),
            broker,
        }
    }

    pub async fn next(&self) -> io::Result<i64> {
        let mut state = self.state.lock().await;
        if state.0 >= state.1 {
            match self.broker {
                None => {
                    let end = state.0 + BLOCK;
                    self.metadata
                        .append(vec![MetadataRecord::ProducerIdsReserved { end }])
                        .await?;
                    state.1 = end;
                }
                Some(broker) => {
                    // Where the block starts is decided when the record is applied, after any
                    // other broker's block: this broker reads which one it got.
                    self.metadata
                        .append(vec![MetadataRecord::ProducerIdBlockTaken {
                            broker,
                            size: BLOCK,
                        }])
                        .await?;
                    let block = self
                        .metadata
                        .read(|s| s.producer_id_blocks.get(&broker).copied())
                        .ok_or_else(|| {
                            io::Error::other("the producer-id block was not recorded")
                        })?;
                    *state = block;
                }
            }
        }
        let id = state.0;
        state.0 += 1;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ids_never_repeat_across_restarts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _) = MetadataStore::open(dir.path(), 100).expect("open");
        let a = ProducerIdAllocator::new(Arc::new(store), None);
        let mut first = Vec::new();
        for _ in 0..3 {
            first.push(a.next().await.expect("id"));
        }
        assert_eq!(first, vec![0, 1, 2]);
        drop(a);
        let (store, _) = MetadataStore::open(dir.path(), 100).expect("reopen");
        let b = ProducerIdAllocator::new(Arc::new(store), None);
        assert!(b.next().await.expect("id") > 2);
    }

    #[tokio::test]
    async fn brokers_of_a_cluster_take_disjoint_blocks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _) = MetadataStore::open(dir.path(), 100).expect("open");
        let store = Arc::new(store);
        let a = ProducerIdAllocator::new(store.clone(), Some(1));
        let b = ProducerIdAllocator::new(store.clone(), Some(2));
        let mut seen = std::collections::HashSet::new();
        for _ in 0..(BLOCK + 5) {
            assert!(seen.insert(a.next().await.expect("id")), "repeated id");
            assert!(seen.insert(b.next().await.expect("id")), "repeated id");
        }
    }
}
