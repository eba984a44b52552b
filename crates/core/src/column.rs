//! Columnar storage: one typed vector per column plus a validity mask.
//!
//! Connectors decode straight into [`Column`]s and encode straight out of them; nothing on the
//! hot path allocates per row. Strings live in one contiguous buffer with offsets.

use crate::types::{DataType, TimeUnit};

/// Variable-length values (text, JSON, numeric text, bytes) packed in one buffer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StrBuf {
    /// `offsets[i]..offsets[i + 1]` is value `i`; always one longer than the number of values.
    offsets: Vec<usize>,
    data: Vec<u8>,
}

impl StrBuf {
    /// An empty buffer with room for `rows` values.
    pub fn with_capacity(rows: usize) -> StrBuf {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        StrBuf {
            offsets,
            data: Vec::new(),
        }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// True when no value is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends one value.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.offsets.is_empty() {
            self.offsets.push(0);
        }
        self.data.extend_from_slice(bytes);
        self.offsets.push(self.data.len());
    }

    /// Value `i` as bytes (empty when out of range).
    pub fn get(&self, i: usize) -> &[u8] {
        match (self.offsets.get(i), self.offsets.get(i + 1)) {
            (Some(&a), Some(&b)) => &self.data[a..b],
            _ => &[],
        }
    }

    /// Total bytes held.
    pub fn byte_len(&self) -> usize {
        self.data.len()
    }
}

/// The physical vector behind a column.
#[derive(Clone, Debug, PartialEq)]
pub enum ColumnData {
    /// [`DataType::Bool`].
    Bool(Vec<bool>),
    /// Integer types and timestamps (ticks of the column's [`TimeUnit`]).
    Int(Vec<i64>),
    /// Floating-point types.
    Float(Vec<f64>),
    /// Text, JSON, numeric text and bytes.
    Str(StrBuf),
    /// UUIDs.
    Uuid(Vec<[u8; 16]>),
}

