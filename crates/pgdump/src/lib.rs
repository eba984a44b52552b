//! Reading pg_dump backups directly, with no restore: the custom (`-Fc`, any compression,
//! archive versions 1.12 to 1.16, seekable or written to a pipe), directory (`-Fd`), tar (`-Ft`)
//! and plain (`-Fp`, optionally compressed) formats. [`Dump::open`] lists the tables with their declared
//! columns and where their COPY data is; [`read_section`] decodes one table's data into typed
//! batches; [`PgDumpSource`] is the `kind = "pgdump"` source built on them.

pub mod archive;
pub mod blocks;
pub mod copy_text;
pub mod ddl;
pub mod dump;
pub mod error;
pub mod read;
pub mod source;
pub mod tar;

pub use archive::Compression;
pub use ddl::QualifiedName;
pub use dump::{DataSection, Dump, Format, Location};
pub use error::DumpError;
pub use read::{read_section, read_table, Projection};
pub use source::PgDumpSource;
