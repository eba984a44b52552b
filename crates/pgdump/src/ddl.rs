//! The few SQL statements of a dump the reader needs: `CREATE TABLE` (column names and
//! declared types), `ALTER TABLE … ATTACH PARTITION` (which tables are partitions of which)
//! and `COPY … FROM stdin` (the columns of the data that follows).
//!
//! pg_dump writes these in one regular, machine-made form (one column per line, constraints
//! in separate statements, identifiers quoted only when needed), so a small purpose-made
//! reader is used rather than a general SQL parser: it must take every column definition
//! pg_dump can print (`GENERATED … STORED`, `COLLATE pg_catalog."C"`, `PARTITION BY`,
//! `INHERITS`, storage parameters, types of extensions) and only needs names and types.

/// A schema-qualified name as written in the dump (unquoted, case kept).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QualifiedName {
    /// Schema (empty when the statement did not qualify the name).
    pub schema: String,
    /// Object name.
    pub name: String,
}

impl QualifiedName {
    /// `schema.name`, each part quoted when it needs to be.
    pub fn display(&self) -> String {
        if self.schema.is_empty() {
            quote_if_needed(&self.name)
        } else {
            format!(
                "{}.{}",
                quote_if_needed(&self.schema),
                quote_if_needed(&self.name)
            )
        }
    }
}

fn quote_if_needed(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !s.as_bytes()[0].is_ascii_digit();
    if plain {
        s.to_string()
    } else {
        format!("\"{}\"", s.replace('"', "\"\""))
    }
}

/// A table as its `CREATE TABLE` declares it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableDef {
    /// The table.
    pub name: QualifiedName,
    /// Columns in declaration order: name and declared type (`character varying(255)`).
    pub columns: Vec<(String, String)>,
    /// True for a partitioned table (`PARTITION BY …`): its rows are in its partitions.
    pub partitioned: bool,
    /// `CREATE TABLE … PARTITION OF parent`: the parent (columns then come from it).
    pub partition_of: Option<QualifiedName>,
    /// `INHERITS (parent, …)`.
    pub inherits: Vec<QualifiedName>,
}

/// Skips whitespace and `--` comments.
fn skip_ws(s: &str) -> &str {
    let mut s = s;
    loop {
        let t = s.trim_start();
        if let Some(rest) = t.strip_prefix("--") {
            s = rest.find('\n').map(|i| &rest[i + 1..]).unwrap_or("");
        } else {
            return t;
        }
    }
}

/// Reads one identifier (quoted or bare) at the start of `s`.
fn ident(s: &str) -> Option<(String, &str)> {
    let s = skip_ws(s);
    if let Some(rest) = s.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = rest.char_indices();
        while let Some((i, c)) = chars.next() {
            if c == '"' {
                if rest[i + 1..].starts_with('"') {
                    out.push('"');
                    chars.next();
                } else {
                    return Some((out, &rest[i + 1..]));
                }
            } else {
                out.push(c);
            }
        }
        None
    } else {
        let end = s
            .char_indices()
            .find(|(_, c)| !(c.is_alphanumeric() || *c == '_' || *c == '$'))
            .map(|(i, _)| i)
            .unwrap_or(s.len());
        if end == 0 {
            return None;
        }
        Some((s[..end].to_string(), &s[end..]))
    }
}

/// Reads `name` or `schema.name`.
fn qualified(s: &str) -> Option<(QualifiedName, &str)> {
    let (first, rest) = ident(s)?;
    if let Some(after_dot) = rest.strip_prefix('.') {
        let (second, rest) = ident(after_dot)?;
        Some((
            QualifiedName {
                schema: first,
                name: second,
            },
            rest,
        ))
    } else {
        Some((
            QualifiedName {
                schema: String::new(),
                name: first,
            },
            rest,
        ))
    }
}

/// A table name as a plan writes it: `table`, `schema.table`, parts optionally quoted.
pub fn parse_name(s: &str) -> Option<QualifiedName> {
    let (q, rest) = qualified(s)?;
    rest.trim().is_empty().then_some(q)
}

/// Strips a leading keyword (case-insensitive, as a whole word).
fn keyword<'a>(s: &'a str, word: &str) -> Option<&'a str> {
    let s = skip_ws(s);
    let head = s.get(..word.len())?;
    if !head.eq_ignore_ascii_case(word) {
        return None;
    }
    let rest = &s[word.len()..];
    match rest.chars().next() {
        Some(c) if c.is_alphanumeric() || c == '_' => None,
        _ => Some(rest),
    }
}

