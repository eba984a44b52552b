//! Column mappings: SQL expressions from the plan, parsed once with `sqlparser` and compiled
//! to column-wise evaluation over batches.
//!
//! # How a stream is mapped
//!
//! A stream's `columns` list the target columns, each with an optional `type` and `expr`:
//!
//! - No `columns` at all: the mapping is the identity (every source column, as it is).
//! - `expr` missing: the source column of the same name (matched case-insensitively).
//! - `type` given (any name [`DataType::parse_sql`] knows: `float8`, `timestamptz`, `jsonb`,
//!   `varchar(255)`, …): the value is converted to it with the same checked conversion as a
//!   cast. Otherwise the column has the expression's own type.
//!
//! Expressions use PostgreSQL syntax and are compiled once, when the plan is loaded; every
//! mistake (unknown column, unsupported syntax, mismatched types, a constant that cannot be
//! computed) is reported then, naming the stream and column.
//!
//! A value that cannot be computed for one row — a failed cast, an integer overflow, a
//! division by zero, invalid JSON, an inexact conversion the plan does not allow — rejects
//! that row (it goes to the stream's rejects file with the reason); the other rows go on.
//! Inside `CASE`, `coalesce`, `AND` and `OR`, a branch is only computed for the rows that
//! need it, so `CASE WHEN long_v BETWEEN -9007199254740992 AND 9007199254740992 THEN
//! long_v::float8 END` never rejects a large `long_v`.
//!
//! # Supported SQL
//!
//! - **Column names**: `long_v`, `LONG_V` (case-insensitive), `"Exact Name"` (quoted: exact).
//! - **Literals**: integers (`int8`), decimals and exponents such as `1.5`, `2e-3`
//!   (`float8`), `'text'` (also `E'a\tb'` and `$$text$$`), `TRUE`, `FALSE`, `NULL`. `NULL`
//!   and `'text'` take the type their context needs, as in PostgreSQL: `ts > '2025-01-01'`
//!   compares timestamps, `coalesce(x, NULL)` has the type of `x`; alone they are `text`.
//! - **Casts**: `x::type`, `CAST(x AS type)` and typed literals such as `jsonb '{"a":1}'` or
//!   `timestamptz '2025-01-01T00:00:00Z'`; `json` and `jsonb` are both JSON. Conversions
//!   follow [`crate::convert::convert`] (text is parsed, `int8 → float8` must be exact unless
//!   the plan allows `int_to_float`, JSON is validated, …). Conversions that can never work
//!   (`int8 → timestamptz`: a number has no unit) are compile errors with a hint.
//! - **Arithmetic**: `+ - * / %` and unary `-` on integers and floats. Integers give `int8`,
//!   checked for overflow; `/` on integers truncates toward zero. Any float operand gives
//!   `float8` (an integer operand is converted exactly, or counted as `int_to_float` when
//!   allowed). Division or modulo by zero rejects the row, for floats too (except NaN / 0,
//!   which is NaN as in PostgreSQL); like PostgreSQL, a
//!   float result that overflows to infinity or underflows to zero from finite, non-zero
//!   operands rejects the row, while NaN and infinite inputs compute normally.
//! - **Text**: `a || b` (both sides converted to text; NULL if either is NULL).
//! - **Comparisons**: `= <> != < <= > >=`, `IS [NOT] DISTINCT FROM`, `[NOT] BETWEEN a AND b`,
//!   `[NOT] IN (a, b, …)`. Integers and floats compare exactly (an `int8` above 2^53 is not
//!   rounded); floats order like PostgreSQL (NaN equals NaN and is above everything);
//!   text compares byte-wise (the "C" collation); timestamps of different units compare
//!   exactly. JSON and numeric values must be cast first.
//! - **Logic**: `AND`, `OR`, `NOT`, `IS [NOT] NULL`, `IS [NOT] TRUE`, `IS [NOT] FALSE`,
//!   `IS [NOT] UNKNOWN`, with SQL's three-valued logic (NULL means unknown).
//! - **CASE**: `CASE WHEN c THEN a [WHEN …] [ELSE b] END` and `CASE x WHEN v THEN a … END`.
//!   The branches (and `coalesce`, `greatest`, `least` arguments) must share a type:
//!   integers widen to `int8`, integers with floats give `float8`, timestamps take the finest
//!   unit, untyped literals follow; any other mix is an error asking for a cast.
//! - **Functions** (case-insensitive):
//!   - `coalesce(a, b, …)`, `nullif(a, b)`, `greatest(…)`, `least(…)` (NULLs ignored);
//!   - `lower(t)`, `upper(t)` (Unicode case mapping), `trim(t)`, `trim([LEADING|TRAILING|BOTH]
//!     'chars' FROM t)`, `btrim(t [, 'chars'])`, `ltrim`, `rtrim` (spaces by default),
//!     `length(t)` (characters; bytes of a `bytea`; `int4`), `concat(a, …)` (any types as
//!     text, NULLs skipped);
//!   - `abs(x)` (overflow of `abs(int8 min)` rejects the row), `round(x)` (floats: half to
//!     even, like PostgreSQL's `round(float8)`; integers unchanged);
//!   - `from_epoch_s(i)`, `from_epoch_ms(i)`, `from_epoch_us(i)`, `from_epoch_ns(i)`: an
//!     integer count since the Unix epoch as a timestamp of that unit, without changing the
//!     numbers (`from_epoch_ms(ts)` with type `timestamptz` gives microseconds ×1000);
//!   - `to_timestamp(x)`: PostgreSQL's, seconds since the epoch; an integer gives a
//!     timestamp in seconds, a float one in microseconds (rounded half to even; NaN,
//!     infinities and values before 4714 BC or after year 294247 reject the row);
//!   - `epoch_s(ts)`, `epoch_ms(ts)`, `epoch_us(ts)`, `epoch_ns(ts)`: a timestamp as an `int8`
//!     count since the epoch. A finer timestamp is floored (`epoch_s` of 1.9 s is 1, of
//!     -0.5 s is -1); a coarser one is multiplied, and overflow rejects the row.
//!
//! Constant expressions (`'{"migrated_from":"thingsboard"}'::jsonb`, `-1 * 60`) are computed
//! and checked once at compile time; an invalid one (`'{oops'::jsonb`, `1/0`) is a compile
//! error. A lossy conversion of a constant (`9007199254740993::float8`) compiles only when
//! the stream's `allow_lossy` allows it, and is not counted per row.
//!
//! # Not supported
//!
//! Subqueries, aggregate and window functions, `LIKE` and regular expressions, JSON
//! operators (`->`, `->>`), `EXTRACT`, intervals and timestamp arithmetic, arithmetic on
//! `numeric` values (cast them to `float8` or `int8`), and non-deterministic functions such
//! as `now()` or `random()` (a re-run partition must produce the same rows). Each is reported
//! at compile time with the list of what is supported.

