-- The reference unpivot of examples/sqlite-readings-to-points.toml in plain SQL, independent of
-- tsmigrate: wide `readings` (one REAL column per measurement) + `point_info` → narrow
-- point_readings(system_id, point_id, measurement_time in ms, value), kWh values × 1000 (Wh),
-- one row per non-NULL value of a column that point_info maps for the system.
--
-- Run it with the sqlite3 CLI on the source, the (new) target file attached as `t`:
--
--   sqlite3 SOURCE.db "ATTACH 'EXPECTED.db' AS t" ".read examples/data/solar-unpivot.sql"
--
-- (the ATTACH creates EXPECTED.db if missing; t.point_readings must not exist yet). Tested
-- with sqlite3 3.40. Used by bench/sqlite-unpivot.sh and as the expected output of the tests.
-- Values are copied as SQLite holds them: a TEXT 'NaN' stays TEXT, ±inf stay ±inf.

CREATE TABLE t.point_readings(
  system_id BIGINT,
  point_id BIGINT,
  measurement_time BIGINT,
  value DOUBLE
);

BEGIN;
INSERT INTO t.point_readings (system_id, point_id, measurement_time, value)
SELECT r.system_id, p.point_id, r.inverter_time * 1000, CASE WHEN p.unit = 'kWh' THEN r.solar_w * 1000 ELSE r.solar_w END
  FROM readings r JOIN point_info p ON p.system_id = r.system_id AND p.column_name = 'solar_w' WHERE r.solar_w IS NOT NULL
UNION ALL
SELECT r.system_id, p.point_id, r.inverter_time * 1000, CASE WHEN p.unit = 'kWh' THEN r.battery_w * 1000 ELSE r.battery_w END
  FROM readings r JOIN point_info p ON p.system_id = r.system_id AND p.column_name = 'battery_w' WHERE r.battery_w IS NOT NULL
UNION ALL
SELECT r.system_id, p.point_id, r.inverter_time * 1000, CASE WHEN p.unit = 'kWh' THEN r.grid_w * 1000 ELSE r.grid_w END
  FROM readings r JOIN point_info p ON p.system_id = r.system_id AND p.column_name = 'grid_w' WHERE r.grid_w IS NOT NULL
UNION ALL
SELECT r.system_id, p.point_id, r.inverter_time * 1000, CASE WHEN p.unit = 'kWh' THEN r.load_w * 1000 ELSE r.load_w END
  FROM readings r JOIN point_info p ON p.system_id = r.system_id AND p.column_name = 'load_w' WHERE r.load_w IS NOT NULL
UNION ALL
SELECT r.system_id, p.point_id, r.inverter_time * 1000, CASE WHEN p.unit = 'kWh' THEN r.battery_soc * 1000 ELSE r.battery_soc END
  FROM readings r JOIN point_info p ON p.system_id = r.system_id AND p.column_name = 'battery_soc' WHERE r.battery_soc IS NOT NULL
UNION ALL
SELECT r.system_id, p.point_id, r.inverter_time * 1000, CASE WHEN p.unit = 'kWh' THEN r.battery_v * 1000 ELSE r.battery_v END
  FROM readings r JOIN point_info p ON p.system_id = r.system_id AND p.column_name = 'battery_v' WHERE r.battery_v IS NOT NULL
UNION ALL
SELECT r.system_id, p.point_id, r.inverter_time * 1000, CASE WHEN p.unit = 'kWh' THEN r.inverter_temp_c * 1000 ELSE r.inverter_temp_c END
  FROM readings r JOIN point_info p ON p.system_id = r.system_id AND p.column_name = 'inverter_temp_c' WHERE r.inverter_temp_c IS NOT NULL
UNION ALL
SELECT r.system_id, p.point_id, r.inverter_time * 1000, CASE WHEN p.unit = 'kWh' THEN r.pv1_v * 1000 ELSE r.pv1_v END
  FROM readings r JOIN point_info p ON p.system_id = r.system_id AND p.column_name = 'pv1_v' WHERE r.pv1_v IS NOT NULL
