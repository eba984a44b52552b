//! Column-wise evaluation of compiled expressions.
//!
//! Every node evaluates over a whole batch at once and yields [`Values`]: either a column of
//! the batch's length (input columns are shared, not copied) or a one-row constant broadcast
//! over the batch. Conditional nodes (`CASE`, `coalesce`, `AND`, `OR`) evaluate their
//! branches under a *selection* — the rows whose result the branch decides — so that a value
//! computed for a row that does not need it (`CASE WHEN long_v BETWEEN ... THEN
//! long_v::float8 END`) neither rejects that row nor counts a lossy conversion.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::sync::Arc;

use crate::batch::Batch;
use crate::column::{Column, ColumnData};
use crate::convert::{convert, ConvertCtx, LossyCounts, RowErrors};
use crate::types::{DataType, TimeUnit};

use super::expr::{ArithOp, Branch, CmpKind, Expr, Node, TextFn};

/// Rows to evaluate: `None` means every row; otherwise `Some(mask)` with one flag per row.
/// Values of unselected rows are unspecified and never reject a row.
pub(super) type Sel<'s> = Option<&'s [bool]>;

/// Where evaluation happens: the input batch and where row errors and lossy counts go.
pub(super) struct EvalCtx<'a> {
    /// The input batch.
    pub batch: &'a Batch,
    /// Rows of the batch (also of every computed column).
    pub rows: usize,
    /// The target column being computed, for row errors.
    pub column: Option<&'a str>,
    /// Rejected rows.
    pub errors: &'a mut RowErrors,
    /// Allowed lossy conversions and their counts.
    pub lossy: &'a mut LossyCounts,
}

impl EvalCtx<'_> {
    /// Rejects `row` unless the selection excludes it.
    fn reject(&mut self, sel: Sel<'_>, row: usize, reason: impl FnOnce() -> String) {
        if selected(sel, row) {
            self.errors.reject(row, self.column, reason());
        }
    }
}

fn selected(sel: Sel<'_>, row: usize) -> bool {
    match sel {
        None => true,
        Some(s) => s.get(row).copied().unwrap_or(false),
    }
}

/// The result of evaluating a node: a column of the batch's length, or a one-row constant.
#[derive(Clone, Debug)]
pub(super) struct Values {
    col: Arc<Column>,
    scalar: bool,
}

impl Values {
    /// A full column.
    pub fn column(col: Arc<Column>) -> Values {
        Values { col, scalar: false }
    }

    fn owned(col: Column) -> Values {
        Values::column(Arc::new(col))
    }

    /// A one-row constant.
    pub fn scalar(col: Arc<Column>) -> Values {
        Values { col, scalar: true }
    }

    /// A NULL of `dtype` for every row.
    pub fn null(dtype: DataType) -> Values {
        Values::scalar(Arc::new(Column::nulls(dtype, 1)))
    }

    fn dtype(&self) -> DataType {
        self.col.dtype()
    }

    /// Position in the underlying column of row `i`.
    #[inline]
    fn at(&self, i: usize) -> usize {
        if self.scalar {
            0
        } else {
            i
        }
    }

    #[inline]
    fn valid(&self, i: usize) -> bool {
        self.col.is_valid(self.at(i))
    }

    #[inline]
    fn int(&self, i: usize) -> Option<i64> {
        let j = self.at(i);
        if !self.col.is_valid(j) {
            return None;
        }
        self.col.ints()?.get(j).copied()
    }

    #[inline]
    fn float(&self, i: usize) -> Option<f64> {
        let j = self.at(i);
        if !self.col.is_valid(j) {
            return None;
        }
        self.col.floats()?.get(j).copied()
    }

    #[inline]
    fn boolean(&self, i: usize) -> Option<bool> {
        let j = self.at(i);
        if !self.col.is_valid(j) {
            return None;
        }
        self.col.bools()?.get(j).copied()
    }

    #[inline]
    fn bytes(&self, i: usize) -> Option<&[u8]> {
        let j = self.at(i);
        if !self.col.is_valid(j) {
            return None;
        }
        Some(self.col.strs()?.get(j))
    }

