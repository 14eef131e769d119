//! An `ObjectStore` that fails on purpose, for testing what the broker does when object storage
//! misbehaves: a full outage, throttling (`503 SlowDown`) on the next N writes or reads, added
//! latency, and writes that hang after the first N succeed (to crash a broker mid-upload).
//! Every fault is switched at run time through the shared [`FaultInjector`].

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

/// The switches of a [`FaultyStore`].
#[derive(Debug, Default)]
pub struct FaultInjector {
    /// Every request fails as if the service were down.
    pub outage: AtomicBool,
    /// The next N writes (puts and multipart creations) fail with `503 SlowDown`.
    pub throttle_writes: AtomicU32,
    /// The next N reads fail with `503 SlowDown`.
    pub throttle_reads: AtomicU32,
    /// Added to every request.
    pub latency_ms: AtomicU64,
    /// When non-negative: that many more writes succeed, every later one never returns.
    pub hang_writes_after: AtomicI64,
    /// Requests that failed on purpose.
    pub injected: AtomicU64,
}

impl FaultInjector {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            hang_writes_after: AtomicI64::new(-1),
            ..Default::default()
        })
    }

    pub fn set_outage(&self, on: bool) {
        self.outage.store(on, Ordering::SeqCst);
    }
}

fn injected(what: &str) -> object_store::Error {
    object_store::Error::Generic {
        store: "faults",
        source: Box::new(std::io::Error::other(what.to_string())),
    }
}

fn take_one(counter: &AtomicU32) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

#[derive(Debug)]
pub struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    faults: Arc<FaultInjector>,
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn ObjectStore>, faults: Arc<FaultInjector>) -> Self {
        Self { inner, faults }
    }

    async fn before(&self, write: bool) -> Result<()> {
        let latency = self.faults.latency_ms.load(Ordering::SeqCst);
        if latency > 0 {
            tokio::time::sleep(Duration::from_millis(latency)).await;
        }
        if self.faults.outage.load(Ordering::SeqCst) {
            self.faults.injected.fetch_add(1, Ordering::SeqCst);
            return Err(injected("503 service unavailable (injected outage)"));
        }
        let throttle = if write {
            &self.faults.throttle_writes
        } else {
            &self.faults.throttle_reads
        };
        if take_one(throttle) {
            self.faults.injected.fetch_add(1, Ordering::SeqCst);
            return Err(injected(
                "503 SlowDown: please reduce your request rate (injected)",
            ));
        }
        if write {
            let left = self.faults.hang_writes_after.load(Ordering::SeqCst);
            if left == 0 {
                std::future::pending::<()>().await;
            } else if left > 0 {
                self.faults.hang_writes_after.fetch_sub(1, Ordering::SeqCst);
            }
        }
        Ok(())
    }

    fn failing_stream<T: Send + 'static>(
        &self,
        what: &'static str,
    ) -> Option<BoxStream<'static, Result<T>>> {
        if self.faults.outage.load(Ordering::SeqCst) {
            self.faults.injected.fetch_add(1, Ordering::SeqCst);
            return Some(stream::once(async move { Err(injected(what)) }).boxed());
        }
        None
    }
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({})", self.inner)
    }
}

#[async_trait::async_trait]
#[deny(clippy::missing_trait_methods)]
impl ObjectStore for FaultyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.before(true).await?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.before(true).await?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.before(false).await?;
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.before(false).await?;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        if let Some(s) = self.failing_stream("503 service unavailable (injected outage)") {
            return s;
        }
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        if let Some(s) = self.failing_stream("503 service unavailable (injected outage)") {
            return s;
        }
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        if let Some(s) = self.failing_stream("503 service unavailable (injected outage)") {
            return s;
        }
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.before(false).await?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.before(true).await?;
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.before(true).await?;
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;

    #[tokio::test]
    async fn faults_switch_on_and_off() {
        let faults = FaultInjector::new();
        let store = FaultyStore::new(Arc::new(InMemory::new()), faults.clone());
        let key = Path::from("a/b");
        faults.throttle_writes.store(2, Ordering::SeqCst);
        assert!(
            store
                .put(&key, Bytes::from_static(b"x").into())
                .await
                .is_err()
        );
        assert!(
            store
                .put(&key, Bytes::from_static(b"x").into())
                .await
                .is_err()
        );
        store
            .put(&key, Bytes::from_static(b"x").into())
            .await
            .expect("third write passes");
        faults.set_outage(true);
        assert!(store.get(&key).await.is_err());
        assert!(store.list(None).next().await.is_some_and(|r| r.is_err()));
        faults.set_outage(false);
        assert_eq!(
            store
                .get(&key)
                .await
                .expect("get")
                .bytes()
                .await
                .expect("body"),
            "x"
        );
        assert_eq!(faults.injected.load(Ordering::SeqCst), 4);
        faults.hang_writes_after.store(0, Ordering::SeqCst);
        let hung = tokio::time::timeout(
            Duration::from_millis(100),
            store.put(&key, Bytes::from_static(b"y").into()),
        )
        .await;
        assert!(hung.is_err(), "the write must hang");
    }
}