/// Splits the parenthesised list starting at `s` (which must start with `(`) at its
/// top-level commas; returns the items and what follows the closing parenthesis.
fn paren_list(s: &str) -> Option<(Vec<&str>, &str)> {
    let s = skip_ws(s);
    let body = s.strip_prefix('(')?;
    let mut depth = 0usize;
    let mut items = Vec::new();
    let mut start = 0;
    let mut quote: Option<char> = None;
    for (i, c) in body.char_indices() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '(' => depth += 1,
            ')' if depth == 0 => {
                let last = body[start..i].trim();
                if !last.is_empty() {
                    items.push(last);
                }
                return Some((items, &body[i + 1..]));
            }
            ')' => depth -= 1,
            ',' if depth == 0 => {
                items.push(body[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    None
}

/// Words that end a column's type in a column definition.
const TYPE_END: [&str; 10] = [
    "COLLATE",
    "DEFAULT",
    "NOT",
    "NULL",
    "CONSTRAINT",
    "GENERATED",
    "CHECK",
    "PRIMARY",
    "UNIQUE",
    "REFERENCES",
];

/// Words that start a table constraint rather than a column.
const CONSTRAINT_START: [&str; 7] = [
    "CONSTRAINT",
    "CHECK",
    "PRIMARY",
    "UNIQUE",
    "FOREIGN",
    "EXCLUDE",
    "LIKE",
];

/// The column name and declared type of one column definition; `None` for a table
/// constraint.
fn column_def(item: &str) -> Option<(String, String)> {
    if CONSTRAINT_START.iter().any(|w| keyword(item, w).is_some()) {
        return None;
    }
    let (name, rest) = ident(item)?;
    // The type runs to the first top-level word that starts a column option.
    let mut depth = 0usize;
    let mut quote = false;
    let mut end = rest.len();
    let mut word_start: Option<usize> = None;
    let bytes = rest.as_bytes();
    let mut i = 0;
    while i <= bytes.len() {
        let c = bytes.get(i).copied().unwrap_or(b' ');
        if quote {
            if c == b'"' {
                quote = false;
            }
            i += 1;
            continue;
        }
        let is_word = c.is_ascii_alphanumeric() || c == b'_';
        match (word_start, is_word) {
            (None, true) => word_start = Some(i),
            (Some(ws), false) => {
                if depth == 0 {
                    let w = &rest[ws..i];
                    if TYPE_END.iter().any(|k| k.eq_ignore_ascii_case(w))
                        && (ws == 0 || !matches!(bytes[ws - 1], b'.' | b'"'))
                    {
                        end = ws;
                        break;
                    }
                }
                word_start = None;
            }
            _ => {}
        }
        match c {
            b'"' => quote = true,
            b'(' => depth += 1,
            b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    let ty = rest[..end].trim().to_string();
    Some((name, ty))
}

/// Reads a `CREATE [UNLOGGED|TEMP…] TABLE` statement (the first statement of `sql`).
pub fn parse_create_table(sql: &str) -> Option<TableDef> {
    let mut s = keyword(sql, "CREATE")?;
    for w in ["UNLOGGED", "TEMPORARY", "TEMP", "GLOBAL", "LOCAL"] {
        if let Some(r) = keyword(s, w) {
            s = r;
        }
    }
    s = keyword(s, "TABLE")?;
    if let Some(r) = keyword(s, "IF") {
        s = keyword(keyword(r, "NOT")?, "EXISTS")?;
    }
    let (name, mut rest) = qualified(s)?;
    let mut partition_of = None;
    if let Some(r) = keyword(rest, "PARTITION") {
        let (parent, r) = qualified(keyword(r, "OF")?)?;
        partition_of = Some(parent);
        rest = r;
    }
    let mut columns = Vec::new();
    if skip_ws(rest).starts_with('(') {
        let (items, after) = paren_list(rest)?;
        columns = items.into_iter().filter_map(column_def).collect();
        rest = after;
    }
    let mut inherits = Vec::new();
    let mut partitioned = false;
    // Clauses after the column list: INHERITS (…), PARTITION BY …, WITH (…), FOR VALUES ….
    loop {
        if let Some(r) = keyword(rest, "INHERITS") {
            let (items, after) = paren_list(r)?;
            inherits = items
                .into_iter()
                .filter_map(|i| qualified(i).map(|(q, _)| q))
                .collect();
            rest = after;
        } else if keyword(rest, "PARTITION")
            .and_then(|r| keyword(r, "BY"))
            .is_some()
        {
            partitioned = true;
            break;
        } else {
            break;
        }
    }
    Some(TableDef {
        name,
        columns,
        partitioned,
        partition_of,
        inherits,
    })
}

/// Reads `ALTER TABLE [ONLY] parent ATTACH PARTITION child …`: (parent, child).
pub fn parse_attach(sql: &str) -> Option<(QualifiedName, QualifiedName)> {
    let mut s = keyword(keyword(sql, "ALTER")?, "TABLE")?;
    if let Some(r) = keyword(s, "ONLY") {
        s = r;
    }
    let (parent, rest) = qualified(s)?;
    let rest = keyword(keyword(rest, "ATTACH")?, "PARTITION")?;
    let (child, _) = qualified(rest)?;
    Some((parent, child))
}

/// Items of a column list that are each exactly one identifier.
fn ident_list(items: Vec<&str>) -> Option<Vec<String>> {
    items
        .into_iter()
        .map(|item| {
            let (c, tail) = ident(item)?;
            tail.trim().is_empty().then_some(c)
        })
        .collect()
}

/// Reads `ALTER TABLE [ONLY] t ADD CONSTRAINT c PRIMARY KEY (cols)`: (t, cols).
pub fn parse_primary_key(sql: &str) -> Option<(QualifiedName, Vec<String>)> {
    let mut s = keyword(keyword(sql, "ALTER")?, "TABLE")?;
    if let Some(r) = keyword(s, "ONLY") {
        s = r;
    }
    let (table, rest) = qualified(s)?;
    let rest = keyword(keyword(rest, "ADD")?, "CONSTRAINT")?;
    let (_, rest) = ident(rest)?;
    let rest = keyword(keyword(rest, "PRIMARY")?, "KEY")?;
    let (items, _) = paren_list(rest)?;
    Some((table, ident_list(items)?))
}

/// Reads `COPY table (col, …) FROM stdin;`: the table and its columns (empty when the
/// statement lists none, meaning every column in table order).
pub fn parse_copy(sql: &str) -> Option<(QualifiedName, Vec<String>)> {
    let s = keyword(sql, "COPY")?;
    let (table, rest) = qualified(s)?;
    let mut columns = Vec::new();
    let mut rest = rest;
    if skip_ws(rest).starts_with('(') {
        let (items, after) = paren_list(rest)?;
        columns = ident_list(items)?;
        rest = after;
    }
    let rest = keyword(keyword(rest, "FROM")?, "stdin")?;
    skip_ws(rest).starts_with(';').then_some((table, columns))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(schema: &str, name: &str) -> QualifiedName {
        QualifiedName {
            schema: schema.into(),
            name: name.into(),
        }
    }

    #[test]
    fn reads_pg_dump_table_definitions() {
        let t = parse_create_table(
            "CREATE TABLE public.ts_kv (\n    entity_id uuid NOT NULL,\n    key integer NOT NULL,\n    str_v character varying(10000000),\n    \
             ts timestamp(3) with time zone DEFAULT now() NOT NULL,\n    \"Weird, \"\"col\"\"\" numeric(10,2) COLLATE pg_catalog.\"default\",\n    \
             arr integer[],\n    e public.\"MyEnum\" NOT NULL,\n    g bigint GENERATED ALWAYS AS ((key * 2)) STORED,\n    \
             CONSTRAINT positive CHECK ((key > 0))\n)\nPARTITION BY RANGE (ts);\n",
        )
        .unwrap();
        assert_eq!(t.name, q("public", "ts_kv"));
        assert!(t.partitioned);
        assert_eq!(
            t.columns,
            vec![
                ("entity_id".into(), "uuid".into()),
                ("key".into(), "integer".into()),
                ("str_v".into(), "character varying(10000000)".into()),
                ("ts".into(), "timestamp(3) with time zone".into()),
                ("Weird, \"col\"".into(), "numeric(10,2)".into()),
                ("arr".into(), "integer[]".into()),
                ("e".into(), "public.\"MyEnum\"".into()),
                ("g".into(), "bigint".into()),
            ]
        );
        let c = parse_create_table(
            "CREATE UNLOGGED TABLE \"S\".\"Child\" (\n    a text\n)\nINHERITS (public.p);",
        )
        .unwrap();
        assert_eq!(c.name, q("S", "Child"));
        assert_eq!(c.inherits, vec![q("public", "p")]);
        assert!(!c.partitioned);
        let p = parse_create_table(
            "CREATE TABLE public.p1 PARTITION OF public.p\nFOR VALUES FROM ('0') TO ('100');",
        )
        .unwrap();
        assert_eq!(p.partition_of, Some(q("public", "p")));
        assert!(parse_create_table("CREATE VIEW v AS SELECT 1;").is_none());
    }

    #[test]
    fn reads_attach_and_copy_statements() {
        assert_eq!(
            parse_attach(
                "ALTER TABLE ONLY public.p ATTACH PARTITION public.p1 FOR VALUES FROM ('0') TO ('100');\n"
            ),
            Some((q("public", "p"), q("public", "p1")))
        );
        assert_eq!(
            parse_copy("COPY public.t (id, \"Odd Col\", ts) FROM stdin;\n"),
            Some((
                q("public", "t"),
                vec!["id".into(), "Odd Col".into(), "ts".into()]
            ))
        );
        assert_eq!(parse_copy("COPY t FROM stdin;"), Some((q("", "t"), vec![])));
        assert!(parse_copy("COPY t (a) TO stdout;").is_none());
        assert_eq!(
            parse_primary_key(
                "ALTER TABLE ONLY public.ts_kv\n    ADD CONSTRAINT ts_kv_pkey PRIMARY KEY (entity_id, key, ts);\n"
            ),
            Some((q("public", "ts_kv"), vec!["entity_id".into(), "key".into(), "ts".into()]))
        );
        assert!(
            parse_primary_key("ALTER TABLE ONLY public.t ADD CONSTRAINT u UNIQUE (a);").is_none()
        );
        assert_eq!(q("public", "My Table").display(), "public.\"My Table\"");
    }
}