    /// Text value of row `i` (text columns hold UTF-8; anything else is shown lossily).
    fn text(&self, i: usize) -> Option<Cow<'_, str>> {
        self.bytes(i).map(String::from_utf8_lossy)
    }

    #[inline]
    fn uuid(&self, i: usize) -> Option<&[u8; 16]> {
        let j = self.at(i);
        if !self.col.is_valid(j) {
            return None;
        }
        self.col.uuids()?.get(j)
    }

    /// True when some selected row is NULL.
    fn any_null(&self, sel: &[bool]) -> bool {
        if self.scalar {
            return !self.valid(0) && sel.iter().any(|s| *s);
        }
        if self.col.null_count() == 0 {
            return false;
        }
        sel.iter()
            .enumerate()
            .any(|(i, s)| *s && !self.col.is_valid(i))
    }

    /// A column of `rows` rows: the column itself, or the constant repeated.
    pub fn into_column(self, rows: usize) -> Arc<Column> {
        if !self.scalar {
            return self.col;
        }
        let mut out = Column::with_capacity(self.dtype(), rows);
        for _ in 0..rows {
            push_from(&mut out, &self, 0);
        }
        Arc::new(out)
    }
}

/// Appends row `i` of `src` to `out` (same type), copying bytes without re-validating them.
fn push_from(out: &mut Column, src: &Values, i: usize) {
    let j = src.at(i);
    if !src.col.is_valid(j) {
        out.push_null();
        return;
    }
    match src.col.data() {
        ColumnData::Bool(v) => match v.get(j) {
            Some(b) => out.push_bool(*b),
            None => out.push_null(),
        },
        ColumnData::Int(v) => match v.get(j) {
            Some(x) => out.push_i64(*x),
            None => out.push_null(),
        },
        ColumnData::Float(v) => match v.get(j) {
            Some(x) => out.push_f64(*x),
            None => out.push_null(),
        },
        ColumnData::Str(v) => out.push_bytes(v.get(j)),
        ColumnData::Uuid(v) => match v.get(j) {
            Some(u) => out.push_uuid(*u),
            None => out.push_null(),
        },
    }
}

fn push_opt_bool(out: &mut Column, b: Option<bool>) {
    match b {
        Some(b) => out.push_bool(b),
        None => out.push_null(),
    }
}

/// A copy of `col` where the unselected rows are NULL, so that converting it neither
/// rejects nor counts those rows. Returns `col` itself when they are NULL already.
fn mask(col: Arc<Column>, sel: &[bool]) -> Arc<Column> {
    let clean = sel.iter().enumerate().all(|(i, s)| *s || !col.is_valid(i));
    if clean {
        return col;
    }
    let src = Values::column(col);
    let mut out = Column::with_capacity(src.dtype(), sel.len());
    for (i, s) in sel.iter().enumerate() {
        if *s {
            push_from(&mut out, &src, i);
        } else {
            out.push_null();
        }
    }
    Arc::new(out)
}

/// Builds a column taking each row from the source `picks[i]` names (NULL for `None`).
fn gather(dtype: DataType, picks: &[Option<usize>], sources: &[Values]) -> Result<Values, String> {
    if let Some(s) = sources.iter().find(|s| s.dtype() != dtype) {
        return Err(format!(
            "a branch produced {} where {dtype} was expected",
            s.dtype()
        ));
    }
    let mut out = Column::with_capacity(dtype, picks.len());
    for (i, pick) in picks.iter().enumerate() {
        match pick.and_then(|k| sources.get(k)) {
            Some(src) => push_from(&mut out, src, i),
            None => out.push_null(),
        }
    }
    Ok(Values::owned(out))
}

/// Three-valued AND.
fn and3(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

/// Three-valued OR.
fn or3(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (Some(false), Some(false)) => Some(false),
        _ => None,
    }
}

