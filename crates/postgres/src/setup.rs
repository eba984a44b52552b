//! Setup steps: SQL files the plan applies to a PostgreSQL (or TimescaleDB) target before the
//! load (`[target] before = [...]`, such as schema migrations) and after it (`after = [...]`,
//! such as indexes), like pgloader's BEFORE/AFTER LOAD.
//!
//! Each file is applied once: in one transaction together with its record in
//! `<ledger schema>.setup_steps` (file name, phase, SHA-256 of the content, time, plan). A
//! re-run skips recorded files, and refuses — before applying anything — a recorded file whose
//! content changed since, because applying a changed migration again, or silently not
//! applying the change, would both leave the database different from what the files say.
//!
//! Files are identified by their file name (so a plan run from another directory still finds
//! its records); two listed files with the same name are refused.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokio_postgres::Client;
use tsmigrate_core::{End, Error, Result, SetupPhase};

use crate::connect::store_error;
use tsmigrate_core::ConnString;

/// The setup files of one plan, as `[target] before` and `after` list them.
#[derive(Clone, Debug, Default)]
pub struct SetupFiles {
    /// Applied before any stream is prepared, in this order.
    pub before: Vec<PathBuf>,
    /// Applied after every stream was written, in this order.
    pub after: Vec<PathBuf>,
}

/// One file read from disk.
struct StepFile {
    name: String,
    path: PathBuf,
    sql: String,
    checksum: String,
}

impl SetupFiles {
    /// Parses `before` / `after` (arrays of paths) from the `[target]` options; refuses two
    /// files of the same name.
    pub fn parse(options: &toml::Table) -> Result<SetupFiles> {
        let list = |key: &str| -> Result<Vec<PathBuf>> {
            match options.get(key) {
                None => Ok(Vec::new()),
                Some(toml::Value::Array(items)) => items
                    .iter()
                    .map(|v| match v {
                        toml::Value::String(s) if !s.is_empty() => Ok(PathBuf::from(s)),
                        _ => Err(Error::Plan(format!(
                            "[target] {key} must list SQL file paths, such as {key} = [\"sql/001_schema.sql\"]"
                        ))),
                    })
                    .collect(),
                Some(_) => Err(Error::Plan(format!(
                    "[target] {key} must be an array of SQL file paths, such as {key} = [\"sql/001_schema.sql\"]"
                ))),
            }
        };
        let files = SetupFiles {
            before: list("before")?,
            after: list("after")?,
        };
        let mut seen = std::collections::BTreeSet::new();
        for p in files.before.iter().chain(&files.after) {
            let name = step_name(p)?;
            if !seen.insert(name.clone()) {
                return Err(Error::Plan(format!(
                    "[target] lists two setup files named {name:?}; a file's name identifies it in the record of applied files, so names must differ"
                )));
            }
        }
        Ok(files)
    }

    /// The files of `phase`.
    pub fn of(&self, phase: SetupPhase) -> &[PathBuf] {
        match phase {
            SetupPhase::Before => &self.before,
            SetupPhase::After => &self.after,
        }
    }
}

/// The name a setup file is recorded under: its file name.
fn step_name(path: &Path) -> Result<String> {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| {
            Error::Plan(format!(
                "setup file {:?} has no file name",
                path.display().to_string()
            ))
        })
}

