//! The subcommands, one module each: what the command asks of the engine and what it prints.

pub mod check;
pub mod rollback;
pub mod run;
pub mod status;
pub mod sync;
pub mod verify;
