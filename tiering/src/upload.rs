//! Uploading a local file (a sealed segment, an index, a search split) to the remote store.
//!
//! Owns the choice between one PUT and a multipart upload, reading the file in parts with a
//! bounded number of parts in flight, and retrying the whole upload on transient failures.
//! Must never report success for an object whose size differs from the file it read, and never
//! leave a failed multipart upload open on purpose (it is aborted; S3 lifecycle rules should
//! still expire stray ones).

use std::path::{Path as FsPath, PathBuf};

use bytes::{Bytes, BytesMut};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, PutResult, WriteMultipart};
use tokio::io::AsyncReadExt;

use crate::retry::DisplayChain;
use crate::{RetryPolicy, TieringError, retry};

/// S3 refuses parts smaller than this (except the last one); enforced for every store so a
/// configuration that works on `file://` also works on S3.
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;

pub const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadOptions {
    /// Files up to this size go up in one PUT; larger ones in parts of this size.
    pub part_size: usize,
    /// Parts uploading at once; memory use is about `(max_concurrent_parts + 1) * part_size`.
    pub max_concurrent_parts: usize,
    pub retry: RetryPolicy,
}

impl Default for UploadOptions {
    fn default() -> Self {
        Self {
            part_size: DEFAULT_PART_SIZE,
            max_concurrent_parts: 4,
            retry: RetryPolicy::default(),
        }
    }
}

/// What [`upload_file`] stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedObject {
    pub key: Path,
    pub size: u64,
    pub e_tag: Option<String>,
    /// 1 for a single PUT, else the number of multipart parts.
    pub parts: usize,
    /// Attempts used, the successful one included.
    pub attempts: u32,
}

/// Uploads `file` to `key`, with the default concurrency and retry policy.
pub async fn upload_file(
    store: &dyn ObjectStore,
    key: &Path,
    file: &FsPath,
    part_size: usize,
) -> Result<UploadedObject, TieringError> {
    let options = UploadOptions {
        part_size,
        ..UploadOptions::default()
    };
    upload_file_with(store, key, file, &options).await
}

pub async fn upload_file_with(
    store: &dyn ObjectStore,
    key: &Path,
    file: &FsPath,
    options: &UploadOptions,
) -> Result<UploadedObject, TieringError> {
    if options.part_size < MIN_PART_SIZE {
        return Err(TieringError::InvalidOptions(format!(
            "part_size {} is below the minimum of {MIN_PART_SIZE} bytes",
            options.part_size
        )));
    }
    let read_err = |source| TieringError::ReadFile {
        path: file.to_path_buf(),
        source,
    };
    let size = tokio::fs::metadata(file).await.map_err(read_err)?.len();
    let operation = format!("upload of {key}");
    let mut attempts = 0;

    let (result, parts) = if size <= options.part_size as u64 {
        // Read once; every attempt sends the same bytes.
        let bytes = Bytes::from(tokio::fs::read(file).await.map_err(read_err)?);
        check_size(file, size, bytes.len() as u64)?;
        let result = retry(&options.retry, &operation, |attempt| {
            attempts = attempt;
            let payload = PutPayload::from(bytes.clone());
            async move { Ok(store.put(key, payload).await?) }
        })
        .await?;
        (result, 1)
    } else {
        retry(&options.retry, &operation, |attempt| {
            attempts = attempt;
            upload_parts_once(store, key, file, size, options)
        })
        .await?
    };

    tracing::debug!(%key, size, parts, attempts, "uploaded");
    Ok(UploadedObject {
        key: key.clone(),
        size,
        e_tag: result.e_tag,
        parts,
        attempts,
    })
}

/// One multipart attempt: start an upload, stream the file into it part by part, complete it.
async fn upload_parts_once(
    store: &dyn ObjectStore,
    key: &Path,
    file: &FsPath,
    size: u64,
    options: &UploadOptions,
) -> Result<(PutResult, usize), TieringError> {
    let read_err = |source| TieringError::ReadFile {
        path: file.to_path_buf(),
        source,
    };
    let mut reader = tokio::fs::File::open(file).await.map_err(read_err)?;
    let upload = store.put_multipart(key).await?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, options.part_size);
    let mut read = 0u64;
    let mut parts = 0usize;

    loop {
        let part = match read_part(&mut reader, options.part_size).await {
            Ok(part) => part,
            Err(e) => return Err(abort(writer, key, read_err(e)).await),
        };
        if part.is_empty() {
            break;
        }
        read += part.len() as u64;
        // Back-pressure: at most `max_concurrent_parts` parts in flight (and in memory).
        if let Err(e) = writer
            .wait_for_capacity(options.max_concurrent_parts.max(1))
            .await
        {
            return Err(abort(writer, key, e.into()).await);
        }
        // A full part is sent at once; a short last part waits in the writer until `finish`.
        writer.put(part);
        parts += 1;
    }
    if let Err(e) = check_size(file, size, read) {
        return Err(abort(writer, key, e).await);
    }
    // `finish` aborts the upload itself when a part or the completion fails.
    let result = writer.finish().await?;
    Ok((result, parts))
}

/// Reads up to `len` bytes, fewer only at the end of the file.
async fn read_part(reader: &mut tokio::fs::File, len: usize) -> std::io::Result<Bytes> {
    let mut buf = BytesMut::with_capacity(len);
    while buf.len() < len {
        if reader.read_buf(&mut buf).await? == 0 {
            break;
        }
    }
    Ok(buf.freeze())
}

async fn abort(writer: WriteMultipart, key: &Path, error: TieringError) -> TieringError {
    if let Err(abort_error) = writer.abort().await {
        tracing::warn!(
            %key,
            error = %DisplayChain(&abort_error),
            "aborting multipart upload failed"
        );
    }
    error
}