/// Lowercase hex SHA-256 of `text`.
pub fn checksum(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn read_step(path: &Path, phase: SetupPhase) -> Result<StepFile> {
    let sql = std::fs::read_to_string(path).map_err(|e| {
        Error::Plan(format!(
            "[target] {}: cannot read setup file {}: {e}",
            phase.name(),
            path.display()
        ))
    })?;
    Ok(StepFile {
        name: step_name(path)?,
        path: path.to_path_buf(),
        checksum: checksum(&sql),
        sql,
    })
}

/// 1-based line and column of character offset `position` (1-based, as the server reports
/// it) in `sql`.
pub fn line_of(sql: &str, position: usize) -> (usize, usize) {
    let mut line = 1;
    let mut col = 1;
    for ch in sql.chars().take(position.saturating_sub(1)) {
        if ch == '\n' {
            line += 1;
            col = 1;
        } else {
            col += 1;
        }
    }
    (line, col)
}

/// Applies the files of `phase` that are not recorded yet, in order, each in one transaction
/// with its record in `schema` (quoted); returns one line per file saying what was done (or, when `dry_run`, what
/// would be). Checks every file against its record before applying any.
pub async fn apply(
    client: &mut Client,
    url: &ConnString,
    files: &SetupFiles,
    phase: SetupPhase,
    schema: &str,
    plan_id: &str,
    dry_run: bool,
) -> Result<Vec<String>> {
    let paths = files.of(phase);
    if paths.is_empty() {
        return Ok(Vec::new());
    }
    let steps: Vec<StepFile> = paths
        .iter()
        .map(|p| read_step(p, phase))
        .collect::<Result<_>>()?;
    let table = format!("{schema}.setup_steps");
    let err = |what: &str, e: &tokio_postgres::Error| {
        store_error(
            End::Target,
            format!("setup steps ({}): {what}", phase.name()),
            e,
            url,
        )
    };
    let exists: bool = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .await
        .map_err(|e| err("reading the record of applied files", &e))?
        .get(0);
    if !exists && !dry_run {
        client
            .batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {schema}; \
                 CREATE TABLE IF NOT EXISTS {table} ( \
                   name text PRIMARY KEY, phase text NOT NULL, checksum text NOT NULL, \
                   plan_id text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), \
                   seconds float8 NOT NULL)"
            ))
            .await
            .map_err(|e| err(&format!("creating {table}"), &e))?;
    }
    let mut recorded = std::collections::HashMap::new();
    if exists || !dry_run {
        let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
        for row in client
            .query(
                &format!(
                    "SELECT name, checksum, to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC', plan_id \
                     FROM {table} WHERE name = ANY($1)"
                ),
                &[&names],
            )
            .await
            .map_err(|e| err("reading the record of applied files", &e))?
        {
            let (name, sum, at, plan): (String, String, String, String) =
                (row.get(0), row.get(1), row.get(2), row.get(3));
            recorded.insert(name, (sum, at, plan));
        }
    }
    for s in &steps {
        if let Some((sum, at, plan)) = recorded.get(&s.name) {
            if *sum != s.checksum {
                return Err(Error::Plan(format!(
                    "setup file {} was applied on {at} (by plan {plan:?}) with different content: its SHA-256 was {}…, now it is {}…. \
                     An applied file must not change; put the change into a new file and list it after this one \
                     (or, if the database really should forget it: DELETE FROM {table} WHERE name = '{}')",
                    s.path.display(),
                    &sum[..sum.len().min(12)],
                    &s.checksum[..12],
                    s.name.replace('\'', "''")
                )));
            }
        }
    }
    let mut lines = Vec::new();
    for s in &steps {
        if let Some((_, at, _)) = recorded.get(&s.name) {
            lines.push(format!("{}: applied on {at}, unchanged", s.name));
            continue;
        }
        if dry_run {
            lines.push(format!(
                "{}: not applied yet; would be applied {} the load",
                s.name,
                phase.name()
            ));
            continue;
        }
        let t0 = std::time::Instant::now();
        let tx = client
            .transaction()
            .await
            .map_err(|e| err(&format!("starting {}", s.name), &e))?;
        if let Err(e) = tx.batch_execute(&s.sql).await {
            let place = match e.as_db_error().and_then(|d| d.position()) {
                Some(tokio_postgres::error::ErrorPosition::Original(p)) => {
                    let (line, col) = line_of(&s.sql, *p as usize);
                    format!(" at line {line}, column {col}")
                }
                _ => String::new(),
            };
            return Err(store_error(
                End::Target,
                format!(
                    "setup file {}{place} ({} the load); nothing of it was applied (it runs in one transaction) — fix it and run again",
                    s.path.display(),
                    phase.name()
                ),
                &e,
                url,
            ));
        }
        let seconds = t0.elapsed().as_secs_f64();
        tx.execute(
            &format!(
                "INSERT INTO {table} (name, phase, checksum, plan_id, seconds) VALUES ($1, $2, $3, $4, $5)"
            ),
            &[&s.name, &phase.name(), &s.checksum, &plan_id, &seconds],
        )
        .await
        .map_err(|e| err(&format!("recording {}", s.name), &e))?;
        tx.commit()
            .await
            .map_err(|e| err(&format!("committing {}", s.name), &e))?;
        lines.push(format!("{}: applied ({seconds:.2} s)", s.name));
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        text.parse().unwrap_or_default()
    }

    #[test]
    fn positions_become_lines_and_columns() {
        let sql = "CREATE TABLE a (x int);\nSELEC 1;\n";
        assert_eq!(line_of(sql, 1), (1, 1));
        assert_eq!(line_of(sql, 25), (2, 1));
        assert_eq!(line_of(sql, 27), (2, 3));
        assert_eq!(line_of("é\nx", 3), (2, 1));
    }

    #[test]
    fn files_are_listed_in_order_and_names_must_differ() {
        let f = SetupFiles::parse(&table(
            "before = [\"sql/002.sql\", \"sql/001.sql\"]\nafter = [\"idx.sql\"]",
        ))
        .unwrap_or_default();
        assert_eq!(
            f.before,
            vec![PathBuf::from("sql/002.sql"), PathBuf::from("sql/001.sql")]
        );
        assert_eq!(f.of(SetupPhase::After), [PathBuf::from("idx.sql")]);
        let twice = SetupFiles::parse(&table("before = [\"a/x.sql\"]\nafter = [\"b/x.sql\"]"));
        assert!(
            matches!(twice, Err(Error::Plan(m)) if m.contains("two setup files named \"x.sql\""))
        );
        assert!(SetupFiles::parse(&table("before = \"x.sql\"")).is_err());
        assert!(SetupFiles::parse(&table("before = [1]")).is_err());
    }

    #[test]
    fn checksums_are_sha256() {
        assert_eq!(
            checksum("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
