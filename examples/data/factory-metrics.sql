-- A factory-metrics source database for examples/postgres-to-timescaledb.toml (migration 5
-- of the seeds): metric definitions and their history, one reading every 10 seconds per
-- metric, ending now.
--
--   createdb factory
--   psql -d factory -v days=14 -f examples/data/factory-metrics.sql
--
-- psql variables: days (default 14) of history, metrics (default 20) measured.
-- 20 metrics × 14 days = 2.4 million rows, about 250 MB in PostgreSQL.

\if :{?days}
\else
  \set days 14
\endif
\if :{?metrics}
\else
  \set metrics 20
\endif

DROP TABLE IF EXISTS metric_hist;
DROP TABLE IF EXISTS metric_def;

CREATE TABLE metric_def (
  id    uuid PRIMARY KEY,
  name  text NOT NULL,
  unit  text,
  site  text NOT NULL,
  kind  text NOT NULL           -- 'real', 'counter' or 'state'
);

CREATE TABLE metric_hist (
  metric_def_id uuid NOT NULL,
  ts            timestamptz NOT NULL,
  value_real    float8,         -- analog readings (NULL for counters and states)
  value_int     bigint,         -- counters (beyond 2^53 for the energy meter)
  value_text    text,           -- machine states
  quality       smallint NOT NULL DEFAULT 192   -- OPC UA: 192 good, 64 uncertain, 0 bad
);

-- Metric ids are derived from their number, so every run of this script gives the same ids.
INSERT INTO metric_def
SELECT md5('metric-' || m)::uuid,
       (ARRAY['spindle_temp', 'coolant_flow', 'motor_current', 'vibration_rms', 'parts_count',
              'energy_wh', 'machine_state', 'air_pressure'])[1 + (m - 1) % 8] || '_' || m,
       (ARRAY['°C', 'l/min', 'A', 'mm/s', NULL, 'Wh', NULL, 'bar'])[1 + (m - 1) % 8],
       'plant-' || (1 + m % 3),
       CASE (m - 1) % 8 WHEN 4 THEN 'counter' WHEN 5 THEN 'counter' WHEN 6 THEN 'state' ELSE 'real' END
FROM generate_series(1, :metrics) m;

-- Readings: analog values are a daily cycle plus noise, rounded as sensors report them;
-- counters only grow; states change now and then. A few readings are bad (NULL value,
-- quality 0) or uncertain.
INSERT INTO metric_hist
SELECT d.id,
       t.ts,
       CASE WHEN d.kind = 'real' AND t.i % 997 <> 0 THEN
         round((50 + 10 * m + 8 * sin(extract(epoch FROM t.ts) / 86400 * 2 * pi() + m)
                + random() * 0.5)::numeric, 2)::float8
       END,
       CASE WHEN d.kind = 'counter' THEN
         CASE WHEN d.name LIKE 'energy%' THEN 9007199254740000 + t.i * 7 ELSE t.i / 6 END
       END,
       CASE WHEN d.kind = 'state' THEN
         (ARRAY['RUNNING', 'IDLE', 'SETUP', 'ALARM: spindle "overload", E-17'])[1 + (t.i / 360 + m) % 4]
       END,
       CASE WHEN d.kind = 'real' AND t.i % 997 = 0 THEN 0 WHEN t.i % 503 = 0 THEN 64 ELSE 192 END
FROM (SELECT m, md5('metric-' || m)::uuid AS mid FROM generate_series(1, :metrics) m) g
JOIN metric_def d ON d.id = g.mid
CROSS JOIN LATERAL (
  SELECT i, date_trunc('minute', now()) - make_interval(days => :days) + i * interval '10 seconds' AS ts
  FROM generate_series(0, :days * 8640 - 1) i
) t;

ANALYZE metric_def;
ANALYZE metric_hist;
