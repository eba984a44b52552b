#!/usr/bin/env python3
"""An independent reader of Apache IoTDB CSV exports, written to follow IoTDB's own IMPORT
tool, for the differential test in crates/cli/tests/iotdb.rs: tsmigrate's points must equal
this reader's.

    import_reader.py PRECISION [--schema timeseries.json] FILE...   -> JSON lines on stdout

It follows, per the fact sheet of the IoTDB export/import tools (releases v0.13.4-v2.0.5):
- the parse format of every release (v1.3.0 ImportCsv.java L776-785, v1.3.4
  AbstractDataTool.java L1326-1335, v2.0.5 AbstractDataTool.java L833-841): Commons CSV
  DEFAULT with quote char ` (backtick), escape \\, ignoreEmptyLines, header = first record.
  The lexer is Commons CSV 1.10.0 Lexer.java (nextToken L221-303, parseEncapsulatedToken
  L326-381, parseSimpleToken L405-447, readEscape L485-515), re-implemented below;
- the header: `Time` first (BOM stripped from it, v1.3.0 ImportCsv.java L1002-1009),
  `Device` second for ALIGN BY DEVICE, a type from the `(?<=\\()\\S+(?=\\))` group and the
  path as the header minus `(TYPE)` and all whitespace (v1.3.0 L798-834);
- types from the header, else from the server (`show timeseries`, v1.x) -- here a JSON file
  {path: type} standing in for it;
- typeTrans (v1.3.0 L967-970, v1.3.4 L741-745, v2.0.5 L374-378): TEXT/STRING lose one
  leading and one trailing `"` when both are there, nothing else; BOOLEAN true/false in any
  case; INT32/INT64 Integer/Long.parseX; FLOAT Float.parseFloat (the nearest 32-bit float);
  DOUBLE Double.parseDouble; TIMESTAMP Long.parseLong; DATE LocalDate.parse; BLOB 0x + hex;
- the Time cell: Long.parseLong, else an ISO-8601 time with an offset, in the precision
  given (the importer's -tp).

Where IoTDB's importer would throw and stop (a row shorter than the header:
CSVRecord.get(name) raises; a lone `"` TEXT: StringIndexOutOfBoundsException; a DATE
written as 20240528, which the 1.3.2/1.3.3/2.0.x exporters print but LocalDate.parse
refuses), this reader reports the line as failed, or, for the DATE, reads it as the date it
is. A row longer than the header is failed too (the importer would read its first fields).
A value that typeTrans cannot read fails that value alone, where the importer fails its
whole line: tsmigrate keeps a line's other values, and so the two readings compare.
The device of a point is its path's nodes joined by dots, back-quotes removed, as tsmigrate
names it.

Output, one JSON object per line: {"file", "line", "device", "measurement", "time", "type",
"value"} per point, value canonical: "bool:true", "int:-5", "double:NaN" or
"double:<IEEE-754 bits as 16 hex digits>", "text:<string>" (DATE as YYYY-MM-DD, BLOB as 0x
and lowercase hex); {"file", "line", "failed"} per failed line, with "measurement" too for a
failed value.
"""

import datetime as dt
import json
import os
import re
import struct
import sys
from decimal import Decimal
from fractions import Fraction

# ---- Commons CSV 1.10.0 Lexer with quote ` and escape \ (fact sheet section 9.3) ----

ESC = {'r': '\r', 'n': '\n', 't': '\t', 'b': '\b', 'f': '\f'}
META = {'\r', '\n', '\f', '\t', '\b', '\\', '`'}


def lex(s):
    """Records of `s` as (first line number, [fields]); raises ValueError as the lexer does."""
    recs, rec, i, n = [], [], 0, len(s)
    line, rec_line = 1, 1

    def eol(j):
        if j < n and s[j] == '\r':
            return j + 2 if j + 1 < n and s[j + 1] == '\n' else j + 1
        if j < n and s[j] == '\n':
            return j + 1
        return None

    def esc(j):
        if j + 1 >= n:
            raise ValueError('EOF in escape')
        c = s[j + 1]
        if c == ',':
            return ',', j + 2
        if c in ESC:
            return ESC[c], j + 2
        if c in META:
            return c, j + 2
        return '\\' + c, j + 2

    line_start = True
    while i < n:
        if line_start and not rec and eol(i) is not None:
            i = eol(i)
            line += 1
            continue
        if not rec:
            rec_line = line
        line_start, buf = False, []
        if s[i] == '`':
            i += 1
            while True:
                if i >= n:
                    raise ValueError('EOF in quoted token')
                if s[i] == '\\':
                    t, i = esc(i)
                    buf.append(t)
                elif s[i] == '`':
                    if i + 1 < n and s[i + 1] == '`':
                        buf.append('`')
                        i += 2
                        continue
                    i += 1
                    while i < n and s[i] not in ',\r\n':
                        if not s[i].isspace():
                            raise ValueError('invalid char between encapsulated token and delimiter')
                        i += 1
                    break
                else:
                    if s[i] == '\n':
                        line += 1
                    buf.append(s[i])
                    i += 1
        else:
            while i < n and s[i] not in ',\r\n':
                if s[i] == '\\':
                    t, i = esc(i)
                    buf.append(t)
                else:
                    buf.append(s[i])
                    i += 1
        rec.append(''.join(buf))
        if i >= n:
            recs.append((rec_line, rec))
            rec = []
            break
        if s[i] == ',':
            i += 1
            if i >= n:
                rec.append('')
                recs.append((rec_line, rec))
                rec = []
            continue
        i = eol(i)
        line += 1
        recs.append((rec_line, rec))
        rec = []
        line_start = True
    return recs


