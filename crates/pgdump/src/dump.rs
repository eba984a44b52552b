//! A pg_dump backup opened for reading: its format, its tables (with declared column types
//! and partitions) and where each table's COPY data is, for all three formats pg_dump writes.
//!
//! - **Custom** (`-Fc`): the TOC gives each `TABLE DATA` entry's block offset; a dump written
//!   to a pipe has none, so the data area is walked once, chunk lengths only, to find them.
//! - **Directory** (`-Fd`): `toc.dat` has the same TOC; each entry's data is its own file,
//!   `<id>.dat` plus `.gz`, `.lz4` or `.zst` when compressed.
//! - **Plain** (`-Fp`, optionally gzip, lz4 or zstd compressed as a whole): the SQL text is
//!   read once to find the `CREATE TABLE`, `ATTACH PARTITION` and `COPY … FROM stdin`
//!   statements and where each COPY's rows start.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek};
use std::path::{Path, PathBuf};

use crate::archive::{read_toc, Compression, DataPos, Header, Toc, Trailer, MAGIC};
use crate::blocks::{decompress, open_sniffed, scan_blocks, ChunkReader};
use crate::ddl::{
    parse_attach, parse_copy, parse_create_table, parse_primary_key, QualifiedName, TableDef,
};
use crate::error::{DumpError, Result};
use crate::tar;

/// Longest statement a plain dump's index keeps while looking for its end (`CREATE TABLE`
/// of thousands of columns fits; a runaway function body is dropped).
const MAX_STATEMENT: usize = 4 << 20;

/// The three layouts pg_dump writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `-Fc`: one archive file.
    Custom,
    /// `-Fd`: a directory with `toc.dat` and one file per table.
    Directory,
    /// `-Ft`: a tar archive holding `toc.dat` and one member per table.
    Tar,
    /// `-Fp`: SQL text.
    Plain,
}

impl Format {
    /// The name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            Format::Custom => "custom (-Fc)",
            Format::Directory => "directory (-Fd)",
            Format::Tar => "tar (-Ft)",
            Format::Plain => "plain SQL (-Fp)",
        }
    }
}

/// Where one table's COPY data is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A block of a custom archive.
    Block {
        /// The block's TOC entry.
        dump_id: i64,
        /// Its offset, when known (`None`: missing from a truncated dump written to a pipe).
        offset: Option<u64>,
    },
    /// A file of a directory archive.
    File(PathBuf),
    /// A member of a tar archive: its bytes at `offset`, gzip-compressed when `gzip`.
    Member {
        /// Offset of its first byte in the archive.
        offset: u64,
        /// Its length.
        len: u64,
        /// True for a `.dat.gz` member.
        gzip: bool,
    },
    /// The rows of a plain dump start at this byte of its (decompressed) text.
    Text(u64),
}

/// One table's data in the dump.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataSection {
    /// The table the rows belong to (a partition, for a partitioned table).
    pub table: QualifiedName,
    /// The columns of each row, in order (from the COPY statement).
    pub columns: Vec<String>,
    /// Where the rows are.
    pub location: Location,
}

/// An opened dump.
#[derive(Debug)]
pub struct Dump {
    path: PathBuf,
    format: Format,
    compression: Compression,
    header: Option<Header>,
    tables: BTreeMap<QualifiedName, TableDef>,
    /// Parent → its direct partitions and inheritance children.
    children: BTreeMap<QualifiedName, BTreeSet<QualifiedName>>,
    sections: Vec<DataSection>,
    primary_keys: BTreeMap<QualifiedName, Vec<String>>,
    /// Partition → the statement attaching it (with its `FOR VALUES …` bound).
    attached: BTreeMap<QualifiedName, String>,
    int_size: u8,
    truncated: Option<String>,
}

impl Dump {
    /// Opens a dump of any format: a directory (or its `toc.dat`) is a directory dump, a file
    /// starting with `PGDMP` a custom dump, anything else plain SQL (compressed or not).
    pub fn open(path: &Path) -> Result<Dump> {
        let io_err = |e| DumpError::Io {
            path: path.to_path_buf(),
            source: e,
        };
        let meta = std::fs::metadata(path).map_err(io_err)?;
        if meta.is_dir() {
            return Dump::open_directory(path);
        }
        if path.file_name().is_some_and(|n| n == "toc.dat") {
            if let Some(dir) = path.parent() {
                return Dump::open_directory(dir);
            }
        }
        let mut head = Vec::with_capacity(512);
        File::open(path)
            .and_then(|f| f.take(512).read_to_end(&mut head))
            .map_err(io_err)?;
        if head.starts_with(MAGIC) {
            Dump::open_custom(path)
        } else if tar::is_tar(&head) {
            Dump::open_tar(path)
        } else {
            Dump::open_plain(path)
        }
    }

