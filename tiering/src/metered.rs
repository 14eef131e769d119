//! Counting what is asked of the remote store: requests, failures, bytes and time per kind of
//! operation, for the broker's metrics endpoint.
//!
//! Owns: [`MeteredStore`], an `ObjectStore` around another one, and the counters it feeds
//! ([`StoreMetrics`]). Must never change what the inner store does or answers: every call goes
//! through unchanged, and counting is a few relaxed atomic additions on the side.
//!
//! What one count means:
//! - a request is one call into the store (one `put`, one `get`, one part of a multipart upload,
//!   one listing, one deleted path); the inner store may split it into several HTTP requests
//!   (paged listings, coalesced `get_ranges`) or retry it, and that is not visible here;
//! - an error is a call that answered `Err`, definite answers included (`NotFound` from a
//!   `head`, `NotModified` from a conditional `get`, `AlreadyExists` from a create-only `put`);
//! - bytes sent are payload bytes of successful writes; bytes received are body bytes of reads,
//!   counted as the body arrives, so a body dropped half-read counts only what was read;
//! - latency is the wall time of the call in microseconds. For `get` it ends when the store has
//!   answered with the object's metadata, before the body is read; for listings and deletes,
//!   which are streams, it runs from the call until the stream ended or was dropped.

use std::fmt;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures::stream::{BoxStream, Stream, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
    UploadPart,
};
use serde::Serialize;

/// Counters of one kind of operation. All only grow.
#[derive(Debug, Default)]
pub struct OperationMetrics {
    requests: AtomicU64,
    errors: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    latency_us: AtomicU64,
}

impl OperationMetrics {
    /// Counts one finished call: `sent` bytes are counted only when it succeeded.
    fn record<T>(&self, started: Instant, result: &Result<T>, sent: u64) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(_) => {
                self.bytes_sent.fetch_add(sent, Ordering::Relaxed);
            }
            Err(_) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.add_latency(started);
    }

    fn add_latency(&self, started: Instant) {
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.latency_us.fetch_add(micros, Ordering::Relaxed);
    }

    fn add_received(&self, bytes: u64) {
        self.bytes_received.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> OperationSnapshot {
        OperationSnapshot {
            requests: self.requests.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
            bytes_received: self.bytes_received.load(Ordering::Relaxed),
            latency_us: self.latency_us.load(Ordering::Relaxed),
        }
    }
}

/// The counters of one [`MeteredStore`], one set per kind of operation.
#[derive(Debug, Default)]
pub struct StoreMetrics {
    /// Single-request uploads (`put_opts`).
    pub put: OperationMetrics,
    /// Starting a multipart upload (`put_multipart_opts`).
    pub multipart_create: OperationMetrics,
    /// One part of a multipart upload; its bytes are the part's length.
    pub upload_part: OperationMetrics,
    pub multipart_complete: OperationMetrics,
    pub multipart_abort: OperationMetrics,
    /// Reads of object bodies, whole or ranged (`get_opts`, `get_ranges`).
    pub get: OperationMetrics,
    /// Metadata-only reads (`get_opts` with `head`).
    pub head: OperationMetrics,
    /// One per path handed to `delete_stream`.
    pub delete: OperationMetrics,
    /// One per listing call, however many pages the store fetches for it.
    pub list: OperationMetrics,
    pub copy: OperationMetrics,
    pub rename: OperationMetrics,
}

impl StoreMetrics {
    pub fn snapshot(&self) -> StoreMetricsSnapshot {
        StoreMetricsSnapshot {
            put: self.put.snapshot(),
            multipart_create: self.multipart_create.snapshot(),
            upload_part: self.upload_part.snapshot(),
            multipart_complete: self.multipart_complete.snapshot(),
            multipart_abort: self.multipart_abort.snapshot(),
            get: self.get.snapshot(),
            head: self.head.snapshot(),
            delete: self.delete.snapshot(),
            list: self.list.snapshot(),
            copy: self.copy.snapshot(),
            rename: self.rename.snapshot(),
        }
    }
}

/// The counters of one kind of operation at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OperationSnapshot {
    pub requests: u64,
    pub errors: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Summed over all requests; divide by `requests` for the mean.
    pub latency_us: u64,
}

/// All counters of a [`MeteredStore`] at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StoreMetricsSnapshot {
    pub put: OperationSnapshot,
    pub multipart_create: OperationSnapshot,
    pub upload_part: OperationSnapshot,
    pub multipart_complete: OperationSnapshot,
    pub multipart_abort: OperationSnapshot,
    pub get: OperationSnapshot,
    pub head: OperationSnapshot,
    pub delete: OperationSnapshot,
    pub list: OperationSnapshot,
    pub copy: OperationSnapshot,
    pub rename: OperationSnapshot,
}

