//! Where the broker's SASL mechanisms find their users: PLAIN's static users (a file named by
//! `[sasl] plain_users_file`) and the SCRAM credentials kept in the cluster's metadata.
//!
//! PLAIN accepts a static user's password, and also the password of a SCRAM user (checked
//! against the salted credential), so the users `kafka-configs` creates can use PLAIN and the
//! HTTP port's basic authentication too.

use std::sync::Arc;

use crate::metadata::{MetadataStore, StoredScramCredential};
use crate::security::plain::PlainUsers;
use crate::security::scram::{ScramCredential, ScramCredentials, ScramMechanism};

pub struct Credentials {
    plain: PlainUsers,
    metadata: Arc<MetadataStore>,
}

impl Credentials {
    pub fn new(plain: PlainUsers, metadata: Arc<MetadataStore>) -> Self {
        Self { plain, metadata }
    }

    /// Whether `password` is `user`'s: a static PLAIN user's, else any of its SCRAM
    /// credentials'.
    pub fn check_password(&self, user: &str, password: &str) -> bool {
        if self.plain.contains(user) {
            return self.plain.check(user, password);
        }
        [ScramMechanism::Sha512, ScramMechanism::Sha256]
            .into_iter()
            .filter_map(|m| self.get(user, m))
            .any(|c| c.verify_password(password))
    }
}

impl ScramCredentials for Credentials {
    fn get(&self, user: &str, mech: ScramMechanism) -> Option<ScramCredential> {
        let stored = self.metadata.read(|s| {
            s.scram_credentials
                .get(user)
                .and_then(|of_user| of_user.get(mech.name()))
                .cloned()
        })?;
        Some(from_stored(mech, stored))
    }
}

pub fn from_stored(mechanism: ScramMechanism, c: StoredScramCredential) -> ScramCredential {
    ScramCredential {
        mechanism,
        salt: c.salt,
        iterations: c.iterations,
        stored_key: c.stored_key,
        server_key: c.server_key,
    }
}

pub fn to_stored(c: ScramCredential) -> StoredScramCredential {
    StoredScramCredential {
        salt: c.salt,
        iterations: c.iterations,
        stored_key: c.stored_key,
        server_key: c.server_key,
    }
}
