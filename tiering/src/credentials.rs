//! AWS credentials for `s3://` stores, from the standard AWS chain through `aws-config`.
//!
//! Owns: [`AwsChainCredentialProvider`], the bridge from `aws-config`'s default credentials
//! chain (environment, shared profile files with `AWS_PROFILE`, `credential_process`, web
//! identity token, ECS container credentials, EC2 instance metadata) to `object_store`'s
//! [`CredentialProvider`], with a cache in between; and [`resolve_region`], the region chain.
//!
//! Must never: log or print a secret, or ask the chain for every request. `object_store` asks
//! its provider before signing each request, and `aws-config`'s chain does not cache by itself
//! (its SDK clients add an identity cache; we are not one of them): without the cache here every
//! GET of a web-identity broker would be an STS call.

use std::fmt;
use std::sync::{Arc, Mutex as SyncMutex};
use std::time::{Duration, SystemTime};

use aws_config::environment::region::EnvironmentVariableRegionProvider;
use aws_config::imds::region::ImdsRegionProvider;
use aws_config::meta::region::RegionProviderChain;
use aws_config::profile::ProfileFileRegionProvider;
use aws_config::{BehaviorVersion, ConfigLoader, Region};
use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use object_store::CredentialProvider;
use object_store::aws::AwsCredential;
use tokio::sync::{Mutex, OnceCell};

use crate::retry::DisplayChain;

/// Region used when neither the options nor the AWS region chain name one.
pub const DEFAULT_REGION: &str = "us-east-1";

/// Refresh credentials this long before they expire, so that a request signed just before the
/// refresh is still valid when it reaches S3. Shortened to half the lifetime for credentials
/// issued for less than twice this long.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);

/// A [`CredentialProvider`] for `object_store`'s S3 client backed by `aws-config`'s default
/// credentials chain.
///
/// The chain is built on first use, inside the runtime that makes the request, so opening a
/// store does no I/O for credentials. Credentials with an expiry are kept until shortly before
/// it (five minutes, or half their lifetime if shorter); credentials without one (static keys
/// from the environment or a profile) are kept for the life of the provider. One refresh runs
/// at a time; a refresh that fails while the old credentials are still valid keeps them and
/// logs a warning.
pub struct AwsChainCredentialProvider {
    /// Taken when the chain is built.
    loader: SyncMutex<Option<ConfigLoader>>,
    chain: OnceCell<Option<SharedCredentialsProvider>>,
    cached: Mutex<Option<Cached>>,
    /// The store the credentials are for, named in errors.
    store: String,
}

struct Cached {
    credential: Arc<AwsCredential>,
    refresh_at: Option<SystemTime>,
    expires_at: Option<SystemTime>,
}

impl AwsChainCredentialProvider {
    /// The default chain. `region` is where the chain's own AWS calls go (STS for web identity
    /// and role-assuming profiles); `store` names the store in error messages.
    pub fn new(region: &str, store: impl Into<String>) -> Self {
        let loader =
            aws_config::defaults(BehaviorVersion::latest()).region(Region::new(region.to_owned()));
        Self::with_loader(loader, store)
    }

    /// A chain from a loader the caller configured: other profile files or profile name, or in
    /// tests a fixed environment. The loader's own credentials provider, if one was set, is
    /// used instead of the default chain.
    pub fn with_loader(loader: ConfigLoader, store: impl Into<String>) -> Self {
        Self {
            loader: SyncMutex::new(Some(loader)),
            chain: OnceCell::new(),
            cached: Mutex::new(None),
            store: store.into(),
        }
    }

    async fn chain(&self) -> Option<&SharedCredentialsProvider> {
        self.chain
            .get_or_init(|| async {
                let loader = self
                    .loader
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .take()
                    .unwrap_or_else(|| aws_config::defaults(BehaviorVersion::latest()));
                loader.load().await.credentials_provider()
            })
            .await
            .as_ref()
    }

    async fn fetch(&self) -> Result<Credentials, object_store::Error> {
        let Some(chain) = self.chain().await else {
            return Err(self.not_found("no credentials provider is configured"));
        };
        chain
            .provide_credentials()
            .await
            .map_err(|e| self.convert(e))
    }

