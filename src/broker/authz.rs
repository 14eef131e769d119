//! The broker's authorizer: the cluster's ACLs (from the metadata state) with the
//! `[authorization]` settings, rebuilt only when ACL records were applied since it was built.
//!
//! Every request reads it, so a check of the current authorizer is two atomic loads and a
//! read lock to clone an `Arc`; the rebuild (a copy of the ACLs into the authorizer's index)
//! happens on the first request after a change.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::config::AuthorizationConfig;
use crate::metadata::MetadataStore;
use crate::security::acl::{Authorizer, acl_generation};

pub struct AclCache {
    config: AuthorizationConfig,
    metadata: Arc<MetadataStore>,
    /// The ACL generation `current` was built at (0: never built).
    built_at: AtomicU64,
    /// The authorizer and the generation it was built at.
    current: RwLock<(u64, Arc<Authorizer>)>,
}

impl AclCache {
    pub fn new(config: AuthorizationConfig, metadata: Arc<MetadataStore>) -> Self {
        Self {
            config,
            metadata,
            built_at: AtomicU64::new(0),
            current: RwLock::new((0, Arc::new(Authorizer::new()))),
        }
    }

    /// The authorizer with the ACLs applied so far.
    pub fn current(&self) -> Arc<Authorizer> {
        let generation = acl_generation();
        if self.built_at.load(Ordering::Acquire) != generation {
            let acls = self.metadata.read(|s| s.acls.clone());
            let rebuilt = Arc::new(Authorizer::with_acls(
                acls,
                self.config.super_users.clone(),
                self.config.allow_everyone_if_no_acl_found,
            ));
            let mut slot = self.current.write().unwrap_or_else(|e| e.into_inner());
            // A racing rebuild may have stored a newer one already: keep the newest.
            if slot.0 < generation {
                *slot = (generation, rebuilt);
                self.built_at.store(generation, Ordering::Release);
            }
            return slot.1.clone();
        }
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::MetadataRecord;
    use crate::security::acl::{
        AclBinding, AclOperation, AclPermission, PatternType, ResourceType,
    };

    /// The cache sees ACLs as soon as the record that made them is applied, and forgets them
    /// when they are deleted.
    #[tokio::test]
    async fn follows_acl_records() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _) = MetadataStore::open(dir.path(), 1000).expect("open");
        let store = Arc::new(store);
        let cache = AclCache::new(
            AuthorizationConfig {
                enabled: true,
                super_users: vec!["User:admin".into()],
                allow_everyone_if_no_acl_found: false,
            },
            store.clone(),
        );
        let check = |c: &AclCache, who: &str| {
            c.current().authorize(
                who,
                "10.0.0.1",
                AclOperation::Read,
                ResourceType::Topic,
                "t",
            )
        };
        assert!(!check(&cache, "User:alice"));
        assert!(check(&cache, "User:admin"));
        let acl = AclBinding::new(
            ResourceType::Topic,
            "t",
            PatternType::Literal,
            "User:alice",
            "*",
            AclOperation::Read,
            AclPermission::Allow,
        );
        store
            .append(vec![MetadataRecord::AclsCreated {
                acls: vec![acl.clone()],
            }])
            .await
            .expect("append");
        assert!(check(&cache, "User:alice"));
        assert!(!check(&cache, "User:bob"));
        store
            .append(vec![MetadataRecord::AclsDeleted { acls: vec![acl] }])
            .await
            .expect("append");
        assert!(!check(&cache, "User:alice"));
        store.close();
    }
}
