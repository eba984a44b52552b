//! From SQL text to a typed [`Expr`]: parsing (once, with `sqlparser`), column resolution,
//! type checking with PostgreSQL-like rules, implicit conversions and constant folding.

use std::fmt;
use std::sync::Arc;

use sqlparser::ast::{self, BinaryOperator, CastKind, UnaryOperator, Value};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;

use crate::batch::{Batch, Schema};
use crate::column::Column;
use crate::convert::{Lossy, LossyCounts, RowErrors};
use crate::types::DataType;

use super::eval::EvalCtx;
use super::expr::{ArithOp, Branch, CmpKind, CmpOp, Expr, Node, Untyped};
use super::functions::FUNCTIONS;

/// Type names accepted in casts and column types (for messages).
pub(super) const KNOWN_TYPES: &str = "bool, int2, int4, int8, float4, float8, numeric, text, \
     varchar, json, jsonb, timestamptz, timestamp, uuid, bytea";

/// What a mapping expression may contain (for messages).
pub(super) fn supported_syntax() -> String {
    format!(
        "supported are column names, literals (numbers, 'text', TRUE, FALSE, NULL), casts \
         (x::type, CAST(x AS type), type 'literal'), + - * / %, ||, = <> != < <= > >=, AND, OR, \
         NOT, IS [NOT] NULL, IS [NOT] TRUE/FALSE, IS [NOT] DISTINCT FROM, [NOT] BETWEEN, \
         [NOT] IN (list), CASE, and the functions {FUNCTIONS}"
    )
}

/// Compiles expressions against one source schema.
pub(super) struct Compiler<'a> {
    input: &'a Schema,
    /// Lossy conversions the stream allows (used when computing constants).
    lossy: &'a [Lossy],
}

