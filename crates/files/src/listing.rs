//! Which files a `path` option names: a directory (its files with the format's extensions), one
//! file, or a glob of file names (`exports/dump0_*.csv`), always in natural order of their
//! names (`dump0_2.csv` before `dump0_10.csv`), so split files are read in the order they were
//! written.

use std::path::{Path, PathBuf};

use tsmigrate_core::{Error, Result};

/// The files `path` names: files matching its glob (`*`, `?` in the file name), the files of
/// a directory whose extension is one of `extensions` (names starting with `.` or `_` are
/// skipped, as other readers of such directories do), or the file itself. `what` names the
/// files in errors ("export file"). An error when nothing matches.
pub fn list_files(path: &Path, extensions: &[&str], what: &str) -> Result<Vec<PathBuf>> {
    let io = |p: &Path, e: std::io::Error| Error::Io {
        path: p.display().to_string(),
        source: e,
    };
    let text = path.to_string_lossy();
    let hidden = |p: &Path| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(['.', '_']))
    };
    let mut files: Vec<PathBuf> = if text.contains(['*', '?']) {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let pattern = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        std::fs::read_dir(dir)
            .map_err(|e| io(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && p.file_name()
                        .is_some_and(|n| glob_match(&pattern, &n.to_string_lossy()))
            })
            .collect()
    } else if path.is_dir() {
        std::fs::read_dir(path)
            .map_err(|e| io(path, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && !hidden(p)
                    && p.extension()
                        .is_some_and(|x| extensions.iter().any(|want| x.eq_ignore_ascii_case(want)))
            })
            .collect()
    } else if path.is_file() {
        vec![path.to_path_buf()]
    } else {
        return Err(Error::Plan(format!(
            "path {:?}: no such file or directory",
            path.display().to_string()
        )));
    };
    files.sort_by_key(|p| natural_key(&p.to_string_lossy()));
    if files.is_empty() {
        let ext: Vec<String> = extensions.iter().map(|e| format!("*.{e}")).collect();
        return Err(Error::Plan(format!(
            "path {:?} matches no {what} ({})",
            path.display().to_string(),
            ext.join(", ")
        )));
    }
    Ok(files)
}

/// `*` and `?` matching of a file name.
fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// A sort key ordering digit runs by value: `dump0_2` before `dump0_10`.
fn natural_key(s: &str) -> Vec<(String, u128)> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
        } else {
            if !num.is_empty() {
                out.push((std::mem::take(&mut text), num.parse().unwrap_or(u128::MAX)));
                num.clear();
            }
            text.push(c);
        }
    }
    out.push((text, num.parse().unwrap_or(0)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_and_natural_order() {
        assert!(glob_match("dump0_*.csv", "dump0_10.csv"));
        assert!(glob_match("d?mp*", "dump0_1.csv"));
        assert!(!glob_match("dump1_*.csv", "dump0_1.csv"));
        assert!(!glob_match("*.csv", "dump.txt"));
        let mut names = vec!["dump0_10.csv", "dump0_2.csv", "dump0_1.csv", "dump1_0.csv"];
        names.sort_by_key(|n| natural_key(n));
        assert_eq!(
            names,
            ["dump0_1.csv", "dump0_2.csv", "dump0_10.csv", "dump1_0.csv"]
        );
    }

    #[test]
    fn directories_skip_hidden_files_and_other_extensions() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "b.parquet",
            "a.PARQUET",
            "_ledger.parquet",
            ".tmp.parquet",
            "c.csv",
        ] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let found = list_files(dir.path(), &["parquet"], "Parquet file").unwrap();
        let names: Vec<String> = found
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.PARQUET", "b.parquet"]);
        let err = list_files(&dir.path().join("none"), &["csv"], "CSV file").unwrap_err();
        assert!(err.to_string().contains("no such file"), "{err}");
        let err = list_files(&dir.path().join("x*.csv"), &["csv"], "CSV file").unwrap_err();
        assert!(err.to_string().contains("matches no CSV file"), "{err}");
    }
}
