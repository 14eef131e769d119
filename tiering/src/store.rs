//! Opening the remote store named by `tiering.url`.
//!
//! Owns: parsing `file://`, `memory://` and `s3://` URLs, and building the matching
//! `object_store` backend with the URL's key prefix applied to every request. Must never hand
//! out a store whose keys escape that prefix, and never read credentials itself: for `s3://`
//! they come from the standard AWS chain through `aws-config` ([`AwsChainCredentialProvider`]:
//! environment, shared profile files and `AWS_PROFILE`, `credential_process`, web identity,
//! ECS container credentials, EC2 instance metadata), or not at all for
//! [`CredentialsSource::Anonymous`]. Other `AWS_*` settings (`AWS_ENDPOINT`, ...) are still read
//! by `AmazonS3Builder::from_env()`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use serde::{Deserialize, Serialize};

use crate::TieringError;
use crate::credentials::{AwsChainCredentialProvider, resolve_region};

/// Where the remote tier lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteStorageUrl {
    /// `file://<dir>`: a local directory (relative paths allowed, `file://./data/remote`).
    /// Meant for single-node setups and tests; it is not remote.
    File { dir: PathBuf },
    /// `memory://`: in the process, gone on exit. Tests only.
    Memory,
    /// `s3://<bucket>[/<prefix>]`: S3 or an S3-compatible server (LocalStack, MinIO, Ceph).
    S3 {
        bucket: String,
        prefix: Option<Path>,
    },
}

impl RemoteStorageUrl {
    pub fn parse(url: &str) -> Result<Self, TieringError> {
        let invalid = |reason: &str| TieringError::InvalidUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| invalid("expected <scheme>://..."))?;
        match scheme {
            "file" => {
                if rest.is_empty() {
                    return Err(invalid("file:// needs a directory"));
                }
                Ok(Self::File {
                    dir: PathBuf::from(rest),
                })
            }
            "memory" => {
                if !rest.is_empty() {
                    return Err(invalid("memory:// takes nothing after the scheme"));
                }
                Ok(Self::Memory)
            }
            "s3" | "s3a" => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                validate_bucket(bucket).map_err(|reason| invalid(&reason))?;
                let prefix = prefix.trim_end_matches('/');
                let prefix = if prefix.is_empty() {
                    None
                } else {
                    Some(Path::parse(prefix).map_err(|e| invalid(&format!("bad prefix: {e}")))?)
                };
                Ok(Self::S3 {
                    bucket: bucket.to_owned(),
                    prefix,
                })
            }
            _ => Err(invalid(
                "unsupported scheme, expected file://, memory:// or s3://",
            )),
        }
    }
}

impl FromStr for RemoteStorageUrl {
    type Err = TieringError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for RemoteStorageUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File { dir } => write!(f, "file://{}", dir.display()),
            Self::Memory => write!(f, "memory://"),
            Self::S3 {
                bucket,
                prefix: None,
            } => write!(f, "s3://{bucket}"),
            Self::S3 {
                bucket,
                prefix: Some(prefix),
            } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

fn validate_bucket(bucket: &str) -> Result<(), String> {
    let valid_chars = bucket
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    if !(3..=63).contains(&bucket.len()) || !valid_chars {
        return Err(format!(
            "bucket {bucket:?} must be 3 to 63 characters of a-z, 0-9, '-' and '.'"
        ));
    }
    Ok(())
}

/// Settings next to the URL (`[tiering]` in `chronik.toml`). Secrets never go here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreOptions {
    /// S3 endpoint override, e.g. `http://127.0.0.1:4566` for LocalStack.
    pub endpoint: Option<String>,
    /// S3 region; without it, the AWS region chain (`AWS_REGION`, `AWS_DEFAULT_REGION`, the
    /// profile's `region`, EC2 instance metadata), else `us-east-1`.
    pub region: Option<String>,
    /// Where `s3://` stores get their credentials.
    pub credentials: CredentialsSource,
    /// Permit plain-HTTP endpoints (LocalStack, MinIO on loopback).
    pub allow_http: bool,
    /// `https://<bucket>.<endpoint>` instead of `https://<endpoint>/<bucket>`. Off by default
    /// because LocalStack and MinIO are reached path-style.
    pub virtual_hosted_style: bool,
    /// `file://` only: fsync files and directories after writes. The broker deletes local
    /// segments once they are "uploaded", so an unsynced upload could lose data on power loss.
    pub fsync: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            endpoint: None,
            region: None,
            credentials: CredentialsSource::Default,
            allow_http: false,
            virtual_hosted_style: false,
            fsync: true,
        }
    }
}

/// Where an `s3://` store gets its credentials (`credentials = "default"` or `"anonymous"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialsSource {
    /// The standard AWS chain through `aws-config`, asked on first use and cached until shortly
    /// before the credentials expire.
    #[default]
    Default,
    /// Unsigned requests, for public buckets.
    Anonymous,
}

