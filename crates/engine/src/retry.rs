//! Retrying what a transient failure (a dropped connection, a server restarting) interrupts:
//! the policy the plan's `[run] retries`, `retry_delay` and `retry_max_delay` set, used for
//! partitions (in `run`) and for the phases around them — opening the ledger, checking and
//! preparing targets, planning — which [`retry_phase`] repeats whole (each is idempotent: it
//! creates what is missing and records its result in one transaction).

use std::future::Future;
use std::time::Duration;

use crate::cancel::Cancel;
use crate::error::EngineError;
use crate::events::{Event, Events};

/// Bounded exponential backoff for transient failures.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Attempts after the first.
    pub retries: u32,
    /// Delay before the first retry; doubled each time.
    pub first_delay: Duration,
    /// Longest delay.
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// The delay before retry number `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(30));
        self.first_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 5,
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
        }
    }
}

/// Runs `phase` (described by `what`, for messages), again after a transient failure as the
/// policy allows; any other error, or the last one, is returned as is.
pub async fn retry_phase<T, F, Fut>(
    policy: &RetryPolicy,
    cancel: &Cancel,
    events: &dyn Events,
    what: &str,
    mut phase: F,
) -> Result<T, EngineError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, EngineError>>,
{
    let mut attempt = 0;
    loop {
        let e = match phase().await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let transient = matches!(&e, EngineError::Core(c) if c.is_transient());
        if !transient || attempt >= policy.retries || cancel.is_cancelled() {
            return Err(e);
        }
        attempt += 1;
        let delay = policy.delay(attempt);
        events
            .event(Event::Retrying {
                what,
                error: &e,
                delay,
                attempt,
                retries: policy.retries,
            })
            .await;
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = cancel.cancelled() => return Err(EngineError::Interrupted),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Silent;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn policy(retries: u32) -> RetryPolicy {
        RetryPolicy {
            retries,
            first_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(4),
        }
    }

    fn transient() -> EngineError {
        tsmigrate_core::Error::Store {
            end: tsmigrate_core::End::Target,
            context: "x".into(),
            message: "connection reset".into(),
            transient: true,
        }
        .into()
    }

    #[tokio::test]
    async fn transient_failures_are_retried_as_the_policy_allows() {
        let calls = AtomicU32::new(0);
        let got = retry_phase(&policy(3), &Cancel::new(), &Silent, "test", || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0..=2 => Err(transient()),
                n => Ok(n),
            }
        })
        .await;
        assert_eq!(got.ok(), Some(3));
        calls.store(0, Ordering::SeqCst);
        let got = retry_phase(&policy(2), &Cancel::new(), &Silent, "test", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(transient())
        })
        .await;
        assert!(got.is_err());
        assert_eq!(
            calls.load(Ordering::SeqCst),
            3,
            "first attempt and two retries"
        );
    }

    #[tokio::test]
    async fn other_failures_are_not_retried() {
        let calls = AtomicU32::new(0);
        let got = retry_phase(&policy(5), &Cancel::new(), &Silent, "test", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(tsmigrate_core::Error::Plan("bad".into()).into())
        })
        .await;
        assert!(got.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn delays_double_up_to_the_longest() {
        let p = RetryPolicy {
            retries: 40,
            first_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        let d: Vec<u128> = (1..=6).map(|a| p.delay(a).as_millis()).collect();
        assert_eq!(d, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(p.delay(40), Duration::from_secs(1));
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let p = RetryPolicy {
            retries: 10,
            first_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(3),
        };
        let d: Vec<u128> = (1..=5).map(|a| p.delay(a).as_millis()).collect();
        assert_eq!(d, vec![500, 1000, 2000, 3000, 3000]);
        assert_eq!(p.delay(200), Duration::from_secs(3));
    }
}