impl Expr {
    /// Evaluates the expression over the rows of `cx.batch` selected by `sel`.
    /// Errors are internal (an input batch that does not match the compiled schema).
    pub(super) fn eval(&self, cx: &mut EvalCtx<'_>, sel: Sel<'_>) -> Result<Values, String> {
        let sel = match sel {
            Some(s) if !s.iter().any(|b| *b) => return Ok(Values::null(self.dtype)),
            Some(s) if s.iter().all(|b| *b) => None,
            other => other,
        };
        let n = cx.rows;
        let dtype = self.dtype;
        match &self.node {
            Node::Column(index) => {
                let col = cx
                    .batch
                    .columns
                    .get(*index)
                    .ok_or_else(|| format!("the input batch has no column {index}"))?;
                if col.dtype() != dtype || col.len() != n {
                    return Err(format!(
                        "input column {index} is {} with {} rows; the mapping was compiled for {dtype} with {n} rows",
                        col.dtype(),
                        col.len()
                    ));
                }
                Ok(Values::column(col.clone()))
            }
            Node::Const(c) => Ok(Values::scalar(c.clone())),
            Node::Cast(input) => {
                let col = input.eval(cx, sel)?.into_column(n);
                let col = match sel {
                    Some(s) => mask(col, s),
                    None => col,
                };
                let mut ctx = ConvertCtx {
                    errors: &mut *cx.errors,
                    lossy: &mut *cx.lossy,
                    column: cx.column,
                };
                Ok(Values::owned(convert(&col, dtype, &mut ctx)))
            }
            Node::Relabel(input) => {
                let v = input.eval(cx, sel)?;
                let scalar = v.scalar;
                let col = Arc::unwrap_or_clone(v.col)
                    .relabel(dtype)
                    .ok_or_else(|| format!("cannot relabel {} as {dtype}", input.dtype))?;
                Ok(Values {
                    col: Arc::new(col),
                    scalar,
                })
            }
            Node::Arith { op, left, right } => {
                let l = left.eval(cx, sel)?;
                let r = right.eval(cx, sel)?;
                Ok(arith(cx, sel, *op, dtype, &l, &r))
            }
            Node::Negate(input) => {
                let v = input.eval(cx, sel)?;
                Ok(negate(cx, sel, dtype, &v))
            }
            Node::Concat { args, skip_nulls } => {
                let vals = args
                    .iter()
                    .map(|a| a.eval(cx, sel))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(concat(n, &vals, *skip_nulls))
            }
            Node::Compare {
                op,
                left,
                right,
                kind,
            } => {
                let l = left.eval(cx, sel)?;
                let r = right.eval(cx, sel)?;
                let mut out = Column::with_capacity(DataType::Bool, n);
                for i in 0..n {
                    push_opt_bool(&mut out, kind.compare(&l, &r, i).map(|o| op.holds(o)));
                }
                Ok(Values::owned(out))
            }
            Node::Distinct {
                left,
                right,
                kind,
                negated,
            } => {
                let l = left.eval(cx, sel)?;
                let r = right.eval(cx, sel)?;
                let mut out = Column::with_capacity(DataType::Bool, n);
                for i in 0..n {
                    let distinct = match (l.valid(i), r.valid(i)) {
                        (false, false) => false,
                        (true, true) => kind.compare(&l, &r, i) != Some(Ordering::Equal),
                        _ => true,
                    };
                    out.push_bool(distinct != *negated);
                }
                Ok(Values::owned(out))
            }
            Node::Between {
                expr,
                low,
                high,
                low_kind,
                high_kind,
                negated,
            } => {
                let x = expr.eval(cx, sel)?;
                let lo = low.eval(cx, sel)?;
                let hi = high.eval(cx, sel)?;
                let mut out = Column::with_capacity(DataType::Bool, n);
                for i in 0..n {
                    let ge = low_kind.compare(&x, &lo, i).map(|o| o != Ordering::Less);
                    let le = high_kind
                        .compare(&x, &hi, i)
                        .map(|o| o != Ordering::Greater);
                    let inside = and3(ge, le);
                    push_opt_bool(&mut out, if *negated { inside.map(|b| !b) } else { inside });
                }
                Ok(Values::owned(out))
            }
            Node::InList {
                expr,
                list,
                negated,
            } => {
                let x = expr.eval(cx, sel)?;
                let items = list
                    .iter()
                    .map(|(e, kind)| Ok((e.eval(cx, sel)?, *kind)))
                    .collect::<Result<Vec<_>, String>>()?;
                let mut out = Column::with_capacity(DataType::Bool, n);
                for i in 0..n {
                    let mut found = false;
                    let mut unknown = false;
                    for (item, kind) in &items {
                        match kind.compare(&x, item, i) {
                            Some(Ordering::Equal) => {
                                found = true;
                                break;
                            }
                            Some(_) => {}
                            None => unknown = true,
                        }
                    }
                    let result = if found {
                        Some(true)
                    } else if unknown {
                        None
                    } else {
                        Some(false)
                    };
                    push_opt_bool(&mut out, if *negated { result.map(|b| !b) } else { result });
                }
                Ok(Values::owned(out))
            }
            Node::And(a, b) | Node::Or(a, b) => {
                let is_and = matches!(self.node, Node::And(..));
                // The right side only matters where the left side does not decide the result.
                let decided = Some(!is_and);
                let l = a.eval(cx, sel)?;
                let rest: Vec<bool> = (0..n)
                    .map(|i| selected(sel, i) && l.boolean(i) != decided)
                    .collect();
                let r = b.eval(cx, Some(&rest))?;
                let mut out = Column::with_capacity(DataType::Bool, n);
                for i in 0..n {
                    let (x, y) = (l.boolean(i), r.boolean(i));
                    push_opt_bool(&mut out, if is_and { and3(x, y) } else { or3(x, y) });
                }
                Ok(Values::owned(out))
            }
            Node::Not(input) => {
                let v = input.eval(cx, sel)?;
                let mut out = Column::with_capacity(DataType::Bool, n);
                for i in 0..n {
                    push_opt_bool(&mut out, v.boolean(i).map(|b| !b));
                }
                Ok(Values::owned(out))
            }
            Node::IsNull { input, negated } => {
                let v = input.eval(cx, sel)?;
                let mut out = Column::with_capacity(DataType::Bool, n);
                for i in 0..n {
                    out.push_bool(v.valid(i) == *negated);
                }
                Ok(Values::owned(out))
            }
            Node::IsBool {
                input,
                value,
                negated,
            } => {
                let v = input.eval(cx, sel)?;
                let mut out = Column::with_capacity(DataType::Bool, n);
                for i in 0..n {
                    out.push_bool((v.boolean(i) == Some(*value)) != *negated);
                }
                Ok(Values::owned(out))
            }
            Node::Case {
                operand,
                branches,
                otherwise,
            } => case(
                cx,
                sel,
                dtype,
                operand.as_deref(),
                branches,
                otherwise.as_deref(),
            ),
            Node::Coalesce(args) => coalesce(cx, sel, dtype, args),
            Node::NullIf { left, right, kind } => {
                let l = left.eval(cx, sel)?;
                let r = right.eval(cx, sel)?;
                let mut out = Column::with_capacity(dtype, n);
                for i in 0..n {
                    if kind.compare(&l, &r, i) == Some(Ordering::Equal) {
                        out.push_null();
                    } else {
                        push_from(&mut out, &l, i);
                    }
                }
                Ok(Values::owned(out))
            }
            Node::Extreme {
                args,
                kind,
                greatest,
            } => {
                let vals = args
                    .iter()
                    .map(|a| a.eval(cx, sel))
                    .collect::<Result<Vec<_>, _>>()?;
                let wanted = if *greatest {
                    Ordering::Greater
                } else {
                    Ordering::Less
                };
                let mut out = Column::with_capacity(dtype, n);
                for i in 0..n {
                    let mut best: Option<&Values> = None;
                    for v in vals.iter().filter(|v| v.valid(i)) {
                        best = match best {
                            Some(b) if kind.compare(v, b, i) != Some(wanted) => Some(b),
                            _ => Some(v),
                        };
                    }
                    match best {
                        Some(b) => push_from(&mut out, b, i),
                        None => out.push_null(),
                    }
                }
                Ok(Values::owned(out))
            }
            Node::Text { func, input } => {
                let v = input.eval(cx, sel)?;
                let mut out = Column::with_capacity(DataType::Text, n);
                let mut buf = String::new();
                for i in 0..n {
                    match v.text(i) {
                        Some(s) => {
                            buf.clear();
                            func.apply(&s, &mut buf);
                            out.push_str(&buf);
                        }
                        None => out.push_null(),
                    }
                }
                Ok(Values::owned(out))
            }
            Node::Length(input) => {
                let v = input.eval(cx, sel)?;
                let is_text = input.dtype != DataType::Bytes;
                let mut out = Column::with_capacity(dtype, n);
                for i in 0..n {
                    match v.bytes(i) {
                        // Characters of UTF-8 text: every byte that does not continue one.
                        Some(b) if is_text => {
                            out.push_i64(b.iter().filter(|c| (**c & 0xC0) != 0x80).count() as i64)
                        }
                        Some(b) => out.push_i64(b.len() as i64),
                        None => out.push_null(),
                    }
                }
                Ok(Values::owned(out))
            }
            Node::IsoTime(input) => {
                let v = input.eval(cx, sel)?;
                let DataType::Timestamp(unit) = input.dtype else {
                    return Err("internal error: iso_time of a non-timestamp".into());
                };
                let mut out = Column::with_capacity(dtype, n);
                let mut text = String::new();
                for i in 0..n {
                    match v.int(i) {
                        Some(t) => {
                            text.clear();
                            crate::convert::write_timestamp_fixed(t, unit, &mut text);
                            out.push_str(&text);
                        }
                        None => out.push_null(),
                    }
                }
                Ok(Values::owned(out))
            }
            Node::Abs(input) => {
                let v = input.eval(cx, sel)?;
                let mut out = Column::with_capacity(dtype, n);
                for i in 0..n {
                    if dtype == DataType::Float64 {
                        match v.float(i) {
                            Some(x) => out.push_f64(x.abs()),
                            None => out.push_null(),
                        }
                    } else {
                        match v.int(i).map(|x| (x, x.checked_abs())) {
                            Some((_, Some(y))) => out.push_i64(y),
                            Some((x, None)) => {
                                cx.reject(sel, i, || format!("abs({x}) is out of the int8 range"));
                                out.push_null();
                            }
                            None => out.push_null(),
                        }
                    }
                }
                Ok(Values::owned(out))
            }
            Node::Round(input) => {
                let v = input.eval(cx, sel)?;
                let mut out = Column::with_capacity(dtype, n);
                for i in 0..n {
                    match v.float(i) {
                        Some(x) => out.push_f64(x.round_ties_even()),
                        None => out.push_null(),
                    }
                }
                Ok(Values::owned(out))
            }
            Node::FloatToTimestamp(input) => {
                let v = input.eval(cx, sel)?;
                let mut out = Column::with_capacity(dtype, n);
                for i in 0..n {
                    match v.float(i).map(|x| (x, seconds_to_micros(x))) {
                        Some((_, Ok(us))) => out.push_i64(us),
                        Some((x, Err(why))) => {
                            cx.reject(sel, i, || format!("to_timestamp({x}): {why}"));
                            out.push_null();
                        }
                        None => out.push_null(),
                    }
                }
                Ok(Values::owned(out))
            }
            Node::Epoch { input, unit } => {
                let from = match input.dtype {
                    DataType::Timestamp(u) => u,
                    other => return Err(format!("epoch of a {other} value")),
                };
                let v = input.eval(cx, sel)?;
                let mut out = Column::with_capacity(dtype, n);
                for i in 0..n {
                    match v.int(i).map(|x| (x, rescale_floor(x, from, *unit))) {
                        Some((_, Some(y))) => out.push_i64(y),
                        Some((x, None)) => {
                            cx.reject(sel, i, || {
                                format!(
                                    "timestamp {x} {} overflows int8 in {}",
                                    from.short_name(),
                                    unit.short_name()
                                )
                            });
                            out.push_null();
                        }
                        None => out.push_null(),
                    }
                }
                Ok(Values::owned(out))
            }
        }
    }
}

