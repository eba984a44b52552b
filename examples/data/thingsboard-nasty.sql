-- Values a careless migration loses, added to a generated ThingsBoard database: a long
-- beyond 2^53, NaN, a string with a tab and a newline, JSON, a row in the default partition
-- (ts 0), and a device whose additional_info is not JSON.
INSERT INTO ts_kv VALUES
 ('00000000-0000-4000-8000-000000000001', 21, 1754006400001, NULL, NULL, 9007199254740993, NULL, NULL),
 ('00000000-0000-4000-8000-000000000001', 1, 1754006400002, NULL, NULL, NULL, 'NaN', NULL),
 ('00000000-0000-4000-8000-000000000001', 27, 1754006400003, NULL, E'tab\there\nnew line', NULL, NULL, NULL),
 ('00000000-0000-4000-8000-000000000001', 27, 1754006400004, NULL, NULL, NULL, NULL, '{"fw":"1.2.3","ok":true}'),
 ('00000000-0000-4000-8000-000000000002', 1, 0, NULL, NULL, NULL, 21.5, NULL);
INSERT INTO device VALUES ('00000000-0000-4000-8000-000000000099', 1754006400000, '{"broken": ', NULL, NULL, NULL,
  'tank', 'Tank 99', 'Area Z', '10000000-0000-4000-8000-000000000001');
