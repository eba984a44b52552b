-- Migration 001: the target tables of the factory-metrics database. metric_hist becomes a
-- hypertable when tsmigrate prepares it ([target.hypertables.metric_hist] in the plan).
CREATE TABLE IF NOT EXISTS metric_def (
  id    uuid PRIMARY KEY,
  name  text NOT NULL,
  unit  text,
  site  text NOT NULL,
  kind  text NOT NULL
);

CREATE TABLE IF NOT EXISTS metric_hist (
  metric_def_id uuid NOT NULL,
  ts            timestamptz NOT NULL,
  value_real    double precision,
  value_int     bigint,
  value_text    text,
  quality       smallint NOT NULL
);