/// Why an arithmetic operation has no result.
enum ArithError {
    DivisionByZero,
    Overflow,
    Underflow,
}

fn int_op(op: ArithOp, a: i64, b: i64) -> Result<i64, ArithError> {
    let r = match op {
        ArithOp::Add => a.checked_add(b),
        ArithOp::Sub => a.checked_sub(b),
        ArithOp::Mul => a.checked_mul(b),
        ArithOp::Div | ArithOp::Rem if b == 0 => return Err(ArithError::DivisionByZero),
        // Truncates toward zero, like PostgreSQL.
        ArithOp::Div => a.checked_div(b),
        // i64::MIN % -1 is 0 in PostgreSQL (and overflows in hardware).
        ArithOp::Rem if b == -1 => Some(0),
        ArithOp::Rem => a.checked_rem(b),
    };
    r.ok_or(ArithError::Overflow)
}

/// Float arithmetic with PostgreSQL's checks: division by zero (of anything but NaN), and
/// overflow to infinity or underflow to zero from finite, non-zero operands, are errors; NaN
/// and infinities otherwise compute normally.
fn float_op(op: ArithOp, a: f64, b: f64) -> Result<f64, ArithError> {
    let r = match op {
        ArithOp::Add => a + b,
        ArithOp::Sub => a - b,
        ArithOp::Mul => a * b,
        ArithOp::Div | ArithOp::Rem if b == 0.0 && !a.is_nan() => {
            return Err(ArithError::DivisionByZero)
        }
        ArithOp::Div => a / b,
        ArithOp::Rem => a % b,
    };
    if r.is_infinite() && a.is_finite() && b.is_finite() {
        return Err(ArithError::Overflow);
    }
    let underflow = match op {
        ArithOp::Mul => r == 0.0 && a != 0.0 && b != 0.0,
        ArithOp::Div => r == 0.0 && a != 0.0 && b.is_finite(),
        _ => false,
    };
    if underflow {
        return Err(ArithError::Underflow);
    }
    Ok(r)
}