# ---- header ----

TYPE_RE = re.compile(r'(?<=\()\S+(?=\))')
TYPES = {'BOOLEAN', 'INT32', 'INT64', 'FLOAT', 'DOUBLE', 'TEXT', 'STRING', 'BLOB', 'TIMESTAMP', 'DATE'}


def header_column(name):
    """(path, type or None) as the importer reads a header cell."""
    m = TYPE_RE.search(name)
    if m is None:
        return re.sub(r'\s', '', name), None
    typ = m.group(0)
    path = name.replace('(' + typ + ')', '')
    return re.sub(r'\s', '', path), (typ if typ in TYPES else None)


def nodes(path):
    """A path's nodes, split at dots outside back-quotes (PathUtils.splitPathToDetachedNodes)."""
    out, cur, quoted, i = [], [], False, 0
    while i < len(path):
        c = path[i]
        if c == '`':
            if quoted and i + 1 < len(path) and path[i + 1] == '`':
                cur.append('`')
                i += 2
                continue
            quoted = not quoted
        elif c == '.' and not quoted:
            out.append(''.join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    out.append(''.join(cur))
    return out


# ---- typeTrans ----

JAVA_NUM = re.compile(r'[+-]?(NaN|Infinity|(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)')


class Failed(Exception):
    pass


def java_float_text(s):
    if not JAVA_NUM.fullmatch(s):
        raise Failed('NumberFormatException: %r' % s)
    body = s.lstrip('+-')
    if body == 'NaN':
        return float('nan')
    if body == 'Infinity':
        return float('-inf') if s.startswith('-') else float('inf')
    return None


def parse_double(s):
    special = java_float_text(s)
    return special if special is not None else float(s)


def f32(x):
    return struct.unpack('<f', struct.pack('<f', x))[0]


def f32_candidates(c):
    """`c` and the 32-bit floats either side of it in magnitude (finite ones only)."""
    bits = struct.unpack('<I', struct.pack('<f', c))[0]
    sign, mag = bits & 0x80000000, bits & 0x7FFFFFFF
    for m in (mag - 1, mag, mag + 1):
        if 0 <= m <= 0x7F7FFFFF:
            yield struct.unpack('<f', struct.pack('<I', sign | m))[0], m % 2 == 0


def parse_float(s):
    """Float.parseFloat: the 32-bit float nearest the decimal (ties to even), exactly."""
    special = java_float_text(s)
    if special is not None:
        return special
    exact = Fraction(Decimal(s))
    try:
        c = f32(float(s))
    except OverflowError:
        return float('-inf') if exact < 0 else float('inf')
    if c in (float('inf'), float('-inf')):
        return c
    best = None
    for cand, even in f32_candidates(c):
        d = abs(Fraction(cand) - exact)
        if best is None or d < best[0] or (d == best[0] and even):
            best = (d, cand)
    if exact < 0 and best[1] == 0:
        return -0.0
    return best[1]


def parse_int(s, bits):
    if not re.fullmatch(r'[+-]?\d+', s):
        raise Failed('NumberFormatException: %r' % s)
    v = int(s)
    if not -(1 << (bits - 1)) <= v < (1 << (bits - 1)):
        raise Failed('NumberFormatException (range): %r' % s)
    return v


def parse_date(s):
    m = re.fullmatch(r'(\d{4})-(\d{2})-(\d{2})', s)
    if m:
        y, mo, d = map(int, m.groups())
    elif re.fullmatch(r'\d+', s):  # 20240528: what the 1.3.2/1.3.3/2.0.x exporters print
        v = int(s)
        y, mo, d = v // 10000, v // 100 % 100, v % 100
    else:
        raise Failed('DateTimeParseException: %r' % s)
    try:
        return dt.date(y, mo, d).isoformat()
    except ValueError:
        raise Failed('DateTimeParseException: %r' % s)


def type_trans(value, typ):
    if typ in ('TEXT', 'STRING'):
        if value.startswith('"') and value.endswith('"'):
            if len(value) == 1:
                raise Failed('StringIndexOutOfBoundsException: a lone "')
            return 'text:' + value[1:-1]
        return 'text:' + value
    if typ == 'BOOLEAN':
        if value.lower() not in ('true', 'false'):
            raise Failed('not a boolean: %r' % value)
        return 'bool:' + value.lower()
    if typ == 'INT32':
        return 'int:%d' % parse_int(value, 32)
    if typ in ('INT64', 'TIMESTAMP'):
        return 'int:%d' % parse_int(value, 64)
    if typ in ('FLOAT', 'DOUBLE'):
        x = parse_float(value) if typ == 'FLOAT' else parse_double(value)
        if x != x:
            return 'double:NaN'
        return 'double:%016x' % struct.unpack('<Q', struct.pack('<d', x))[0]
    if typ == 'DATE':
        return 'text:' + parse_date(value)
    if typ == 'BLOB':
        h = value.replace('0x', '', 1)
        try:
            return 'text:0x' + bytes.fromhex(h).hex()
        except ValueError:
            raise Failed('not hex: %r' % value)
    raise Failed('no type for the column')


# ---- time ----

ISO_RE = re.compile(
    r'(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})'
    r'(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2}(?::\d{2})?)(?:\.(\d{1,9}))?')
PER_SECOND = {'ms': 10 ** 3, 'us': 10 ** 6, 'ns': 10 ** 9}


def parse_time(s, precision):
    if re.fullmatch(r'-?\d+', s):
        return int(s)
    m = ISO_RE.fullmatch(s)
    if not m or (m.group(7) and m.group(9)):
        raise Failed('not a time: %r' % s)
    y, mo, d, h, mi, sec = (int(g) for g in m.groups()[:6])
    frac = m.group(7) or m.group(9) or ''
    off = m.group(8)
    if off == 'Z':
        offset = 0
    else:
        parts = [int(p) for p in off[1:].split(':')]
        offset = parts[0] * 3600 + parts[1] * 60 + (parts[2] if len(parts) > 2 else 0)
        offset = -offset if off[0] == '-' else offset
    base = dt.datetime(y, mo, d, h, mi, sec, tzinfo=dt.timezone.utc)
    secs = (base - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)) // dt.timedelta(seconds=1) - offset
    nanos = int(frac.ljust(9, '0')) if frac else 0
    per = PER_SECOND[precision]
    if nanos % (10 ** 9 // per):
        raise Failed('finer than %s: %r' % (precision, s))
    return secs * per + nanos // (10 ** 9 // per)


# ---- one file ----

def read_file(path, precision, schema, out):
    name = os.path.basename(path)
    with open(path, encoding='utf-8', newline='') as f:
        text = f.read()
    recs = lex(text)
    if not recs:
        return
    header = recs[0][1]
    header[0] = header[0].lstrip('\ufeff')
    if header[0].lower() != 'time':
        raise SystemExit('%s: the first field of header must be Time' % path)
    by_device = len(header) > 1 and header[1].lower() == 'device'
    first = 2 if by_device else 1
    cols = [header_column(h) for h in header[first:]]
    typed = any(t for _, t in cols)
    for line, rec in recs[1:]:
        try:
            if len(rec) != len(header):
                raise Failed('%d values where the header has %d' % (len(rec), len(header)))
            time = parse_time(rec[0], precision)
        except Failed as e:
            out.write(json.dumps({'file': name, 'line': line, 'failed': str(e)}) + '\n')
            continue
        device_path = rec[1] if by_device else None
        for (path_, typ), value in zip(cols, rec[first:]):
            if value == '':
                continue
            full = device_path + '.' + path_ if by_device else path_
            if not typed:
                typ = schema.get(full)
            parts = nodes(full)
            point = {'file': name, 'line': line, 'device': '.'.join(parts[:-1]),
                     'measurement': parts[-1], 'time': time, 'type': typ}
            try:
                point['value'] = type_trans(value, typ)
            except Failed as e:
                point = {'file': name, 'line': line, 'measurement': parts[-1], 'failed': str(e)}
            out.write(json.dumps(point, ensure_ascii=False) + '\n')


def main(argv):
    precision = argv[1]
    schema, files = {}, argv[2:]
    if files[:1] == ['--schema']:
        with open(files[1], encoding='utf-8') as f:
            schema = json.load(f)
        files = files[2:]
    for path in files:
        read_file(path, precision, schema, sys.stdout)


if __name__ == '__main__':
    main(sys.argv)
