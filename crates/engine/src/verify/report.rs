//! What verify found, per stream: printed as a summary and saved as JSON with `--report`.

use serde::Serialize;

/// One row that differs between the sides.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct RowDiff {
    /// `missing` (in the source, not in the target), `extra` (in the target only) or
    /// `different` (the key on both sides, other values differ).
    pub kind: String,
    /// The key columns and their values.
    pub key: Vec<(String, String)>,
    /// The source row (after the plan's mapping), every column; absent for `extra`.
    pub source: Option<Vec<(String, String)>>,
    /// The target row, every column; absent for `missing`.
    pub target: Option<Vec<(String, String)>>,
    /// For `different`: the columns whose values differ.
    pub columns: Vec<String>,
    /// Set when the source holds this key more than once (a target keyed on it keeps one).
    pub duplicate_key: bool,
}

/// The spot check of `--sample N`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SampleReport {
    /// Rows asked for.
    pub requested: u64,
    /// Source rows drawn and looked up in the target by key.
    pub checked: u64,
    /// Found with equal values.
    pub equal: u64,
    /// Not found in the target.
    pub missing: u64,
    /// Found with different values.
    pub different: u64,
    /// The rows that did not match (up to `--max-diffs`).
    pub diffs: Vec<RowDiff>,
    /// Seed of the draw (`--seed` repeats it).
    pub seed: u64,
}

/// Verification of one stream.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StreamVerify {
    /// Plan stream.
    pub name: String,
    /// Target table.
    pub table: String,
    /// True when both sides hold the same rows (and every sampled row matched).
    pub equal: bool,
    /// The rows compared, in words.
    pub window: String,
    /// Target columns compared (in this order in `diffs`).
    pub columns: Vec<String>,
    /// Target columns identifying a row.
    pub key: Vec<String>,
    /// Rows compared on the source side (mapped to the target's terms).
    pub source_rows: u64,
    /// Rows compared on the target side.
    pub target_rows: u64,
    /// Source rows the plan's mapping rejects (as `run` does); not compared.
    pub source_rejected: u64,
    /// Partitions read on each side in the first pass.
    pub source_partitions: u64,
    /// Target partitions.
    pub target_partitions: u64,
    /// Buckets (series group × time slice) compared in the first pass.
    pub buckets: u64,
    /// Of those, buckets whose count or digest differed.
    pub buckets_differing: u64,
    /// Passes over (parts of) the data: 1 when equal; more to narrow differences down.
    pub passes: u32,
    /// Source rows missing from the target.
    pub missing: u64,
    /// Target rows not in the source.
    pub extra: u64,
    /// Keys on both sides with different values.
    pub different: u64,
    /// The differing rows, up to `--max-diffs`, ordered by key.
    pub diffs: Vec<RowDiff>,
    /// True when more differences exist than are listed.
    pub diffs_truncated: bool,
    /// The spot check, with `--sample`.
    pub sample: Option<SampleReport>,
    /// Seconds taken.
    pub seconds: f64,
    /// Rows per second read over both sides.
    pub rows_per_second: f64,
    /// Facts worth knowing (bounds applied, columns without a key, …).
    pub notes: Vec<String>,
}

impl StreamVerify {
    /// Total differing rows.
    pub fn differences(&self) -> u64 {
        self.missing + self.extra + self.different
    }
}

/// Verification of a plan.
#[derive(Clone, Debug, Default, Serialize)]
pub struct VerifyReport {
    /// tsmigrate version.
    pub version: String,
    /// Plan file.
    pub plan: String,
    /// `equal`, `differences` or `failed`.
    pub status: String,
    /// The error that stopped verification.
    pub error: Option<String>,
    /// Per stream.
    pub streams: Vec<StreamVerify>,
    /// Seconds taken.
    pub seconds: f64,
}
