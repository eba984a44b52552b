//! Writing items: BatchWriteItem requests of up to 25 items, many in flight, resending what
//! DynamoDB leaves unprocessed and what it throttles, with exponential backoff and full
//! jitter; an optional cap on items per second shared by every writer of the run.
//!
//! A request DynamoDB refuses as invalid (`ValidationException`: something the checks of
//! [`crate::item`] did not catch) is split: each item is put alone, and the ones still
//! refused are rejected with DynamoDB's reason, so one bad item never fails its 24 neighbours.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use tsmigrate_core::{End, Error, Result};

use crate::client::{classify, store_error, Dynamo, Failure};
use crate::item::Item;

/// Items per BatchWriteItem request (DynamoDB's limit).
pub const BATCH_ITEMS: usize = 25;
/// Attempts in a row without any item written before a request is given up.
const MAX_FRUITLESS_ATTEMPTS: u32 = 12;
/// First backoff, and the cap of the backoff.
const BACKOFF_BASE: Duration = Duration::from_millis(25);
const BACKOFF_CAP: Duration = Duration::from_secs(5);

/// What the writers of one run share: the rate cap and counters of retries.
#[derive(Debug, Default)]
pub struct WriteStats {
    /// Requests sent again after throttling or a server error.
    pub retried_requests: AtomicU64,
    /// Items DynamoDB returned unprocessed and that were sent again.
    pub resent_items: AtomicU64,
    limiter: Option<RateLimiter>,
}

impl WriteStats {
    /// Shared state of writers capped at `per_second` items per second (`None`: no cap).
    pub fn new(per_second: Option<f64>) -> WriteStats {
        WriteStats {
            limiter: per_second.map(RateLimiter::new),
            ..WriteStats::default()
        }
    }
}

/// Spaces out writes to at most a number of items per second over all writers.
#[derive(Debug)]
struct RateLimiter {
    per_item: Duration,
    next: Mutex<Instant>,
}

impl RateLimiter {
    fn new(per_second: f64) -> RateLimiter {
        RateLimiter {
            per_item: Duration::from_secs_f64(1.0 / per_second),
            next: Mutex::new(Instant::now()),
        }
    }

    /// Reserves the time to send `items` items at, `now` or later: each request starts when
    /// the items before it have had their share of the second.
    fn reserve(&self, items: usize, now: Instant) -> Instant {
        let mut next = match self.next.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let start = (*next).max(now);
        *next = start + self.per_item * u32::try_from(items).unwrap_or(u32::MAX);
        start
    }

    async fn acquire(&self, items: usize) {
        let start = self.reserve(items, Instant::now());
        tokio::time::sleep_until(start.into()).await;
    }
}