/// A borrowed view of one value, used off the hot path (rejects, previews, row comparisons).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ValueRef<'a> {
    /// SQL NULL.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// Text, JSON or numeric text.
    Str(&'a str),
    /// Raw bytes.
    Bytes(&'a [u8]),
    /// A UUID.
    Uuid(&'a [u8; 16]),
    /// A timestamp.
    Timestamp(i64, TimeUnit),
}

/// One typed column of a [`crate::Batch`].
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    dtype: DataType,
    data: ColumnData,
    /// `None` means every value is present; otherwise `false` marks a NULL.
    validity: Option<Vec<bool>>,
    len: usize,
}

impl Column {
    /// An empty column of `dtype` with room for `rows` values.
    pub fn with_capacity(dtype: DataType, rows: usize) -> Column {
        let data = match dtype {
            DataType::Bool => ColumnData::Bool(Vec::with_capacity(rows)),
            DataType::Int16 | DataType::Int32 | DataType::Int64 | DataType::Timestamp(_) => {
                ColumnData::Int(Vec::with_capacity(rows))
            }
            DataType::Float32 | DataType::Float64 => ColumnData::Float(Vec::with_capacity(rows)),
            DataType::Numeric | DataType::Text | DataType::Json | DataType::Bytes => {
                ColumnData::Str(StrBuf::with_capacity(rows))
            }
            DataType::Uuid => ColumnData::Uuid(Vec::with_capacity(rows)),
        };
        Column {
            dtype,
            data,
            validity: None,
            len: 0,
        }
    }

    /// A column of `rows` NULLs.
    pub fn nulls(dtype: DataType, rows: usize) -> Column {
        let mut c = Column::with_capacity(dtype, rows);
        for _ in 0..rows {
            c.push_null();
        }
        c
    }

    /// The column's logical type.
    pub fn dtype(&self) -> DataType {
        self.dtype
    }

    /// The physical vector.
    pub fn data(&self) -> &ColumnData {
        &self.data
    }

    /// Number of values (NULLs included).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the column holds no value.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when value `i` is not NULL.
    #[inline]
    pub fn is_valid(&self, i: usize) -> bool {
        match &self.validity {
            None => i < self.len,
            Some(v) => v.get(i).copied().unwrap_or(false),
        }
    }

    /// The validity mask (`None` = every value present; `false` marks a NULL).
    pub fn validity(&self) -> Option<&[bool]> {
        self.validity.as_deref()
    }

    /// Number of NULLs.
    pub fn null_count(&self) -> usize {
        self.validity
            .as_ref()
            .map(|v| v.iter().filter(|b| !**b).count())
            .unwrap_or(0)
    }

    /// Re-labels the column with another type of the same physical layout
    /// (for example `Int64` ticks as `Timestamp(Millis)`). Returns `None` when layouts differ.
    pub fn relabel(mut self, dtype: DataType) -> Option<Column> {
        let same = matches!(
            (&self.data, Column::with_capacity(dtype, 0).data),
            (ColumnData::Bool(_), ColumnData::Bool(_))
                | (ColumnData::Int(_), ColumnData::Int(_))
                | (ColumnData::Float(_), ColumnData::Float(_))
                | (ColumnData::Str(_), ColumnData::Str(_))
                | (ColumnData::Uuid(_), ColumnData::Uuid(_))
        );
        if same {
            self.dtype = dtype;
            Some(self)
        } else {
            None
        }
    }

    #[inline]
    fn mark(&mut self, valid: bool) {
        match &mut self.validity {
            Some(v) => v.push(valid),
            None if !valid => {
                let mut v = vec![true; self.len];
                v.push(false);
                self.validity = Some(v);
            }
            None => {}
        }
        self.len += 1;
    }

    /// Appends a NULL.
    #[inline]
    pub fn push_null(&mut self) {
        match &mut self.data {
            ColumnData::Bool(v) => v.push(false),
            ColumnData::Int(v) => v.push(0),
            ColumnData::Float(v) => v.push(0.0),
            ColumnData::Str(v) => v.push(&[]),
            ColumnData::Uuid(v) => v.push([0; 16]),
        }
        self.mark(false);
    }

    /// Appends a boolean (the column must be `Bool`; otherwise a NULL is appended).
    #[inline]
    pub fn push_bool(&mut self, b: bool) {
        if let ColumnData::Bool(v) = &mut self.data {
            v.push(b);
            self.mark(true);
        } else {
            self.push_null();
        }
    }

    /// Appends an integer or timestamp tick count.
    #[inline]
    pub fn push_i64(&mut self, x: i64) {
        if let ColumnData::Int(v) = &mut self.data {
            v.push(x);
            self.mark(true);
        } else {
            self.push_null();
        }
    }

    /// Appends a float.
    #[inline]
    pub fn push_f64(&mut self, x: f64) {
        if let ColumnData::Float(v) = &mut self.data {
            v.push(x);
            self.mark(true);
        } else {
            self.push_null();
        }
    }

    /// Appends text (or JSON / numeric text).
    #[inline]
    pub fn push_str(&mut self, s: &str) {
        self.push_bytes(s.as_bytes());
    }

    /// Appends raw bytes to a string-like column. Callers of text columns must pass UTF-8.
    #[inline]
    pub fn push_bytes(&mut self, b: &[u8]) {
        if let ColumnData::Str(v) = &mut self.data {
            v.push(b);
            self.mark(true);
        } else {
            self.push_null();
        }
    }

    /// Appends a UUID.
    #[inline]
    pub fn push_uuid(&mut self, u: [u8; 16]) {
        if let ColumnData::Uuid(v) = &mut self.data {
            v.push(u);
            self.mark(true);
        } else {
            self.push_null();
        }
    }

    /// Appends a value given as a [`ValueRef`]; a value whose shape does not fit the column
    /// becomes NULL (use [`crate::convert`] to convert between types).
    pub fn push_value(&mut self, v: ValueRef<'_>) {
        match v {
            ValueRef::Null => self.push_null(),
            ValueRef::Bool(b) => self.push_bool(b),
            ValueRef::Int(x) | ValueRef::Timestamp(x, _) => self.push_i64(x),
            ValueRef::Float(x) => self.push_f64(x),
            ValueRef::Str(s) => self.push_str(s),
            ValueRef::Bytes(b) => self.push_bytes(b),
            ValueRef::Uuid(u) => self.push_uuid(*u),
        }
    }

    /// Value `i` as a [`ValueRef`].
    #[inline]
    pub fn get(&self, i: usize) -> ValueRef<'_> {
        if !self.is_valid(i) {
            return ValueRef::Null;
        }
        match (&self.data, self.dtype) {
            (ColumnData::Bool(v), _) => ValueRef::Bool(v[i]),
            (ColumnData::Int(v), DataType::Timestamp(u)) => ValueRef::Timestamp(v[i], u),
            (ColumnData::Int(v), _) => ValueRef::Int(v[i]),
            (ColumnData::Float(v), _) => ValueRef::Float(v[i]),
            (ColumnData::Str(v), DataType::Bytes) => ValueRef::Bytes(v.get(i)),
            (ColumnData::Str(v), _) => ValueRef::Str(std::str::from_utf8(v.get(i)).unwrap_or("")),
            (ColumnData::Uuid(v), _) => ValueRef::Uuid(&v[i]),
        }
    }

    /// The integer vector (integers and timestamps), if this column has one.
    pub fn ints(&self) -> Option<&[i64]> {
        match &self.data {
            ColumnData::Int(v) => Some(v),
            _ => None,
        }
    }

    /// The float vector, if this column has one.
    pub fn floats(&self) -> Option<&[f64]> {
        match &self.data {
            ColumnData::Float(v) => Some(v),
            _ => None,
        }
    }

    /// The boolean vector, if this column has one.
    pub fn bools(&self) -> Option<&[bool]> {
        match &self.data {
            ColumnData::Bool(v) => Some(v),
            _ => None,
        }
    }

    /// The string buffer, if this column has one.
    pub fn strs(&self) -> Option<&StrBuf> {
        match &self.data {
            ColumnData::Str(v) => Some(v),
            _ => None,
        }
    }

    /// The UUID vector, if this column has one.
    pub fn uuids(&self) -> Option<&[[u8; 16]]> {
        match &self.data {
            ColumnData::Uuid(v) => Some(v),
            _ => None,
        }
    }

    /// Builds a column from raw parts (validity `None` = all present).
    /// Returns `None` when the parts disagree in length or layout.
    pub fn from_parts(
        dtype: DataType,
        data: ColumnData,
        validity: Option<Vec<bool>>,
    ) -> Option<Column> {
        let len = match &data {
            ColumnData::Bool(v) => v.len(),
            ColumnData::Int(v) => v.len(),
            ColumnData::Float(v) => v.len(),
            ColumnData::Str(v) => v.len(),
            ColumnData::Uuid(v) => v.len(),
        };
        if validity.as_ref().is_some_and(|v| v.len() != len) {
            return None;
        }
        let c = Column {
            dtype,
            data,
            validity,
            len,
        };
        c.clone().relabel(dtype).map(|_| c)
    }

    /// A new column holding the rows where `keep[i]` is true.
    pub fn filter(&self, keep: &[bool]) -> Column {
        let n = keep.iter().filter(|k| **k).count();
        let mut out = Column::with_capacity(self.dtype, n);
        for (i, k) in keep.iter().enumerate() {
            if *k && i < self.len {
                out.push_value(self.get(i));
            }
        }
        out
    }

    /// Bytes this column occupies in memory (approximate, for accounting).
    pub fn byte_size(&self) -> usize {
        let data = match &self.data {
            ColumnData::Bool(v) => v.len(),
            ColumnData::Int(v) => v.len() * 8,
            ColumnData::Float(v) => v.len() * 8,
            ColumnData::Str(v) => v.byte_len() + v.len() * 8,
            ColumnData::Uuid(v) => v.len() * 16,
        };
        data + self.validity.as_ref().map(|v| v.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_and_read_back_with_nulls() {
        let mut c = Column::with_capacity(DataType::Text, 4);
        c.push_str("a\tb");
        c.push_null();
        c.push_str("");
        assert_eq!(c.len(), 3);
        assert_eq!(c.get(0), ValueRef::Str("a\tb"));
        assert_eq!(c.get(1), ValueRef::Null);
        assert_eq!(c.get(2), ValueRef::Str(""));
        assert_eq!(c.null_count(), 1);
        let f = c.filter(&[false, true, true]);
        assert_eq!(f.len(), 2);
        assert_eq!(f.get(0), ValueRef::Null);
    }

    #[test]
    fn relabel_keeps_layout_only() {
        let mut c = Column::with_capacity(DataType::Int64, 1);
        c.push_i64(5);
        let t = c.clone().relabel(DataType::Timestamp(TimeUnit::Millis));
        assert_eq!(
            t.as_ref().map(|t| t.get(0)),
            Some(ValueRef::Timestamp(5, TimeUnit::Millis))
        );
        assert!(c.relabel(DataType::Text).is_none());
    }
}
