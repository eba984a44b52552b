-- A sample source for examples/timescaledb-to-dynamodb.toml: the seven tables of migration 3
-- (tenants 1, sites 1, zones 36, bays 40, sensors 46, sensor_events 192, alerts 40: 356
-- records), generated deterministically. Runs on PostgreSQL or TimescaleDB:
--
--   createdb parking && psql -d parking -v ON_ERROR_STOP=1 -f examples/data/smart-parking.sql
--
-- The values are what such a database holds: NULLs (unassigned bays, open alerts), JSON
-- settings and payloads, numerics with a scale, text with quotes, commas and non-ASCII
-- characters, and event times a few milliseconds apart.

BEGIN;
SET client_min_messages = warning;
DROP TABLE IF EXISTS alerts, sensor_events, sensors, bays, zones, sites, tenants;

CREATE TABLE tenants (
    id          integer PRIMARY KEY,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL,
    settings    jsonb
);
CREATE TABLE sites (
    id          integer PRIMARY KEY,
    tenant_id   integer NOT NULL REFERENCES tenants,
    name        text NOT NULL,
    address     text,
    lat         double precision,
    lon         double precision,
    timezone    text NOT NULL
);
CREATE TABLE zones (
    id          integer PRIMARY KEY,
    site_id     integer NOT NULL REFERENCES sites,
    tenant_id   integer NOT NULL REFERENCES tenants,
    name        text NOT NULL,
    zone_type   text NOT NULL,
    area_m2     numeric(10, 2),
    metadata    jsonb
);
CREATE TABLE bays (
    id          integer PRIMARY KEY,
    zone_id     integer NOT NULL REFERENCES zones,
    code        text NOT NULL,
    capacity    integer NOT NULL,
    active      boolean NOT NULL,
    UNIQUE (zone_id, code)
);
CREATE TABLE sensors (
    id           integer PRIMARY KEY,
    zone_id      integer NOT NULL REFERENCES zones,
    bay_id       integer REFERENCES bays,
    dev_eui      text NOT NULL UNIQUE,
    model        text NOT NULL,
    installed_at timestamptz NOT NULL,
    firmware     text,
    battery_pct  real
);
CREATE TABLE sensor_events (
    id          bigint PRIMARY KEY,
    sensor_id   integer NOT NULL REFERENCES sensors,
    time        timestamptz NOT NULL,
    event_type  text NOT NULL,
    payload     jsonb,
    rssi        integer,
    snr         double precision,
    UNIQUE (sensor_id, time)
);
CREATE TABLE alerts (
    id          integer PRIMARY KEY,
    zone_id     integer NOT NULL REFERENCES zones,
    sensor_id   integer REFERENCES sensors,
    severity    text NOT NULL,
    message     text NOT NULL,
    raised_at   timestamptz NOT NULL,
    resolved_at timestamptz
);

INSERT INTO tenants VALUES
    (1, 'Città Parking S.p.A. "Nord"', '2023-03-01 09:30:00+01',
     '{"currency": "EUR", "billing": {"day": 1, "net": 30}, "features": ["lpr", "ev"]}');

INSERT INTO sites VALUES
    (1, 1, 'Milano Centrale, Lot B', 'Piazza Duca d''Aosta 1, 20124 Milano', 45.4862, 9.2047,
     'Europe/Rome');

INSERT INTO zones
SELECT z, 1, 1,
       format('Level %s / Zone %s', (z - 1) / 6, chr(65 + (z - 1) % 6)),
       (ARRAY['covered', 'open', 'ev', 'disabled'])[1 + z % 4],
       CASE WHEN z % 9 = 0 THEN NULL ELSE round((120 + z * 7.25)::numeric, 2) END,
       CASE WHEN z % 5 = 0 THEN NULL
            ELSE jsonb_build_object('floor', (z - 1) / 6, 'max_height_m', 2.1 + (z % 3) * 0.1,
                                    'tags', jsonb_build_array('zone', z)) END
FROM generate_series(1, 36) AS z;

-- 40 bays: one in each zone, and a second one in zones 1 to 4.
INSERT INTO bays
SELECT b,
       CASE WHEN b <= 36 THEN b ELSE b - 36 END,
       CASE WHEN b <= 36 THEN 'B-01' ELSE 'B-02' END,
       1 + b % 3,
       b % 7 <> 0
FROM generate_series(1, 40) AS b;

-- 46 sensors: one per bay, and 6 zone-level sensors without a bay.
INSERT INTO sensors
SELECT s,
       CASE WHEN s <= 40 THEN (SELECT zone_id FROM bays WHERE id = s) ELSE s - 40 END,
       CASE WHEN s <= 40 THEN s END,
       upper(lpad(to_hex(s * 7919 + 1890825472), 16, '0')),
       CASE WHEN s % 2 = 0 THEN 'Milesight EM310, rev. 2' ELSE 'Dragino LDDS75 "compact"' END,
       timestamptz '2023-04-01 08:00:00+00' + s * interval '1 day 37 minutes',
       CASE WHEN s % 11 = 0 THEN NULL ELSE format('v1.%s.%s', s % 4, s % 10) END,
       CASE WHEN s % 13 = 0 THEN NULL ELSE (100 - s * 1.5)::real END
FROM generate_series(1, 46) AS s;

-- 192 events: four per sensor for 48 sensors' worth of slots, times with milliseconds.
INSERT INTO sensor_events
SELECT e,
       1 + (e - 1) % 46,
       timestamptz '2024-06-01 00:00:00+00' + e * interval '7 minutes 3.125 seconds',
       (ARRAY['occupied', 'vacant', 'heartbeat', 'tamper'])[1 + e % 4],
       CASE WHEN e % 10 = 0 THEN NULL
            ELSE jsonb_build_object('distance_mm', 400 + e * 13, 'temp_c', 18.5 + (e % 7) * 0.5,
                                    'raw', format('0x%s', to_hex(e * 31337))) END,
       CASE WHEN e % 17 = 0 THEN NULL ELSE -60 - e % 50 END,
       CASE WHEN e % 17 = 0 THEN NULL ELSE 7.25 - (e % 20) * 0.5 END
FROM generate_series(1, 192) AS e;
-- Two events of sensor 1 eight microseconds apart within one second: a sort key built from
-- the time's text must sort them as time (`…03.49382` before `…03.493828`).
UPDATE sensor_events SET time = timestamptz '2024-06-01 00:07:03.49382+00' WHERE id = 47;
UPDATE sensor_events SET time = timestamptz '2024-06-01 00:07:03.493828+00' WHERE id = 93;

INSERT INTO alerts
SELECT a,
       1 + (a * 5) % 36,
       CASE WHEN a % 8 = 0 THEN NULL ELSE 1 + (a * 3) % 46 END,
       (ARRAY['info', 'warning', 'critical'])[1 + a % 3],
       format(E'Sensor offline for %s min; last RSSI -%s dBm, "check antenna"\tzone %s', a * 5, 60 + a, a),
       timestamptz '2024-06-02 12:00:00+00' + a * interval '2 hours 15 minutes',
       CASE WHEN a % 3 = 0 THEN NULL
            ELSE timestamptz '2024-06-02 12:00:00+00' + a * interval '2 hours 15 minutes' + interval '42 minutes' END
FROM generate_series(1, 40) AS a;
COMMIT;