impl<'a> Compiler<'a> {
    /// A compiler resolving column names in `input`.
    pub fn new(input: &'a Schema, lossy: &'a [Lossy]) -> Compiler<'a> {
        Compiler { input, lossy }
    }

    /// Parses and compiles one SQL expression.
    pub fn parse(&self, sql: &str) -> Result<Expr, String> {
        let dialect = PostgreSqlDialect {};
        let parsed = Parser::new(&dialect).try_with_sql(sql).and_then(|mut p| {
            let e = p.parse_expr()?;
            Ok((e, p.peek_token().token))
        });
        let (ast, next) = parsed.map_err(|e| format!("cannot parse `{sql}`: {e}"))?;
        if next != Token::EOF {
            return Err(format!(
                "cannot parse `{sql}`: unexpected `{next}` after `{ast}` (write one expression)"
            ));
        }
        self.expr(&ast)
    }

    /// The source column called `name`: case-insensitively, or exactly when `exact`
    /// (a quoted identifier).
    pub fn column(&self, name: &str, exact: bool) -> Result<Expr, String> {
        let index = if exact {
            self.input.fields.iter().position(|f| f.name == name)
        } else {
            self.input.index_of(name)
        };
        match index.and_then(|i| self.input.fields.get(i).map(|f| (i, f))) {
            Some((i, field)) => Ok(Expr::new(Node::Column(i), field.dtype)),
            None if self.input.fields.is_empty() => Err(format!(
                "unknown column `{name}`: the source stream has no columns"
            )),
            None => Err(format!(
                "unknown column `{name}`; the source columns are: {}",
                self.input.names()
            )),
        }
    }

    /// Gives the expression its final type: `target` when the plan declares one (converted
    /// with the checked conversion), otherwise its own.
    pub fn finish(&self, e: Expr, target: Option<DataType>, sql: &str) -> Result<Expr, String> {
        match target {
            Some(t) => self.cast(e, t, &sql),
            None => Ok(settle(e)),
        }
    }

    /// Builds a node; when it depends on constants only it is computed now, once, and a
    /// value that cannot be computed is a compile error.
    pub fn make(
        &self,
        node: Node,
        dtype: DataType,
        what: &dyn fmt::Display,
    ) -> Result<Expr, String> {
        let expr = Expr::new(node, dtype);
        if !expr.is_foldable() {
            return Ok(expr);
        }
        let batch = Batch::empty_with_rows(1);
        let mut errors = RowErrors::new();
        let mut lossy = LossyCounts::allowing(self.lossy);
        let mut cx = EvalCtx {
            batch: &batch,
            rows: 1,
            column: None,
            errors: &mut errors,
            lossy: &mut lossy,
        };
        let value = expr
            .eval(&mut cx, None)
            .map_err(|e| format!("internal error computing `{what}`: {e}"))?;
        if let Some(err) = errors.errors().first() {
            return Err(format!("`{what}` cannot be computed: {}", err.reason));
        }
        Ok(Expr::constant(value.into_column(1)))
    }

    /// Converts `e` to `to` (explicit casts, and the implicit conversions of typing rules).
    pub fn cast(&self, e: Expr, to: DataType, what: &dyn fmt::Display) -> Result<Expr, String> {
        if e.untyped == Some(Untyped::Null) {
            return Ok(typed_null(to));
        }
        if e.dtype == to {
            return Ok(settle(e));
        }
        cast_supported(e.dtype, to).map_err(|m| format!("`{what}`: {m}"))?;
        self.make(Node::Cast(Box::new(e)), to, what)
    }

    /// Gives an untyped literal the type of `other` (when that one is typed).
    fn adopt(&self, e: Expr, other: &Expr, what: &dyn fmt::Display) -> Result<Expr, String> {
        if e.untyped.is_some() && other.untyped.is_none() {
            self.cast(e, other.dtype, what)
        } else {
            Ok(e)
        }
    }

    /// Prepares two operands for comparison and picks how they are compared.
    pub fn comparison(
        &self,
        l: Expr,
        r: Expr,
        what: &dyn fmt::Display,
    ) -> Result<(Expr, Expr, CmpKind), String> {
        let l = self.adopt(l, &r, what)?;
        let r = self.adopt(r, &l, what)?;
        let (l, r) = (settle(l), settle(r));
        let kind = cmp_kind(l.dtype, r.dtype).map_err(|m| format!("`{what}`: {m}"))?;
        Ok((l, r, kind))
    }

    /// Converts expressions to their common type (see [`common_type`]).
    pub fn unify(
        &self,
        items: Vec<Expr>,
        role: &str,
        what: &dyn fmt::Display,
    ) -> Result<(Vec<Expr>, DataType), String> {
        let dtype = common_type(&items).map_err(|m| format!("`{what}`: {role} {m}"))?;
        let items = items
            .into_iter()
            .map(|e| self.cast(e, dtype, what))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((items, dtype))
    }

    /// A boolean operand (an untyped literal is converted: `'true'`, `NULL`).
    pub fn boolean(&self, e: Expr, what: &dyn fmt::Display) -> Result<Expr, String> {
        match e.untyped {
            Some(_) => self.cast(e, DataType::Bool, what),
            None if e.dtype == DataType::Bool => Ok(e),
            None => Err(format!("`{what}` needs a boolean, found {}", e.dtype)),
        }
    }

    /// A numeric operand (integer or float; an untyped NULL becomes an `int8` NULL).
    pub fn number(&self, e: Expr, what: &dyn fmt::Display) -> Result<Expr, String> {
        match (e.untyped, e.dtype) {
            (Some(Untyped::Null), _) => Ok(typed_null(DataType::Int64)),
            (Some(Untyped::Str), _) => Err(format!(
                "`{what}` needs numbers, found a string; write a number or cast it (`'1.5'::float8`)"
            )),
            (None, t) if t.is_integer() || t.is_float() => Ok(e),
            (None, DataType::Numeric) => Err(format!(
                "`{what}`: numeric values need a cast to float8 or int8 for arithmetic"
            )),
            (None, t) => Err(format!("`{what}` needs numbers, found {t}")),
        }
    }

    /// Compiles one parsed expression.
    pub fn expr(&self, e: &ast::Expr) -> Result<Expr, String> {
        use ast::Expr as E;
        match e {
            E::Identifier(id) => self.column(&id.value, id.quote_style.is_some()),
            E::CompoundIdentifier(_) => Err(format!(
                "`{e}`: qualified names are not supported; write the column name alone \
                 (source columns: {})",
                self.input.names()
            )),
            E::Nested(inner) => self.expr(inner),
            E::Value(v) => literal(v, e),
            E::TypedString { data_type, value } => {
                let to = sql_type(data_type)?;
                self.cast(string_literal(value), to, e)
            }
            E::Cast {
                kind,
                expr,
                data_type,
                format,
            } => {
                if !matches!(kind, CastKind::Cast | CastKind::DoubleColon) || format.is_some() {
                    return Err(format!(
                        "`{e}` is not supported: write CAST(x AS type) or x::type (a value that \
                         cannot be converted rejects its row)"
                    ));
                }
                let to = sql_type(data_type)?;
                let inner = self.expr(expr)?;
                self.cast(inner, to, e)
            }
            E::UnaryOp { op, expr } => self.unary(*op, expr, e),
            E::BinaryOp { left, op, right } => self.binary(left, op, right, e),
            E::IsNull(x) | E::IsNotNull(x) => {
                let input = Box::new(self.expr(x)?);
                let negated = matches!(e, E::IsNotNull(_));
                self.make(Node::IsNull { input, negated }, DataType::Bool, e)
            }
            E::IsUnknown(x) | E::IsNotUnknown(x) => {
                let input = Box::new(self.boolean(self.expr(x)?, e)?);
                let negated = matches!(e, E::IsNotUnknown(_));
                self.make(Node::IsNull { input, negated }, DataType::Bool, e)
            }
            E::IsTrue(x) | E::IsNotTrue(x) | E::IsFalse(x) | E::IsNotFalse(x) => {
                let input = Box::new(self.boolean(self.expr(x)?, e)?);
                let value = matches!(e, E::IsTrue(_) | E::IsNotTrue(_));
                let negated = matches!(e, E::IsNotTrue(_) | E::IsNotFalse(_));
                let node = Node::IsBool {
                    input,
                    value,
                    negated,
                };
                self.make(node, DataType::Bool, e)
            }
            E::IsDistinctFrom(a, b) | E::IsNotDistinctFrom(a, b) => {
                let (left, right, kind) = self.comparison(self.expr(a)?, self.expr(b)?, e)?;
                let node = Node::Distinct {
                    left: Box::new(left),
                    right: Box::new(right),
                    kind,
                    negated: matches!(e, E::IsNotDistinctFrom(..)),
                };
                self.make(node, DataType::Bool, e)
            }
            E::Between {
                expr,
                negated,
                low,
                high,
            } => {
                let x = self.expr(expr)?;
                let (x, low, low_kind) = self.comparison(x, self.expr(low)?, e)?;
                let (x, high, high_kind) = self.comparison(x, self.expr(high)?, e)?;
                let node = Node::Between {
                    expr: Box::new(x),
                    low: Box::new(low),
                    high: Box::new(high),
                    low_kind,
                    high_kind,
                    negated: *negated,
                };
                self.make(node, DataType::Bool, e)
            }
            E::InList {
                expr,
                list,
                negated,
            } => {
                if list.is_empty() {
                    return Err(format!("`{e}`: IN needs at least one value"));
                }
                let mut x = self.expr(expr)?;
                let mut items = Vec::with_capacity(list.len());
                for item in list {
                    let (nx, item, kind) = self.comparison(x, self.expr(item)?, e)?;
                    x = nx;
                    items.push((item, kind));
                }
                let node = Node::InList {
                    expr: Box::new(x),
                    list: items,
                    negated: *negated,
                };
                self.make(node, DataType::Bool, e)
            }
            E::Case {
                operand,
                conditions,
                results,
                else_result,
            } => self.case(
                operand.as_deref(),
                conditions,
                results,
                else_result.as_deref(),
                e,
            ),
            E::Function(f) => self.function(f, e),
            E::Trim {
                expr,
                trim_where,
                trim_what,
                trim_characters,
            } => {
                if trim_characters.is_some() {
                    return Err(format!(
                        "`{e}` is not supported; write trim([LEADING|TRAILING|BOTH] 'chars' FROM x) \
                         or btrim(x, 'chars')"
                    ));
                }
                self.trim(expr, trim_where.as_ref(), trim_what.as_deref(), e)
            }
            E::Subquery(_) | E::Exists { .. } | E::InSubquery { .. } => Err(format!(
                "`{e}`: subqueries are not supported; a mapping computes each row from that row \
                 alone"
            )),
            _ => Err(format!("`{e}` is not supported; {}", supported_syntax())),
        }
    }

    fn unary(&self, op: UnaryOperator, inner: &ast::Expr, e: &ast::Expr) -> Result<Expr, String> {
        match op {
            UnaryOperator::Minus => {
                // `-9223372036854775808` is one literal, not the negation of an int8 overflow.
                if let ast::Expr::Value(Value::Number(text, _)) = inner {
                    return number_literal(text, true);
                }
                let x = self.number(self.expr(inner)?, e)?;
                let dtype = if x.dtype.is_float() {
                    DataType::Float64
                } else {
                    DataType::Int64
                };
                self.make(Node::Negate(Box::new(x)), dtype, e)
            }
            UnaryOperator::Plus => self.number(self.expr(inner)?, e),
            UnaryOperator::Not => {
                let x = self.boolean(self.expr(inner)?, e)?;
                self.make(Node::Not(Box::new(x)), DataType::Bool, e)
            }
            _ => Err(format!(
                "operator `{op}` in `{e}` is not supported; {}",
                supported_syntax()
            )),
        }
    }

    fn binary(
        &self,
        left: &ast::Expr,
        op: &BinaryOperator,
        right: &ast::Expr,
        e: &ast::Expr,
    ) -> Result<Expr, String> {
        let arith = match op {
            BinaryOperator::Plus => Some(ArithOp::Add),
            BinaryOperator::Minus => Some(ArithOp::Sub),
            BinaryOperator::Multiply => Some(ArithOp::Mul),
            BinaryOperator::Divide => Some(ArithOp::Div),
            BinaryOperator::Modulo => Some(ArithOp::Rem),
            _ => None,
        };
        if let Some(op) = arith {
            return self.arithmetic(op, self.expr(left)?, self.expr(right)?, e);
        }
        let cmp = match op {
            BinaryOperator::Eq => Some(CmpOp::Eq),
            BinaryOperator::NotEq => Some(CmpOp::NotEq),
            BinaryOperator::Lt => Some(CmpOp::Lt),
            BinaryOperator::LtEq => Some(CmpOp::LtEq),
            BinaryOperator::Gt => Some(CmpOp::Gt),
            BinaryOperator::GtEq => Some(CmpOp::GtEq),
            _ => None,
        };
        if let Some(op) = cmp {
            let (left, right, kind) = self.comparison(self.expr(left)?, self.expr(right)?, e)?;
            let node = Node::Compare {
                op,
                left: Box::new(left),
                right: Box::new(right),
                kind,
            };
            return self.make(node, DataType::Bool, e);
        }
        match op {
            BinaryOperator::And | BinaryOperator::Or => {
                let l = Box::new(self.boolean(self.expr(left)?, e)?);
                let r = Box::new(self.boolean(self.expr(right)?, e)?);
                let node = if *op == BinaryOperator::And {
                    Node::And(l, r)
                } else {
                    Node::Or(l, r)
                };
                self.make(node, DataType::Bool, e)
            }
            BinaryOperator::StringConcat => self.concat_op(self.expr(left)?, self.expr(right)?, e),
            _ => Err(format!(
                "operator `{op}` in `{e}` is not supported; {}",
                supported_syntax()
            )),
        }
    }

    /// `+ - * / %`: integers give `int8` (checked), anything with a float gives `float8`.
    fn arithmetic(&self, op: ArithOp, l: Expr, r: Expr, e: &ast::Expr) -> Result<Expr, String> {
        let l = self.adopt(l, &r, e)?;
        let r = self.adopt(r, &l, e)?;
        let l = self.number(l, e)?;
        let r = self.number(r, e)?;
        let dtype = if l.dtype.is_integer() && r.dtype.is_integer() {
            DataType::Int64
        } else {
            DataType::Float64
        };
        let (l, r) = if dtype == DataType::Float64 {
            (self.float_operand(l, e)?, self.float_operand(r, e)?)
        } else {
            (l, r)
        };
        let node = Node::Arith {
            op,
            left: Box::new(l),
            right: Box::new(r),
        };
        self.make(node, dtype, e)
    }

    /// An integer operand of float arithmetic is converted (exactly, or as a counted
    /// lossy conversion when allowed); float4 values are already held as f64.
    fn float_operand(&self, x: Expr, e: &ast::Expr) -> Result<Expr, String> {
        if x.dtype.is_integer() {
            self.cast(x, DataType::Float64, e)
        } else {
            Ok(x)
        }
    }

    /// `a || b`: both sides as text; NULL if either is NULL.
    fn concat_op(&self, l: Expr, r: Expr, e: &ast::Expr) -> Result<Expr, String> {
        if l.dtype == DataType::Json && r.dtype == DataType::Json && l.untyped.is_none() {
            return Err(format!(
                "`{e}`: `||` of two JSON values (a jsonb merge) is not supported; cast one side \
                 to text to concatenate text"
            ));
        }
        let mut args = Vec::new();
        for x in [l, r] {
            let x = self.cast(x, DataType::Text, e)?;
            match x.node {
                // Flatten `a || b || c` into one pass over the rows.
                Node::Concat {
                    args: inner,
                    skip_nulls: false,
                } => args.extend(inner),
                node => args.push(Expr::new(node, x.dtype)),
            }
        }
        let node = Node::Concat {
            args,
            skip_nulls: false,
        };
        self.make(node, DataType::Text, e)
    }

    fn case(
        &self,
        operand: Option<&ast::Expr>,
        conditions: &[ast::Expr],
        results: &[ast::Expr],
        else_result: Option<&ast::Expr>,
        e: &ast::Expr,
    ) -> Result<Expr, String> {
        let mut operand = operand.map(|o| self.expr(o)).transpose()?;
        let mut whens = Vec::with_capacity(conditions.len());
        for c in conditions {
            let when = self.expr(c)?;
            match operand.take() {
                Some(x) => {
                    let (x, when, kind) = self.comparison(x, when, e)?;
                    operand = Some(x);
                    whens.push((when, Some(kind)));
                }
                None => whens.push((self.boolean(when, c)?, None)),
            }
        }
        let mut values = results
            .iter()
            .map(|r| self.expr(r))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(x) = else_result {
            values.push(self.expr(x)?);
        }
        let (mut values, dtype) = self.unify(values, "the CASE branches", e)?;
        let otherwise = match else_result {
            Some(_) => values.pop().map(Box::new),
            None => None,
        };
        let branches = whens
            .into_iter()
            .zip(values)
            .map(|((when, kind), then)| Branch { when, kind, then })
            .collect();
        let node = Node::Case {
            operand: operand.map(Box::new),
            branches,
            otherwise,
        };
        self.make(node, dtype, e)
    }
}

