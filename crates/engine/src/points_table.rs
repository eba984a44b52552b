//! Reading a points table of the source (`point_info(system_id, point_id, column_name,
//! unit)`): which point id each measurement column has, per series. Both reshapings use it —
//! `unpivot` to give each narrow row its point, `pivot` to find the wide column of a point.

use std::collections::BTreeMap;

use tsmigrate_core::convert::value_to_string;
use tsmigrate_core::{
    DataType, Error, PointsTable, ReadOptions, Result, Source, StreamFilter, StreamSpec, ValueRef,
};

/// Rows read from a points table at most (it maps columns, it is not telemetry).
pub const MAX_POINTS: usize = 5_000_000;

/// A point id as the points table (or the plan) gives it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PointId {
    /// An integer id.
    Int(i64),
    /// Any other id, as text.
    Text(String),
}

impl PointId {
    /// The id as text, as it is matched against a source value's text.
    pub fn text(&self) -> String {
        match self {
            PointId::Int(i) => i.to_string(),
            PointId::Text(s) => s.clone(),
        }
    }
}

/// One row of a points table.
pub struct PointRow {
    /// The series: the `by` columns' values as text.
    pub series: Vec<String>,
    /// The measurement column's name.
    pub column: String,
    /// The point id (`None` when NULL).
    pub id: Option<PointId>,
    /// The unit, when the table has a unit column and the row a value.
    pub unit: Option<String>,
}

/// Reads every row of the points table `t` through the source, handing each to `each` (rows
/// whose column name is NULL are left out); returns the type point ids are written in
/// (int8 for an integer id column, else text). `stream` names the stream in errors.
pub async fn read_points_table(
    stream: &str,
    t: &PointsTable,
    source: &dyn Source,
    read: &ReadOptions,
    mut each: impl FnMut(PointRow) -> Result<()>,
) -> Result<DataType> {
    let pspec = StreamSpec {
        name: format!("{stream}.points"),
        from: Some(t.table.clone()),
        table: None,
        create: false,
        columns: Vec::new(),
        filter: StreamFilter::default(),
        rename_keys: BTreeMap::new(),
        limit: None,
        allow_lossy: Vec::new(),
        write: Default::default(),
        key: Vec::new(),
        unpivot: None,
        pivot: None,
        aggregate: None,
        lookup: BTreeMap::new(),
    };
    let info = source.stream_info(&pspec).await?;
    let col = |name: &str| {
        info.schema.index_of(name).ok_or_else(|| {
            Error::Plan(format!(
                "stream `{stream}`: points table {} has no column `{name}`; its columns are: {}",
                t.table,
                info.schema.names()
            ))
        })
    };
    let by: Vec<usize> = t.by.iter().map(|b| col(b)).collect::<Result<_>>()?;
    let (name_i, id_i) = (col(&t.column)?, col(&t.id)?);
    let unit_i = t.unit.as_deref().map(col).transpose()?;
    let id_type = match info.schema.fields[id_i].dtype {
        d if d.is_integer() => DataType::Int64,
        _ => DataType::Text,
    };
    let opts = ReadOptions {
        sync: None,
        align_seconds: None,
        ..read.clone()
    };
    let mut count = 0usize;
    for part in source.partitions(&pspec, &opts).await? {
        let (tx, mut rx) = tokio::sync::mpsc::channel(4);
        let reading = source.read(&pspec, &part, &opts, tx);
        let collect = async {
            while let Some(b) = rx.recv().await {
                for r in 0..b.len() {
                    let column = match b.columns[name_i].get(r) {
                        ValueRef::Str(s) => s.to_string(),
                        _ => continue,
                    };
                    count += 1;
                    if count > MAX_POINTS {
                        return Err(Error::Plan(format!(
                            "stream `{stream}`: points table {} has more than {MAX_POINTS} rows",
                            t.table
                        )));
                    }
                    each(PointRow {
                        series: by
                            .iter()
                            .map(|&i| value_to_string(b.columns[i].get(r)))
                            .collect(),
                        column,
                        id: match b.columns[id_i].get(r) {
                            ValueRef::Int(i) => Some(PointId::Int(i)),
                            ValueRef::Null => None,
                            other => Some(PointId::Text(value_to_string(other))),
                        },
                        unit: unit_i.and_then(|i| match b.columns[i].get(r) {
                            ValueRef::Str(s) => Some(s.to_string()),
                            _ => None,
                        }),
                    })?;
                }
            }
            Ok(())
        };
        let (r, c) = tokio::join!(reading, collect);
        // The collector's error first: the reader then only saw its channel close.
        c?;
        r?;
    }
    Ok(id_type)
}
