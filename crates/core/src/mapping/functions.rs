//! The functions a mapping may call: their argument checks, result types and nodes.

use sqlparser::ast::{self, FunctionArg, FunctionArgExpr, FunctionArguments, TrimWhereField};

use crate::column::ValueRef;
use crate::types::{DataType, TimeUnit};

use super::compile::{cmp_kind, settle, typed_null, Compiler};
use super::expr::{Expr, Node, TextFn, Untyped};

/// The supported functions (for messages and docs).
pub(super) const FUNCTIONS: &str = "coalesce, nullif, greatest, least, lower, upper, trim, \
     btrim, ltrim, rtrim, length, concat, abs, round, to_timestamp, from_epoch_s, from_epoch_ms, \
     from_epoch_us, from_epoch_ns, epoch_s, epoch_ms, epoch_us, epoch_ns, iso_time";

/// Functions whose result changes from run to run.
const NON_DETERMINISTIC: &[&str] = &[
    "now",
    "current_timestamp",
    "current_date",
    "current_time",
    "localtimestamp",
    "localtime",
    "clock_timestamp",
    "statement_timestamp",
    "transaction_timestamp",
    "timeofday",
    "random",
    "gen_random_uuid",
    "uuid_generate_v4",
    "nextval",
];

/// Aggregate and window functions (named in a clearer message than unknown functions).
const AGGREGATES: &[&str] = &[
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "array_agg",
    "string_agg",
    "json_agg",
    "jsonb_agg",
    "bool_and",
    "bool_or",
    "every",
    "stddev",
    "variance",
    "first_value",
    "last_value",
    "lag",
    "lead",
    "row_number",
    "rank",
];

fn epoch_unit(name: &str, prefix: &str) -> Option<TimeUnit> {
    match name.strip_prefix(prefix)? {
        "s" => Some(TimeUnit::Seconds),
        "ms" => Some(TimeUnit::Millis),
        "us" => Some(TimeUnit::Micros),
        "ns" => Some(TimeUnit::Nanos),
        _ => None,
    }
}

fn unit_name(unit: TimeUnit) -> &'static str {
    match unit {
        TimeUnit::Seconds => "seconds",
        TimeUnit::Millis => "milliseconds",
        TimeUnit::Micros => "microseconds",
        TimeUnit::Nanos => "nanoseconds",
    }
}

/// Exactly `N` compiled arguments.
fn take<const N: usize>(name: &str, args: Vec<Expr>) -> Result<[Expr; N], String> {
    <[Expr; N]>::try_from(args).map_err(|a| {
        format!(
            "`{name}` takes {N} argument{}, got {}",
            if N == 1 { "" } else { "s" },
            a.len()
        )
    })
}

