use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use crate::column::{Column, ValueRef};
use crate::convert::Lossy;
use crate::plan::{ColumnSpec, StreamFilter};
use crate::types::TimeUnit;

type Col<'a> = (&'a str, Option<&'a str>, Option<&'a str>);

fn stream(columns: &[Col<'_>], allow_lossy: &[&str]) -> StreamSpec {
    StreamSpec {
        name: "telemetry".into(),
        from: None,
        table: None,
        create: false,
        columns: columns
            .iter()
            .map(|(name, ty, expr)| ColumnSpec {
                name: name.to_string(),
                sql_type: ty.map(str::to_string),
                expr: expr.map(str::to_string),
            })
            .collect(),
        filter: StreamFilter::default(),
        rename_keys: BTreeMap::new(),
        limit: None,
        allow_lossy: allow_lossy.iter().map(|s| s.to_string()).collect(),
        write: Default::default(),
        key: Vec::new(),
        unpivot: None,
        pivot: None,
        aggregate: None,
        lookup: BTreeMap::new(),
    }
}

fn column<T: Copy>(dtype: DataType, values: &[Option<T>], push: fn(&mut Column, T)) -> Column {
    let mut c = Column::with_capacity(dtype, values.len());
    for v in values {
        match v {
            Some(x) => push(&mut c, *x),
            None => c.push_null(),
        }
    }
    c
}

fn ints(v: &[Option<i64>]) -> Column {
    column(DataType::Int64, v, Column::push_i64)
}

fn floats(v: &[Option<f64>]) -> Column {
    column(DataType::Float64, v, Column::push_f64)
}

fn bools(v: &[Option<bool>]) -> Column {
    column(DataType::Bool, v, Column::push_bool)
}

fn texts(dtype: DataType, v: &[Option<&str>]) -> Column {
    let mut c = Column::with_capacity(dtype, v.len());
    for s in v {
        match s {
            Some(s) => c.push_str(s),
            None => c.push_null(),
        }
    }
    c
}

fn batch(columns: Vec<(&str, Column)>) -> Batch {
    let schema = Schema::new(
        columns
            .iter()
            .map(|(n, c)| Field::new(*n, c.dtype()))
            .collect(),
    );
    let cols = columns.into_iter().map(|(_, c)| Arc::new(c)).collect();
    match Batch::new(Arc::new(schema), cols) {
        Some(b) => b,
        None => panic!("test batch columns disagree"),
    }
}

fn compile(spec: &StreamSpec, schema: &Schema) -> Mapping {
    match Mapping::compile(spec, schema) {
        Ok(m) => m,
        Err(e) => panic!("compile failed: {e}"),
    }
}

fn run(mapping: &Mapping, input: &Batch, allow: &[Lossy]) -> (Batch, RowErrors, LossyCounts) {
    let mut errors = RowErrors::new();
    let mut lossy = LossyCounts::allowing(allow);
    match mapping.apply(input, &mut errors, &mut lossy) {
        Ok(out) => (out, errors, lossy),
        Err(e) => panic!("apply failed: {e}"),
    }
}

/// Evaluates one expression (target column `x`, no declared type) over `input`.
fn eval_with(expr: &str, input: &Batch, allow: &[Lossy]) -> (Column, RowErrors, LossyCounts) {
    let m = compile(&stream(&[("x", None, Some(expr))], &[]), &input.schema);
    let (out, errors, lossy) = run(&m, input, allow);
    assert_eq!(out.len(), input.len());
    match out.columns.first() {
        Some(c) => ((**c).clone(), errors, lossy),
        None => panic!("no output column"),
    }
}

fn eval(expr: &str, input: &Batch) -> (Column, RowErrors) {
    let (c, e, _) = eval_with(expr, input, &[]);
    (c, e)
}

/// The compile error message for `expr` (optionally with a declared type) over `schema`.
fn compile_error(expr: &str, ty: Option<&str>, schema: &Schema) -> String {
    match Mapping::compile(&stream(&[("x", ty, Some(expr))], &[]), schema) {
        Ok(m) => panic!("`{expr}` compiled: {m:?}"),
        Err(e) => e.to_string(),
    }
}

fn values(c: &Column) -> Vec<ValueRef<'_>> {
    (0..c.len()).map(|i| c.get(i)).collect()
}

fn bool_values(c: &Column) -> Vec<Option<bool>> {
    (0..c.len())
        .map(|i| match c.get(i) {
            ValueRef::Bool(b) => Some(b),
            ValueRef::Null => None,
            other => panic!("not a boolean: {other:?}"),
        })
        .collect()
}

fn rejected(errors: &RowErrors) -> Vec<usize> {
    errors.errors().iter().map(|e| e.row).collect()
}

// ---- the ThingsBoard example ----------------------------------------------------------------

const VALUE: &str = "COALESCE(dbl_v, CASE WHEN long_v BETWEEN -9007199254740992 AND \
     9007199254740992 THEN long_v::float8 END, bool_v::int::float8)";
const TEXT_VALUE: &str = "COALESCE(str_v, json_v::text, CASE WHEN long_v NOT BETWEEN \
     -9007199254740992 AND 9007199254740992 THEN long_v::text END)";
