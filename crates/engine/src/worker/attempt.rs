//! What one attempt at one partition holds while it runs: the stream and partition, the
//! target as this partition writes it, its tallies, and the state of its reshaping and
//! aggregation. Its steps are methods in [`super::partition`], [`super::rows`] and
//! [`super::account`].

use tsmigrate_core::{LossyCounts, Partition, PreparedTarget};

use super::tally::Tally;
use super::Worker;
use crate::aggregate::Buckets;
use crate::pivot::Groups;
use crate::stream::PreparedStream;

/// A rejected row: its index in the batch it is listed with, the column, the reason.
pub(super) type Rejected = (usize, Option<String>, String);

/// The reshaping of a partition's rows before the mapping.
pub(super) enum Reshape<'a> {
    /// Rows go to the mapping as read.
    None,
    /// Each wide row read becomes narrow rows, batch by batch.
    Unpivot(&'a crate::unpivot::Unpivot),
    /// Narrow rows are gathered into wide rows, made when the partition's input ends.
    Pivot(Groups<'a>),
}

/// One attempt at one partition, from its first batch to its commit.
pub(super) struct Attempt<'a> {
    pub(super) worker: &'a Worker,
    pub(super) s: &'a PreparedStream,
    pub(super) part: &'a Partition,
    /// The target as this partition writes it (a sync round's partition skips what the
    /// target holds, whoever redoes it).
    pub(super) target: PreparedTarget,
    pub(super) tally: Tally<'a>,
    pub(super) lossy: LossyCounts,
    pub(super) reshape: Reshape<'a>,
    /// An aggregate stream's groups, written when the partition's input ends.
    pub(super) buckets: Option<Buckets>,
}