impl StoreMetricsSnapshot {
    /// Each kind with its name, the shape an exporter wants for an `operation` label.
    pub fn operations(&self) -> [(&'static str, OperationSnapshot); 11] {
        [
            ("put", self.put),
            ("multipart_create", self.multipart_create),
            ("upload_part", self.upload_part),
            ("multipart_complete", self.multipart_complete),
            ("multipart_abort", self.multipart_abort),
            ("get", self.get),
            ("head", self.head),
            ("delete", self.delete),
            ("list", self.list),
            ("copy", self.copy),
            ("rename", self.rename),
        ]
    }
}

/// Wraps `store` so that everything asked of it is counted; returns the wrapped store and its
/// counters.
pub fn metered(store: Arc<dyn ObjectStore>) -> (Arc<dyn ObjectStore>, Arc<StoreMetrics>) {
    let store = MeteredStore::new(store);
    let metrics = Arc::clone(store.metrics());
    (Arc::new(store), metrics)
}

/// An `ObjectStore` that counts the calls it passes on to `inner` (see the module comment for
/// what is counted).
#[derive(Debug)]
pub struct MeteredStore {
    inner: Arc<dyn ObjectStore>,
    metrics: Arc<StoreMetrics>,
}

impl MeteredStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self {
            inner,
            metrics: Arc::new(StoreMetrics::default()),
        }
    }

    pub fn metrics(&self) -> &Arc<StoreMetrics> {
        &self.metrics
    }
}

impl fmt::Display for MeteredStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MeteredStore({})", self.inner)
    }
}

#[async_trait::async_trait]
#[deny(clippy::missing_trait_methods)]
impl ObjectStore for MeteredStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let len = payload.content_length() as u64;
        let started = Instant::now();
        let result = self.inner.put_opts(location, payload, opts).await;
        self.metrics.put.record(started, &result, len);
        result
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let started = Instant::now();
        let result = self.inner.put_multipart_opts(location, opts).await;
        self.metrics.multipart_create.record(started, &result, 0);
        let upload = result?;
        Ok(Box::new(MeteredUpload {
            inner: upload,
            metrics: Arc::clone(&self.metrics),
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let counters = if options.head {
            &self.metrics.head
        } else {
            &self.metrics.get
        };
        let started = Instant::now();
        let result = self.inner.get_opts(location, options).await;
        counters.record(started, &result, 0);
        let got = result?;
        let payload = match got.payload {
            GetResultPayload::Stream(body) => GetResultPayload::Stream(
                CountedStream::new(body, Arc::clone(&self.metrics), Count::GetBody).boxed(),
            ),
            // A local file is read by the caller, straight from disk and exactly over the
            // range the store resolved, so its length is what will be received.
            file @ GetResultPayload::File(..) => {
                counters.add_received(got.range.end - got.range.start);
                file
            }
        };
        Ok(GetResult { payload, ..got })
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let started = Instant::now();
        let result = self.inner.get_ranges(location, ranges).await;
        self.metrics.get.record(started, &result, 0);
        if let Ok(parts) = &result {
            let received: usize = parts.iter().map(Bytes::len).sum();
            self.metrics.get.add_received(received as u64);
        }
        result
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let deleted = self.inner.delete_stream(locations);
        CountedStream::new(deleted, Arc::clone(&self.metrics), Count::Delete).boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let listed = self.inner.list(prefix);
        CountedStream::new(listed, Arc::clone(&self.metrics), Count::List).boxed()
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        let listed = self.inner.list_with_offset(prefix, offset);
        CountedStream::new(listed, Arc::clone(&self.metrics), Count::List).boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let started = Instant::now();
        let result = self.inner.list_with_delimiter(prefix).await;
        self.metrics.list.record(started, &result, 0);
        result
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        let started = Instant::now();
        let result = self.inner.copy_opts(from, to, options).await;
        self.metrics.copy.record(started, &result, 0);
        result
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        let started = Instant::now();
        let result = self.inner.rename_opts(from, to, options).await;
        self.metrics.rename.record(started, &result, 0);
        result
    }
}

/// A multipart upload of a [`MeteredStore`]: counts each part, the completion and the abort.
#[derive(Debug)]
struct MeteredUpload {
    inner: Box<dyn MultipartUpload>,
    metrics: Arc<StoreMetrics>,
}

#[async_trait::async_trait]
impl MultipartUpload for MeteredUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let len = data.content_length() as u64;
        let started = Instant::now();
        let part = self.inner.put_part(data);
        let metrics = Arc::clone(&self.metrics);
        Box::pin(async move {
            let result = part.await;
            metrics.upload_part.record(started, &result, len);
            result
        })
    }

    async fn complete(&mut self) -> Result<PutResult> {
        let started = Instant::now();
        let result = self.inner.complete().await;
        self.metrics.multipart_complete.record(started, &result, 0);
        result
    }

    async fn abort(&mut self) -> Result<()> {
        let started = Instant::now();
        let result = self.inner.abort().await;
        self.metrics.multipart_abort.record(started, &result, 0);
        result
    }
}

