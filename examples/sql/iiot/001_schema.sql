-- Migration 001: the IIoT platform's telemetry schema (seed migration 2: IoTDB → PostgreSQL).
-- Devices are rows of `devices`; telemetry rows refer to them by id. tsmigrate adds the
-- devices the export names that are not here yet ([streams.lookup.device_id] create = true).
CREATE TABLE IF NOT EXISTS devices (
  id         serial PRIMARY KEY,
  name       text NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS telemetry_data (
  device_id        integer NOT NULL REFERENCES devices (id),
  user_id          integer,
  "timestamp"      timestamptz NOT NULL,
  measurement_name text NOT NULL,
  numeric_value    double precision,
  text_value       text,
  boolean_value    boolean,
  json_value       jsonb,
  metadata         jsonb,
  quality_flag     smallint NOT NULL DEFAULT 0,
  created_at       timestamptz NOT NULL DEFAULT now()
);