const METADATA: &str = r#"'{"migrated_from":"thingsboard"}'::jsonb"#;

#[derive(Clone, Copy, Default)]
struct Kv {
    ts: i64,
    bool_v: Option<bool>,
    str_v: Option<&'static str>,
    long_v: Option<i64>,
    dbl_v: Option<f64>,
    json_v: Option<&'static str>,
}

fn tb_batch(rows: &[Kv]) -> Batch {
    let mut entity = Column::with_capacity(DataType::Uuid, rows.len());
    let mut key = Column::with_capacity(DataType::Text, rows.len());
    for (i, _) in rows.iter().enumerate() {
        entity.push_uuid([i as u8; 16]);
        key.push_str(if i % 2 == 0 { "temperature" } else { "état" });
    }
    let ts: Vec<_> = rows.iter().map(|r| Some(r.ts)).collect();
    let b: Vec<_> = rows.iter().map(|r| r.bool_v).collect();
    let s: Vec<_> = rows.iter().map(|r| r.str_v).collect();
    let l: Vec<_> = rows.iter().map(|r| r.long_v).collect();
    let d: Vec<_> = rows.iter().map(|r| r.dbl_v).collect();
    let j: Vec<_> = rows.iter().map(|r| r.json_v).collect();
    batch(vec![
        ("entity_id", entity),
        ("key", key),
        ("ts", ints(&ts)),
        ("bool_v", bools(&b)),
        ("str_v", texts(DataType::Text, &s)),
        ("long_v", ints(&l)),
        ("dbl_v", floats(&d)),
        ("json_v", texts(DataType::Json, &j)),
    ])
}

fn tb_schema() -> Schema {
    (*tb_batch(&[]).schema).clone()
}

const TWO_53: i64 = 1 << 53;
const WEIRD: &str = "tab\there\nnew line \"double\" 'single' \\ ünïcødé ✓ 🚀";
const JSON: &str = r#"{"a": [1, "x\ty"], "b": null}"#;