/// Opens the store `url` names. Every key the caller uses is relative to the URL's directory
/// (`file://`) or prefix (`s3://bucket/prefix`).
pub fn open_store(url: &str, options: &StoreOptions) -> Result<Arc<dyn ObjectStore>, TieringError> {
    match RemoteStorageUrl::parse(url)? {
        RemoteStorageUrl::Memory => Ok(Arc::new(InMemory::new())),
        RemoteStorageUrl::File { dir } => {
            std::fs::create_dir_all(&dir).map_err(|source| TieringError::CreateDir {
                path: dir.clone(),
                source,
            })?;
            let store = LocalFileSystem::new_with_prefix(&dir)?.with_fsync(options.fsync);
            Ok(Arc::new(store))
        }
        RemoteStorageUrl::S3 { bucket, prefix } => {
            // Checked before the region lookup, which may wait on instance metadata.
            if let Some(endpoint) = &options.endpoint
                && endpoint.starts_with("http://")
                && !options.allow_http
            {
                return Err(TieringError::InvalidOptions(format!(
                    "endpoint {endpoint} is plain http; set allow_http to use it"
                )));
            }
            let region = resolve_region(options.region.as_deref());
            let mut builder = AmazonS3Builder::from_env()
                .with_bucket_name(&bucket)
                .with_region(&region)
                .with_virtual_hosted_style_request(options.virtual_hosted_style);
            builder = match options.credentials {
                CredentialsSource::Default => builder
                    .with_credentials(Arc::new(AwsChainCredentialProvider::new(&region, url))),
                CredentialsSource::Anonymous => builder.with_skip_signature(true),
            };
            if let Some(endpoint) = &options.endpoint {
                builder = builder.with_endpoint(endpoint);
            }
            if options.allow_http {
                builder = builder.with_allow_http(true);
            }
            let s3 = builder.build()?;
            Ok(match prefix {
                Some(prefix) => Arc::new(PrefixStore::new(s3, prefix)),
                None => Arc::new(s3),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;

    #[test]
    fn parses_the_three_schemes() {
        assert_eq!(
            RemoteStorageUrl::parse("file://./data/remote").unwrap(),
            RemoteStorageUrl::File {
                dir: PathBuf::from("./data/remote")
            }
        );
        assert_eq!(
            RemoteStorageUrl::parse("file:///var/lib/chronik").unwrap(),
            RemoteStorageUrl::File {
                dir: PathBuf::from("/var/lib/chronik")
            }
        );
        assert_eq!(
            RemoteStorageUrl::parse("memory://").unwrap(),
            RemoteStorageUrl::Memory
        );
        assert_eq!(
            RemoteStorageUrl::parse("s3://chronik/prod/tier/").unwrap(),
            RemoteStorageUrl::S3 {
                bucket: "chronik".into(),
                prefix: Some(Path::from("prod/tier")),
            }
        );
        assert_eq!(
            RemoteStorageUrl::parse("s3://chronik").unwrap(),
            RemoteStorageUrl::S3 {
                bucket: "chronik".into(),
                prefix: None
            }
        );
    }

    #[test]
    fn display_round_trips() {
        for url in [
            "file://./data/remote",
            "memory://",
            "s3://b-1/x/y",
            "s3://bkt",
        ] {
            assert_eq!(RemoteStorageUrl::parse(url).unwrap().to_string(), url);
        }
    }

    #[test]
    fn rejects_bad_urls() {
        for url in [
            "",
            "chronik",
            "file://",
            "memory://x",
            "gs://bucket",
            "s3://",
            "s3://Upper",
            "s3://ab",
            "s3://bucket/a//b",
            "s3://bucket/../x",
        ] {
            let err = RemoteStorageUrl::parse(url).unwrap_err();
            assert!(
                matches!(err, TieringError::InvalidUrl { .. }),
                "{url}: {err:?}"
            );
        }
    }

    #[test]
    fn options_reject_unknown_keys() {
        let ok: StoreOptions =
            serde_json::from_str(r#"{"endpoint": "http://127.0.0.1:4566", "allow_http": true}"#)
                .unwrap();
        assert!(ok.fsync);
        assert_eq!(ok.credentials, CredentialsSource::Default);
        let anonymous: StoreOptions =
            serde_json::from_str(r#"{"credentials": "anonymous"}"#).unwrap();
        assert_eq!(anonymous.credentials, CredentialsSource::Anonymous);
        let err = serde_json::from_str::<StoreOptions>(r#"{"endpont": "x"}"#).unwrap_err();
        assert!(err.to_string().contains("endpont"), "{err}");
    }

    #[test]
    fn plain_http_endpoint_needs_allow_http() {
        let options = StoreOptions {
            endpoint: Some("http://127.0.0.1:4566".into()),
            region: Some("us-east-1".into()),
            ..StoreOptions::default()
        };
        let err = open_store("s3://chronik/x", &options).unwrap_err();
        assert!(matches!(err, TieringError::InvalidOptions(_)), "{err:?}");
    }

    #[tokio::test]
    async fn file_store_creates_its_relative_dir_and_writes_under_it() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("nested/remote");
        let store = open_store(
            &format!("file://{}", dir.display()),
            &StoreOptions::default(),
        )
        .unwrap();
        store
            .put(&Path::from("a/b.log"), "hello".into())
            .await
            .unwrap();
        assert_eq!(std::fs::read(dir.join("a/b.log")).unwrap(), b"hello");

        // A relative path resolves against the working directory, like `./data/remote`.
        let relative = std::env::current_dir()
            .unwrap()
            .join("target-test-relative-remote");
        let _ = std::fs::remove_dir_all(&relative);
        let store = open_store(
            "file://./target-test-relative-remote",
            &StoreOptions::default(),
        )
        .unwrap();
        store.put(&Path::from("k"), "v".into()).await.unwrap();
        assert!(relative.join("k").is_file());
        std::fs::remove_dir_all(&relative).unwrap();
    }
}