/// Clears the "untyped" mark: an untyped literal alone is text (a NULL is a text NULL).
pub(super) fn settle(e: Expr) -> Expr {
    Expr { untyped: None, ..e }
}

/// A NULL constant of `dtype`.
pub(super) fn typed_null(dtype: DataType) -> Expr {
    Expr::constant(Arc::new(Column::nulls(dtype, 1)))
}

fn constant(dtype: DataType, push: impl FnOnce(&mut Column)) -> Expr {
    let mut c = Column::with_capacity(dtype, 1);
    push(&mut c);
    Expr::constant(Arc::new(c))
}

fn string_literal(s: &str) -> Expr {
    Expr {
        untyped: Some(Untyped::Str),
        ..constant(DataType::Text, |c| c.push_str(s))
    }
}

fn literal(v: &Value, e: &ast::Expr) -> Result<Expr, String> {
    match v {
        Value::Number(text, _) => number_literal(text, false),
        Value::SingleQuotedString(s)
        | Value::EscapedStringLiteral(s)
        | Value::UnicodeStringLiteral(s)
        | Value::NationalStringLiteral(s) => Ok(string_literal(s)),
        Value::DollarQuotedString(d) => Ok(string_literal(&d.value)),
        Value::Boolean(b) => Ok(constant(DataType::Bool, |c| c.push_bool(*b))),
        Value::Null => Ok(Expr {
            untyped: Some(Untyped::Null),
            ..typed_null(DataType::Text)
        }),
        _ => Err(format!(
            "`{e}`: this kind of literal is not supported; write numbers, 'text', TRUE, FALSE \
             or NULL"
        )),
    }
}

