//! One partition as the broker serves it: its log behind a lock, and a watch channel carrying the
//! high watermark so long-polling fetches wake on appends instead of sleeping.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use tokio::sync::watch;

use crate::log::batch::BatchHeader;
use crate::log::{AppendError, AppendInfo, LogConfig, PartitionLog, ReadError, ReadInfo};

pub struct Partition {
    pub topic: String,
    pub index: i32,
    log: Mutex<PartitionLog>,
    high_watermark: watch::Sender<i64>,
    deleted: AtomicBool,
}

pub fn dir_name(topic: &str, index: i32) -> String {
    format!("{topic}-{index}")
}

impl Partition {
    /// Opens the partition's log. `remote` is the `[start, next)` range already in the remote
    /// tier: a log whose local copy was lost continues at `next` instead of reusing offsets.
    pub fn open(
        data_dir: &Path,
        topic: &str,
        index: i32,
        config: LogConfig,
        remote: Option<(i64, i64)>,
    ) -> std::io::Result<Self> {
        let dir = data_dir.join(dir_name(topic, index));
        let (log, report) = PartitionLog::open_at(&dir, config, crate::util::now_ms(), remote)?;
        if !report.clean_shutdown && report.recovery.batches > 0 {
            tracing::info!(
                topic,
                partition = index,
                batches = report.recovery.batches,
                truncated_bytes = report.recovery.truncated_bytes,
                "recovered log tail after unclean shutdown"
            );
        }
        let (high_watermark, _) = watch::channel(log.log_end_offset());
        Ok(Self {
            topic: topic.to_string(),
            index,
            log: Mutex::new(log),
            high_watermark,
            deleted: AtomicBool::new(false),
        })
    }

    fn log(&self) -> std::sync::MutexGuard<'_, PartitionLog> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn append(
        &self,
        batches: &[(BatchHeader, Bytes)],
        now_ms: i64,
    ) -> Result<AppendInfo, AppendError> {
        let mut log = self.log();
        if self.deleted.load(Ordering::Acquire) {
            return Err(AppendError::Io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "partition was deleted",
            )));
        }
        let info = log.append(batches, now_ms)?;
        let end = log.log_end_offset();
        drop(log);
        self.high_watermark.send_replace(end);
        Ok(info)
    }

    /// Refusing appends after a write it could not undo, or a failed fsync.
    pub fn is_offline(&self) -> bool {
        self.log().is_offline()
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    pub fn read(
        &self,
        offset: i64,
        max_bytes: u32,
        at_least_one: bool,
    ) -> Result<ReadInfo, ReadError> {
        self.log().read(offset, max_bytes, at_least_one)
    }

    /// Reads whole batches at `offset` into memory (at most `max_bytes`, at least one batch),
    /// with the base offset of the segment they are in.
    pub fn read_bytes(
        &self,
        offset: i64,
        max_bytes: u32,
    ) -> Result<Option<(i64, Vec<u8>)>, ReadError> {
        let (info, base) = {
            let log = self.log();
            let info = log.read(offset, max_bytes, true)?;
            (info, log.segment_base_for(offset))
        };
        let Some(region) = info.region else {
            return Ok(None);
        };
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; region.len as usize];
        region.file.read_exact_at(&mut buf, region.position)?;
        Ok(Some((base.unwrap_or(offset), buf)))
    }

    /// A receiver that changes whenever the high watermark moves.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }

    pub fn high_watermark(&self) -> i64 {
        *self.high_watermark.borrow()
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log().log_start_offset()
    }

    pub fn offsets(&self) -> (i64, i64) {
        let log = self.log();
        (log.log_start_offset(), log.log_end_offset())
    }

    pub fn leader_epoch(&self) -> i32 {
        self.log().leader_epoch()
    }

    pub fn offset_for_timestamp(&self, ts: i64) -> std::io::Result<Option<(i64, i64)>> {
        self.log().offset_for_timestamp(ts)
    }

    pub fn max_timestamp_offset(&self) -> std::io::Result<(i64, i64)> {
        self.log().max_timestamp_offset()
    }

    pub fn delete_records_before(&self, offset: i64) -> std::io::Result<i64> {
        self.log().delete_records_before(offset)
    }

    pub fn set_config(&self, config: LogConfig) {
        self.log().set_config(config);
    }

    pub fn log_config(&self) -> LogConfig {
        self.log().config().clone()
    }

    pub fn sealed_segments(&self) -> Vec<crate::log::SealedSegment> {
        self.log().sealed_segments()
    }

    pub fn delete_local_segment(&self, base_offset: i64) -> std::io::Result<bool> {
        self.log().delete_local_segment(base_offset)
    }

    pub fn advance_log_start(&self, offset: i64) -> std::io::Result<()> {
        self.log().advance_log_start(offset)
    }

    pub fn local_log_start_offset(&self) -> i64 {
        self.log().local_log_start_offset()
    }

    pub fn size_bytes(&self) -> u64 {
        self.log().size_bytes()
    }

    pub fn enforce_retention(&self, now_ms: i64) {
        if let Err(e) = self.log().enforce_retention(now_ms) {
            tracing::warn!(topic = %self.topic, partition = self.index, error = %e, "retention failed");
        }
    }

    pub fn flush_if_due(&self, now_ms: i64) {
        let mut log = self.log();
        if log.flush_due(now_ms)
            && let Err(e) = log.flush()
        {
            tracing::warn!(topic = %self.topic, partition = self.index, error = %e, "flush failed");
        }
    }

    pub fn close(&self) {
        if self.is_deleted() {
            return;
        }
        if let Err(e) = self.log().close() {
            tracing::warn!(topic = %self.topic, partition = self.index, error = %e, "clean close failed");
        }
    }

    /// Marks the partition deleted (no append succeeds afterwards) and removes its files.
    pub fn delete(&self) -> std::io::Result<()> {
        let log = self.log();
        self.deleted.store(true, Ordering::Release);
        let dir = log.dir().to_path_buf();
        let doomed = dir.with_file_name(format!(
            "{}.{}-delete",
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::rename(&dir, &doomed)?;
        drop(log);
        std::fs::remove_dir_all(doomed)
    }
}