/// What a [`CountedStream`] counts for each item.
#[derive(Debug, Clone, Copy)]
enum Count {
    /// Chunks of a `get` body: bytes received; a failed chunk is one more `get` error (the
    /// request itself was already counted when the store answered).
    GetBody,
    /// One listing: one request for the whole stream, one error per failed item, latency over
    /// the stream's life.
    List,
    /// One request per path, an error per failed one, latency over the stream's life.
    Delete,
}

/// A stream passed through unchanged while its items are counted.
struct CountedStream<T> {
    inner: BoxStream<'static, Result<T>>,
    metrics: Arc<StoreMetrics>,
    count: Count,
    /// Set while the stream's latency is still to be recorded.
    started: Option<Instant>,
}

impl<T> CountedStream<T> {
    fn new(inner: BoxStream<'static, Result<T>>, metrics: Arc<StoreMetrics>, count: Count) -> Self {
        let started = match count {
            Count::GetBody => None,
            Count::List => {
                metrics.list.requests.fetch_add(1, Ordering::Relaxed);
                Some(Instant::now())
            }
            Count::Delete => Some(Instant::now()),
        };
        Self {
            inner,
            metrics,
            count,
            started,
        }
    }

    fn counters(&self) -> &OperationMetrics {
        match self.count {
            Count::GetBody => &self.metrics.get,
            Count::List => &self.metrics.list,
            Count::Delete => &self.metrics.delete,
        }
    }

    fn finish(&mut self) {
        if let Some(started) = self.started.take() {
            self.counters().add_latency(started);
        }
    }
}

/// The byte length of a `get` body chunk; other items carry no bytes.
trait ItemBytes {
    fn item_bytes(&self) -> u64 {
        0
    }
}

impl ItemBytes for Bytes {
    fn item_bytes(&self) -> u64 {
        self.len() as u64
    }
}

impl ItemBytes for Path {}
impl ItemBytes for ObjectMeta {}