    fn not_found(&self, detail: &str) -> object_store::Error {
        object_store::Error::Unauthenticated {
            path: self.store.clone(),
            source: format!("no aws credentials found: {detail}").into(),
        }
    }

    fn convert(&self, error: CredentialsError) -> object_store::Error {
        let detail = DisplayChain(&error).to_string();
        match error {
            CredentialsError::CredentialsNotLoaded(_) => self.not_found(&detail),
            CredentialsError::InvalidConfiguration(_) => object_store::Error::Unauthenticated {
                path: self.store.clone(),
                source: format!("invalid aws credentials configuration: {detail}").into(),
            },
            // Timeouts and failing providers (STS, IMDS, ECS) may work on the next attempt.
            _ => object_store::Error::Generic {
                store: "S3",
                source: format!("loading aws credentials failed: {detail}").into(),
            },
        }
    }
}

impl fmt::Debug for AwsChainCredentialProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsChainCredentialProvider")
            .field("store", &self.store)
            .field("chain_built", &self.chain.initialized())
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl CredentialProvider for AwsChainCredentialProvider {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        let mut cached = self.cached.lock().await;
        let now = SystemTime::now();
        if let Some(c) = cached.as_ref()
            && c.refresh_at.is_none_or(|at| now < at)
        {
            return Ok(Arc::clone(&c.credential));
        }
        match self.fetch().await {
            Ok(fresh) => {
                let entry = Cached::new(&fresh, now);
                let credential = Arc::clone(&entry.credential);
                *cached = Some(entry);
                Ok(credential)
            }
            Err(error) => match cached.as_ref() {
                Some(old) if old.expires_at.is_none_or(|at| now < at) => {
                    tracing::warn!(
                        store = %self.store,
                        error = %DisplayChain(&error),
                        "refreshing aws credentials failed, using the current ones until they expire"
                    );
                    Ok(Arc::clone(&old.credential))
                }
                _ => Err(error),
            },
        }
    }
}

impl Cached {
    fn new(credentials: &Credentials, now: SystemTime) -> Self {
        let expires_at = credentials.expiry();
        let refresh_at = expires_at.map(|expiry| {
            let lifetime = expiry.duration_since(now).unwrap_or_default();
            expiry - REFRESH_BEFORE_EXPIRY.min(lifetime / 2)
        });
        Self {
            credential: Arc::new(AwsCredential {
                key_id: credentials.access_key_id().to_owned(),
                secret_key: credentials.secret_access_key().to_owned(),
                token: credentials.session_token().map(str::to_owned),
            }),
            refresh_at,
            expires_at,
        }
    }
}

