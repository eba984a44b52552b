#!/usr/bin/env python3
"""Writes an Apache IoTDB CSV export byte for byte as IoTDB's exporter would print it
(`export-csv -datatype true -linesPerFile N` of v1.3.0, the same bytes as `export-data -ft csv
-dt true -lpf N` of 1.3.x) for examples/iotdb-to-postgres.toml (migration 2 of the seeds):
several devices of a factory, measurements of every basic IoTDB type, nulls, hostile TEXT,
JSON configuration TEXT (one not valid JSON), INT64 values above 2^53, NaN and infinities.

    python3 examples/data/make-iotdb-export.py [DIR] [ROWS]      (default examples/data/iotdb, 3000)

How IoTDB prints (see crates/cli/tests/data/iotdb/README.md for the files and lines):
- Apache Commons CSV with escape \\ and QuoteMode.NONE: `,` `\\` CR LF written `\\,` `\\\\`
  `\\r` `\\n`, nothing else escaped or quoted, every record one line ending in CRLF;
- a TEXT value gets one `"` before and one after, inner quotes untouched, unless it starts
  with `root.`; numbers are Java's Float.toString / Double.toString (`1.0E300`, `-0.0`,
  `NaN`, `-Infinity`), here as the shortest round-trip digits, which OpenJDK 17 prints the
  same for every value this script writes (checked; it prints more digits for some others,
  such as 4.9E-324); NULL is an empty cell;
- times are ISO-8601 with the zone's offset and 3 fraction digits (`-tf default`, ms); the
  row at time 0 is printed without its Time cell (every value one column left), a bug of
  v0.13-v1.3.3 and the 2.0.x tree export;
- split into files of N rows, each with the header, plus a header-only file when the rows
  are an exact multiple of N (1.x).

Besides dump0_*.csv it writes, for tests, `truth.csv` -- every point as
examples/iotdb-to-postgres.toml should store it in telemetry_data (CSV for COPY) -- and
`truth_rejects.txt`, the `file:line` of each line or value the migration must reject: the
time-0 row, a config that is not JSON, a number edited into `twelve`, a time edited into
`not-a-time`.
"""

import datetime as dt
import json
import math
import os
import random
import struct
import sys
from decimal import Decimal

PREFIX = "root.factory."
DEVICES = ["plant1.pump1", "plant1.pump2", "plant1.`pump.3`", "plant2.tank7"]
MEASUREMENTS = [
    ("pressure", "DOUBLE"),
    ("flow", "FLOAT"),
    ("running", "BOOLEAN"),
    ("cycles", "INT64"),
    ("alarms", "INT32"),
    ("status", "TEXT"),
    ("config", "TEXT"),
]
TZ = dt.timezone(dt.timedelta(hours=8))
START = dt.datetime(2025, 6, 1, 8, 0, 0, tzinfo=TZ)
BIG = 2**53
# TEXT values that break readers which take IoTDB's export for RFC 4180.
STATUSES = [
    "RUNNING", "IDLE", 'ALARM: "overload", E-17', 'end quote"', '"', '""', 'say "hi", bye\nnext',
    'x",y', '",', "a\\b, c", "back\\\\slash\\", "lit\\nNL", "two\nlines", "cr\rx", "crlf\r\nx",
    "tab\there", "ünïcødé 🚀", "", '{"json": "in text", "a": [1, 2]}', "root.not.a.device",
    '"quoted"', "\\",
]


# ---- Java's number spelling ----

def java_digits(x, digits):
    """Java's Double/Float.toString layout of the decimal `digits` (shortest round trip)."""
    sign, ds, exp = Decimal(digits).as_tuple()
    ds = "".join(map(str, ds)).rstrip("0") or "0"
    e = len("".join(map(str, Decimal(digits).as_tuple()[1]))) + exp - 1
    minus = "-" if sign else ""
    if -3 <= e < 7:
        whole = ds[: e + 1] if e >= 0 else "0"
        whole = whole.ljust(e + 1, "0") if e >= 0 else whole
        frac = ds[e + 1:] if e >= 0 else "0" * (-e - 1) + ds
        return f"{minus}{whole}.{frac or '0'}"
    return f"{minus}{ds[0]}.{ds[1:] or '0'}E{e}"


def java_special(x):
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "-0.0" if math.copysign(1, x) < 0 else "0.0"
    return None


def java_double(x):
    """Double.toString(x)."""
    return java_special(x) or java_digits(x, repr(x))


def to_f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def java_float(x):
    """Float.toString of the 32-bit float x (given widened to a double)."""
    special = java_special(x)
    if special:
        return special
    for p in range(1, 10):
        s = "%.*e" % (p - 1, x)
        if to_f32(float(s)) == x:
            return java_digits(x, s)
    return java_digits(x, "%.8e" % x)


# ---- Commons CSV printing ----

def escaped(cell):
    """A cell as Commons CSV prints it with escape \\ and QuoteMode.NONE."""
    return (cell.replace("\\", "\\\\").replace(",", "\\,")
            .replace("\r", "\\r").replace("\n", "\\n"))


def record(cells):
    return ",".join(escaped(c) for c in cells) + "\r\n"


def text_cell(v):
    """A TEXT value as IoTDB hands it to the printer."""
    return v if v.startswith("root.") else '"' + v + '"'


