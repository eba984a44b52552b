//! Exit codes, documented in `--help` and the README, and the one mapping from an error to
//! the code the process ends with.

use tsmigrate_core::Error;
use tsmigrate_engine::EngineError;

/// Everything went well.
pub const OK: u8 = 0;
/// A store or connection failed, or an I/O error occurred (or tsmigrate has a bug).
pub const FAILURE: u8 = 1;
/// The plan or the command line is invalid (nothing was written).
pub const USAGE: u8 = 2;
/// More rows were rejected than --max-rejects allows.
pub const REJECTS: u8 = 3;
/// `verify` found differences between source and target.
pub const DIFFERENCES: u8 = 4;
/// Interrupted by Ctrl-C; committed partitions stay, in-flight ones were rolled back.
pub const INTERRUPTED: u8 = 130;

/// The exit code of an error: plan and mapping problems are usage errors.
pub fn code_of(e: &EngineError) -> u8 {
    match e {
        EngineError::Core(Error::Plan(_) | Error::Mapping { .. }) => USAGE,
        EngineError::TooManyRejects(_) => REJECTS,
        EngineError::Interrupted => INTERRUPTED,
        _ => FAILURE,
    }
}

/// Prints the error and returns its exit code.
pub fn fail(e: &EngineError) -> u8 {
    eprintln!("error: {e}");
    code_of(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_errors_are_usage_errors_and_bugs_are_failures() {
        let plan: EngineError = Error::Plan("x".into()).into();
        let bug: EngineError = Error::Internal("x".into()).into();
        assert_eq!(code_of(&plan), USAGE);
        assert_eq!(code_of(&bug), FAILURE);
        assert!(bug.to_string().contains("a bug in tsmigrate"), "{bug}");
        assert_eq!(code_of(&EngineError::Interrupted), INTERRUPTED);
    }
}
