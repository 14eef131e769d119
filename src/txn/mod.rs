//! Producer identity: the allocator of producer ids for `InitProducerId`. The transaction
//! coordinator (`transactional.id` state, epochs and fencing) will live here too.

pub mod producer_ids;

pub use producer_ids::ProducerIdAllocator;