/// The region of an `s3://` store: `configured` if given, else the AWS region chain
/// (`AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's `region`, EC2 instance metadata), else
/// [`DEFAULT_REGION`].
///
/// Opening a store is synchronous and may happen inside or outside a runtime, so the chain runs
/// on a short-lived thread of its own. Instance metadata gets one attempt with one-second
/// timeouts: off EC2 it is unreachable, and a broker should not wait long to learn that.
pub fn resolve_region(configured: Option<&str>) -> String {
    if let Some(region) = configured {
        return region.to_owned();
    }
    let lookup = std::thread::Builder::new()
        .name("aws-region".into())
        .spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let imds = aws_config::imds::Client::builder()
                    .max_attempts(1)
                    .connect_timeout(Duration::from_secs(1))
                    .read_timeout(Duration::from_secs(1))
                    .build();
                let chain =
                    RegionProviderChain::first_try(EnvironmentVariableRegionProvider::new())
                        .or_else(ProfileFileRegionProvider::new())
                        .or_else(ImdsRegionProvider::builder().imds_client(imds).build());
                chain.region().await
            })
        });
    let found = match lookup.map(|thread| thread.join()) {
        Ok(Ok(region)) => region,
        _ => {
            tracing::warn!("aws region lookup failed to run");
            None
        }
    };
    match found {
        Some(region) => region.as_ref().to_owned(),
        None => {
            tracing::info!(
                region = DEFAULT_REGION,
                "no aws region configured or found, using the default"
            );
            DEFAULT_REGION.to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_types::os_shim_internal::Env;

    /// A loader that sees only `vars` as its environment: the process's own `AWS_*` variables
    /// (set when the S3 suite runs) must not leak in, and tests run in parallel.
    fn isolated(vars: &[(&str, &str)]) -> ConfigLoader {
        aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .env(Env::from_slice(vars))
    }

    #[tokio::test]
    async fn profile_file_credentials_come_through_the_default_chain() {
        let dir = tempfile::tempdir().unwrap();
        let credentials = dir.path().join("credentials");
        std::fs::write(
            &credentials,
            "[default]\n\
             aws_access_key_id = AKIADEFAULTNOTUSED\n\
             aws_secret_access_key = default-secret\n\
             \n\
             [chronik-test]\n\
             aws_access_key_id = AKIACHRONIKTEST\n\
             aws_secret_access_key = chronik-secret\n\
             aws_session_token = chronik-token\n",
        )
        .unwrap();
        let config = dir.path().join("config");
        std::fs::write(&config, "[profile chronik-test]\nregion = eu-west-1\n").unwrap();
        let (credentials, config) = (credentials.display(), config.display());
        let (credentials, config) = (credentials.to_string(), config.to_string());

        let provider = AwsChainCredentialProvider::with_loader(
            isolated(&[
                ("AWS_SHARED_CREDENTIALS_FILE", &credentials),
                ("AWS_CONFIG_FILE", &config),
                ("AWS_PROFILE", "chronik-test"),
                ("AWS_EC2_METADATA_DISABLED", "true"),
            ]),
            "s3://chronik",
        );
        let got = provider.get_credential().await.unwrap();
        assert_eq!(got.key_id, "AKIACHRONIKTEST");
        assert_eq!(got.secret_key, "chronik-secret");
        assert_eq!(got.token.as_deref(), Some("chronik-token"));

        // Static keys have no expiry: the second call is served from the cache.
        let again = provider.get_credential().await.unwrap();
        assert!(Arc::ptr_eq(&got, &again));
        // And the secret stays out of `Debug`.
        assert!(!format!("{got:?} {provider:?}").contains("chronik-secret"));
    }

    #[tokio::test]
    async fn environment_keys_come_first() {
        let provider = AwsChainCredentialProvider::with_loader(
            isolated(&[
                ("AWS_ACCESS_KEY_ID", "test"),
                ("AWS_SECRET_ACCESS_KEY", "test"),
                ("AWS_EC2_METADATA_DISABLED", "true"),
            ]),
            "s3://chronik",
        );
        let got = provider.get_credential().await.unwrap();
        assert_eq!((got.key_id.as_str(), got.token.as_deref()), ("test", None));
    }

    #[tokio::test]
    async fn an_empty_chain_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let nowhere = dir.path().join("none").display().to_string();
        let provider = AwsChainCredentialProvider::with_loader(
            isolated(&[
                ("AWS_SHARED_CREDENTIALS_FILE", &nowhere),
                ("AWS_CONFIG_FILE", &nowhere),
                ("AWS_EC2_METADATA_DISABLED", "true"),
            ]),
            "s3://chronik/prod",
        );
        let err = provider.get_credential().await.unwrap_err();
        assert!(
            matches!(err, object_store::Error::Unauthenticated { .. }),
            "{err:?}"
        );
        let message = DisplayChain(&err).to_string();
        assert!(message.contains("no aws credentials found"), "{message}");
        assert!(message.contains("s3://chronik/prod"), "{message}");
    }

    #[test]
    fn expiring_credentials_are_refreshed_early() {
        let now = SystemTime::now();
        let hour = Credentials::new("k", "s", None, Some(now + Duration::from_secs(3600)), "t");
        let cached = Cached::new(&hour, now);
        assert_eq!(
            cached.refresh_at,
            Some(now + Duration::from_secs(3600) - REFRESH_BEFORE_EXPIRY)
        );
        // Short-lived credentials are still used for half their life, not refetched each time.
        let short = Credentials::new("k", "s", None, Some(now + Duration::from_secs(60)), "t");
        assert_eq!(
            Cached::new(&short, now).refresh_at,
            Some(now + Duration::from_secs(30))
        );
        let forever = Credentials::new("k", "s", None, None, "t");
        assert_eq!(Cached::new(&forever, now).refresh_at, None);
    }

    #[test]
    fn configured_region_wins() {
        assert_eq!(resolve_region(Some("eu-north-1")), "eu-north-1");
    }
}
