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
    /// OAUTHBEARER's keys, when `[sasl] oauthbearer_jwks` is set.
    pub jwks: Option<Arc<JwksSource>>,
    /// How client certificates' subjects become principals.
    pub principal_mapper: crate::security::principal::PrincipalMapper,
}

impl Credentials {
    pub fn new(
        plain: PlainUsers,
        metadata: Arc<MetadataStore>,
        jwks: Option<Arc<JwksSource>>,
        principal_mapper: crate::security::principal::PrincipalMapper,
    ) -> Self {
        Self {
            plain,
            metadata,
            jwks,
            principal_mapper,
        }
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

/// The keys OAUTHBEARER tokens are checked against (`[sasl] oauthbearer_jwks`: a JWKS file, or
/// an `https://` or `http://` URL), read again when the file changes or, for a URL, every
/// `oauthbearer_jwks_refresh_ms` (in the background: an authentication never waits for it).
pub struct JwksSource {
    location: String,
    tls: crate::config::TlsConfig,
    template: JwtValidator,
    refresh: Duration,
    state: Mutex<JwksState>,
}

struct JwksState {
    validator: Arc<JwtValidator>,
    stamp: Option<SystemTime>,
    checked: Instant,
    refreshing: bool,
}

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use crate::security::oauth::{Jwks, JwtValidator};

impl JwksSource {
    /// Reads the keys once. A file that cannot be read or parsed is an error; a URL that cannot
    /// be fetched yet starts with no keys (every token fails) and is tried again.
    pub fn open(
        config: &crate::config::SaslConfig,
        tls: &crate::config::TlsConfig,
    ) -> Result<Self, String> {
        let location = config.oauthbearer_jwks.trim().to_string();
        let mut template =
            JwtValidator::new(Jwks::from_json(r#"{"keys":[]}"#).map_err(|e| e.to_string())?);
        template.issuer =
            Some(config.oauthbearer_issuer.trim().to_string()).filter(|s| !s.is_empty());
        template.audience = config.oauthbearer_audience.clone();
        template.principal_claim = config.oauthbearer_principal_claim.clone();
        template.clock_skew_s = config.oauthbearer_clock_skew_s;
        let source = Self {
            refresh: Duration::from_millis(config.oauthbearer_jwks_refresh_ms.max(1000)),
            state: Mutex::new(JwksState {
                validator: Arc::new(template.clone()),
                stamp: None,
                checked: Instant::now(),
                refreshing: false,
            }),
            location,
            tls: tls.clone(),
            template,
        };
        match source.load() {
            Ok((validator, stamp)) => {
                let mut state = source.lock();
                state.validator = validator;
                state.stamp = stamp;
            }
            Err(e) if source.is_url() => {
                tracing::warn!(jwks = %source.location, error = %e, "cannot fetch the OAUTHBEARER keys yet; tokens fail until they are fetched");
            }
            Err(e) => return Err(format!("sasl.oauthbearer_jwks: {e}")),
        }
        Ok(source)
    }

    fn is_url(&self) -> bool {
        self.location.starts_with("http://") || self.location.starts_with("https://")
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, JwksState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn load(&self) -> Result<(Arc<JwtValidator>, Option<SystemTime>), String> {
        let (text, stamp) = if self.is_url() {
            let agent = crate::network::tls::http_agent(&self.tls, Duration::from_secs(10));
            let mut resp = agent
                .get(&self.location)
                .call()
                .map_err(|e| format!("GET {}: {e}", self.location))?;
            if !resp.status().is_success() {
                return Err(format!("GET {}: {}", self.location, resp.status()));
            }
            let text = resp
                .body_mut()
                .read_to_string()
                .map_err(|e| format!("GET {}: {e}", self.location))?;
            (text, None)
        } else {
            let stamp = std::fs::metadata(&self.location)
                .and_then(|m| m.modified())
                .ok();
            let text = std::fs::read_to_string(&self.location)
                .map_err(|e| format!("{}: {e}", self.location))?;
            (text, stamp)
        };
        let jwks = Jwks::from_json(&text).map_err(|e| format!("{}: {e}", self.location))?;
        let mut validator = self.template.clone();
        validator.jwks = jwks;
        Ok((Arc::new(validator), stamp))
    }

    /// The current keys; starts a reload when they may be stale.
    pub fn validator(self: &Arc<Self>) -> Arc<JwtValidator> {
        let mut state = self.lock();
        let due = if self.is_url() {
            state.checked.elapsed() >= self.refresh
        } else {
            state.checked.elapsed() >= Duration::from_secs(1)
        };
        if due && !state.refreshing {
            state.checked = Instant::now();
            let changed = self.is_url()
                || std::fs::metadata(&self.location)
                    .and_then(|m| m.modified())
                    .ok()
                    != state.stamp;
            if changed {
                state.refreshing = true;
                let me = self.clone();
                std::thread::spawn(move || {
                    let loaded = me.load();
                    let mut state = me.lock();
                    state.refreshing = false;
                    match loaded {
                        Ok((validator, stamp)) => {
                            state.validator = validator;
                            state.stamp = stamp;
                        }
                        Err(e) => {
                            tracing::warn!(jwks = %me.location, error = %e, "cannot reload the OAUTHBEARER keys; keeping the previous ones");
                        }
                    }
                });
            }
        }
        state.validator.clone()
    }
}
