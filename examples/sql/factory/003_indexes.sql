-- Migration 003, applied after the load: indexes are built once over the loaded rows
-- instead of being maintained row by row during it.
CREATE INDEX IF NOT EXISTS metric_hist_def_ts ON metric_hist (metric_def_id, ts DESC);
ANALYZE metric_def;