impl Compiler<'_> {
    /// Compiles a function call.
    pub(super) fn function(&self, f: &ast::Function, e: &ast::Expr) -> Result<Expr, String> {
        let name = match f.name.0.as_slice() {
            [id] => id.value.to_ascii_lowercase(),
            _ => {
                return Err(format!(
                    "`{e}`: qualified function names are not supported; supported functions: \
                     {FUNCTIONS}"
                ))
            }
        };
        if NON_DETERMINISTIC.contains(&name.as_str()) {
            return Err(format!(
                "`{name}` is not supported: it is non-deterministic, and a mapping must compute \
                 the same values every time it runs (re-run partitions must match); take the \
                 value from a source column instead"
            ));
        }
        if f.over.is_some() || AGGREGATES.contains(&name.as_str()) {
            return Err(format!(
                "`{e}`: aggregate and window functions are not supported; a mapping computes \
                 each row from that row alone"
            ));
        }
        if f.filter.is_some()
            || f.null_treatment.is_some()
            || !f.within_group.is_empty()
            || !matches!(f.parameters, FunctionArguments::None)
        {
            return Err(format!(
                "`{e}`: FILTER, WITHIN GROUP and similar clauses are not supported"
            ));
        }
        let args = match &f.args {
            FunctionArguments::List(list)
                if list.duplicate_treatment.is_none() && list.clauses.is_empty() =>
            {
                list.args
                    .iter()
                    .map(|a| match a {
                        FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) => Ok(x),
                        _ => Err(format!(
                            "`{e}`: only plain positional arguments are supported"
                        )),
                    })
                    .collect::<Result<Vec<_>, _>>()?
            }
            FunctionArguments::None => {
                return Err(format!(
                    "`{e}`: write the call with parentheses, `{name}(...)`"
                ))
            }
            _ => {
                return Err(format!(
                    "`{e}`: DISTINCT, ORDER BY and subquery arguments are not supported"
                ))
            }
        };
        let args = args
            .into_iter()
            .map(|a| self.expr(a))
            .collect::<Result<Vec<_>, _>>()?;
        self.call(&name, args, e)
    }

    fn call(&self, name: &str, args: Vec<Expr>, e: &ast::Expr) -> Result<Expr, String> {
        if args.is_empty() {
            return Err(format!("`{e}`: `{name}` needs at least one argument"));
        }
        match name {
            "coalesce" => {
                let (mut args, dtype) = self.unify(args, "the coalesce arguments", e)?;
                if args.len() == 1 {
                    if let Some(only) = args.pop() {
                        return Ok(only);
                    }
                }
                self.make(Node::Coalesce(args), dtype, e)
            }
            "nullif" => {
                let [a, b] = take(name, args)?;
                let (left, right, kind) = self.comparison(a, b, e)?;
                let dtype = left.dtype;
                let node = Node::NullIf {
                    left: Box::new(left),
                    right: Box::new(right),
                    kind,
                };
                self.make(node, dtype, e)
            }
            "greatest" | "least" => {
                let (args, dtype) = self.unify(args, "the arguments", e)?;
                let kind = cmp_kind(dtype, dtype).map_err(|m| format!("`{e}`: {m}"))?;
                let node = Node::Extreme {
                    args,
                    kind,
                    greatest: name == "greatest",
                };
                self.make(node, dtype, e)
            }
            "lower" | "upper" => {
                let [x] = take(name, args)?;
                let func = if name == "lower" {
                    TextFn::Lower
                } else {
                    TextFn::Upper
                };
                self.text_fn(func, x, name, e)
            }
            "btrim" | "ltrim" | "rtrim" => {
                if args.len() > 2 {
                    return Err(format!(
                        "`{name}` takes 1 or 2 arguments, got {}",
                        args.len()
                    ));
                }
                let mut args = args.into_iter();
                let x = args
                    .next()
                    .ok_or_else(|| format!("`{name}` needs a value"))?;
                let chars = match args.next() {
                    Some(c) => self.const_text(c, name)?,
                    None => " ".to_string(),
                };
                let func = TextFn::Trim {
                    chars: chars.chars().collect(),
                    leading: name != "rtrim",
                    trailing: name != "ltrim",
                };
                self.text_fn(func, x, name, e)
            }
            "length" | "char_length" | "character_length" => {
                let [x] = take(name, args)?;
                let x = settle(x);
                if !matches!(x.dtype, DataType::Text | DataType::Bytes) {
                    return Err(format!(
                        "`{e}`: {name} needs text or bytea, found {}; cast it (`x::text`)",
                        x.dtype
                    ));
                }
                self.make(Node::Length(Box::new(x)), DataType::Int32, e)
            }
            "iso_time" => {
                let [x] = take(name, args)?;
                let x = settle(x);
                if !matches!(x.dtype, DataType::Timestamp(_)) {
                    return Err(format!(
                        "`{e}`: iso_time needs a timestamp, found {}; convert it first (from_epoch_ms(x), x::timestamptz)",
                        x.dtype
                    ));
                }
                self.make(Node::IsoTime(Box::new(x)), DataType::Text, e)
            }
            "concat" => {
                let args = args
                    .into_iter()
                    .map(|a| self.cast(a, DataType::Text, e))
                    .collect::<Result<Vec<_>, _>>()?;
                let node = Node::Concat {
                    args,
                    skip_nulls: true,
                };
                self.make(node, DataType::Text, e)
            }
            "abs" => {
                let [x] = take(name, args)?;
                let x = self.number(x, e)?;
                let dtype = if x.dtype.is_float() {
                    DataType::Float64
                } else {
                    DataType::Int64
                };
                self.make(Node::Abs(Box::new(x)), dtype, e)
            }
            "round" => {
                if args.len() != 1 {
                    return Err(format!(
                        "`{e}`: only round(x) is supported (it rounds to a whole number, halves \
                         to even for floats)"
                    ));
                }
                let [x] = take(name, args)?;
                let x = self.number(x, e)?;
                if x.dtype.is_integer() {
                    return self.cast(x, DataType::Int64, e);
                }
                self.make(Node::Round(Box::new(x)), DataType::Float64, e)
            }
            "to_timestamp" => {
                if args.len() != 1 {
                    return Err(format!(
                        "`{e}`: to_timestamp(text, format) is not supported; cast the text \
                         instead (`x::timestamptz`), or pass seconds since the epoch"
                    ));
                }
                let [x] = take(name, args)?;
                let x = self.number(x, e)?;
                if x.dtype.is_integer() {
                    let unit = DataType::Timestamp(TimeUnit::Seconds);
                    self.make(Node::Relabel(Box::new(x)), unit, e)
                } else {
                    let unit = DataType::Timestamp(TimeUnit::Micros);
                    self.make(Node::FloatToTimestamp(Box::new(x)), unit, e)
                }
            }
            _ => {
                if let Some(unit) = epoch_unit(name, "from_epoch_") {
                    let [x] = take(name, args)?;
                    return self.relabel_epoch(x, unit, name, e);
                }
                if let Some(unit) = epoch_unit(name, "epoch_") {
                    let [x] = take(name, args)?;
                    return self.epoch(x, unit, name, e);
                }
                Err(format!(
                    "unknown function `{name}`; supported functions: {FUNCTIONS}"
                ))
            }
        }
    }

    /// `from_epoch_<unit>(x)`: the integer `x` relabelled as a timestamp of `unit`.
    fn relabel_epoch(
        &self,
        x: Expr,
        unit: TimeUnit,
        name: &str,
        e: &ast::Expr,
    ) -> Result<Expr, String> {
        let dtype = DataType::Timestamp(unit);
        let x = match x.untyped {
            Some(Untyped::Null) => return Ok(typed_null(dtype)),
            Some(Untyped::Str) => self.cast(x, DataType::Int64, e)?,
            None => x,
        };
        if !x.dtype.is_integer() {
            let hint = if x.dtype.is_float() {
                "; for fractional seconds use to_timestamp(x)"
            } else {
                "; cast it (`x::int8`)"
            };
            return Err(format!(
                "`{e}`: {name} needs an integer count of {} since the epoch, found {}{hint}",
                unit_name(unit),
                x.dtype
            ));
        }
        self.make(Node::Relabel(Box::new(x)), dtype, e)
    }

    /// `epoch_<unit>(ts)`: a timestamp as an `int8` count of `unit` since the epoch.
    fn epoch(&self, x: Expr, unit: TimeUnit, name: &str, e: &ast::Expr) -> Result<Expr, String> {
        let x = match x.untyped {
            Some(_) => self.cast(x, DataType::Timestamp(TimeUnit::Micros), e)?,
            None => x,
        };
        if !matches!(x.dtype, DataType::Timestamp(_)) {
            return Err(format!(
                "`{e}`: {name} needs a timestamp, found {}{}",
                x.dtype,
                if x.dtype.is_integer() {
                    "; an integer is already a count since the epoch"
                } else {
                    ""
                }
            ));
        }
        let node = Node::Epoch {
            input: Box::new(x),
            unit,
        };
        self.make(node, DataType::Int64, e)
    }

    /// `TRIM([LEADING | TRAILING | BOTH] [chars FROM] x)`.
    pub(super) fn trim(
        &self,
        x: &ast::Expr,
        side: Option<&TrimWhereField>,
        chars: Option<&ast::Expr>,
        e: &ast::Expr,
    ) -> Result<Expr, String> {
        let chars = match chars {
            Some(c) => self.const_text(self.expr(c)?, "trim")?,
            None => " ".to_string(),
        };
        let (leading, trailing) = match side {
            None | Some(TrimWhereField::Both) => (true, true),
            Some(TrimWhereField::Leading) => (true, false),
            Some(TrimWhereField::Trailing) => (false, true),
        };
        let func = TextFn::Trim {
            chars: chars.chars().collect(),
            leading,
            trailing,
        };
        self.text_fn(func, self.expr(x)?, "trim", e)
    }

    fn text_fn(&self, func: TextFn, x: Expr, name: &str, e: &ast::Expr) -> Result<Expr, String> {
        let x = settle(x);
        if x.dtype != DataType::Text {
            return Err(format!(
                "`{e}`: {name} needs text, found {}; cast it (`x::text`)",
                x.dtype
            ));
        }
        let node = Node::Text {
            func,
            input: Box::new(x),
        };
        self.make(node, DataType::Text, e)
    }

    /// The value of a constant text argument (such as the characters `trim` removes).
    fn const_text(&self, x: Expr, name: &str) -> Result<String, String> {
        let x = settle(x);
        match &x.node {
            Node::Const(c) if x.dtype == DataType::Text => match c.get(0) {
                ValueRef::Str(s) => Ok(s.to_string()),
                _ => Err(format!("the characters {name} removes must not be NULL")),
            },
            _ => Err(format!(
                "the characters {name} removes must be a constant text, found {}",
                x.dtype
            )),
        }
    }
}