/// A pseudo-random number for jitter (xorshift, seeded from the clock and a counter).
fn jitter_fraction() -> f64 {
    static SEED: AtomicU64 = AtomicU64::new(0x9e37_79b9_7f4a_7c15);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut x = SEED.fetch_add(0x6a09_e667_f3bc_c909, Ordering::Relaxed) ^ u64::from(nanos);
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// Full jitter: a random time between 0 and `min(cap, base × 2^attempt)`.
fn backoff(attempt: u32) -> Duration {
    let ceiling = BACKOFF_BASE
        .saturating_mul(1u32 << attempt.min(16))
        .min(BACKOFF_CAP);
    ceiling.mul_f64(jitter_fraction())
}

/// One item to write and the row of the batch it came from.
#[derive(Clone, Debug)]
pub struct Pending {
    /// Row index in the batch being written.
    pub row: usize,
    /// Hash of its table key (to match what DynamoDB returns unprocessed).
    pub key: u128,
    /// The item.
    pub item: Item,
}

fn put(item: &Item) -> Result<WriteRequest> {
    let p = PutRequest::builder()
        .set_item(Some(item.clone()))
        .build()
        .map_err(|e| Error::Internal(format!("a put request could not be built: {e}")))?;
    Ok(WriteRequest::builder().put_request(p).build())
}

/// Writes up to 25 items (no two with the same key) until every one is stored or rejected;
/// returns the rejected ones as (row, reason). `key_of` hashes an item's table key.
pub async fn write_chunk(
    dynamo: &Dynamo,
    table: &str,
    mut items: Vec<Pending>,
    stats: &WriteStats,
    context: &str,
    key_of: &(dyn Fn(&Item) -> u128 + Sync),
) -> Result<Vec<(usize, String)>> {
    let mut fruitless = 0u32;
    let mut rejected = Vec::new();
    while !items.is_empty() {
        if let Some(l) = &stats.limiter {
            l.acquire(items.len()).await;
        }
        let requests = items
            .iter()
            .map(|p| put(&p.item))
            .collect::<Result<Vec<_>>>()?;
        let sent = dynamo
            .client
            .batch_write_item()
            .request_items(table, requests)
            .send()
            .await;
        match sent {
            Ok(out) => {
                let left: Vec<u128> = out
                    .unprocessed_items()
                    .and_then(|m| m.get(table))
                    .map(|reqs| {
                        reqs.iter()
                            .filter_map(|r| r.put_request())
                            .map(|p| key_of(p.item()))
                            .collect()
                    })
                    .unwrap_or_default();
                if left.is_empty() {
                    return Ok(rejected);
                }
                let before = items.len();
                items.retain(|p| left.contains(&p.key));
                if items.is_empty() {
                    return Err(Error::Store {
                        end: End::Target,
                        context: context.to_string(),
                        message:
                            "DynamoDB returned unprocessed items that this request did not send"
                                .into(),
                        transient: false,
                    });
                }
                stats
                    .resent_items
                    .fetch_add(items.len() as u64, Ordering::Relaxed);
                fruitless = if items.len() < before {
                    0
                } else {
                    fruitless + 1
                };
            }
            Err(e) => match classify(&e) {
                Failure::Retry => {
                    stats.retried_requests.fetch_add(1, Ordering::Relaxed);
                    fruitless += 1;
                    if fruitless >= MAX_FRUITLESS_ATTEMPTS {
                        let mut err = store_error(context, &e);
                        if let Error::Store { message, .. } = &mut err {
                            message.push_str(&format!(
                                " (after {fruitless} attempts in a row without progress; lower [target] concurrency or --jobs, \
                                 set max_writes_per_second, or raise the table's write capacity)"
                            ));
                        }
                        return Err(err);
                    }
                }
                Failure::Invalid => {
                    rejected.extend(put_one_by_one(dynamo, table, items, stats, context).await?);
                    return Ok(rejected);
                }
                Failure::Fatal => return Err(store_error(context, &e)),
            },
        }
        if fruitless >= MAX_FRUITLESS_ATTEMPTS {
            return Err(Error::Store {
                end: End::Target,
                context: context.to_string(),
                message: format!(
                    "DynamoDB left {} item(s) unprocessed {fruitless} times in a row; lower [target] concurrency or --jobs, \
                     set max_writes_per_second, or raise the table's write capacity",
                    items.len()
                ),
                transient: true,
            });
        }
        tokio::time::sleep(backoff(fruitless)).await;
    }
    Ok(rejected)
}

/// Puts items one at a time (after DynamoDB refused their batch as invalid), retrying
/// throttling; returns the items DynamoDB refuses, with its reason.
async fn put_one_by_one(
    dynamo: &Dynamo,
    table: &str,
    items: Vec<Pending>,
    stats: &WriteStats,
    context: &str,
) -> Result<Vec<(usize, String)>> {
    let mut rejected = Vec::new();
    for p in items {
        let mut attempt = 0u32;
        loop {
            if let Some(l) = &stats.limiter {
                l.acquire(1).await;
            }
            let res = dynamo
                .client
                .put_item()
                .table_name(table)
                .set_item(Some(p.item.clone()))
                .send()
                .await;
            match res {
                Ok(_) => break,
                Err(e) => match classify(&e) {
                    Failure::Retry if attempt + 1 < MAX_FRUITLESS_ATTEMPTS => {
                        stats.retried_requests.fetch_add(1, Ordering::Relaxed);
                        attempt += 1;
                        tokio::time::sleep(backoff(attempt)).await;
                    }
                    Failure::Invalid => {
                        let reason = match &e {
                            aws_sdk_dynamodb::error::SdkError::ServiceError(se) => se
                                .err()
                                .message()
                                .unwrap_or("refused as invalid")
                                .to_string(),
                            _ => "refused as invalid".to_string(),
                        };
                        rejected.push((p.row, format!("DynamoDB refused the item: {reason}")));
                        break;
                    }
                    _ => return Err(store_error(context, &e)),
                },
            }
        }
    }
    Ok(rejected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_and_is_jittered() {
        let mut seen = std::collections::HashSet::new();
        for attempt in 0..30 {
            let b = backoff(attempt);
            assert!(b <= BACKOFF_CAP, "{attempt}: {b:?}");
            assert!(
                b <= BACKOFF_BASE * (1 << attempt.min(16)),
                "{attempt}: {b:?}"
            );
            seen.insert(b);
        }
        assert!(seen.len() > 20, "jitter gives different waits: {seen:?}");
    }

    #[test]
    fn the_rate_cap_spaces_requests_by_their_items() {
        let l = RateLimiter::new(1000.0);
        let t0 = Instant::now();
        let starts: Vec<Duration> = (0..4).map(|_| l.reserve(25, t0) - t0).collect();
        assert_eq!(
            starts,
            [0, 25, 50, 75].map(Duration::from_millis).to_vec(),
            "100 items at 1000/s: one request of 25 every 25 ms"
        );
        // After a pause, the next request goes at once.
        let later = t0 + Duration::from_secs(1);
        assert_eq!(l.reserve(25, later), later);
    }
}
