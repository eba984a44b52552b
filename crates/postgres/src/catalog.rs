//! Catalog look-ups shared by the sink (checking a target table before writing it) and the
//! table reader (reading it back for `verify`).

use tokio_postgres::Client;

/// A column of an existing table, as the catalog describes it.
pub(crate) struct TableColumn {
    /// Column name.
    pub name: String,
    /// `pg_type.typname` of the column's type (of its base type for a domain).
    pub typname: String,
    /// The type as SQL writes it, with its modifier (`character varying(20)`).
    pub formatted: String,
    /// True for `NOT NULL`.
    pub not_null: bool,
    /// True when the column gets a value without being written (default, identity,
    /// generated).
    pub has_default: bool,
    /// The type's modifier (`atttypmod`: length, precision and scale; -1 for none).
    pub typmod: i32,
}

impl TableColumn {
    /// What the column can hold beyond its type, from its type modifier: `varchar(n)`,
    /// `char(n)`, `numeric(p, s)`, `timestamp(p)`, and `jsonb`'s own limits.
    pub fn limits(&self) -> tsmigrate_core::ColumnLimits {
        limits_of(&self.typname, self.typmod)
    }
}

/// [`TableColumn::limits`] of a type name and modifier.
pub(crate) fn limits_of(typname: &str, typmod: i32) -> tsmigrate_core::ColumnLimits {
    let mut l = tsmigrate_core::ColumnLimits::default();
    match typname {
        "varchar" | "bpchar" if typmod >= 4 => {
            l.max_chars = usize::try_from(typmod - 4).ok();
            l.blank_padded = typname == "bpchar";
        }
        "numeric" if typmod >= 4 => {
            let m = typmod - 4;
            let precision = ((m >> 16) & 0xffff) as u32;
            let scale = m & 0x7ff;
            // PostgreSQL 15 allows a negative scale (bit 10 set): left alone, the store checks.
            if scale & 0x400 == 0 {
                l.numeric = Some((precision, scale as u32));
            }
        }
        "timestamp" | "timestamptz" if (0..6).contains(&typmod) => {
            l.time_precision = u32::try_from(typmod).ok();
        }
        "jsonb" => l.jsonb = true,
        _ => {}
    }
    l
}

/// The live columns of table `oid`, in table order.
pub(crate) async fn table_columns(
    client: &Client,
    oid: u32,
) -> std::result::Result<Vec<TableColumn>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT a.attname::text, COALESCE(bt.typname, t.typname)::text, format_type(a.atttypid, a.atttypmod), \
                    a.attnotnull, a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> '', \
                    CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END \
             FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
             LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype \
             WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            &[&oid],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| TableColumn {
            name: r.get(0),
            typname: r.get(1),
            formatted: r.get(2),
            not_null: r.get(3),
            has_default: r.get(4),
            typmod: r.get(5),
        })
        .collect())
}

/// The oid of the table `quoted` names (see [`crate::quote_table`]), or `None` when there is
/// no such table.
pub(crate) async fn table_oid(
    client: &Client,
    quoted: &str,
) -> std::result::Result<Option<u32>, tokio_postgres::Error> {
    let row = client
        .query_one("SELECT to_regclass($1)::oid", &[&quoted])
        .await?;
    Ok(row.get::<_, Option<u32>>(0))
}

/// The column of `columns` called `name`: exact match first, then case-insensitive (a plan
/// may write `Temp` for a column created as `temp`).
pub(crate) fn find_column<'a>(columns: &'a [TableColumn], name: &str) -> Option<&'a TableColumn> {
    columns
        .iter()
        .find(|t| t.name == name)
        .or_else(|| columns.iter().find(|t| t.name.eq_ignore_ascii_case(name)))
}

/// The columns of table `oid`'s primary key, in key order (empty when it has none, as views
/// do).
pub(crate) async fn primary_key(
    client: &Client,
    oid: u32,
) -> std::result::Result<Vec<String>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT a.attname::text FROM pg_index i \
             CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
             WHERE i.indrelid = $1 AND i.indisprimary ORDER BY k.ord",
            &[&oid],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// One line naming the server version, the database and the user connected as (what
/// `check` reports about either end).
pub(crate) async fn server_summary(
    client: &Client,
) -> std::result::Result<String, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT current_setting('server_version'), current_user::text, current_database()::text",
            &[],
        )
        .await?;
    let (v, u, d): (String, String, String) = (row.get(0), row.get(1), row.get(2));
    Ok(format!("PostgreSQL {v}, database `{d}` as `{u}`"))
}

#[cfg(test)]
mod limits_tests {
    use super::limits_of;

    /// Type modifiers as PostgreSQL stores them (`atttypmod`, read from a PostgreSQL 15
    /// catalog): varchar(3) 7, char(4) 8, numeric(10,2) 655366, timestamptz(0) 0, numeric 1.
    #[test]
    fn type_modifiers_become_limits() {
        assert_eq!(limits_of("varchar", 7).max_chars, Some(3));
        let c = limits_of("bpchar", 8);
        assert_eq!((c.max_chars, c.blank_padded), (Some(4), true));
        assert_eq!(limits_of("numeric", 655_366).numeric, Some((10, 2)));
        assert_eq!(limits_of("numeric", -1).numeric, None);
        assert_eq!(limits_of("timestamptz", 0).time_precision, Some(0));
        assert_eq!(limits_of("timestamptz", -1).time_precision, None);
        assert!(limits_of("jsonb", -1).jsonb);
        assert!(limits_of("text", -1).is_none());
    }
}
