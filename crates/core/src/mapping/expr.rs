//! The compiled expression tree: typed nodes built by [`super::compile`] and evaluated
//! column-wise by [`super::eval`].

use std::cmp::Ordering;
use std::sync::Arc;

use crate::column::Column;
use crate::types::{DataType, TimeUnit};

/// A typed, compiled expression.
#[derive(Clone, Debug)]
pub(super) struct Expr {
    /// What to compute.
    pub node: Node,
    /// The type of the computed column.
    pub dtype: DataType,
    /// Set for a literal whose type is not settled yet (`NULL`, `'text'`): like PostgreSQL's
    /// `unknown` type, it takes the type its context asks for (`ts > '2025-01-01'`).
    pub untyped: Option<Untyped>,
}

/// The kinds of literals whose type follows their context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Untyped {
    /// `NULL` (held as a text NULL until a context gives it a type).
    Null,
    /// A quoted string (held as text until a context asks for another type).
    Str,
}

/// One step of an expression. Children are evaluated before their parent, over whole batches.
#[derive(Clone, Debug)]
pub(super) enum Node {
    /// The input column at this position (evaluates to a shared reference, no copy).
    Column(usize),
    /// A constant: a one-row column broadcast over the batch.
    Const(Arc<Column>),
    /// Checked conversion of the child to the node's type ([`crate::convert::convert`]).
    Cast(Box<Expr>),
    /// The child's values under another type of the same layout (`int8` ticks as a timestamp).
    Relabel(Box<Expr>),
    /// `+ - * / %`; integer arithmetic when the node's type is `Int64`, float otherwise.
    Arith {
        op: ArithOp,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    /// Unary minus.
    Negate(Box<Expr>),
    /// `a || b` (`skip_nulls = false`: NULL in, NULL out) or `concat(...)` (NULLs ignored).
    /// Every argument is text.
    Concat { args: Vec<Expr>, skip_nulls: bool },
    /// `= <> < <= > >=`.
    Compare {
        op: CmpOp,
        left: Box<Expr>,
        right: Box<Expr>,
        kind: CmpKind,
    },
    /// `IS [NOT] DISTINCT FROM`.
    Distinct {
        left: Box<Expr>,
        right: Box<Expr>,
        kind: CmpKind,
        negated: bool,
    },
    /// `x [NOT] BETWEEN low AND high`.
    Between {
        expr: Box<Expr>,
        low: Box<Expr>,
        high: Box<Expr>,
        low_kind: CmpKind,
        high_kind: CmpKind,
        negated: bool,
    },
    /// `x [NOT] IN (a, b, ...)`.
    InList {
        expr: Box<Expr>,
        list: Vec<(Expr, CmpKind)>,
        negated: bool,
    },
    /// `a AND b`; `b` is only evaluated for rows where `a` is not FALSE.
    And(Box<Expr>, Box<Expr>),
    /// `a OR b`; `b` is only evaluated for rows where `a` is not TRUE.
    Or(Box<Expr>, Box<Expr>),
    /// `NOT a`.
    Not(Box<Expr>),
    /// `x IS [NOT] NULL`.
    IsNull { input: Box<Expr>, negated: bool },
    /// `x IS [NOT] TRUE` / `x IS [NOT] FALSE`.
    IsBool {
        input: Box<Expr>,
        value: bool,
        negated: bool,
    },
    /// `CASE [operand] WHEN ... THEN ... [ELSE ...] END`; each branch is evaluated only for
    /// the rows it decides.
    Case {
        operand: Option<Box<Expr>>,
        branches: Vec<Branch>,
        otherwise: Option<Box<Expr>>,
    },
    /// `coalesce(a, b, ...)`; each argument is evaluated only for rows still NULL.
    Coalesce(Vec<Expr>),
    /// `nullif(a, b)`.
    NullIf {
        left: Box<Expr>,
        right: Box<Expr>,
        kind: CmpKind,
    },
    /// `greatest(...)` / `least(...)`; NULL arguments are ignored.
    Extreme {
        args: Vec<Expr>,
        kind: CmpKind,
        greatest: bool,
    },
    /// `lower`, `upper`, `trim` and friends.
    Text { func: TextFn, input: Box<Expr> },
    /// `length(x)`: characters of text, bytes of `bytea`.
    Length(Box<Expr>),
    /// `iso_time(ts)`: a timestamp as fixed-width RFC 3339 UTC text.
    IsoTime(Box<Expr>),
    /// `abs(x)`.
    Abs(Box<Expr>),
    /// `round(x)` of a float (half to even, like PostgreSQL's `round(float8)`).
    Round(Box<Expr>),
    /// `to_timestamp(float seconds)`, rounded to microseconds.
    FloatToTimestamp(Box<Expr>),
    /// `epoch_s/ms/us/ns(ts)`: a timestamp as an integer count of `unit` (floored).
    Epoch { input: Box<Expr>, unit: TimeUnit },
}

/// One `WHEN ... THEN ...` of a `CASE`.
#[derive(Clone, Debug)]
pub(super) struct Branch {
    /// The condition (searched CASE) or the value compared with the operand (simple CASE).
    pub when: Expr,
    /// How the operand is compared with `when` (simple CASE only).
    pub kind: Option<CmpKind>,
    /// The result for the rows this branch decides.
    pub then: Expr,
}

/// Arithmetic operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

impl ArithOp {
    /// The SQL symbol, for messages.
    pub fn symbol(self) -> &'static str {
        match self {
            ArithOp::Add => "+",
            ArithOp::Sub => "-",
            ArithOp::Mul => "*",
            ArithOp::Div => "/",
            ArithOp::Rem => "%",
        }
    }
}