def csv_field(v):
    """A field of truth.csv (PostgreSQL CSV: NULL is an unquoted empty field)."""
    if v is None:
        return ""
    return '"' + str(v).replace('"', '""') + '"'


def device_name(d):
    return d.replace("`", "")


# ---- the rows ----

def value(rnd, i, m, typ):
    """(cell text, truth point columns num, txt, boo, js) of one value."""
    if typ == "DOUBLE":
        v = rnd.choice([round(rnd.uniform(0, 10), 3)] * 8
                       + [float("nan"), float("inf"), float("-inf"), -0.0, 1e300, 0.1 + 0.2])
        return java_double(v), (repr(v), None, None, None)
    if typ == "FLOAT":
        v = to_f32(round(rnd.uniform(0, 100), 2))
        return java_float(v), (repr(v), None, None, None)
    if typ == "BOOLEAN":
        v = rnd.random() < 0.5
        return ("true" if v else "false"), (None, None, "t" if v else "f", None)
    if typ == "INT64":
        v = BIG - 5 + i if rnd.random() < 0.3 else i * 3
        big = abs(v) > BIG
        return str(v), (None if big else repr(float(v)), str(v) if big else None, None, None)
    if typ == "INT32":
        v = rnd.randint(-2**31, 2**31 - 1)
        return str(v), (repr(float(v)), None, None, None)
    if m == "status":
        v = rnd.choice(STATUSES)
        return text_cell(v), (None, v, None, None)
    v = json.dumps({"setpoint": round(rnd.uniform(1, 5), 1), "mode": rnd.choice(["auto", "manual"]),
                    "note": rnd.choice(['a "quoted", word', "back\\slash", "line\nbreak", ""])})
    return text_cell(v), (None, None, None, v)


def rows(n):
    """[(cells, truth points)] for n rows, 250 ms apart."""
    rnd = random.Random(7)
    out = []
    for i in range(n):
        t = START + dt.timedelta(milliseconds=250 * i)
        utc = t.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f+00")
        cells, points = [t.isoformat(timespec="milliseconds")], []
        for d in DEVICES:
            for m, typ in MEASUREMENTS:
                if rnd.random() < 0.1:
                    cells.append("")  # NULL: no point
                    continue
                cell, (num, txt, boo, js) = value(rnd, i, m, typ)
                cells.append(cell)
                points.append((device_name(d), utc, m, num, txt, boo, js))
        out.append((cells, points))
    return out


def break_some(lines):
    """Lines the migration must reject (indexes into `lines`): a config that is not JSON (the
    plan's ::jsonb rejects it), a number edited into `twelve` (that value alone), a time edited
    into `not-a-time` (the line); and the first row, put at time 0, printed without its Time
    cell."""
    n = len(lines)
    cfg = 1 + [m for m, _ in MEASUREMENTS].index("config")  # the first device's config cell
    first = device_name(DEVICES[0])
    cells, points = lines[n // 3]
    cells[cfg] = text_cell("{not json")
    lines[n // 3] = (cells, [p for p in points if not (p[0] == first and p[2] == "config")])
    cells, points = lines[n // 2 + 10]
    cells[1] = "twelve"
    lines[n // 2 + 10] = (cells, [p for p in points if not (p[0] == first and p[2] == "pressure")])
    cells, _ = lines[n // 2 + 20]
    lines[n // 2 + 20] = (["not-a-time"] + cells[1:], [])
    # The first row is at time 0 (IoTDB orders rows by time): no Time cell, so it is one
    # cell short and its values sit one column left.
    lines[0] = (["1.5"] + ["" for _ in range(len(DEVICES) * len(MEASUREMENTS) - 1)], [])
    return [0, n // 3, n // 2 + 10, n // 2 + 20]


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "examples/data/iotdb"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
    os.makedirs(out_dir, exist_ok=True)
    header = ["Time"] + [f"{PREFIX}{d}.{m}({t})" for d in DEVICES for (m, t) in MEASUREMENTS]
    lines = rows(n)
    rejects = break_some(lines)
    # -linesPerFile: three files, and (an exact multiple) the header-only file 1.x adds.
    per = -(-len(lines) // 3)
    where, truth = {}, []
    files = len(lines) // per + 1
    for f in range(files):
        name = f"dump0_{f}.csv"
        chunk = lines[f * per:(f + 1) * per]
        with open(os.path.join(out_dir, name), "w", encoding="utf-8", newline="") as out:
            out.write(record(header))
            for j, (cells, points) in enumerate(chunk):
                out.write(record(cells))
                where[f * per + j] = (name, j + 2)
                truth.extend(",".join(csv_field(v) for v in p) for p in points)
    with open(os.path.join(out_dir, "truth.csv"), "w", encoding="utf-8", newline="\n") as out:
        out.write("\n".join(truth) + "\n")
    with open(os.path.join(out_dir, "truth_rejects.txt"), "w", encoding="utf-8") as out:
        for r in sorted(rejects):
            out.write("%s:%d\n" % where[r])
    print(f"{len(lines)} lines, {len(truth)} points, {len(rejects)} to reject, "
          f"in {out_dir}/dump0_0..{files - 1}.csv")


if __name__ == "__main__":
    main()