UNION ALL
SELECT r.system_id, p.point_id, r.inverter_time * 1000, CASE WHEN p.unit = 'kWh' THEN r.pv2_v * 1000 ELSE r.pv2_v END
  FROM readings r JOIN point_info p ON p.system_id = r.system_id AND p.column_name = 'pv2_v' WHERE r.pv2_v IS NOT NULL
UNION ALL
SELECT r.system_id, p.point_id, r.inverter_time * 1000, CASE WHEN p.unit = 'kWh' THEN r.pv1_a * 1000 ELSE r.pv1_a END
  FROM readings r JOIN point_info p ON p.system_id = r.system_id AND p.column_name = 'pv1_a' WHERE r.pv1_a IS NOT NULL
UNION ALL
SELECT r.system_id, p.point_id, r.inverter_time * 1000, CASE WHEN p.unit = 'kWh' THEN r.pv2_a * 1000 ELSE r.pv2_a END
  FROM readings r JOIN point_info p ON p.system_id = r.system_id AND p.column_name = 'pv2_a' WHERE r.pv2_a IS NOT NULL
UNION ALL
SELECT r.system_id, p.point_id, r.inverter_time * 1000, CASE WHEN p.unit = 'kWh' THEN r.grid_v * 1000 ELSE r.grid_v END
  FROM readings r JOIN point_info p ON p.system_id = r.system_id AND p.column_name = 'grid_v' WHERE r.grid_v IS NOT NULL
UNION ALL
SELECT r.system_id, p.point_id, r.inverter_time * 1000, CASE WHEN p.unit = 'kWh' THEN r.grid_hz * 1000 ELSE r.grid_hz END
  FROM readings r JOIN point_info p ON p.system_id = r.system_id AND p.column_name = 'grid_hz' WHERE r.grid_hz IS NOT NULL
UNION ALL
SELECT r.system_id, p.point_id, r.inverter_time * 1000, CASE WHEN p.unit = 'kWh' THEN r.load_kwh * 1000 ELSE r.load_kwh END
  FROM readings r JOIN point_info p ON p.system_id = r.system_id AND p.column_name = 'load_kwh' WHERE r.load_kwh IS NOT NULL
UNION ALL
SELECT r.system_id, p.point_id, r.inverter_time * 1000, CASE WHEN p.unit = 'kWh' THEN r.solar_kwh * 1000 ELSE r.solar_kwh END
  FROM readings r JOIN point_info p ON p.system_id = r.system_id AND p.column_name = 'solar_kwh' WHERE r.solar_kwh IS NOT NULL
UNION ALL
SELECT r.system_id, p.point_id, r.inverter_time * 1000, CASE WHEN p.unit = 'kWh' THEN r.grid_import_kwh * 1000 ELSE r.grid_import_kwh END
  FROM readings r JOIN point_info p ON p.system_id = r.system_id AND p.column_name = 'grid_import_kwh' WHERE r.grid_import_kwh IS NOT NULL
UNION ALL
SELECT r.system_id, p.point_id, r.inverter_time * 1000, CASE WHEN p.unit = 'kWh' THEN r.grid_export_kwh * 1000 ELSE r.grid_export_kwh END
  FROM readings r JOIN point_info p ON p.system_id = r.system_id AND p.column_name = 'grid_export_kwh' WHERE r.grid_export_kwh IS NOT NULL
UNION ALL
SELECT r.system_id, p.point_id, r.inverter_time * 1000, CASE WHEN p.unit = 'kWh' THEN r.battery_cycles * 1000 ELSE r.battery_cycles END
  FROM readings r JOIN point_info p ON p.system_id = r.system_id AND p.column_name = 'battery_cycles' WHERE r.battery_cycles IS NOT NULL;
COMMIT;