/// Comparison operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum CmpOp {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

impl CmpOp {
    /// Whether two values ordered as `o` satisfy the operator.
    pub fn holds(self, o: Ordering) -> bool {
        match self {
            CmpOp::Eq => o == Ordering::Equal,
            CmpOp::NotEq => o != Ordering::Equal,
            CmpOp::Lt => o == Ordering::Less,
            CmpOp::LtEq => o != Ordering::Greater,
            CmpOp::Gt => o == Ordering::Greater,
            CmpOp::GtEq => o != Ordering::Less,
        }
    }
}

/// How two values are compared, chosen at compile time from the operand types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum CmpKind {
    /// Two integers.
    Int,
    /// Two floats (NaN equals NaN and sorts above every number, as in PostgreSQL).
    Float,
    /// Integer (left) with float (right), compared exactly.
    IntFloat,
    /// Float (left) with integer (right), compared exactly.
    FloatInt,
    /// Two booleans (false < true).
    Bool,
    /// Text or bytes, byte-wise (the "C" collation).
    Bytes,
    /// Two UUIDs, byte-wise (as PostgreSQL orders them).
    Uuid,
    /// Two timestamps, possibly of different units, compared exactly.
    Timestamp(TimeUnit, TimeUnit),
}

/// Text functions applied value by value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum TextFn {
    /// `lower(x)`.
    Lower,
    /// `upper(x)`.
    Upper,
    /// `trim`, `btrim`, `ltrim`, `rtrim`: removes any of `chars` from the chosen ends.
    Trim {
        chars: Vec<char>,
        leading: bool,
        trailing: bool,
    },
}

impl Expr {
    /// A typed expression.
    pub fn new(node: Node, dtype: DataType) -> Expr {
        Expr {
            node,
            dtype,
            untyped: None,
        }
    }

    /// A constant from a one-row column.
    pub fn constant(value: Arc<Column>) -> Expr {
        let dtype = value.dtype();
        Expr::new(Node::Const(value), dtype)
    }

    /// True for a constant.
    pub fn is_const(&self) -> bool {
        matches!(self.node, Node::Const(_))
    }

    /// The direct children of this node.
    pub fn children(&self) -> Vec<&Expr> {
        match &self.node {
            Node::Column(_) | Node::Const(_) => Vec::new(),
            Node::Cast(x)
            | Node::Relabel(x)
            | Node::Negate(x)
            | Node::Not(x)
            | Node::IsNull { input: x, .. }
            | Node::IsBool { input: x, .. }
            | Node::Text { input: x, .. }
            | Node::Length(x)
            | Node::IsoTime(x)
            | Node::Abs(x)
            | Node::Round(x)
            | Node::FloatToTimestamp(x)
            | Node::Epoch { input: x, .. } => vec![x],
            Node::Arith { left, right, .. }
            | Node::Compare { left, right, .. }
            | Node::Distinct { left, right, .. }
            | Node::NullIf { left, right, .. }
            | Node::And(left, right)
            | Node::Or(left, right) => vec![left, right],
            Node::Concat { args, .. } | Node::Coalesce(args) | Node::Extreme { args, .. } => {
                args.iter().collect()
            }
            Node::Between {
                expr, low, high, ..
            } => vec![expr, low, high],
            Node::InList { expr, list, .. } => {
                let mut v: Vec<&Expr> = vec![expr];
                v.extend(list.iter().map(|(e, _)| e));
                v
            }
            Node::Case {
                operand,
                branches,
                otherwise,
            } => {
                let mut v: Vec<&Expr> = operand.iter().map(|b| &**b).collect();
                for b in branches {
                    v.push(&b.when);
                    v.push(&b.then);
                }
                v.extend(otherwise.iter().map(|b| &**b));
                v
            }
        }
    }

    /// True when the node computes something from constants only, so it can be computed once
    /// at compile time.
    pub fn is_foldable(&self) -> bool {
        !matches!(self.node, Node::Column(_) | Node::Const(_))
            && self.children().iter().all(|c| c.is_const())
    }

    /// Adds the positions of the input columns this expression reads to `out`.
    pub fn collect_columns(&self, out: &mut Vec<usize>) {
        if let Node::Column(i) = self.node {
            if !out.contains(&i) {
                out.push(i);
            }
        }
        for c in self.children() {
            c.collect_columns(out);
        }
    }
}
