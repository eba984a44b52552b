//! The ledger of a file target: the SQLite state-file ledger ([`StateLedger`]) in
//! `_tsmigrate_ledger.sqlite` in the target directory. Rollback is refused: the rows of a
//! file target are its files.

use std::path::Path;

use tsmigrate_sqlite::StateLedger;

/// The ledger file in a file target's directory.
pub const LEDGER_FILE: &str = "_tsmigrate_ledger.sqlite";

/// The ledger of `plan_id` in the file target directory `root`.
pub fn file_ledger(root: &Path, plan_id: &str) -> StateLedger {
    StateLedger::new(
        root.join(LEDGER_FILE),
        plan_id,
        format!(
            "it wrote files into {}; a file target is rolled back by deleting them \
             (the stream's directory), then `tsmigrate run --restart` writes it again",
            root.display()
        ),
    )
}
