#!/usr/bin/env python3
"""Writes an Apache IoTDB CSV export, as `export-data -ft csv -linesPerFile N` would, for
examples/iotdb-to-postgres.toml (migration 2 of the seeds): several devices of a factory,
measurements of every IoTDB type, nulls, TEXT with commas, quotes, backslashes and newlines,
a JSON configuration TEXT (one of them not valid JSON), INT64 values above 2^53, NaN and
infinities — aligned by time, typed header, ISO-8601 times with an offset, split into three
files (each with the header, as IoTDB writes them) — plus three malformed lines.

    python3 examples/data/make-iotdb-export.py [DIR] [ROWS]      (default examples/data/iotdb, 3000)

Besides dump0_0.csv … dump0_2.csv it writes, for tests, `truth.csv` — every valid point as
examples/iotdb-to-postgres.toml should store it in telemetry_data (CSV for COPY) — and
`truth_rejects.txt`, the `file:line` of each line the migration must reject.
"""

import datetime as dt
import json
import math
import os
import random
import sys

DIR = sys.argv[1] if len(sys.argv) > 1 else "examples/data/iotdb"
ROWS = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
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


def device_name(d):
    return d.replace("`", "")


def iotdb_text(s):
    """A TEXT value as IoTDB exports it: quoted, with \\ and \" escaped."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def csv_field(v):
    """A field of truth.csv (PostgreSQL CSV: NULL is an unquoted empty field)."""
    if v is None:
        return ""
    s = str(v)
    return '"' + s.replace('"', '""') + '"'


def float_text(x):
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    return repr(x)


def main():
    os.makedirs(DIR, exist_ok=True)
    rnd = random.Random(7)
    header = "Time," + ",".join(
        f"{PREFIX}{d}.{m}({t})" for d in DEVICES for (m, t) in MEASUREMENTS
    )
    lines = []  # (text, points) per data line; points = list of truth rows
    statuses = ["RUNNING", "IDLE", 'ALARM: "overload", E-17', "a\\b, c", "two\nlines", "ünïcødé 🚀", ""]
    for i in range(ROWS):
        t = START + dt.timedelta(milliseconds=250 * i)
        iso = t.isoformat(timespec="milliseconds")
        utc = t.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f+00")
        fields = [iso]
        points = []
        for d in DEVICES:
            for m, typ in MEASUREMENTS:
                if rnd.random() < 0.1:
                    fields.append("")  # null: no point
                    continue
                num = txt = boo = js = None
                if typ == "DOUBLE":
                    v = rnd.choice([round(rnd.uniform(0, 10), 3)] * 8 + [float("nan"), float("inf"), -0.0, 1e300])
                    fields.append(float_text(v))
                    num = float_text(v)
                elif typ == "FLOAT":
                    v = round(rnd.uniform(0, 100), 2)
                    fields.append(float_text(v))
                    num = float_text(v)
                elif typ == "BOOLEAN":
                    v = rnd.random() < 0.5
                    fields.append("true" if v else "false")
                    boo = "t" if v else "f"
                elif typ == "INT64":
                    v = BIG - 5 + i if rnd.random() < 0.3 else i * 3
                    fields.append(str(v))
                    if abs(v) <= BIG:
                        num = float_text(float(v))
                    else:
                        txt = str(v)
                elif typ == "INT32":
                    v = rnd.randint(-2**31, 2**31 - 1)
                    fields.append(str(v))
                    num = float_text(float(v))
                elif m == "status":
                    v = rnd.choice(statuses)
                    fields.append(iotdb_text(v))
                    txt = v
                else:  # config: JSON in a TEXT series
                    v = json.dumps({"setpoint": round(rnd.uniform(1, 5), 1), "mode": rnd.choice(["auto", "manual"])})
                    fields.append(iotdb_text(v))
                    js = v
                points.append((device_name(d), utc, m, num, txt, boo, js))
        lines.append((fields, points))
    # One config value that is not JSON (rejected by the plan's ::jsonb), and three malformed
    # lines (too few fields, a bad number, a bad time).
    bad_json_row = ROWS // 3
    rejects = []
    cells, points = lines[bad_json_row]
    cfg = 1 + [m for m, _ in MEASUREMENTS].index("config")  # the first device's config field
    cells[cfg] = iotdb_text("{not json")
    points = [p for p in points if not (p[0] == device_name(DEVICES[0]) and p[2] == "config")]
    lines[bad_json_row] = (cells, points)
    rejects.append(bad_json_row)
    for k in range(3):
        at = ROWS // 2 + k * 10
        cells, points = lines[at]
        if k == 0:  # too few fields: the line is rejected
            cells, points = ["2025-06-01T09:00:00.000+08:00", "1.5"], []
        elif k == 1:  # a bad value rejects that value; the line's other points stay
            cells = [cells[0], "twelve"] + cells[2:]
            points = [p for p in points if not (p[0] == device_name(DEVICES[0]) and p[2] == "pressure")]
        else:  # a bad time: the line is rejected
            cells, points = ["not-a-time"] + cells[1:], []
        lines[at] = (cells, points)
        rejects.append(at)
    # Split into three files of about equal lines, each with the header.
    per = (len(lines) + 2) // 3
    where = {}
    truth = []
    for f in range(3):
        name = f"dump0_{f}.csv"
        chunk = lines[f * per:(f + 1) * per]
        with open(os.path.join(DIR, name), "w", encoding="utf-8", newline="\n") as out:
            out.write(header + "\n")
            line_no = 2
            for j, (cells, points) in enumerate(chunk):
                text = ",".join(cells)
                where[f * per + j] = (name, line_no)
                out.write(text + "\n")
                line_no += 1 + text.count("\n")
                for p in points:
                    truth.append(",".join(csv_field(v) for v in p))
    with open(os.path.join(DIR, "truth.csv"), "w", encoding="utf-8", newline="\n") as out:
        out.write("\n".join(truth) + "\n")
    with open(os.path.join(DIR, "truth_rejects.txt"), "w", encoding="utf-8") as out:
        for r in sorted(rejects):
            out.write("%s:%d\n" % where[r])
    print(f"{len(lines)} lines, {len(truth)} points, {len(rejects)} to reject, in {DIR}/dump0_0..2.csv")


main()
