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
}

impl ProducerIdAllocator {
    pub fn new(metadata: Arc<MetadataStore>) -> Self {
        let end = metadata.read(|s| s.producer_id_end);
        Self {
            metadata,
            state: tokio::sync::Mutex::new((end, end)),
        }
    }

    pub async fn next(&self) -> io::Result<i64> {
        let mut state = self.state.lock().await;
        if state.0 >= state.1 {
            let end = state.0 + BLOCK;
            self.metadata
                .append(vec![MetadataRecord::ProducerIdsReserved { end }])
                .await?;
            state.1 = end;
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
        let a = ProducerIdAllocator::new(Arc::new(store));
        let mut first = Vec::new();
        for _ in 0..3 {
            first.push(a.next().await.expect("id"));
        }
        assert_eq!(first, vec![0, 1, 2]);
        drop(a);
        let (store, _) = MetadataStore::open(dir.path(), 100).expect("reopen");
        let b = ProducerIdAllocator::new(Arc::new(store));
        assert!(b.next().await.expect("id") > 2);
    }
}
