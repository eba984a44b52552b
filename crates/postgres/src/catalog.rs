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
}

/// The live columns of table `oid`, in table order.
pub(crate) async fn table_columns(
    client: &Client,
    oid: u32,
) -> std::result::Result<Vec<TableColumn>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT a.attname::text, COALESCE(bt.typname, t.typname)::text, format_type(a.atttypid, a.atttypmod), \
                    a.attnotnull, a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> '' \
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