fn check_size(file: &FsPath, expected: u64, read: u64) -> Result<(), TieringError> {
    if expected != read {
        return Err(TieringError::FileChanged {
            path: PathBuf::from(file),
            expected,
            read,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use futures::stream::BoxStream;
    use object_store::memory::InMemory;
    use object_store::{
        CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta,
        PutMultipartOptions, PutOptions,
    };

    /// An in-memory store whose first `failures` PUTs and multipart starts fail like a dropped
    /// connection (or, with `permanent`, like a missing bucket).
    #[derive(Debug)]
    struct FlakyStore {
        inner: InMemory,
        failures: AtomicUsize,
        permanent: bool,
        calls: AtomicUsize,
    }

    impl FlakyStore {
        fn new(failures: usize, permanent: bool) -> Self {
            Self {
                inner: InMemory::new(),
                failures: AtomicUsize::new(failures),
                permanent,
                calls: AtomicUsize::new(0),
            }
        }

        fn maybe_fail(&self) -> object_store::Result<()> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let left = self.failures.load(Ordering::SeqCst);
            if left == 0 {
                return Ok(());
            }
            self.failures.store(left - 1, Ordering::SeqCst);
            Err(if self.permanent {
                object_store::Error::NotFound {
                    path: "bucket".into(),
                    source: "no such bucket".into(),
                }
            } else {
                object_store::Error::Generic {
                    store: "flaky",
                    source: "connection reset by peer".into(),
                }
            })
        }
    }

    impl std::fmt::Display for FlakyStore {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "FlakyStore({})", self.inner)
        }
    }

    #[async_trait::async_trait]
    impl ObjectStore for FlakyStore {
        async fn put_opts(
            &self,
            location: &Path,
            payload: PutPayload,
            opts: PutOptions,
        ) -> object_store::Result<PutResult> {
            self.maybe_fail()?;
            self.inner.put_opts(location, payload, opts).await
        }

        async fn put_multipart_opts(
            &self,
            location: &Path,
            opts: PutMultipartOptions,
        ) -> object_store::Result<Box<dyn MultipartUpload>> {
            self.maybe_fail()?;
            self.inner.put_multipart_opts(location, opts).await
        }

        async fn get_opts(
            &self,
            location: &Path,
            options: GetOptions,
        ) -> object_store::Result<GetResult> {
            self.inner.get_opts(location, options).await
        }

        fn delete_stream(
            &self,
            locations: BoxStream<'static, object_store::Result<Path>>,
        ) -> BoxStream<'static, object_store::Result<Path>> {
            self.inner.delete_stream(locations)
        }

        fn list(
            &self,
            prefix: Option<&Path>,
        ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
            self.inner.list(prefix)
        }

        async fn list_with_delimiter(
            &self,
            prefix: Option<&Path>,
        ) -> object_store::Result<ListResult> {
            self.inner.list_with_delimiter(prefix).await
        }

        async fn copy_opts(
            &self,
            from: &Path,
            to: &Path,
            options: CopyOptions,
        ) -> object_store::Result<()> {
            self.inner.copy_opts(from, to, options).await
        }
    }

    fn fast_options() -> UploadOptions {
        UploadOptions {
            part_size: MIN_PART_SIZE,
            max_concurrent_parts: 2,
            retry: RetryPolicy {
                max_attempts: 3,
                initial_backoff: Duration::from_millis(1),
                max_backoff: Duration::from_millis(2),
            },
        }
    }

    fn write_file(dir: &tempfile::TempDir, len: usize) -> PathBuf {
        let path = dir.path().join(format!("{len}.log"));
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, data).unwrap();
        path
    }

    #[tokio::test]
    async fn transient_failures_are_retried_for_single_and_multipart_uploads() {
        let dir = tempfile::tempdir().unwrap();
        for len in [1000, 2 * MIN_PART_SIZE + 17] {
            let file = write_file(&dir, len);
            let store = Arc::new(FlakyStore::new(2, false));
            let key = Path::from(format!("t/{len}"));
            let uploaded = upload_file_with(store.as_ref(), &key, &file, &fast_options())
                .await
                .unwrap();
            assert_eq!(uploaded.attempts, 3);
            assert_eq!(uploaded.size, len as u64);
            let got = store.get(&key).await.unwrap().bytes().await.unwrap();
            assert_eq!(got, std::fs::read(&file).unwrap());
        }
    }

    #[tokio::test]
    async fn permanent_failures_stop_at_the_first_attempt() {
        let dir = tempfile::tempdir().unwrap();
        let file = write_file(&dir, 10);
        let store = FlakyStore::new(1, true);
        let err = upload_file_with(&store, &Path::from("k"), &file, &fast_options())
            .await
            .unwrap_err();
        assert!(matches!(err, TieringError::ObjectStore(_)), "{err:?}");
        assert_eq!(store.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn attempts_run_out() {
        let dir = tempfile::tempdir().unwrap();
        let file = write_file(&dir, 10);
        let store = FlakyStore::new(10, false);
        let err = upload_file_with(&store, &Path::from("k"), &file, &fast_options())
            .await
            .unwrap_err();
        assert!(
            matches!(err, TieringError::RetriesExhausted { attempts: 3, .. }),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn missing_file_and_small_parts_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let store = InMemory::new();
        let err = upload_file(
            &store,
            &Path::from("k"),
            &dir.path().join("nope"),
            MIN_PART_SIZE,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, TieringError::ReadFile { .. }), "{err:?}");

        let file = write_file(&dir, 10);
        let err = upload_file(&store, &Path::from("k"), &file, 1024)
            .await
            .unwrap_err();
        assert!(matches!(err, TieringError::InvalidOptions(_)), "{err:?}");
    }
}