fn arith_reason(err: ArithError, what: String, ty: &str) -> String {
    match err {
        ArithError::DivisionByZero => format!("division by zero in {what}"),
        ArithError::Overflow => format!("{what} is out of the {ty} range (overflow)"),
        ArithError::Underflow => format!("{what} is out of the {ty} range (underflow)"),
    }
}

fn arith(
    cx: &mut EvalCtx<'_>,
    sel: Sel<'_>,
    op: ArithOp,
    dtype: DataType,
    l: &Values,
    r: &Values,
) -> Values {
    let n = cx.rows;
    let mut out = Column::with_capacity(dtype, n);
    if dtype == DataType::Float64 {
        for i in 0..n {
            let (Some(a), Some(b)) = (l.float(i), r.float(i)) else {
                out.push_null();
                continue;
            };
            match float_op(op, a, b) {
                Ok(x) => out.push_f64(x),
                Err(e) => {
                    cx.reject(sel, i, || {
                        let what = format!("{a:?} {} {b:?}", op.symbol());
                        arith_reason(e, what, "float8")
                    });
                    out.push_null();
                }
            }
        }
    } else {
        for i in 0..n {
            let (Some(a), Some(b)) = (l.int(i), r.int(i)) else {
                out.push_null();
                continue;
            };
            match int_op(op, a, b) {
                Ok(x) => out.push_i64(x),
                Err(e) => {
                    cx.reject(sel, i, || {
                        arith_reason(e, format!("{a} {} {b}", op.symbol()), "int8")
                    });
                    out.push_null();
                }
            }
        }
    }
    Values::owned(out)
}