#[test]
fn thingsboard_example_mapping() {
    let spec = stream(
        &[
            ("device_id", Some("uuid"), Some("entity_id")),
            ("key", None, None),
            ("timestamp", Some("timestamptz"), Some("from_epoch_ms(ts)")),
            ("value", Some("double precision"), Some(VALUE)),
            ("text_value", Some("text"), Some(TEXT_VALUE)),
            ("metadata", Some("jsonb"), Some(METADATA)),
        ],
        &[],
    );
    let row = |ts: i64| Kv {
        ts,
        ..Kv::default()
    };
    let rows = [
        Kv {
            dbl_v: Some(1.5),
            ..row(1_700_000_000_000)
        },
        Kv {
            long_v: Some(42),
            ..row(1_700_000_000_001)
        },
        Kv {
            long_v: Some(TWO_53 + 1),
            ..row(1_700_000_000_002)
        },
        Kv {
            long_v: Some(i64::MAX),
            ..row(1_700_000_000_003)
        },
        Kv {
            long_v: Some(i64::MIN),
            ..row(1_700_000_000_004)
        },
        Kv {
            long_v: Some(-TWO_53),
            ..row(-1)
        },
        Kv {
            bool_v: Some(true),
            ..row(0)
        },
        Kv {
            bool_v: Some(false),
            ..row(1)
        },
        Kv {
            str_v: Some(WEIRD),
            ..row(2)
        },
        Kv {
            json_v: Some(JSON),
            ..row(3)
        },
        Kv {
            dbl_v: Some(f64::NAN),
            ..row(4)
        },
        Kv {
            dbl_v: Some(f64::INFINITY),
            ..row(5)
        },
        Kv {
            dbl_v: Some(f64::NEG_INFINITY),
            ..row(6)
        },
        row(7),
        Kv {
            str_v: Some(""),
            ..row(8)
        },
    ];
    let input = tb_batch(&rows);
    let mapping = compile(&spec, &input.schema);

    let expected_schema = Schema::new(vec![
        Field::new("device_id", DataType::Uuid),
        Field::new("key", DataType::Text),
        Field::new("timestamp", DataType::Timestamp(TimeUnit::Micros)),
        Field::new("value", DataType::Float64),
        Field::new("text_value", DataType::Text),
        Field::new("metadata", DataType::Json),
    ]);
    assert_eq!(**mapping.output_schema(), expected_schema);
    assert_eq!(mapping.source_columns().len(), 8);

    let (out, errors, lossy) = run(&mapping, &input, &[]);
    assert!(errors.is_empty(), "{:?}", errors.errors());
    assert_eq!(lossy.count(Lossy::IntToFloat), 0);
    assert_eq!(out.len(), rows.len());

    // Plain column references share the input's columns.
    assert!(Arc::ptr_eq(&out.columns[0], &input.columns[0]));
    assert!(Arc::ptr_eq(&out.columns[1], &input.columns[1]));

    let timestamps: Vec<_> = rows
        .iter()
        .map(|r| ValueRef::Timestamp(r.ts * 1000, TimeUnit::Micros))
        .collect();
    assert_eq!(values(&out.columns[2]), timestamps);

    let value = &out.columns[3];
    let expected_values = [
        Some(1.5),
        Some(42.0),
        None,
        None,
        None,
        Some(-9_007_199_254_740_992.0),
        Some(1.0),
        Some(0.0),
        None,
        None,
        Some(f64::NAN),
        Some(f64::INFINITY),
        Some(f64::NEG_INFINITY),
        None,
        None,
    ];
    for (i, want) in expected_values.iter().enumerate() {
        match (value.get(i), want) {
            (ValueRef::Float(x), Some(w)) if w.is_nan() => assert!(x.is_nan(), "row {i}"),
            (ValueRef::Float(x), Some(w)) => assert_eq!(x, *w, "row {i}"),
            (ValueRef::Null, None) => {}
            (got, _) => panic!("row {i}: value {got:?}, expected {want:?}"),
        }
    }

    let text = |s: &'static str| ValueRef::Str(s);
    assert_eq!(
        values(&out.columns[4]),
        vec![
            ValueRef::Null,
            ValueRef::Null,
            text("9007199254740993"),
            text("9223372036854775807"),
            text("-9223372036854775808"),
            ValueRef::Null,
            ValueRef::Null,
            ValueRef::Null,
            text(WEIRD),
            text(JSON),
            ValueRef::Null,
            ValueRef::Null,
            ValueRef::Null,
            ValueRef::Null,
            text(""),
        ]
    );

    let metadata = &out.columns[5];
    assert_eq!(metadata.dtype(), DataType::Json);
    assert_eq!(metadata.null_count(), 0);
    for i in 0..rows.len() {
        assert_eq!(
            metadata.get(i),
            ValueRef::Str(r#"{"migrated_from":"thingsboard"}"#)
        );
    }
}

#[test]
fn guarded_branches_neither_reject_nor_count() {
    // Without the CASE guard 2^53+1 would be rejected (or counted when allowed).
    let input = tb_batch(&[
        Kv {
            long_v: Some(TWO_53 + 1),
            ..Kv::default()
        },
        Kv {
            long_v: Some(0),
            str_v: Some("abc"),
            dbl_v: Some(2.0),
            ..Kv::default()
        },
    ]);
    let (c, errors, lossy) = eval_with(
        "CASE WHEN long_v < 10 THEN long_v::float8 END",
        &input,
        &[Lossy::IntToFloat],
    );
    assert!(errors.is_empty());
    assert_eq!(lossy.count(Lossy::IntToFloat), 0);
    assert_eq!(values(&c), vec![ValueRef::Null, ValueRef::Float(0.0)]);

    let (c, errors) = eval(
        "CASE WHEN long_v <> 0 THEN 100 / long_v ELSE -1 END",
        &input,
    );
    assert!(errors.is_empty());
    assert_eq!(values(&c), vec![ValueRef::Int(0), ValueRef::Int(-1)]);

    let (c, errors) = eval("coalesce(dbl_v, str_v::float8)", &input);
    assert!(errors.is_empty());
    assert_eq!(values(&c), vec![ValueRef::Null, ValueRef::Float(2.0)]);

    let (c, errors) = eval("long_v = 0 OR 10 / long_v > 0", &input);
    assert!(errors.is_empty());
    assert_eq!(bool_values(&c), vec![Some(false), Some(true)]);
    let (c, errors) = eval("long_v <> 0 AND 10 / long_v > 0", &input);
    assert!(errors.is_empty());
    assert_eq!(bool_values(&c), vec![Some(false), Some(false)]);
}

// ---- compile errors -------------------------------------------------------------------------

#[test]
fn unknown_column_lists_the_source_columns() {
    let schema = tb_schema();
    let err = Mapping::compile(&stream(&[("x", None, Some("lng_v + 1"))], &[]), &schema);
    match err {
        Err(Error::Mapping {
            stream,
            column,
            message,
        }) => {
            assert_eq!(stream, "telemetry");
            assert_eq!(column, "x");
            assert_eq!(
                message,
                "unknown column `lng_v`; the source columns are: entity_id, key, ts, bool_v, \
                 str_v, long_v, dbl_v, json_v"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    let err = match Mapping::compile(&stream(&[("value", None, None)], &[]), &schema) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("compiled"),
    };
    assert!(err.starts_with("stream `telemetry`, column `value`: unknown column `value`"));
    assert!(err.contains("give the column an `expr`"), "{err}");
}

#[test]
fn identifiers_are_case_insensitive_unless_quoted() {
    let input = tb_batch(&[Kv {
        long_v: Some(5),
        ..Kv::default()
    }]);
    assert_eq!(values(&eval("LONG_V", &input).0), vec![ValueRef::Int(5)]);
    assert_eq!(
        values(&eval("\"long_v\"", &input).0),
        vec![ValueRef::Int(5)]
    );
    let err = compile_error("\"LONG_V\"", None, &input.schema);
    assert!(err.contains("unknown column `LONG_V`"), "{err}");
}

#[test]
fn unsupported_syntax_and_bad_types_are_explained() {
    let schema = tb_schema();
    let cases: &[(&str, Option<&str>, &str)] = &[
        (
            "str_v LIKE 'a%'",
            None,
            "is not supported; supported are column names",
        ),
        ("str_v LIKE 'a%'", None, "coalesce, nullif"),
        ("now()", None, "non-deterministic"),
        ("current_timestamp", None, "non-deterministic"),
        ("sum(long_v)", None, "aggregate"),
        ("row_number() OVER ()", None, "window"),
        ("(SELECT 1)", None, "subqueries are not supported"),
        ("long_v IN (SELECT 1)", None, "subqueries are not supported"),
        (
            "frobnicate(long_v)",
            None,
            "unknown function `frobnicate`; supported functions: coalesce",
        ),
        ("t.long_v", None, "qualified names are not supported"),
        ("ts::timestamptz", None, "from_epoch_s/ms/us/ns"),
        ("ts", Some("timestamptz"), "from_epoch_s/ms/us/ns"),
        ("epoch_ms(ts)", None, "needs a timestamp, found int8"),
        ("from_epoch_ms(dbl_v)", None, "to_timestamp"),
        ("long_v::point", None, "unknown type `point`"),
        (
            "long_v",
            Some("point"),
            "unknown type `point`; known types: bool",
        ),
        (
            "CASE WHEN bool_v THEN str_v ELSE long_v END",
            None,
            "text and int8",
        ),
        ("coalesce(str_v, dbl_v)", None, "text and float8"),
        ("long_v + str_v", None, "needs numbers, found text"),
        ("str_v = long_v", None, "cannot compare text with int8"),
        ("json_v = json_v", None, "JSON values cannot be compared"),
        ("long_v AND bool_v", None, "needs a boolean, found int8"),
        ("long_v +", None, "cannot parse `long_v +`"),
        ("long_v long_v", None, "unexpected `long_v`"),
        ("lower(long_v)", None, "lower needs text, found int8"),
        ("9223372036854775808", None, "out of the int8 range"),
        ("1/0", None, "division by zero"),
        ("'abc'::float8", None, "\"abc\" is not a number"),
        ("9223372036854775807 + 1", None, "overflow"),
        ("TRY_CAST(str_v AS int8)", None, "is not supported"),
        ("long_v -> 'a'", None, "not supported"),
    ];
    for (expr, ty, want) in cases {
        let err = compile_error(expr, *ty, &schema);
        assert!(err.contains(want), "`{expr}`: {err}");
        assert!(err.starts_with("stream `telemetry`, column `x`: "), "{err}");
    }
}

#[test]
fn constants_are_computed_and_validated_at_compile_time() {
    let schema = tb_schema();
    let err = compile_error(r#"'{"migrated_from": "thingsboard"'::jsonb"#, None, &schema);
    assert!(err.contains("is not valid JSON"), "{err}");
    let err = compile_error(r#"'{"a": 1'"#, Some("jsonb"), &schema);
    assert!(err.contains("is not valid JSON"), "{err}");
    let err = compile_error("timestamptz 'yesterday'", None, &schema);
    assert!(err.contains("is not a timestamp"), "{err}");
    let err = compile_error("from_epoch_ms(ts) > 'soon'", None, &schema);
    assert!(err.contains("is not a timestamp"), "{err}");

    let spec = stream(
        &[
            ("j", None, Some(r#"jsonb '{"a": [1, 2]}'"#)),
            ("t", None, Some("timestamptz '2025-01-01T00:00:00Z'")),
            ("n", Some("int4"), Some("-2 * 30 + 1")),
            ("f", None, Some("1.5e3")),
            ("min", None, Some("-9223372036854775808")),
            ("nul", Some("float8"), Some("NULL")),
            ("s", None, Some("'it''s'")),
            ("e", None, Some("E'a\\tb'")),
        ],
        &[],
    );
    let m = compile(&spec, &schema);
    // Constants need no source column, and produce one value per input row.
    assert!(m.source_columns().is_empty());
    let input = tb_batch(&[Kv::default(), Kv::default(), Kv::default()]);
    let (out, errors, _) = run(&m, &input, &[]);
    assert!(errors.is_empty());
    assert_eq!(out.len(), 3);
    for i in 0..3 {
        assert_eq!(
            out.row(i),
            vec![
                ValueRef::Str(r#"{"a": [1, 2]}"#),
                ValueRef::Timestamp(1_735_689_600_000_000, TimeUnit::Micros),
                ValueRef::Int(-59),
                ValueRef::Float(1500.0),
                ValueRef::Int(i64::MIN),
                ValueRef::Null,
                ValueRef::Str("it's"),
                ValueRef::Str("a\tb"),
            ]
        );
    }
    let types: Vec<_> = out.schema.fields.iter().map(|f| f.dtype).collect();
    assert_eq!(
        types,
        vec![
            DataType::Json,
            DataType::Timestamp(TimeUnit::Micros),
            DataType::Int32,
            DataType::Float64,
            DataType::Int64,
            DataType::Float64,
            DataType::Text,
            DataType::Text,
        ]
    );
}

// ---- row-level rejections -------------------------------------------------------------------

#[test]
fn failed_casts_reject_rows() {
    let input = batch(vec![(
        "str_v",
        texts(
            DataType::Text,
            &[Some("1.5"), Some("abc"), None, Some(" -2e3 "), Some("NaN")],
        ),
    )]);
    let (c, errors) = eval("str_v::float8", &input);
    assert_eq!(c.get(0), ValueRef::Float(1.5));
    assert_eq!(c.get(1), ValueRef::Null);
    assert_eq!(c.get(2), ValueRef::Null);
    assert_eq!(c.get(3), ValueRef::Float(-2000.0));
    assert!(matches!(c.get(4), ValueRef::Float(x) if x.is_nan()));
    assert_eq!(rejected(&errors), vec![1]);
    let e = &errors.errors()[0];
    assert_eq!(e.column.as_deref(), Some("x"));
    assert_eq!(e.reason, "\"abc\" is not a number");

    // " -2e3 " is a JSON number; NaN is not JSON.
    let (_, errors) = eval("str_v::json", &input);
    assert_eq!(rejected(&errors), vec![1, 4]);
    assert!(errors.errors()[0].reason.contains("is not valid JSON"));
}

#[test]
fn integer_overflow_rejects_rows() {
    let input = batch(vec![(
        "long_v",
        ints(&[Some(1), Some(i64::MAX), Some(i64::MIN), None]),
    )]);
    let (c, errors) = eval("long_v + 1", &input);
    assert_eq!(
        values(&c),
        vec![
            ValueRef::Int(2),
            ValueRef::Null,
            ValueRef::Int(i64::MIN + 1),
            ValueRef::Null
        ]
    );
    assert_eq!(rejected(&errors), vec![1]);
    assert_eq!(
        errors.errors()[0].reason,
        "9223372036854775807 + 1 is out of the int8 range (overflow)"
    );

    let (c, errors) = eval("-long_v", &input);
    assert_eq!(
        values(&c),
        vec![
            ValueRef::Int(-1),
            ValueRef::Int(-i64::MAX),
            ValueRef::Null,
            ValueRef::Null
        ]
    );
    assert_eq!(rejected(&errors), vec![2]);

    let (_, errors) = eval("long_v * 2", &input);
    assert_eq!(rejected(&errors), vec![1, 2]);
    let (_, errors) = eval("abs(long_v)", &input);
    assert_eq!(rejected(&errors), vec![2]);
    let (_, errors) = eval("long_v::int4", &input);
    assert_eq!(rejected(&errors), vec![1, 2]);
}

#[test]
fn division_and_modulo() {
    let input = batch(vec![
        (
            "long_v",
            ints(&[Some(7), Some(-7), Some(0), None, Some(i64::MIN)]),
        ),
        (
            "dbl_v",
            floats(&[Some(0.0), Some(-0.0), Some(2.0), None, Some(f64::NAN)]),
        ),
    ]);
    let int = ValueRef::Int;
    let (c, errors) = eval("long_v / 2", &input);
    assert!(errors.is_empty());
    assert_eq!(
        values(&c),
        vec![int(3), int(-3), int(0), ValueRef::Null, int(i64::MIN / 2)]
    );
    let (c, _) = eval("long_v % 3", &input);
    assert_eq!(
        values(&c),
        vec![int(1), int(-1), int(0), ValueRef::Null, int(i64::MIN % 3)]
    );
    let (c, errors) = eval("100 / long_v", &input);
    assert_eq!(
        values(&c),
        vec![int(14), int(-14), ValueRef::Null, ValueRef::Null, int(0)]
    );
    assert_eq!(rejected(&errors), vec![2]);
    assert_eq!(errors.errors()[0].reason, "division by zero in 100 / 0");
    let (_, errors) = eval("long_v / -1", &input);
    assert_eq!(rejected(&errors), vec![4]);
    let (c, errors) = eval("long_v % -1", &input);
    assert!(errors.is_empty());
    assert_eq!(c.get(4), int(0));

    let (c, errors) = eval("1 / dbl_v", &input);
    assert_eq!(rejected(&errors), vec![0, 1]);
    assert_eq!(c.get(2), ValueRef::Float(0.5));
    assert!(matches!(c.get(4), ValueRef::Float(x) if x.is_nan()));
    let (c, errors) = eval("long_v / 2.0", &input);
    assert!(errors.is_empty());
    assert_eq!(c.get(0), ValueRef::Float(3.5));
    let (_, errors) = eval("dbl_v % 0", &input);
    assert_eq!(rejected(&errors), vec![0, 1, 2]);
}

#[test]
fn int_to_float_is_exact_unless_lossy_is_allowed() {
    let input = batch(vec![(
        "long_v",
        ints(&[Some(TWO_53 + 1), Some(3), Some(TWO_53)]),
    )]);
    let (c, errors, lossy) = eval_with("long_v::float8", &input, &[]);
    assert_eq!(
        values(&c),
        vec![
            ValueRef::Null,
            ValueRef::Float(3.0),
            ValueRef::Float(9_007_199_254_740_992.0)
        ]
    );
    assert_eq!(rejected(&errors), vec![0]);
    assert!(errors.errors()[0].reason.contains("int_to_float"));
    assert_eq!(lossy.count(Lossy::IntToFloat), 0);

    let (c, errors, lossy) = eval_with("long_v::float8", &input, &[Lossy::IntToFloat]);
    assert!(errors.is_empty());
    assert_eq!(c.get(0), ValueRef::Float(9_007_199_254_740_992.0));
    assert_eq!(lossy.count(Lossy::IntToFloat), 1);

    // Mixed arithmetic converts the integer the same checked way.
    let (_, errors, _) = eval_with("long_v * 1.0", &input, &[]);
    assert_eq!(rejected(&errors), vec![0]);
}

// ---- logic and comparisons --------------------------------------------------------------------

#[test]
fn three_valued_logic() {
    let input = batch(vec![
        (
            "bool_v",
            bools(&[
                Some(true),
                Some(true),
                Some(false),
                None,
                None,
                None,
                Some(false),
            ]),
        ),
        (
            "long_v",
            ints(&[Some(1), None, None, Some(1), Some(-1), None, Some(-1)]),
        ),
    ]);
    let (t, f, n) = (Some(true), Some(false), None);
    let cases: &[(&str, [Option<bool>; 7])] = &[
        ("bool_v AND long_v > 0", [t, n, f, n, f, n, f]),
        ("bool_v OR long_v > 0", [t, t, n, t, n, n, f]),
        ("NOT bool_v", [f, f, t, n, n, n, t]),
        ("long_v IN (1, NULL)", [t, n, n, t, n, n, n]),
        ("long_v NOT IN (1, 2)", [f, n, n, f, t, n, t]),
        ("long_v = NULL", [n, n, n, n, n, n, n]),
        ("bool_v IS NULL", [f, f, f, t, t, t, f]),
        ("long_v IS DISTINCT FROM NULL", [t, f, f, t, t, f, t]),
        ("long_v IS NOT DISTINCT FROM 1", [t, f, f, t, f, f, f]),
        ("bool_v IS NOT TRUE", [f, f, t, t, t, t, t]),
        ("bool_v IS UNKNOWN", [f, f, f, t, t, t, f]),
        ("long_v BETWEEN 0 AND 5", [t, n, n, t, f, n, f]),
        ("long_v NOT BETWEEN 0 AND 5", [f, n, n, f, t, n, t]),
        ("bool_v = (long_v > 0)", [t, n, n, n, n, n, t]),
    ];
    for (expr, want) in cases {
        let (c, errors) = eval(expr, &input);
        assert!(errors.is_empty());
        assert_eq!(c.dtype(), DataType::Bool);
        assert_eq!(bool_values(&c), want.to_vec(), "{expr}");
    }
    let (c, _) = eval(
        "CASE WHEN bool_v THEN 'yes' WHEN NOT bool_v THEN 'no' ELSE 'unknown' END",
        &input,
    );
    let s = ValueRef::Str;
    assert_eq!(
        values(&c),
        vec![
            s("yes"),
            s("yes"),
            s("no"),
            s("unknown"),
            s("unknown"),
            s("unknown"),
            s("no")
        ]
    );
    let (c, _) = eval("CASE long_v WHEN 1 THEN 10 WHEN -1 THEN 2.5 END", &input);
    assert_eq!(c.dtype(), DataType::Float64);
    assert_eq!(c.get(0), ValueRef::Float(10.0));
    assert_eq!(c.get(1), ValueRef::Null);
    assert_eq!(c.get(4), ValueRef::Float(2.5));
}

#[test]
fn int_and_float_compare_exactly() {
    let two53 = TWO_53 as f64;
    let input = batch(vec![
        (
            "long_v",
            ints(&[Some(TWO_53 + 1), Some(TWO_53), Some(i64::MAX)]),
        ),
        (
            "dbl_v",
            floats(&[Some(two53), Some(two53), Some(9_223_372_036_854_775_807.0)]),
        ),
    ]);
    let (t, f) = (Some(true), Some(false));
    for (expr, want) in [
        ("long_v = dbl_v", [f, t, f]),
        ("long_v > dbl_v", [t, f, f]),
        ("dbl_v > long_v", [f, f, t]),
        ("long_v IN (9007199254740992.0)", [f, t, f]),
    ] {
        assert_eq!(bool_values(&eval(expr, &input).0), want.to_vec(), "{expr}");
    }
}

#[test]
fn string_literals_take_the_type_of_their_context() {
    let input = tb_batch(&[
        Kv {
            ts: 1_700_000_000_000,
            ..Kv::default()
        },
        Kv {
            ts: 1_600_000_000_000,
            ..Kv::default()
        },
    ]);
    let (c, _) = eval("from_epoch_ms(ts) >= '2023-11-14T22:13:20Z'", &input);
    assert_eq!(bool_values(&c), vec![Some(true), Some(false)]);
    let (c, _) = eval("entity_id = '01010101-0101-0101-0101-010101010101'", &input);
    assert_eq!(bool_values(&c), vec![Some(false), Some(true)]);
    let (c, _) = eval("ts + '1'", &input);
    assert_eq!(c.get(0), ValueRef::Int(1_700_000_000_001));
}

// ---- functions ---------------------------------------------------------------------------------

#[test]
fn text_functions() {
    let input = batch(vec![
        (
            "str_v",
            texts(
                DataType::Text,
                &[Some("  Hello Wörld  "), None, Some("xxabcxx")],
            ),
        ),
        ("long_v", ints(&[Some(1_700_000_000), Some(-1), None])),
    ]);
    let s = ValueRef::Str;
    let null = ValueRef::Null;
    let cases: Vec<(&str, Vec<ValueRef<'_>>)> = vec![
        (
            "lower(str_v)",
            vec![s("  hello wörld  "), null, s("xxabcxx")],
        ),
        (
            "UPPER(trim(str_v))",
            vec![s("HELLO WÖRLD"), null, s("XXABCXX")],
        ),
        (
            "trim(BOTH 'x' FROM str_v)",
            vec![s("  Hello Wörld  "), null, s("abc")],
        ),
        (
            "trim(LEADING 'x' FROM str_v)",
            vec![s("  Hello Wörld  "), null, s("abcxx")],
        ),
        (
            "trim(TRAILING ' ' FROM str_v)",
            vec![s("  Hello Wörld"), null, s("xxabcxx")],
        ),
        (
            "ltrim(str_v, 'x')",
            vec![s("  Hello Wörld  "), null, s("abcxx")],
        ),
        ("ltrim(str_v)", vec![s("Hello Wörld  "), null, s("xxabcxx")]),
        (
            "rtrim(str_v, 'x')",
            vec![s("  Hello Wörld  "), null, s("xxabc")],
        ),
        ("btrim(str_v, 'x ')", vec![s("Hello Wörld"), null, s("abc")]),
        (
            "length(str_v)",
            vec![ValueRef::Int(15), null, ValueRef::Int(7)],
        ),
        (
            "concat(str_v, '-', long_v)",
            vec![s("  Hello Wörld  -1700000000"), s("--1"), s("xxabcxx-")],
        ),
        (
            "str_v || '-' || long_v",
            vec![s("  Hello Wörld  -1700000000"), null, null],
        ),
        ("'n=' || long_v", vec![s("n=1700000000"), s("n=-1"), null]),
        (
            "nullif(str_v, 'xxabcxx')",
            vec![s("  Hello Wörld  "), null, null],
        ),
        (
            "coalesce(str_v, 'none')",
            vec![s("  Hello Wörld  "), s("none"), s("xxabcxx")],
        ),
    ];
    for (expr, want) in cases {
        let (c, errors) = eval(expr, &input);
        assert!(errors.is_empty());
        assert_eq!(values(&c), want, "{expr}");
    }
}

#[test]
fn numeric_functions() {
    let input = batch(vec![
        ("long_v", ints(&[Some(1_700_000_000), Some(-1), None])),
        (
            "dbl_v",
            floats(&[Some(1_700_000_000.5), Some(2.5), Some(f64::NAN)]),
        ),
    ]);
    let null = ValueRef::Null;
    let (i, f) = (ValueRef::Int, ValueRef::Float);
    let cases: Vec<(&str, Vec<ValueRef<'_>>)> = vec![
        ("coalesce(long_v, 0)", vec![i(1_700_000_000), i(-1), i(0)]),
        (
            "coalesce(long_v, NULL, 0)",
            vec![i(1_700_000_000), i(-1), i(0)],
        ),
        ("nullif(long_v, -1)", vec![i(1_700_000_000), null, null]),
        ("abs(long_v)", vec![i(1_700_000_000), i(1), null]),
        ("abs(-dbl_v)", vec![f(1_700_000_000.5), f(2.5), f(f64::NAN)]),
        (
            "round(dbl_v)",
            vec![f(1_700_000_000.0), f(2.0), f(f64::NAN)],
        ),
        ("round(long_v)", vec![i(1_700_000_000), i(-1), null]),
        (
            "greatest(long_v, dbl_v)",
            vec![f(1_700_000_000.5), f(2.5), f(f64::NAN)],
        ),
        ("least(long_v, dbl_v, 0)", vec![f(0.0), f(-1.0), f(0.0)]),
    ];
    for (expr, want) in cases {
        let (c, errors) = eval(expr, &input);
        assert!(errors.is_empty(), "{expr}");
        let got = values(&c);
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            match (g, w) {
                (ValueRef::Float(a), ValueRef::Float(b)) if b.is_nan() => {
                    assert!(a.is_nan(), "{expr}")
                }
                _ => assert_eq!(g, w, "{expr}"),
            }
        }
    }
}

#[test]
fn time_functions() {
    let input = batch(vec![
        ("long_v", ints(&[Some(1_700_000_000), Some(-1), None])),
        (
            "dbl_v",
            floats(&[Some(1_700_000_000.5), Some(2.5), Some(f64::NAN)]),
        ),
    ]);
    let ts = ValueRef::Timestamp;
    let null = ValueRef::Null;
    let (c, _) = eval("to_timestamp(long_v)", &input);
    assert_eq!(c.dtype(), DataType::Timestamp(TimeUnit::Seconds));
    assert_eq!(
        values(&c),
        vec![
            ts(1_700_000_000, TimeUnit::Seconds),
            ts(-1, TimeUnit::Seconds),
            null
        ]
    );
    let (c, errors) = eval("to_timestamp(dbl_v)", &input);
    assert_eq!(
        values(&c),
        vec![
            ts(1_700_000_000_500_000, TimeUnit::Micros),
            ts(2_500_000, TimeUnit::Micros),
            null
        ]
    );
    assert_eq!(rejected(&errors), vec![2]);
    assert!(errors.errors()[0].reason.contains("NaN"));

    let (c, _) = eval("epoch_ms(to_timestamp(dbl_v))", &input);
    assert_eq!(c.dtype(), DataType::Int64);
    assert_eq!(c.get(0), ValueRef::Int(1_700_000_000_500));
    // Finer to coarser floors, also before the epoch.
    let (c, _) = eval("epoch_s(from_epoch_ms(long_v))", &input);
    assert_eq!(
        values(&c),
        vec![ValueRef::Int(1_700_000), ValueRef::Int(-1), null]
    );
    let (c, errors) = eval("epoch_ns(from_epoch_s(long_v))", &input);
    assert!(errors.is_empty());
    assert_eq!(c.get(0), ValueRef::Int(1_700_000_000_000_000_000));
    let (c, _) = eval("from_epoch_us(long_v)", &input);
    assert_eq!(c.get(1), ts(-1, TimeUnit::Micros));
    let (c, _) = eval("from_epoch_ns(long_v)", &input);
    assert_eq!(c.get(0), ts(1_700_000_000, TimeUnit::Nanos));

    let big = batch(vec![("long_v", ints(&[Some(i64::MAX / 10)]))]);
    let (_, errors) = eval("epoch_ns(from_epoch_s(long_v))", &big);
    assert_eq!(rejected(&errors), vec![0]);
    let (_, errors) = eval("from_epoch_ms(long_v)::timestamptz", &big);
    assert_eq!(rejected(&errors), vec![0]);
}

// ---- identity and sharing ------------------------------------------------------------------------

#[test]
fn empty_columns_is_the_identity() {
    let input = tb_batch(&[Kv {
        long_v: Some(1),
        ..Kv::default()
    }]);
    let m = compile(&stream(&[], &[]), &input.schema);
    assert!(m.is_identity());
    assert_eq!(**m.output_schema(), *input.schema);
    let (out, errors, _) = run(&m, &input, &[]);
    assert!(errors.is_empty());
    assert_eq!(out.len(), 1);
    for (a, b) in out.columns.iter().zip(&input.columns) {
        assert!(Arc::ptr_eq(a, b));
    }
    let other = batch(vec![("long_v", ints(&[Some(1)]))]);
    let mut errors = RowErrors::new();
    let mut lossy = LossyCounts::default();
    assert!(m.apply(&other, &mut errors, &mut lossy).is_err());
}

#[test]
fn mismatched_batches_are_internal_errors() {
    let schema = tb_schema();
    let m = compile(&stream(&[("x", None, Some("long_v + 1"))], &[]), &schema);
    let wrong = batch(vec![("long_v", texts(DataType::Text, &[Some("1")]))]);
    let mut errors = RowErrors::new();
    let mut lossy = LossyCounts::default();
    let err = m.apply(&wrong, &mut errors, &mut lossy);
    assert!(
        matches!(err, Err(Error::Mapping { ref message, .. }) if message.contains("internal error"))
    );
}

#[test]
fn empty_batches_map_to_empty_batches() {
    let spec = stream(
        &[
            ("value", Some("float8"), Some(VALUE)),
            ("metadata", Some("jsonb"), Some(METADATA)),
        ],
        &[],
    );
    let input = tb_batch(&[]);
    let (out, errors, _) = run(&compile(&spec, &input.schema), &input, &[]);
    assert!(errors.is_empty());
    assert_eq!(out.len(), 0);
    assert_eq!(out.columns.len(), 2);
}

#[test]
fn introspection() {
    let spec = stream(
        &[
            ("key", None, None),
            ("v", None, Some("coalesce(dbl_v, long_v)")),
        ],
        &[],
    );
    let m = compile(&spec, &tb_schema());
    assert!(!m.is_identity());
    assert_eq!(
        m.expression_sources(),
        vec![("key", "key"), ("v", "coalesce(dbl_v, long_v)")]
    );
    assert_eq!(m.source_columns(), vec!["key", "long_v", "dbl_v"]);
    assert_eq!(m.output_schema().fields[1].dtype, DataType::Float64);
}

#[test]
fn lossy_constants_follow_the_stream_allowance() {
    let schema = tb_schema();
    let err = compile_error("9007199254740993::float8", None, &schema);
    assert!(err.contains("int_to_float"), "{err}");
    let spec = stream(
        &[("x", None, Some("9007199254740993::float8"))],
        &["int_to_float"],
    );
    assert!(Mapping::compile(&spec, &schema).is_ok());
}

#[test]
fn mapping_is_shareable_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Mapping>();
}
