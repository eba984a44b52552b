//! Stalled connections: a COPY that makes no progress for the stall timeout (`[run]
//! stall_timeout`, `--stall-timeout`; 5 minutes by default, 0 for none) fails its attempt
//! with a transient error, so the engine retries the partition instead of waiting for ever
//! on a connection that a broken network path keeps open without data and without a reset.
//!
//! The timeout is one setting for the whole process (the CLI sets it from the plan and the
//! command line before it connects), read by the COPY readers and writers of this crate and
//! by [`crate::connect`], which asks the server to end tsmigrate's own target sessions left
//! idle in a transaction for twice as long (`idle_in_transaction_session_timeout`), so a
//! vanished client does not hold its locks.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tsmigrate_core::{End, Error, Result};

/// The stall timeout unless the plan or the command line says otherwise.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(300);

/// The stall timeout in milliseconds; 0: none.
static STALL_MS: AtomicU64 = AtomicU64::new(300_000);

/// Sets the stall timeout of this process; `None` or zero: wait for ever.
pub fn set_stall_timeout(timeout: Option<Duration>) {
    let ms = timeout.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    STALL_MS.store(ms, Ordering::Relaxed);
}

/// The stall timeout of this process, `None` when disabled.
pub fn stall_timeout() -> Option<Duration> {
    match STALL_MS.load(Ordering::Relaxed) {
        0 => None,
        ms => Some(Duration::from_millis(ms)),
    }
}

/// How long a target session of tsmigrate may stay idle inside a transaction before the
/// server ends it: twice the stall timeout (by then tsmigrate has given the attempt up), at
/// least a second; `None` when stalls are not timed.
pub fn idle_in_transaction_timeout() -> Option<Duration> {
    stall_timeout().map(|d| (d * 2).max(Duration::from_secs(1)))
}

/// Awaits `step` (a read of COPY data, a send, a finish), failing with a transient
/// [`Error::Store`] when it does not complete within the stall timeout. `doing` says what
/// the step is, for the message.
pub async fn within<F: Future>(step: F, end: End, context: &str, doing: &str) -> Result<F::Output> {
    let Some(limit) = stall_timeout() else {
        return Ok(step.await);
    };
    tokio::time::timeout(limit, step).await.map_err(|_| Error::Store {
        end,
        context: context.to_string(),
        message: format!(
            "the connection stalled: no progress for {} while {doing} (stall_timeout); the attempt is given up and retried",
            tsmigrate_core::human::duration_us(i64::try_from(limit.as_micros()).unwrap_or(i64::MAX))
        ),
        transient: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_step_without_progress_fails_transiently_and_zero_disables() {
        set_stall_timeout(Some(Duration::from_millis(100)));
        let stuck = std::future::pending::<()>();
        let e = within(stuck, End::Source, "stream `s`", "reading COPY data")
            .await
            .err()
            .unwrap_or_else(|| panic!("a pending step must time out"));
        assert!(e.is_transient(), "{e}");
        assert!(
            e.to_string()
                .contains("no progress for 0.1s while reading COPY data"),
            "{e}"
        );
        assert_eq!(idle_in_transaction_timeout(), Some(Duration::from_secs(1)));
        let quick = within(async { 7 }, End::Target, "c", "sending").await;
        assert_eq!(quick.ok(), Some(7));
        set_stall_timeout(Some(Duration::ZERO));
        assert_eq!(stall_timeout(), None);
        assert_eq!(idle_in_transaction_timeout(), None);
        let late = within(
            async {
                tokio::time::sleep(Duration::from_millis(150)).await;
                1
            },
            End::Source,
            "c",
            "reading",
        )
        .await;
        assert_eq!(late.ok(), Some(1));
        set_stall_timeout(Some(DEFAULT_STALL_TIMEOUT));
    }
}
