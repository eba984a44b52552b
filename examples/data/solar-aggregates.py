#!/usr/bin/env python3
"""The reference 5-minute aggregates of narrow point readings, independent of tsmigrate.

    python3 examples/data/solar-aggregates.py EXPECTED.db

reads EXPECTED.db's point_readings(system_id, point_id, measurement_time in ms, value) — as
examples/data/solar-unpivot.sql makes it — and writes point_readings_agg_5m(system_id,
point_id, measurement_time, min, max, avg, last, count) next to it: one row per system,
point and 5-minute bucket (measurement_time = the bucket's start), with the semantics
docs/plan.md gives for [streams.aggregate]:

  - min/max order NaN above every number (max is NaN when any value is, min when all are);
  - avg is the exact sum (fractions.Fraction) rounded once to a double, divided by count;
    any NaN or +inf with -inf gives NaN, otherwise an infinity gives that infinity;
  - last is the value at the latest time of the bucket; count counts the values.

NaN is written as the text 'NaN', as tsmigrate's SQLite target stores it (SQLite would store
a NaN double as NULL). Used by the tests (crates/cli/tests/sqlite.rs) as the expected output.
"""
import math
import sqlite3
import sys
from fractions import Fraction

BUCKET_MS = 300_000


def as_float(v):
    return float("nan") if v == "NaN" else float(v)


def aggregate(values):
    """values: [(time, value)] in the order read."""
    xs = [v for _, v in values]
    nums = [x for x in xs if not math.isnan(x)]
    mn = min(nums) if nums else float("nan")
    mx = float("nan") if len(nums) < len(xs) else max(nums)
    if len(nums) < len(xs) or (math.inf in xs and -math.inf in xs):
        total = float("nan")
    elif math.inf in xs:
        total = math.inf
    elif -math.inf in xs:
        total = -math.inf
    else:
        exact = sum((Fraction(x) for x in xs), Fraction(0))
        try:
            total = float(exact)
        except OverflowError:
            total = math.copysign(math.inf, exact)
    avg = total / len(xs)
    last = max(values, key=lambda tv: tv[0])[1]  # times within a series are unique
    return mn, mx, avg, last, len(xs)


def stored(x):
    return "NaN" if isinstance(x, float) and math.isnan(x) else x


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    db = sqlite3.connect(sys.argv[1])
    groups = {}
    for system_id, point_id, t, v in db.execute(
        "SELECT system_id, point_id, measurement_time, value FROM point_readings ORDER BY rowid"
    ):
        bucket = t - t % BUCKET_MS
        groups.setdefault((system_id, point_id, bucket), []).append((t, as_float(v)))
    db.execute("DROP TABLE IF EXISTS point_readings_agg_5m")
    db.execute(
        "CREATE TABLE point_readings_agg_5m(system_id BIGINT, point_id BIGINT, "
        "measurement_time BIGINT, min DOUBLE, max DOUBLE, avg DOUBLE, last DOUBLE, count BIGINT)"
    )
    db.executemany(
        "INSERT INTO point_readings_agg_5m VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            (*key, *(stored(x) for x in aggregate(values)))
            for key, values in groups.items()
        ),
    )
    db.commit()
    print(f"{len(groups)} aggregate rows")


if __name__ == "__main__":
    main()
