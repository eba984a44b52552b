#!/usr/bin/env python3
"""Make a SQLite database of solar-inverter readings shaped like seed migration 4.

    python3 examples/data/make-solar-db.py OUT.db [--systems 8] [--rows 2000] [--seed 1] [--no-nasty]

The source of examples/sqlite-readings-to-points.toml. OUT.db (and its -wal/-shm files) is
deleted first, then it holds:

  readings(system_id, inverter_time, <18 REAL measurement columns>)
      one wide row per system and minute; --rows rows per system starting at
      1735689600 (2025-01-01Z) + system_id * 7 s, every 60 s. Columns a system does not map
      are NULL; mapped ones are NULL about 5% of the time (the inverter did not report).
  point_info(system_id, point_id, column_name, unit)
      13 to 18 of the columns per system (always at least 2 kWh counters),
      point_id = system_id * 100 + the column's 1-based index in COLUMNS.
  readings_agg_5m(system_id, bucket, column_name, min, max, avg, last, count)
      5-minute aggregates (bucket = inverter_time - inverter_time % 300) of the non-NULL values
      of each system's mapped columns, computed by SQLite itself (its min/max/avg, so the TEXT
      'NaN' of the nasty rows sorts above every number and counts as 0 in avg; `last` is the
      value at the bucket's latest inverter_time that has one).

Unless --no-nasty, system 1 also holds edge values: in grid_w (W, never scaled) ±DBL_MAX,
the smallest subnormal, -0.0, 2**60, -123456.789, ±inf, each in its own 5-minute bucket; in
battery_soc the TEXT 'NaN' (a Python float NaN would be stored as NULL); in load_kwh (scaled
x 1000) -0.001, 1e300 and 123456789.123456789; and one row whose every measurement is NULL.
(SQLite writes integral REALs to disk as integers, so the -0.0 reads back as 0.0.)

Deterministic for a given --seed. Prints one summary line: systems, wide rows and the number of
point rows an unpivot must produce (non-NULL mapped values).
"""

import argparse
import math
import os
import random
import sqlite3
import sys

COLUMNS = [
    "solar_w", "battery_w", "grid_w", "load_w", "battery_soc", "battery_v", "inverter_temp_c",
    "pv1_v", "pv2_v", "pv1_a", "pv2_a", "grid_v", "grid_hz", "load_kwh", "solar_kwh",
    "grid_import_kwh", "grid_export_kwh", "battery_cycles",
]
KWH = [c for c in COLUMNS if c.endswith("_kwh")]
START = 1735689600  # 2025-01-01T00:00:00Z
STEP = 60
NULL_RATE = 0.05

# Nasty values of system 1 (row index within the system -> value). Rows 5k+2 fall in distinct
# 5-minute buckets (system 1 starts at START + 7 s), so each aggregate sees one edge value.
NASTY_GRID_W = [
    1.7976931348623157e308, -1.7976931348623157e308, 5e-324, -0.0,
    2.0 ** 60, -123456.789, float("inf"), float("-inf"),
]
NASTY_GRID_ROWS = [5 * k + 2 for k in range(len(NASTY_GRID_W))]  # rows 2 .. 37
NASTY_SOC_ROW = 13
NASTY_LOAD_KWH = {21: -0.001, 26: 1e300, 31: 123456789.123456789}
ALL_NULL_ROW = 44
NASTY_MIN_ROWS = ALL_NULL_ROW + 1
NASTY_REQUIRED = ["grid_w", "battery_w", "battery_soc", "load_kwh"]


def unit(column):
    if column.endswith("_kwh"):
        return "kWh"
    if column.endswith("_w"):
        return "W"
    if column == "battery_soc":
        return "%"
    if column.endswith("_v"):
        return "V"
    if column.endswith("_a"):
        return "A"
    if column == "inverter_temp_c":
        return "degC"
    if column == "grid_hz":
        return "Hz"
    if column == "battery_cycles":
        return "count"
    raise ValueError(column)