/// Integer literals are `int8`; decimals and exponents are `float8`.
fn number_literal(text: &str, negative: bool) -> Result<Expr, String> {
    let sign = if negative { "-" } else { "" };
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let s = format!("{sign}{text}");
        return match s.parse::<i64>() {
            Ok(x) => Ok(constant(DataType::Int64, |c| c.push_i64(x))),
            Err(_) => Err(format!(
                "the integer {s} is out of the int8 range; write it as a float ({s}.0) or a string"
            )),
        };
    }
    match text.parse::<f64>() {
        Ok(x) if x.is_finite() => {
            let x = if negative { -x } else { x };
            Ok(constant(DataType::Float64, |c| c.push_f64(x)))
        }
        Ok(_) => Err(format!(
            "the number {sign}{text} is out of the float8 range"
        )),
        Err(_) => Err(format!("`{sign}{text}` is not a number")),
    }
}

/// The tsmigrate type of a SQL type name.
fn sql_type(t: &ast::DataType) -> Result<DataType, String> {
    let text = t.to_string();
    DataType::parse_sql(&text)
        .ok_or_else(|| format!("unknown type `{text}`; known types: {KNOWN_TYPES}"))
}

/// Whether [`crate::convert::convert`] can convert some values of `from` to `to`; the
/// conversions that can never succeed are compile errors, with a hint when one helps.
pub(super) fn cast_supported(from: DataType, to: DataType) -> Result<(), String> {
    use DataType as T;
    let number = |t: T| t.is_integer() || t.is_float();
    let stringy = |t: T| matches!(t, T::Text | T::Json | T::Numeric);
    let ok = from == to
        || match to {
            T::Text => true,
            T::Json => stringy(from) || number(from) || from == T::Bool,
            T::Numeric => stringy(from) || number(from),
            T::Bytes => stringy(from),
            T::Int16 | T::Int32 | T::Int64 | T::Float32 | T::Float64 => {
                stringy(from) || number(from) || from == T::Bool
            }
            T::Bool => stringy(from) || from.is_integer(),
            T::Uuid => stringy(from) || from == T::Bytes,
            T::Timestamp(_) => stringy(from) || matches!(from, T::Timestamp(_)),
        };
    if ok {
        return Ok(());
    }
    let hint = match (from, to) {
        (f, T::Timestamp(_)) if number(f) => {
            ": a number has no time unit; use from_epoch_s/ms/us/ns(x), or to_timestamp(x) for \
             seconds"
        }
        (T::Timestamp(_), t) if number(t) => {
            ": use epoch_s/ms/us/ns(x) for a count of time units since the epoch"
        }
        (f, T::Bool) if f.is_float() => ": compare it instead (for example `x <> 0`)",
        _ => "",
    };
    Err(format!("cannot convert {from} to {to}{hint}"))
}

