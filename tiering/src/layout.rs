//! Where things live in the remote store.
//!
//! Every object of one segment shares the stem `<base_offset:020>-<segment_id>`, so listing a
//! partition's prefix returns its segments in offset order, and a segment re-uploaded after a
//! crash gets a new `segment_id` instead of overwriting an object a reader may be using. The
//! store's URL prefix (`s3://bucket/<prefix>`) is applied by the store, not here.

use object_store::path::{Path, PathPart};
use uuid::Uuid;

/// `<cluster>/<topic>-<topic_id>/<partition>/<base_offset:020>-<segment_id>.<ext>`
///
/// `ext` names the file of the segment (`log`, `index`, `timeindex`, `snapshot`, `split`, ...).
/// Characters object stores cannot take in a key are percent-encoded by [`PathPart`].
pub fn segment_object_key(
    cluster: &str,
    topic: &str,
    topic_id: Uuid,
    partition: i32,
    base_offset: i64,
    segment_id: Uuid,
    ext: &str,
) -> Path {
    let parts: [PathPart<'static>; 4] = [
        PathPart::from(cluster.to_owned()),
        PathPart::from(format!("{topic}-{topic_id}")),
        PathPart::from(partition.to_string()),
        PathPart::from(format!("{base_offset:020}-{segment_id}.{ext}")),
    ];
    Path::from_iter(parts)
}

/// The cache key of chunk `chunk_index` of a remote segment object.
pub fn cache_chunk_key(segment_id: Uuid, chunk_index: u64) -> chronik_cache::ChunkKey {
    chronik_cache::ChunkKey::new(segment_id.into_bytes(), chunk_index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_follows_the_documented_layout() {
        let topic_id = Uuid::parse_str("6f1c2a1e-1d2b-4c3d-9e8f-0123456789ab").unwrap();
        let segment_id = Uuid::parse_str("00000000-0000-4000-8000-000000000001").unwrap();
        let key = segment_object_key("prod", "orders", topic_id, 3, 1234, segment_id, "log");
        assert_eq!(
            key.as_ref(),
            "prod/orders-6f1c2a1e-1d2b-4c3d-9e8f-0123456789ab/3/\
             00000000000000001234-00000000-0000-4000-8000-000000000001.log"
        );
    }

    #[test]
    fn keys_sort_by_base_offset() {
        let id = Uuid::nil();
        let a = segment_object_key("c", "t", id, 0, 99, id, "log");
        let b = segment_object_key("c", "t", id, 0, 100, id, "log");
        assert!(a.as_ref() < b.as_ref());
    }

    #[test]
    fn awkward_names_stay_one_path_segment() {
        let id = Uuid::nil();
        let key = segment_object_key("a/b", "t", id, 0, 0, id, "log");
        assert_eq!(key.parts().count(), 4);
    }
}
