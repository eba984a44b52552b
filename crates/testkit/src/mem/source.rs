//! A source of `(series text, ts int8, value float8)` rows held in memory, in partitions of
//! `per_partition` rows, each read in batches of `batch_rows`.

use std::sync::Arc;

use async_trait::async_trait;
use tsmigrate_core::{
    Batch, BatchTx, Column, DataType, Error, Field, Partition, ReadOptions, Result, Schema,
    SeriesInfo, Source, StreamInfo, StreamSpec,
};

/// Rows in memory.
pub struct MemSource {
    rows: Vec<(String, i64, f64)>,
    per_partition: usize,
}

impl MemSource {
    /// A source of `rows`, `per_partition` rows per partition.
    pub fn new(rows: Vec<(String, i64, f64)>, per_partition: usize) -> MemSource {
        MemSource {
            rows,
            per_partition: per_partition.max(1),
        }
    }

    /// The schema of its one stream: `series`, `ts` (ms), `value`.
    pub fn schema() -> Arc<Schema> {
        Arc::new(Schema::new(vec![
            Field::new("series", DataType::Text),
            Field::new("ts", DataType::Int64),
            Field::new("value", DataType::Float64),
        ]))
    }

    fn batch(rows: &[(String, i64, f64)]) -> Result<Batch> {
        let mut s = Column::with_capacity(DataType::Text, rows.len());
        let mut t = Column::with_capacity(DataType::Int64, rows.len());
        let mut v = Column::with_capacity(DataType::Float64, rows.len());
        for (series, ts, value) in rows {
            s.push_str(series);
            t.push_i64(*ts);
            v.push_f64(*value);
        }
        Batch::new(
            MemSource::schema(),
            vec![Arc::new(s), Arc::new(t), Arc::new(v)],
        )
        .ok_or_else(|| Error::Plan("mem source: columns do not match".into()))
    }
}

#[async_trait]
impl Source for MemSource {
    fn describe(&self) -> String {
        format!("memory ({} rows)", self.rows.len())
    }

    async fn check(&self) -> Result<Vec<String>> {
        Ok(vec![self.describe()])
    }

    async fn stream_info(&self, _stream: &StreamSpec) -> Result<StreamInfo> {
        Ok(StreamInfo {
            schema: MemSource::schema(),
            key_columns: vec!["series".into(), "ts".into()],
            estimated_rows: Some(self.rows.len() as u64),
            notes: Vec::new(),
            series: Some(SeriesInfo {
                columns: vec!["series".into()],
                time_column: "ts".into(),
                ticks_per_second: 1000,
            }),
        })
    }

    async fn partitions(
        &self,
        _stream: &StreamSpec,
        _opts: &ReadOptions,
    ) -> Result<Vec<Partition>> {
        Ok((0..self.rows.len().div_ceil(self.per_partition))
            .map(|i| Partition {
                id: format!("p{i:03}"),
                estimated_rows: Some(self.per_partition as u64),
                spec: serde_json::json!({ "index": i }),
            })
            .collect())
    }

    async fn read(
        &self,
        _stream: &StreamSpec,
        partition: &Partition,
        opts: &ReadOptions,
        out: BatchTx,
    ) -> Result<()> {
        let i = partition.spec["index"]
            .as_u64()
            .ok_or_else(|| Error::Plan(format!("mem source: bad partition {}", partition.spec)))?
            as usize;
        let from = (i * self.per_partition).min(self.rows.len());
        let to = (from + self.per_partition).min(self.rows.len());
        for chunk in self.rows[from..to].chunks(opts.batch_rows.max(1)) {
            out.send(MemSource::batch(chunk)?)
                .await
                .map_err(|_| Error::Cancelled)?;
        }
        Ok(())
    }
}