    fn empty(path: &Path, format: Format, compression: Compression) -> Dump {
        Dump {
            path: path.to_path_buf(),
            format,
            compression,
            header: None,
            tables: BTreeMap::new(),
            children: BTreeMap::new(),
            sections: Vec::new(),
            primary_keys: BTreeMap::new(),
            attached: BTreeMap::new(),
            int_size: 4,
            truncated: None,
        }
    }

    fn open_custom(path: &Path) -> Result<Dump> {
        let file = File::open(path).map_err(|e| DumpError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        let toc = read_toc(BufReader::new(file), path, Trailer::Offset)?;
        if toc.header.format != 1 {
            return Err(DumpError::Unsupported {
                path: path.to_path_buf(),
                message: format!(
                    "archive format byte {} is not the custom format (1): the file is damaged or not a pg_dump -Fc archive",
                    toc.header.format
                ),
            });
        }
        let mut dump = Dump::empty(path, Format::Custom, toc.header.compression);
        dump.int_size = toc.header.int_size;
        let needs_scan = toc
            .entries
            .iter()
            .any(|e| e.desc == "TABLE DATA" && e.data == DataPos::Unknown);
        let index = if needs_scan {
            Some(scan_blocks(path, toc.data_start, toc.header.int_size)?)
        } else {
            None
        };
        if let Some((at, id)) = index.as_ref().and_then(|i| i.truncated_at) {
            dump.truncated = Some(format!(
                "the file ends at byte {at}{}: the dump is truncated",
                if id > 0 {
                    format!(" inside the data block of entry {id}")
                } else {
                    String::new()
                }
            ));
        }
        dump.load_toc(toc, |entry| match &entry.data {
            DataPos::Offset(o) => Some(Location::Block {
                dump_id: entry.dump_id,
                offset: Some(*o),
            }),
            DataPos::Unknown => Some(Location::Block {
                dump_id: entry.dump_id,
                offset: index
                    .as_ref()
                    .and_then(|i| i.offsets.get(&entry.dump_id).copied()),
            }),
            _ => None,
        })?;
        Ok(dump)
    }

    fn open_directory(dir: &Path) -> Result<Dump> {
        let toc_path = dir.join("toc.dat");
        let file = File::open(&toc_path).map_err(|e| DumpError::Io {
            path: toc_path.clone(),
            source: e,
        })?;
        let toc = read_toc(BufReader::new(file), &toc_path, Trailer::FileName)?;
        let mut dump = Dump::empty(dir, Format::Directory, toc.header.compression);
        dump.load_toc(toc, |entry| match &entry.data {
            DataPos::File(name) => Some(Location::File(data_file(dir, name))),
            _ => None,
        })?;
        Ok(dump)
    }

    fn open_tar(path: &Path) -> Result<Dump> {
        let members = tar::members(path)?;
        let toc_member = members.get("toc.dat").ok_or_else(|| DumpError::Format {
            path: path.to_path_buf(),
            offset: 0,
            message: "a tar archive without toc.dat: not a pg_dump -Ft archive".into(),
        })?;
        let mut file = File::open(path).map_err(|e| DumpError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        file.seek(std::io::SeekFrom::Start(toc_member.offset))
            .map_err(|e| DumpError::Io {
                path: path.to_path_buf(),
                source: e,
            })?;
        let toc = read_toc(
            BufReader::new(file.take(toc_member.len)),
            path,
            Trailer::FileName,
        )?;
        let mut dump = Dump::empty(path, Format::Tar, toc.header.compression);
        dump.load_toc(toc, |entry| match &entry.data {
            DataPos::File(name) => {
                let (m, gzip) = match members.get(name) {
                    Some(m) => (m, false),
                    None => (members.get(&format!("{name}.gz"))?, true),
                };
                Some(Location::Member {
                    offset: m.offset,
                    len: m.len,
                    gzip,
                })
            }
            _ => None,
        })?;
        Ok(dump)
    }

    fn load_toc(
        &mut self,
        toc: Toc,
        mut location: impl FnMut(&crate::archive::TocEntry) -> Option<Location>,
    ) -> Result<()> {
        for entry in &toc.entries {
            match entry.desc.as_str() {
                "ENCODING" => self.check_encoding(&entry.defn)?,
                "TABLE" => {
                    if let Some(def) = parse_create_table(&entry.defn) {
                        self.add_table(def);
                    }
                }
                "CONSTRAINT" => {
                    if let Some((table, cols)) = parse_primary_key(&entry.defn) {
                        self.primary_keys.insert(table, cols);
                    }
                }
                "TABLE ATTACH" => {
                    if let Some((parent, child)) = parse_attach(&entry.defn) {
                        self.attached.insert(child.clone(), entry.defn.clone());
                        self.children.entry(parent).or_default().insert(child);
                    }
                }
                "TABLE DATA" => {
                    let Some((table, columns)) = parse_copy(&entry.copy_stmt) else {
                        continue;
                    };
                    let table = if table.schema.is_empty() {
                        QualifiedName {
                            schema: entry.namespace.clone(),
                            name: table.name,
                        }
                    } else {
                        table
                    };
                    if let Some(loc) = location(entry) {
                        self.sections.push(DataSection {
                            table,
                            columns,
                            location: loc,
                        });
                    }
                }
                _ => {}
            }
        }
        self.header = Some(toc.header);
        Ok(())
    }

    fn add_table(&mut self, def: TableDef) {
        if let Some(parent) = &def.partition_of {
            self.children
                .entry(parent.clone())
                .or_default()
                .insert(def.name.clone());
        }
        for parent in &def.inherits {
            self.children
                .entry(parent.clone())
                .or_default()
                .insert(def.name.clone());
        }
        self.tables.insert(def.name.clone(), def);
    }

    fn check_encoding(&self, defn: &str) -> Result<()> {
        let enc = defn.split('\'').nth(1).unwrap_or("").to_ascii_uppercase();
        if enc.is_empty() || enc == "UTF8" || enc == "UTF-8" || enc == "SQL_ASCII" {
            Ok(())
        } else {
            Err(DumpError::Unsupported {
                path: self.path.clone(),
                message: format!(
                    "the dump's encoding is {enc}; only UTF8 dumps are read (dump again with pg_dump --encoding=UTF8)"
                ),
            })
        }
    }

    fn open_plain(path: &Path) -> Result<Dump> {
        let (stream, compression) = open_sniffed(path)?;
        let mut dump = Dump::empty(path, Format::Plain, compression);
        let mut r = BufReader::with_capacity(256 * 1024, stream);
        let mut line = Vec::new();
        let mut offset: u64 = 0;
        let mut statement = String::new();
        let mut in_copy = false;
        let read_err = |offset: u64, e: std::io::Error| DumpError::Format {
            path: path.to_path_buf(),
            offset,
            message: format!("reading the SQL text: {e}"),
        };
        loop {
            line.clear();
            let n = r
                .read_until(b'\n', &mut line)
                .map_err(|e| read_err(offset, e))?;
            if n == 0 {
                break;
            }
            offset += n as u64;
            if in_copy {
                if line == b"\\.\n" || line == b"\\." || line == b"\\.\r\n" {
                    in_copy = false;
                }
                continue;
            }
            let text = String::from_utf8_lossy(&line);
            // pg_dump starts statements in the first column (indented text is inside a
            // function body or a string). A COPY always starts a statement: an unfinished one
            // before it was not a statement this reader needs.
            if line.starts_with(b"COPY ") || statement.len() > MAX_STATEMENT {
                statement.clear();
            }
            if statement.is_empty() {
                let t: &str = &text;
                if t.starts_with("COPY ") {
                    if let Some((table, columns)) = parse_copy(t) {
                        dump.sections.push(DataSection {
                            table,
                            columns,
                            location: Location::Text(offset),
                        });
                        in_copy = true;
                    }
                    continue;
                }
                if t.starts_with("SET client_encoding") {
                    dump.check_encoding(t)?;
                    continue;
                }
                if !(t.starts_with("CREATE ") || t.starts_with("ALTER TABLE ")) {
                    continue;
                }
            }
            statement.push_str(&text);
            if text.trim_end().ends_with(';') {
                if let Some(def) = parse_create_table(&statement) {
                    dump.add_table(def);
                } else if let Some((parent, child)) = parse_attach(&statement) {
                    dump.attached.insert(child.clone(), statement.clone());
                    dump.children.entry(parent).or_default().insert(child);
                } else if let Some((table, cols)) = parse_primary_key(&statement) {
                    dump.primary_keys.insert(table, cols);
                }
                statement.clear();
            }
        }
        if in_copy {
            dump.truncated = Some(format!(
                "the text ends at byte {offset} (of the decompressed SQL) inside COPY data: the dump is truncated"
            ));
        }
        Ok(dump)
    }

    /// The dump's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The dump's format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// How the data is compressed.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// The archive header (custom and directory dumps).
    pub fn header(&self) -> Option<&Header> {
        self.header.as_ref()
    }

    /// Set when the dump ends early: what was found missing.
    pub fn truncated(&self) -> Option<&str> {
        self.truncated.as_deref()
    }

    /// Every table the dump defines.
    pub fn tables(&self) -> impl Iterator<Item = &TableDef> {
        self.tables.values()
    }

    /// Every data section, in dump order.
    pub fn sections(&self) -> &[DataSection] {
        &self.sections
    }

    /// The table a plan names: `schema.table` or `table` (quoted parts allowed). A bare name
    /// found in several schemas is ambiguous.
    pub fn find_table(&self, name: &str) -> std::result::Result<&TableDef, String> {
        let wanted =
            crate::ddl::parse_name(name).ok_or_else(|| format!("{name:?} is not a table name"))?;
        let hits: Vec<&TableDef> = self
            .tables
            .values()
            .filter(|t| {
                t.name.name == wanted.name
                    && (wanted.schema.is_empty() || t.name.schema == wanted.schema)
            })
            .collect();
        match hits.as_slice() {
            [one] => Ok(one),
            [] => Err(format!(
                "the dump has no table {name:?}; its tables with data are: {}",
                self.tables_with_data().join(", ")
            )),
            many => Err(format!(
                "{name:?} names tables in several schemas ({}); qualify it",
                many.iter()
                    .map(|t| t.name.display())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// Names of the tables that have data, for messages.
    pub fn tables_with_data(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .tables
            .values()
            .filter(|t| !self.sections_of(&t.name).is_empty())
            .map(|t| t.name.display())
            .collect();
        names.truncate(50);
        names
    }

    /// The data of `table`: its own rows, then those of its partitions and inheritance
    /// children (recursively), as a query of the table in the restored database returns them.
    pub fn sections_of(&self, table: &QualifiedName) -> Vec<&DataSection> {
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        self.collect_sections(table, &mut out, &mut seen);
        out
    }

    fn collect_sections<'a>(
        &'a self,
        table: &QualifiedName,
        out: &mut Vec<&'a DataSection>,
        seen: &mut BTreeSet<QualifiedName>,
    ) {
        if !seen.insert(table.clone()) {
            return;
        }
        out.extend(self.sections.iter().filter(|s| &s.table == table));
        if let Some(children) = self.children.get(table) {
            for c in children {
                self.collect_sections(c, out, seen);
            }
        }
    }

    /// The tables holding rows of `table` (itself, its partitions and children) that have no
    /// data section: in a complete dump there are none, in a truncated one they are the data
    /// that was cut off.
    pub fn tables_without_data(&self, table: &QualifiedName) -> Vec<QualifiedName> {
        let mut tree = vec![table.clone()];
        let mut i = 0;
        while i < tree.len() && tree.len() < 100_000 {
            if let Some(children) = self.children.get(&tree[i]) {
                let new: Vec<QualifiedName> = children
                    .iter()
                    .filter(|c| !tree.contains(c))
                    .cloned()
                    .collect();
                tree.extend(new);
            }
            i += 1;
        }
        tree.into_iter()
            .filter(|t| self.tables.get(t).is_some_and(|d| !d.partitioned))
            .filter(|t| !self.sections.iter().any(|s| &s.table == t))
            .collect()
    }

    /// The declared columns of `table` (a partition declared by `PARTITION OF` takes its
    /// parent's).
    pub fn columns_of(&self, table: &QualifiedName) -> Vec<(String, String)> {
        let mut t = table.clone();
        for _ in 0..16 {
            match self.tables.get(&t) {
                Some(def) if def.columns.is_empty() && def.partition_of.is_some() => {
                    t = def.partition_of.clone().unwrap_or_default();
                }
                Some(def) => return def.columns.clone(),
                None => return Vec::new(),
            }
        }
        Vec::new()
    }

    /// The statement attaching partition `table` to its parent (`ALTER TABLE … ATTACH
    /// PARTITION … FOR VALUES FROM (…) TO (…)`), when the dump has one.
    pub fn attach_statement(&self, table: &QualifiedName) -> Option<&str> {
        self.attached.get(table).map(String::as_str)
    }

    /// The primary key columns of `table`, when the dump declares one.
    pub fn primary_key(&self, table: &QualifiedName) -> Option<&[String]> {
        self.primary_keys.get(table).map(Vec::as_slice)
    }

    /// The decompressed COPY text of a section. Errors name the file and byte offset.
    pub fn open_section(&self, section: &DataSection) -> Result<Box<dyn Read + Send>> {
        let table = section.table.display();
        match &section.location {
            Location::Block { dump_id, offset } => {
                let offset = offset.ok_or_else(|| DumpError::Data {
                    path: self.path.clone(),
                    table: table.clone(),
                    message: format!(
                        "its data block (entry {dump_id}) is not in the file: {}",
                        self.truncated.as_deref().unwrap_or("the dump is damaged")
                    ),
                })?;
                let raw = ChunkReader::open(&self.path, offset, *dump_id, self.int_size)?;
                decompress(Box::new(raw), self.compression, false).map_err(|e| DumpError::Data {
                    path: self.path.clone(),
                    table,
                    message: e.to_string(),
                })
            }
            Location::File(file) => Ok(open_sniffed(file)?.0),
            Location::Member { offset, len, gzip } => {
                let io_err = |e| DumpError::Io {
                    path: self.path.clone(),
                    source: e,
                };
                let mut file = File::open(&self.path).map_err(io_err)?;
                file.seek(std::io::SeekFrom::Start(*offset))
                    .map_err(io_err)?;
                let raw: Box<dyn Read + Send> =
                    Box::new(BufReader::with_capacity(256 * 1024, file.take(*len)));
                let compression = if *gzip {
                    Compression::Gzip
                } else {
                    Compression::None
                };
                decompress(raw, compression, true).map_err(io_err)
            }
            Location::Text(start) => {
                let (mut stream, _) = open_sniffed(&self.path)?;
                let skipped = std::io::copy(&mut (&mut stream).take(*start), &mut std::io::sink())
                    .map_err(|e| DumpError::Data {
                        path: self.path.clone(),
                        table: table.clone(),
                        message: format!("reading up to its data at byte {start}: {e}"),
                    })?;
                if skipped < *start {
                    return Err(DumpError::Data {
                        path: self.path.clone(),
                        table,
                        message: format!(
                            "the text ends at byte {skipped}, before its data at byte {start}: the file changed since it was opened"
                        ),
                    });
                }
                Ok(stream)
            }
        }
    }

    /// Where a section's data starts, for messages.
    pub fn describe_location(&self, section: &DataSection) -> String {
        match &section.location {
            Location::Block {
                dump_id,
                offset: Some(o),
            } => format!("data block of entry {dump_id} at byte {o}"),
            Location::Block { dump_id, .. } => format!("data block of entry {dump_id}"),
            Location::File(f) => format!("file {}", f.display()),
            Location::Member { offset, .. } => format!("tar member at byte {offset}"),
            Location::Text(o) => format!("COPY data at byte {o} of the SQL text"),
        }
    }
}

/// The data file of a directory dump's entry: the name in the TOC, or it with the suffix of
/// its compression.
fn data_file(dir: &Path, name: &str) -> PathBuf {
    let plain = dir.join(name);
    if plain.exists() {
        return plain;
    }
    for suffix in [".gz", ".lz4", ".zst"] {
        let p = dir.join(format!("{name}{suffix}"));
        if p.exists() {
            return p;
        }
    }
    plain
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(sql: &str) -> Dump {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("d.sql");
        std::fs::write(&path, sql).unwrap_or_else(|e| panic!("{e}"));
        Dump::open(&path).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_plain_dump_is_indexed_by_its_top_level_statements_only() {
        let d = plain(
            "\\restrict abc\n\
             CREATE FUNCTION public.f() RETURNS void AS $$\n\
             BEGIN\n    CREATE TABLE fake (x int);\nEND $$ LANGUAGE plpgsql;\n\
             COMMENT ON FUNCTION public.f() IS '\n  CREATE TABLE public.fake2 (y int);\n';\n\
             CREATE TABLE public.t (\n    id bigint,\n    s text\n);\n\
             CREATE TABLE public.unfinished (\n    a int\n\
             COPY public.t (id, s) FROM stdin;\n1\ta\n2\t\\N\n\\.\n\n\
             \\unrestrict abc\n",
        );
        let names: Vec<String> = d.tables().map(|t| t.name.display()).collect();
        assert_eq!(
            names,
            vec!["public.t"],
            "no table from a function body or a cut statement"
        );
        assert_eq!(d.sections().len(), 1);
        assert_eq!(d.sections()[0].columns, vec!["id", "s"]);
        assert!(d.truncated().is_none());
        let cut = plain("CREATE TABLE public.t (id int);\nCOPY public.t (id) FROM stdin;\n1\n");
        assert!(cut.truncated().is_some(), "COPY data without its \\. line");
    }
}