mod compile;
mod eval;
mod expr;
mod functions;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use crate::batch::{Batch, Field, Schema};
use crate::convert::{LossyCounts, RowErrors};
use crate::error::{Error, Result};
use crate::plan::StreamSpec;
use crate::types::DataType;

use compile::{Compiler, KNOWN_TYPES};
use eval::EvalCtx;
use expr::Expr;

/// A compiled mapping from source batches to target batches.
///
/// Compiled once per stream with [`Mapping::compile`], then applied to every batch; it holds
/// no per-batch state, so one mapping can be shared by concurrent partitions.
#[derive(Debug)]
pub struct Mapping {
    stream: String,
    input: Schema,
    output: Arc<Schema>,
    /// `None` for the identity mapping.
    columns: Option<Vec<OutputColumn>>,
}

/// One target column and the compiled expression computing it.
#[derive(Debug)]
struct OutputColumn {
    name: String,
    /// The SQL text the column was compiled from (the column name when `expr` is absent).
    sql: String,
    expr: Expr,
}

impl Mapping {
    /// Compiles the stream's `columns` against the source schema. An empty list is the
    /// identity mapping. Errors are [`Error::Mapping`] naming the stream and column.
    pub fn compile(stream: &StreamSpec, input: &Schema) -> Result<Mapping> {
        if stream.columns.is_empty() && input.index_of(crate::batch::SOURCE_ERROR).is_some() {
            // The identity of every column but the source's error column.
            let mut spec = stream.clone();
            spec.columns = input
                .fields
                .iter()
                .filter(|f| f.name != crate::batch::SOURCE_ERROR)
                .map(|f| crate::plan::ColumnSpec {
                    name: f.name.clone(),
                    sql_type: None,
                    expr: None,
                })
                .collect();
            return Mapping::compile(&spec, input);
        }
        if stream.columns.is_empty() {
            return Ok(Mapping {
                stream: stream.name.clone(),
                input: input.clone(),
                output: Arc::new(input.clone()),
                columns: None,
            });
        }
        let lossy = stream.lossy_kinds()?;
        let compiler = Compiler::new(input, &lossy);
        let mut fields = Vec::with_capacity(stream.columns.len());
        let mut columns = Vec::with_capacity(stream.columns.len());
        for spec in &stream.columns {
            let fail = |message: String| Error::Mapping {
                stream: stream.name.clone(),
                column: spec.name.clone(),
                message,
            };
            let target = match &spec.sql_type {
                Some(t) => Some(DataType::parse_sql(t).ok_or_else(|| {
                    fail(format!("unknown type `{t}`; known types: {KNOWN_TYPES}"))
                })?),
                None => None,
            };
            let (sql, expr) = match &spec.expr {
                Some(sql) => (sql.clone(), compiler.parse(sql)),
                None => (
                    spec.name.clone(),
                    compiler.column(&spec.name, false).map_err(|m| {
                        format!("{m} (give the column an `expr` to compute it otherwise)")
                    }),
                ),
            };
            let expr = expr
                .and_then(|e| compiler.finish(e, target, &sql))
                .map_err(fail)?;
            fields.push(Field::new(spec.name.clone(), expr.dtype));
            columns.push(OutputColumn {
                name: spec.name.clone(),
                sql,
                expr,
            });
        }
        Ok(Mapping {
            stream: stream.name.clone(),
            input: input.clone(),
            output: Arc::new(Schema::new(fields)),
            columns: Some(columns),
        })
    }