fn negate(cx: &mut EvalCtx<'_>, sel: Sel<'_>, dtype: DataType, v: &Values) -> Values {
    let n = cx.rows;
    let mut out = Column::with_capacity(dtype, n);
    for i in 0..n {
        if dtype == DataType::Float64 {
            match v.float(i) {
                Some(x) => out.push_f64(-x),
                None => out.push_null(),
            }
        } else {
            match v.int(i).map(|x| (x, x.checked_neg())) {
                Some((_, Some(y))) => out.push_i64(y),
                Some((x, None)) => {
                    cx.reject(sel, i, || {
                        format!("-({x}) is out of the int8 range (overflow)")
                    });
                    out.push_null();
                }
                None => out.push_null(),
            }
        }
    }
    Values::owned(out)
}

fn concat(n: usize, args: &[Values], skip_nulls: bool) -> Values {
    let mut out = Column::with_capacity(DataType::Text, n);
    let mut buf: Vec<u8> = Vec::new();
    'rows: for i in 0..n {
        buf.clear();
        for a in args {
            match a.bytes(i) {
                Some(b) => buf.extend_from_slice(b),
                None if skip_nulls => {}
                None => {
                    out.push_null();
                    continue 'rows;
                }
            }
        }
        out.push_bytes(&buf);
    }
    Values::owned(out)
}

fn case(
    cx: &mut EvalCtx<'_>,
    sel: Sel<'_>,
    dtype: DataType,
    operand: Option<&Expr>,
    branches: &[Branch],
    otherwise: Option<&Expr>,
) -> Result<Values, String> {
    let n = cx.rows;
    let operand = operand.map(|o| o.eval(cx, sel)).transpose()?;
    // Rows not decided by an earlier branch.
    let mut undecided: Vec<bool> = (0..n).map(|i| selected(sel, i)).collect();
    let mut picks: Vec<Option<usize>> = vec![None; n];
    let mut sources = Vec::with_capacity(branches.len() + 1);
    for (k, branch) in branches.iter().enumerate() {
        if !undecided.iter().any(|u| *u) {
            break;
        }
        let when = branch.when.eval(cx, Some(&undecided))?;
        let hits: Vec<bool> = (0..n)
            .map(|i| {
                let hit = match (&operand, branch.kind) {
                    (Some(x), Some(kind)) => kind.compare(x, &when, i) == Some(Ordering::Equal),
                    _ => when.boolean(i) == Some(true),
                };
                hit && undecided.get(i).copied().unwrap_or(false)
            })
            .collect();
        let value = branch.then.eval(cx, Some(&hits))?;
        for ((hit, pick), open) in hits.iter().zip(&mut picks).zip(&mut undecided) {
            if *hit {
                *pick = Some(k);
                *open = false;
            }
        }
        sources.push(value);
    }
    if let Some(e) = otherwise {
        let value = e.eval(cx, Some(&undecided))?;
        let k = sources.len();
        for (open, pick) in undecided.iter().zip(&mut picks) {
            if *open {
                *pick = Some(k);
            }
        }
        sources.push(value);
    }
    gather(dtype, &picks, &sources)
}

