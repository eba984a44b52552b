-- Migration 002: what the dashboards read.
CREATE OR REPLACE VIEW metric_latest AS
SELECT DISTINCT ON (h.metric_def_id)
       d.name, d.unit, d.site, h.ts, h.value_real, h.value_int, h.value_text, h.quality
FROM metric_hist h JOIN metric_def d ON d.id = h.metric_def_id
ORDER BY h.metric_def_id, h.ts DESC;