/// How values of types `a` and `b` are compared, or why they cannot be.
pub(super) fn cmp_kind(a: DataType, b: DataType) -> Result<CmpKind, String> {
    use DataType as T;
    Ok(match (a, b) {
        (x, y) if x.is_integer() && y.is_integer() => CmpKind::Int,
        (x, y) if x.is_integer() && y.is_float() => CmpKind::IntFloat,
        (x, y) if x.is_float() && y.is_integer() => CmpKind::FloatInt,
        (x, y) if x.is_float() && y.is_float() => CmpKind::Float,
        (T::Bool, T::Bool) => CmpKind::Bool,
        (T::Text, T::Text) | (T::Bytes, T::Bytes) => CmpKind::Bytes,
        (T::Uuid, T::Uuid) => CmpKind::Uuid,
        (T::Timestamp(p), T::Timestamp(q)) => CmpKind::Timestamp(p, q),
        (T::Json, _) | (_, T::Json) => {
            return Err("JSON values cannot be compared; cast them to text (`x::text`)".into())
        }
        (T::Numeric, _) | (_, T::Numeric) => {
            return Err(
                "numeric values must be cast before comparing (`x::float8`, or `x::text` to \
                 compare the text)"
                    .into(),
            )
        }
        _ => {
            return Err(format!(
                "cannot compare {a} with {b}; cast one side so both have the same type"
            ))
        }
    })
}

/// The common type of CASE branches, coalesce / greatest / least arguments: untyped literals
/// follow the others; integers widen to `int8`; integers with floats give `float8`;
/// timestamps take the finest unit; other types must be equal.
fn common_type(items: &[Expr]) -> Result<DataType, String> {
    let mut found: Option<DataType> = None;
    for e in items.iter().filter(|e| e.untyped.is_none()) {
        found = Some(match found {
            None => e.dtype,
            Some(t) => unify(t, e.dtype).ok_or_else(|| {
                format!(
                    "have different types: {t} and {}; cast them to one type (for example \
                     `x::text`)",
                    e.dtype
                )
            })?,
        });
    }
    Ok(found.unwrap_or(DataType::Text))
}

fn unify(a: DataType, b: DataType) -> Option<DataType> {
    use DataType as T;
    match (a, b) {
        _ if a == b => Some(a),
        (x, y) if x.is_integer() && y.is_integer() => Some(T::Int64),
        (x, y) if (x.is_integer() || x.is_float()) && (y.is_integer() || y.is_float()) => {
            Some(T::Float64)
        }
        (T::Timestamp(p), T::Timestamp(q)) => Some(T::Timestamp(p.max(q))),
        _ => None,
    }
}