fn coalesce(
    cx: &mut EvalCtx<'_>,
    sel: Sel<'_>,
    dtype: DataType,
    args: &[Expr],
) -> Result<Values, String> {
    let n = cx.rows;
    // Rows still NULL (and selected).
    let mut open: Vec<bool> = (0..n).map(|i| selected(sel, i)).collect();
    let mut picks: Vec<Option<usize>> = vec![None; n];
    let mut sources = Vec::with_capacity(args.len());
    for (k, arg) in args.iter().enumerate() {
        let value = arg.eval(cx, Some(&open))?;
        if k == 0 && !value.any_null(&open) {
            // The common case: the first argument is present wherever it is needed.
            return Ok(value);
        }
        let mut left = false;
        for (i, (o, pick)) in open.iter_mut().zip(&mut picks).enumerate() {
            if *o && value.valid(i) {
                *pick = Some(k);
                *o = false;
            }
            left |= *o;
        }
        sources.push(value);
        if !left {
            break;
        }
    }
    gather(dtype, &picks, &sources)
}

impl TextFn {
    /// Writes the function of `s` into `out`.
    fn apply(&self, s: &str, out: &mut String) {
        match self {
            TextFn::Lower => out.extend(s.chars().flat_map(char::to_lowercase)),
            TextFn::Upper => out.extend(s.chars().flat_map(char::to_uppercase)),
            TextFn::Trim {
                chars,
                leading,
                trailing,
            } => {
                let mut t = s;
                if *leading {
                    t = t.trim_start_matches(|c| chars.contains(&c));
                }
                if *trailing {
                    t = t.trim_end_matches(|c| chars.contains(&c));
                }
                out.push_str(t);
            }
        }
    }
}

impl CmpKind {
    /// Orders row `i` of `l` against row `i` of `r`; `None` when either is NULL.
    fn compare(self, l: &Values, r: &Values, i: usize) -> Option<Ordering> {
        Some(match self {
            CmpKind::Int => l.int(i)?.cmp(&r.int(i)?),
            CmpKind::Float => cmp_f64(l.float(i)?, r.float(i)?),
            CmpKind::IntFloat => cmp_int_float(l.int(i)?, r.float(i)?),
            CmpKind::FloatInt => cmp_int_float(r.int(i)?, l.float(i)?).reverse(),
            CmpKind::Bool => l.boolean(i)?.cmp(&r.boolean(i)?),
            CmpKind::Bytes => l.bytes(i)?.cmp(r.bytes(i)?),
            CmpKind::Uuid => l.uuid(i)?.cmp(r.uuid(i)?),
            CmpKind::Timestamp(a, b) => ticks_ns(l.int(i)?, a).cmp(&ticks_ns(r.int(i)?, b)),
        })
    }
}