impl<T: ItemBytes> Stream for CountedStream<T> {
    type Item = Result<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = futures::ready!(self.inner.poll_next_unpin(cx));
        match &item {
            Some(item) => {
                let counters = self.counters();
                if let Count::Delete = self.count {
                    counters.requests.fetch_add(1, Ordering::Relaxed);
                }
                match item {
                    Ok(value) => counters.add_received(value.item_bytes()),
                    Err(_) => {
                        counters.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            None => self.finish(),
        }
        Poll::Ready(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<T> Drop for CountedStream<T> {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{StoreOptions, open_store};
    use futures::TryStreamExt;
    use object_store::ObjectStoreExt;

    fn memory() -> (Arc<dyn ObjectStore>, Arc<StoreMetrics>) {
        metered(open_store("memory://", &StoreOptions::default()).unwrap())
    }

    #[tokio::test]
    async fn put_get_and_ranged_get_count_exact_bytes() {
        let (store, metrics) = memory();
        let key = Path::from("a/0001.log");
        let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        store.put(&key, data.clone().into()).await.unwrap();

        let whole = store.get(&key).await.unwrap().bytes().await.unwrap();
        assert_eq!(whole.len(), 10_000);
        let range = store.get_range(&key, 1000..1234).await.unwrap();
        assert_eq!(range[..], data[1000..1234]);
        let parts = store.get_ranges(&key, &[0..10, 5000..5100]).await.unwrap();
        assert_eq!(parts.iter().map(Bytes::len).sum::<usize>(), 110);
        let meta = store.head(&key).await.unwrap();
        assert_eq!(meta.size, 10_000);

        let snap = metrics.snapshot();
        assert_eq!((snap.put.requests, snap.put.bytes_sent), (1, 10_000));
        assert_eq!(snap.put.errors, 0);
        // Whole object, one range, and one `get_ranges` call.
        assert_eq!(snap.get.requests, 3);
        assert_eq!(snap.get.bytes_received, 10_000 + 234 + 110);
        assert_eq!(snap.get.errors, 0);
        assert_eq!((snap.head.requests, snap.head.bytes_received), (1, 0));
    }

    #[tokio::test]
    async fn multipart_counts_each_part() {
        let (store, metrics) = memory();
        let key = Path::from("big.log");
        let mut upload = store.put_multipart(&key).await.unwrap();
        for len in [100usize, 200, 50] {
            upload.put_part(vec![7u8; len].into()).await.unwrap();
        }
        upload.complete().await.unwrap();
        assert_eq!(store.head(&key).await.unwrap().size, 350);

        let mut abandoned = store.put_multipart(&Path::from("gone")).await.unwrap();
        abandoned.put_part(vec![1u8; 10].into()).await.unwrap();
        abandoned.abort().await.unwrap();

        let snap = metrics.snapshot();
        assert_eq!(snap.multipart_create.requests, 2);
        assert_eq!(snap.upload_part.requests, 4);
        assert_eq!(snap.upload_part.bytes_sent, 360);
        assert_eq!(snap.multipart_complete.requests, 1);
        assert_eq!(snap.multipart_abort.requests, 1);
        assert_eq!(snap.put.requests, 0);
    }

    #[tokio::test]
    async fn delete_list_and_copy_are_counted() {
        let (store, metrics) = memory();
        for i in 0..3 {
            store
                .put(&Path::from(format!("p/{i}")), "x".into())
                .await
                .unwrap();
        }
        let listed: Vec<ObjectMeta> = store
            .list(Some(&Path::from("p")))
            .try_collect()
            .await
            .unwrap();
        assert_eq!(listed.len(), 3);
        let after = store
            .list_with_offset(Some(&Path::from("p")), &Path::from("p/0"))
            .try_collect::<Vec<_>>()
            .await
            .unwrap();
        assert_eq!(after.len(), 2);
        store.list_with_delimiter(None).await.unwrap();
        store
            .copy(&Path::from("p/0"), &Path::from("q/0"))
            .await
            .unwrap();
        store.delete(&Path::from("p/1")).await.unwrap();
        let paths = futures::stream::iter([Ok(Path::from("p/2")), Ok(Path::from("q/0"))]).boxed();
        let deleted: Vec<Path> = store.delete_stream(paths).try_collect().await.unwrap();
        assert_eq!(deleted.len(), 2);

        let snap = metrics.snapshot();
        assert_eq!((snap.list.requests, snap.list.errors), (3, 0));
        assert_eq!(snap.copy.requests, 1);
        assert_eq!((snap.delete.requests, snap.delete.errors), (3, 0));
        assert_eq!(
            snap.operations()
                .iter()
                .map(|(_, op)| op.requests)
                .sum::<u64>(),
            3 + 3 + 1 + 3
        );
    }

    #[tokio::test]
    async fn failures_are_counted_as_errors() {
        let (store, metrics) = memory();
        let missing = Path::from("missing");
        let err = store.get(&missing).await.unwrap_err();
        assert!(matches!(err, object_store::Error::NotFound { .. }), "{err}");
        assert!(store.head(&missing).await.is_err());
        assert!(
            store
                .copy(&missing, &Path::from("elsewhere"))
                .await
                .is_err()
        );

        let snap = metrics.snapshot();
        assert_eq!((snap.get.requests, snap.get.errors), (1, 1));
        assert_eq!(snap.get.bytes_received, 0);
        assert_eq!((snap.head.requests, snap.head.errors), (1, 1));
        assert_eq!((snap.copy.requests, snap.copy.errors), (1, 1));
    }

    #[tokio::test]
    async fn file_payload_bytes_are_the_resolved_range() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        let (store, metrics) = metered(open_store(&url, &StoreOptions::default()).unwrap());
        let key = Path::from("seg.log");
        store.put(&key, vec![3u8; 4096].into()).await.unwrap();
        let tail = store
            .get_opts(
                &key,
                GetOptions::new().with_range(Some(object_store::GetRange::Suffix(96))),
            )
            .await
            .unwrap();
        assert!(matches!(tail.payload, GetResultPayload::File(..)));
        assert_eq!(tail.bytes().await.unwrap().len(), 96);
        assert_eq!(metrics.snapshot().get.bytes_received, 96);
    }

    #[test]
    fn snapshot_serializes_per_operation() {
        let metrics = StoreMetrics::default();
        metrics.put.requests.fetch_add(2, Ordering::Relaxed);
        let json = serde_json::to_value(metrics.snapshot()).unwrap();
        assert_eq!(json["put"]["requests"], 2);
        assert_eq!(json["get"]["bytes_received"], 0);
    }
}
