-- Migration 002: the read paths of the platform, built once after the load (building them
-- during it would slow every COPY).
CREATE INDEX IF NOT EXISTS telemetry_data_device_time
  ON telemetry_data (device_id, "timestamp" DESC);
CREATE INDEX IF NOT EXISTS telemetry_data_device_measurement_time
  ON telemetry_data (device_id, measurement_name, "timestamp" DESC);