/// Float order as in PostgreSQL: NaN equals NaN and is above every other value; -0 = 0.
pub(super) fn cmp_f64(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

/// Exact order of an integer and a float (no rounding of the integer to a float).
pub(super) fn cmp_int_float(a: i64, b: f64) -> Ordering {
    const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
    if b.is_nan() || b >= TWO_POW_63 {
        return Ordering::Less;
    }
    if b < -TWO_POW_63 {
        return Ordering::Greater;
    }
    // Here -2^63 <= b < 2^63, so its integer part is an exact i64.
    let whole = b.trunc();
    let frac = b - whole;
    match a.cmp(&(whole as i64)) {
        Ordering::Equal if frac > 0.0 => Ordering::Less,
        Ordering::Equal if frac < 0.0 => Ordering::Greater,
        o => o,
    }
}

fn ticks_ns(x: i64, unit: TimeUnit) -> i128 {
    i128::from(x) * i128::from(1_000_000_000 / unit.per_second())
}

/// `x` ticks of `from` as ticks of `to`, flooring when `to` is coarser; `None` on overflow.
fn rescale_floor(x: i64, from: TimeUnit, to: TimeUnit) -> Option<i64> {
    let (fp, tp) = (from.per_second(), to.per_second());
    if tp >= fp {
        x.checked_mul(tp / fp)
    } else {
        Some(x.div_euclid(fp / tp))
    }
}

/// Seconds since the epoch as microseconds, rounded half to even, from PostgreSQL's first
/// timestamp (4714-11-24 BC) to the last one an `i64` count of microseconds since 1970 holds
/// (year 294247).
fn seconds_to_micros(x: f64) -> Result<i64, &'static str> {
    const MIN_SECONDS: f64 = -210_866_803_200.0;
    const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
    if x.is_nan() {
        return Err("timestamp cannot be NaN");
    }
    let us = (x * 1_000_000.0).round_ties_even();
    if x < MIN_SECONDS || us >= TWO_POW_63 {
        return Err("timestamp out of range");
    }
    Ok(us as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_float_order_is_exact_above_2_pow_53() {
        let two53 = 9_007_199_254_740_992.0_f64;
        assert_eq!(cmp_int_float((1 << 53) + 1, two53), Ordering::Greater);
        assert_eq!(cmp_int_float(1 << 53, two53), Ordering::Equal);
        assert_eq!(
            cmp_int_float(i64::MAX, 9_223_372_036_854_775_807.0),
            Ordering::Less
        );
        assert_eq!(
            cmp_int_float(i64::MIN, -9.223_372_036_854_776e18),
            Ordering::Equal
        );
        assert_eq!(cmp_int_float(2, 2.5), Ordering::Less);
        assert_eq!(cmp_int_float(-2, -2.5), Ordering::Greater);
        assert_eq!(cmp_int_float(0, f64::NAN), Ordering::Less);
        assert_eq!(cmp_int_float(0, f64::NEG_INFINITY), Ordering::Greater);
        assert_eq!(cmp_f64(f64::NAN, f64::NAN), Ordering::Equal);
        assert_eq!(cmp_f64(f64::NAN, f64::INFINITY), Ordering::Greater);
        assert_eq!(cmp_f64(-0.0, 0.0), Ordering::Equal);
    }

    #[test]
    fn arithmetic_edges() {
        assert!(matches!(int_op(ArithOp::Rem, i64::MIN, -1), Ok(0)));
        assert!(matches!(
            int_op(ArithOp::Div, i64::MIN, -1),
            Err(ArithError::Overflow)
        ));
        assert!(matches!(int_op(ArithOp::Div, -7, 2), Ok(-3)));
        assert!(matches!(int_op(ArithOp::Rem, -7, 3), Ok(-1)));
        assert!(matches!(
            float_op(ArithOp::Mul, 1e308, 10.0),
            Err(ArithError::Overflow)
        ));
        assert!(matches!(
            float_op(ArithOp::Mul, 1e-308, 1e-308),
            Err(ArithError::Underflow)
        ));
        assert!(matches!(float_op(ArithOp::Add, f64::INFINITY, 1.0), Ok(x) if x.is_infinite()));
        assert!(matches!(
            float_op(ArithOp::Div, 1.0, 0.0),
            Err(ArithError::DivisionByZero)
        ));
        assert!(matches!(float_op(ArithOp::Div, f64::NAN, 0.0), Ok(x) if x.is_nan()));
    }

    #[test]
    fn epoch_floors_and_to_timestamp_rounds() {
        assert_eq!(
            rescale_floor(-1, TimeUnit::Micros, TimeUnit::Millis),
            Some(-1)
        );
        assert_eq!(
            rescale_floor(1_999, TimeUnit::Micros, TimeUnit::Millis),
            Some(1)
        );
        assert_eq!(
            rescale_floor(i64::MAX, TimeUnit::Seconds, TimeUnit::Millis),
            None
        );
        assert_eq!(seconds_to_micros(1.5), Ok(1_500_000));
        assert_eq!(seconds_to_micros(-1.25), Ok(-1_250_000));
        assert!(seconds_to_micros(f64::NAN).is_err());
        assert!(seconds_to_micros(f64::INFINITY).is_err());
        assert!(seconds_to_micros(1e300).is_err());
        assert!(seconds_to_micros(9_223_372_036_855.0).is_err());
        assert_eq!(
            seconds_to_micros(9_223_372_036_000.0),
            Ok(9_223_372_036_000_000_000)
        );
        assert!(seconds_to_micros(-210_866_803_201.0).is_err());
    }
}