def choose_columns(rng, system_id):
    """The system's mapped columns (in COLUMNS order): 13-18 of them, >= 2 kWh counters."""
    k = rng.randint(13, 18)
    chosen = set(rng.sample(KWH, rng.randint(2, len(KWH))))
    if system_id == 1:
        chosen.update(NASTY_REQUIRED)
    rest = [c for c in COLUMNS if c not in chosen]
    rng.shuffle(rest)
    while len(chosen) < k:
        chosen.add(rest.pop())
    return [c for c in COLUMNS if c in chosen]


def system_rows(rng, system_id, rows, mapped):
    """Yield the wide rows of one system: (system_id, inverter_time, 18 values)."""
    index = [COLUMNS.index(c) for c in mapped]
    peak = rng.uniform(3000.0, 6000.0)        # PV peak power, W
    capacity = rng.uniform(5000.0, 15000.0)   # battery capacity, Wh
    base_load = rng.uniform(200.0, 600.0)
    tz_shift = rng.uniform(-2.0, 2.0)          # hours: solar noon is not 12:00Z everywhere
    soc = rng.uniform(30.0, 90.0)
    counters = {"load_kwh": rng.uniform(0, 20000), "solar_kwh": rng.uniform(0, 30000),
                "grid_import_kwh": rng.uniform(0, 10000), "grid_export_kwh": rng.uniform(0, 10000)}
    cycles = float(rng.randint(0, 2000))
    cloud = 1.0
    t0 = START + system_id * 7
    hours = STEP / 3600.0
    for i in range(rows):
        t = t0 + i * STEP
        hour = (t % 86400) / 3600.0 + tz_shift
        sun = math.sin(math.pi * (hour - 6.0) / 12.0)
        cloud = min(1.0, max(0.2, cloud + rng.uniform(-0.05, 0.05)))
        solar = max(0.0, sun) * peak * cloud if sun > 0 else 0.0
        load = base_load + rng.uniform(0, 800) + (rng.random() < 0.05) * rng.uniform(1000, 3000)
        # The battery takes the surplus or covers the deficit, within its limits.
        # (only part of it: the inverter's controller lags, and it keeps a margin to the grid).
        battery = max(-2500.0, min(2500.0, (solar - load) * rng.uniform(0.6, 0.95)))  # > 0: charging
        if battery > 0 and soc >= 100.0 or battery < 0 and soc <= 5.0:
            battery = 0.0
        soc = max(5.0, min(100.0, soc + battery * hours / capacity * 100.0))
        grid = load + battery - solar  # > 0: import
        counters["load_kwh"] += load * hours / 1000.0
        counters["solar_kwh"] += solar * hours / 1000.0
        counters["grid_import_kwh"] += max(grid, 0.0) * hours / 1000.0
        counters["grid_export_kwh"] += max(-grid, 0.0) * hours / 1000.0
        cycles += abs(battery) * hours / capacity / 2.0
        pv1_v = 320.0 + 60.0 * max(sun, 0.0) + rng.uniform(-5, 5) if solar > 0 else rng.uniform(0, 2)
        pv2_v = 310.0 + 60.0 * max(sun, 0.0) + rng.uniform(-5, 5) if solar > 0 else rng.uniform(0, 2)
        full = (
            round(solar, 1),
            round(battery, 1),
            round(grid, 1),
            round(load, 1),
            round(soc, 2),
            round(48.0 + (soc - 50.0) * 0.06 + rng.uniform(-0.2, 0.2), 2),
            round(25.0 + solar / 300.0 + rng.uniform(-1, 1), 1),
            round(pv1_v, 1),
            round(pv2_v, 1),
            round(solar * 0.55 / pv1_v, 3) if solar > 0 else 0.0,
            round(solar * 0.45 / pv2_v, 3) if solar > 0 else 0.0,
            round(230.0 + rng.gauss(0, 2.0), 1),
            round(50.0 + rng.gauss(0, 0.02), 3),
            round(counters["load_kwh"], 3),
            round(counters["solar_kwh"], 3),
            round(counters["grid_import_kwh"], 3),
            round(counters["grid_export_kwh"], 3),
            round(cycles, 2),
        )
        row = [None] * len(COLUMNS)
        for j in index:
            if rng.random() >= NULL_RATE:
                row[j] = full[j]
        yield [system_id, t] + row


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="the database file to (re)create")
    ap.add_argument("--systems", type=int, default=8)
    ap.add_argument("--rows", type=int, default=2000, help="wide rows per system")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-nasty", action="store_true", help="no edge values in system 1")
    args = ap.parse_args()
    nasty = not args.no_nasty
    if args.systems < 1 or args.rows < 1:
        sys.exit("--systems and --rows must be at least 1")
    if nasty and args.rows < NASTY_MIN_ROWS:
        sys.exit(f"--rows must be at least {NASTY_MIN_ROWS} for the nasty values (or --no-nasty)")

    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            os.remove(args.out + suffix)
        except FileNotFoundError:
            pass

    rng = random.Random(args.seed)
    db = sqlite3.connect(args.out, isolation_level=None)
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    db.execute(
        "CREATE TABLE readings(system_id INTEGER NOT NULL, inverter_time INTEGER NOT NULL, "
        + ", ".join(f"{c} REAL" for c in COLUMNS)
        + ", PRIMARY KEY (system_id, inverter_time))"
    )
    db.execute(
        "CREATE TABLE point_info(system_id INTEGER NOT NULL, point_id INTEGER NOT NULL, "
        "column_name TEXT NOT NULL, unit TEXT, PRIMARY KEY (system_id, column_name))"
    )
    db.execute(
        "CREATE TABLE readings_agg_5m(system_id INTEGER, bucket INTEGER, column_name TEXT, "
        "min REAL, max REAL, avg REAL, last REAL, count INTEGER)"
    )

    insert = ("INSERT INTO readings VALUES (" + ", ".join("?" * (2 + len(COLUMNS))) + ")")
    db.execute("BEGIN")
    for system_id in range(1, args.systems + 1):
        mapped = choose_columns(rng, system_id)
        db.executemany(
            "INSERT INTO point_info VALUES (?, ?, ?, ?)",
            [(system_id, system_id * 100 + COLUMNS.index(c) + 1, c, unit(c)) for c in mapped],
        )
        rows = system_rows(rng, system_id, args.rows, mapped)
        if nasty and system_id == 1:
            rows = list(rows)
            grid, soc, load = (COLUMNS.index(c) + 2 for c in ("grid_w", "battery_soc", "load_kwh"))
            for i, v in zip(NASTY_GRID_ROWS, NASTY_GRID_W):
                rows[i][grid] = v
            rows[NASTY_SOC_ROW][soc] = "NaN"  # stays TEXT in the REAL column
            for i, v in NASTY_LOAD_KWH.items():
                rows[i][load] = v
            rows[ALL_NULL_ROW][2:] = [None] * len(COLUMNS)
        db.executemany(insert, rows)

    # The 5-minute aggregates, column by column, of the values of mapped columns only.
    for c in COLUMNS:
        db.execute(f"""
            INSERT INTO readings_agg_5m
            SELECT system_id, bucket, '{c}', min(v), max(v), avg(v),
                   max(CASE WHEN rn = 1 THEN v END), count(v)
            FROM (SELECT r.system_id, r.inverter_time - r.inverter_time % 300 AS bucket, r.{c} AS v,
                         row_number() OVER (PARTITION BY r.system_id, r.inverter_time - r.inverter_time % 300
                                            ORDER BY r.inverter_time DESC) AS rn
                  FROM readings r JOIN point_info p ON p.system_id = r.system_id AND p.column_name = '{c}'
                  WHERE r.{c} IS NOT NULL)
            GROUP BY system_id, bucket""")
    db.execute("COMMIT")

    wide = db.execute("SELECT count(*) FROM readings").fetchone()[0]
    points = db.execute(
        "SELECT count(*) FROM point_info p JOIN readings r ON r.system_id = p.system_id WHERE "
        + " OR ".join(f"(p.column_name = '{c}' AND r.{c} IS NOT NULL)" for c in COLUMNS)
    ).fetchone()[0]
    agg = db.execute("SELECT count(*) FROM readings_agg_5m").fetchone()[0]
    db.close()
    print(f"{args.out}: {args.systems} systems, {wide} wide rows, {points} expected point rows, "
          f"{agg} 5-minute aggregate rows{'' if nasty else ' (no nasty values)'}")


if __name__ == "__main__":
    main()
