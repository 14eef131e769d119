//! A small retry helper: limited attempts, exponential backoff with jitter.
//!
//! Owns the decision "try again or give up" for whole operations (an upload, a delete). It must
//! never retry an error that is a definite answer (see [`TieringError::is_transient`]), and
//! never retry without limit: a broker that cannot reach its bucket must say so.

use std::future::Future;
use std::time::Duration;

use rand::Rng;

use crate::TieringError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first one included. At least 1.
    pub max_attempts: u32,
    /// Backoff before the second attempt; doubled before each further one.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The pause before attempt `attempt + 1` (attempts count from 1): the doubled backoff,
    /// with "equal jitter" (half fixed, half random) so that brokers retrying after the same
    /// outage do not hit the store in lock step.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(20);
        let base = self
            .initial_backoff
            .saturating_mul(1 << doublings)
            .min(self.max_backoff);
        let half = base / 2;
        half + half.mul_f64(rand::rng().random::<f64>())
    }
}

/// Runs `op` until it succeeds, fails with a non-transient error, or `policy.max_attempts` are
/// used up. `op` gets the attempt number (from 1). `operation` names the work in logs and in
/// [`TieringError::RetriesExhausted`].
pub async fn retry<T, F, Fut>(
    policy: &RetryPolicy,
    operation: &str,
    mut op: F,
) -> Result<T, TieringError>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, TieringError>>,
{
    let max_attempts = policy.max_attempts.max(1);
    let mut attempt = 1;
    loop {
        match op(attempt).await {
            Ok(value) => return Ok(value),
            Err(e) if !e.is_transient() => return Err(e),
            Err(e) if attempt >= max_attempts => {
                return Err(TieringError::RetriesExhausted {
                    operation: operation.to_owned(),
                    attempts: attempt,
                    last: Box::new(e),
                });
            }
            Err(e) => {
                let pause = policy.backoff(attempt);
                tracing::warn!(
                    operation,
                    attempt,
                    error = %DisplayChain(&e),
                    backoff_ms = pause.as_millis() as u64,
                    "transient failure, retrying"
                );
                tokio::time::sleep(pause).await;
                attempt += 1;
            }
        }
    }
}

/// Formats an error with its sources, `outer: inner: innermost`, for one-line logs.
pub(crate) struct DisplayChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for DisplayChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn transient() -> TieringError {
        TieringError::ObjectStore(object_store::Error::Generic {
            store: "test",
            source: "connection reset".into(),
        })
    }

    fn permanent() -> TieringError {
        TieringError::ObjectStore(object_store::Error::NotFound {
            path: "x".into(),
            source: "no such key".into(),
        })
    }

    const FAST: RetryPolicy = RetryPolicy {
        max_attempts: 4,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(4),
    };

    #[tokio::test]
    async fn transient_errors_are_retried_until_success() {
        let calls = Cell::new(0);
        let result = retry(&FAST, "op", |attempt| {
            calls.set(calls.get() + 1);
            async move {
                if attempt < 3 {
                    Err(transient())
                } else {
                    Ok(attempt)
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(result, 3);
        assert_eq!(calls.get(), 3);
    }

    #[tokio::test]
    async fn permanent_errors_are_not_retried() {
        let calls = Cell::new(0);
        let err = retry(&FAST, "op", |_| {
            calls.set(calls.get() + 1);
            async { Err::<(), _>(permanent()) }
        })
        .await
        .unwrap_err();
        assert!(matches!(err, TieringError::ObjectStore(_)), "{err:?}");
        assert_eq!(calls.get(), 1);
    }

    #[tokio::test]
    async fn attempts_are_limited() {
        let calls = Cell::new(0);
        let err = retry(&FAST, "upload x", |_| {
            calls.set(calls.get() + 1);
            async { Err::<(), _>(transient()) }
        })
        .await
        .unwrap_err();
        assert_eq!(calls.get(), 4);
        match err {
            TieringError::RetriesExhausted {
                attempts,
                operation,
                ..
            } => {
                assert_eq!(attempts, 4);
                assert_eq!(operation, "upload x");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn backoff_doubles_within_bounds() {
        let policy = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
        };
        for _ in 0..50 {
            let first = policy.backoff(1);
            assert!((Duration::from_millis(50)..=Duration::from_millis(100)).contains(&first));
            let third = policy.backoff(3);
            assert!((Duration::from_millis(200)..=Duration::from_millis(400)).contains(&third));
            let capped = policy.backoff(30);
            assert!(capped <= Duration::from_millis(1000));
            assert!(capped >= Duration::from_millis(500));
        }
    }
}