    /// The schema of the batches [`Mapping::apply`] produces.
    pub fn output_schema(&self) -> &Arc<Schema> {
        &self.output
    }

    /// True when the stream lists no columns, so batches pass through unchanged.
    pub fn is_identity(&self) -> bool {
        self.columns.is_none()
    }

    /// Each target column with the SQL text computing it (its own name when the plan gives
    /// no `expr`), in output order. Empty for the identity mapping.
    pub fn expression_sources(&self) -> Vec<(&str, &str)> {
        self.columns
            .iter()
            .flatten()
            .map(|c| (c.name.as_str(), c.sql.as_str()))
            .collect()
    }

    /// The target columns every row gives the same non-NULL value (a constant expression such
    /// as `'BAY'`), with that value as text. Where several streams write into one table (a
    /// DynamoDB single-table design), these tell a stream's rows from the others'.
    pub fn constant_columns(&self) -> Vec<(String, String)> {
        self.columns
            .iter()
            .flatten()
            .filter_map(|c| match &c.expr.node {
                expr::Node::Const(value) if value.len() == 1 && value.is_valid(0) => Some((
                    c.name.clone(),
                    crate::convert::value_to_string(value.get(0)),
                )),
                _ => None,
            })
            .collect()
    }

    /// Names of the source columns the mapping reads, in source order (every column for the
    /// identity mapping).
    pub fn source_columns(&self) -> Vec<&str> {
        let Some(columns) = &self.columns else {
            return self.input.fields.iter().map(|f| f.name.as_str()).collect();
        };
        let mut used = Vec::new();
        for c in columns {
            c.expr.collect_columns(&mut used);
        }
        used.sort_unstable();
        used.iter()
            .filter_map(|i| self.input.fields.get(*i))
            .map(|f| f.name.as_str())
            .collect()
    }

    /// Evaluates the mapping over `input`, which must have the schema the mapping was compiled
    /// for. Rows that fail are recorded in `errors` (row indexes of `input`, first error of a
    /// row only) and hold NULLs in the output; lossy conversions are performed and counted in
    /// `lossy` when it allows them, and reject the row otherwise. An `Err` means an internal
    /// problem (a batch that does not match the schema), never bad data.
    pub fn apply(
        &self,
        input: &Batch,
        errors: &mut RowErrors,
        lossy: &mut LossyCounts,
    ) -> Result<Batch> {
        let internal = |column: &str, message: String| Error::Mapping {
            stream: self.stream.clone(),
            column: column.to_string(),
            message: format!("internal error: {message}"),
        };
        let Some(columns) = &self.columns else {
            if *input.schema != self.input {
                return Err(internal(
                    "*",
                    "the batch does not have the source schema the mapping was compiled for".into(),
                ));
            }
            return Ok(input.clone());
        };
        let rows = input.len();
        let mut out = Vec::with_capacity(columns.len());
        for c in columns {
            let mut cx = EvalCtx {
                batch: input,
                rows,
                column: Some(&c.name),
                errors: &mut *errors,
                lossy: &mut *lossy,
            };
            let values = c
                .expr
                .eval(&mut cx, None)
                .map_err(|m| internal(&c.name, m))?;
            out.push(values.into_column(rows));
        }
        Batch::new(self.output.clone(), out).ok_or_else(|| {
            internal(
                "*",
                "computed columns do not match the output schema".into(),
            )
        })
    }
}
