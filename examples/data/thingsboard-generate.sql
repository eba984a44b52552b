-- A ThingsBoard-shaped database (PostgreSQL mode, ThingsBoard <= 3.6 dictionary), like the one
-- measured in ../shared/reference/peers.md: 7 devices x 27 keys (20 double, 4 long, 2 bool,
-- 1 string), three monthly partitions of ts_kv plus the default partition ts_kv_indefinite.
-- Usage: psql -v rows=20000000 -f thingsboard-generate.sql
CREATE TABLE ts_kv_dictionary (key varchar(255) NOT NULL, key_id serial UNIQUE,
  CONSTRAINT ts_key_id_pkey PRIMARY KEY (key));
CREATE TABLE tenant (id uuid PRIMARY KEY, created_time bigint NOT NULL, title varchar(255));
CREATE TABLE device (id uuid PRIMARY KEY, created_time bigint NOT NULL, additional_info varchar,
  customer_id uuid, device_profile_id uuid, device_data jsonb, type varchar(255), name varchar(255),
  label varchar(255), tenant_id uuid, UNIQUE (tenant_id, name));
CREATE TABLE asset (id uuid PRIMARY KEY, created_time bigint NOT NULL, additional_info varchar,
  customer_id uuid, asset_profile_id uuid, name varchar(255), label varchar(255), tenant_id uuid,
  type varchar(255));
CREATE TABLE ts_kv (entity_id uuid NOT NULL, key int NOT NULL, ts bigint NOT NULL, bool_v boolean,
  str_v varchar(10000000), long_v bigint, dbl_v double precision, json_v json) PARTITION BY RANGE (ts);
CREATE TABLE ts_kv_2025_08 PARTITION OF ts_kv FOR VALUES FROM (1754006400000) TO (1756684800000);
CREATE TABLE ts_kv_2025_09 PARTITION OF ts_kv FOR VALUES FROM (1756684800000) TO (1759276800000);
CREATE TABLE ts_kv_2025_10 PARTITION OF ts_kv FOR VALUES FROM (1759276800000) TO (1761955200000);
CREATE TABLE ts_kv_indefinite PARTITION OF ts_kv DEFAULT;

-- keys 1-8 have numeric names (86..93 and 146..), like real ThingsBoard sensor keys
INSERT INTO ts_kv_dictionary (key)
SELECT CASE WHEN i <= 2 THEN (85 + i)::text WHEN i <= 8 THEN (143 + i)::text ELSE 'key_' || i END
FROM generate_series(1, 27) i;
INSERT INTO tenant VALUES ('10000000-0000-4000-8000-000000000001', 1754006400000, 'Plant');
INSERT INTO device
SELECT ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, 1754006400000 + i,
       '{"gateway":"gw-' || i || '","description":"Tank ' || i || '"}', NULL, NULL, NULL,
       'tank', 'Tank ' || i, 'Area ' || chr(64 + i), '10000000-0000-4000-8000-000000000001'
FROM generate_series(1, 7) i;
INSERT INTO asset VALUES ('20000000-0000-4000-8000-000000000001', 1754006400000, '{}', NULL, NULL,
  'Plant 1', 'North', '10000000-0000-4000-8000-000000000001', 'plant');

-- 189 series over 92 days, one row every `step` ms so that the total is about :rows
INSERT INTO ts_kv (entity_id, key, ts, bool_v, str_v, long_v, dbl_v, json_v)
SELECT d.id, k.key_id, t.ts,
       CASE WHEN k.key_id IN (25, 26) THEN (t.ts / 60000) % 2 = 0 END,
       CASE WHEN k.key_id = 27 THEN 'state-' || ((t.ts / 60000) % 7) END,
       CASE WHEN k.key_id BETWEEN 21 AND 24 THEN (t.ts / 1000) % 1000003 END,
       CASE WHEN k.key_id <= 20 THEN ((t.ts / 1000) % 100003) / 7.0 END,
       NULL
FROM device d CROSS JOIN ts_kv_dictionary k
CROSS JOIN generate_series(1754006400000::bigint, 1761955199999::bigint,
                           greatest(1, (7948800000::numeric * 189 / :rows)::bigint)) t(ts);
ALTER TABLE ts_kv ADD CONSTRAINT ts_kv_pkey PRIMARY KEY (entity_id, key, ts);
VACUUM ANALYZE;
