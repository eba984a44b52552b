//! The Time cell of an IoTDB export.
//!
//! `-tf default` (the default) prints `RpcUtils.parseLongToDateWithPrecision`: ISO-8601 with
//! the offset of the export's zone (`Z` for UTC, `+05:30`, seconds when the offset has them),
//! and always 3, 6 or 9 fraction digits for a server in ms, µs or ns. From v1.0 on a negative
//! offset is printed with the fraction after it, `2023-11-14T17:13:20-05:00.123` (v1.0.1
//! `RpcUtils.formatDatetimeStr` L267-278, still on master): read as `…17:13:20.123-05:00`.
//! `-tf timestamp|long|number` prints the raw epoch count in the server's unit.

use chrono::NaiveDate;
use tsmigrate_core::TimeUnit;

/// Why a Time cell cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// An empty cell (the exporter leaves out the cell of time 0 rather than emptying it).
    #[error("the Time cell is empty")]
    Empty,
    /// Digits beyond i64.
    #[error("time {0:?} does not fit a 64-bit integer")]
    TooBig(String),
    /// Neither form.
    #[error(
        "time {0:?} is neither an integer nor an ISO-8601 time with an offset \
         (such as 2024-01-01T08:00:00.001+08:00)"
    )]
    Unreadable(String),
    /// A fraction finer than the unit times are counted in.
    #[error("time {text:?} is finer than the time unit ({unit})")]
    TooFine {
        /// The cell.
        text: String,
        /// The unit's short name.
        unit: &'static str,
    },
    /// Beyond i64 ticks of the unit.
    #[error("time {0:?} is out of range")]
    OutOfRange(String),
}

/// An ISO-8601 time with an offset: seconds since the epoch, nanoseconds, and how many
/// fraction digits it was written with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IsoTime {
    /// Whole seconds since 1970-01-01T00:00:00Z.
    pub secs: i64,
    /// Nanoseconds within the second.
    pub nanos: u32,
    /// Fraction digits written (0 to 9).
    pub digits: usize,
}

/// Reads a Time cell as a count of `unit` since the epoch: an integer (in `unit`), or an
/// ISO-8601 time with an offset that is a whole number of `unit`s.
pub fn parse_time(text: &str, unit: TimeUnit) -> Result<i64, TimeError> {
    if text.is_empty() {
        return Err(TimeError::Empty);
    }
    let digits = text.strip_prefix('-').unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<i64>()
            .map_err(|_| TimeError::TooBig(text.to_string()));
    }
    let iso = parse_iso_time(text).ok_or_else(|| TimeError::Unreadable(text.to_string()))?;
    let per_second = i128::from(unit.per_second());
    let step = 1_000_000_000 / per_second;
    let nanos = i128::from(iso.nanos);
    if nanos % step != 0 {
        return Err(TimeError::TooFine {
            text: text.to_string(),
            unit: unit.short_name(),
        });
    }
    let ticks = i128::from(iso.secs) * per_second + nanos / step;
    i64::try_from(ticks).map_err(|_| TimeError::OutOfRange(text.to_string()))
}

/// Reads `YYYY-MM-DDTHH:MM:SS[.f{1,9}](Z|±HH:MM[:SS])`, and IoTDB's negative-offset form
/// `YYYY-MM-DDTHH:MM:SS-HH:MM[:SS].f{1,9}`; `None` for anything else.
pub fn parse_iso_time(text: &str) -> Option<IsoTime> {
    let mut c = Cursor {
        s: text.as_bytes(),
        i: 0,
    };
    let date = NaiveDate::from_ymd_opt(
        c.number(4)? as i32,
        c.after(b'-')?.number(2)?,
        c.after(b'-')?.number(2)?,
    )?;
    let time = date.and_hms_opt(
        c.after(b'T')?.number(2)?,
        c.after(b':')?.number(2)?,
        c.after(b':')?.number(2)?,
    )?;
    let (mut nanos, mut digits) = c.fraction()?;
    let offset = c.offset()?;
    if offset < 0 && digits == 0 {
        // The negative-offset form: the fraction after the offset.
        (nanos, digits) = c.fraction()?;
    }
    if c.i != c.s.len() {
        return None;
    }
    Some(IsoTime {
        secs: time.and_utc().timestamp() - i64::from(offset),
        nanos,
        digits,
    })
}

/// A position in the text being parsed.
struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    /// Exactly `n` ASCII digits.
    fn number(&mut self, n: usize) -> Option<u32> {
        let digits = self.s.get(self.i..self.i + n)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        self.i += n;
        Some(
            digits
                .iter()
                .fold(0, |acc, d| acc * 10 + u32::from(d - b'0')),
        )
    }

    /// Moves past `b`, which must be next.
    fn after(&mut self, b: u8) -> Option<&mut Self> {
        self.eat(b).then_some(self)
    }

    fn eat(&mut self, b: u8) -> bool {
        let here = self.s.get(self.i) == Some(&b);
        if here {
            self.i += 1;
        }
        here
    }

    /// `.` and 1 to 9 digits, as nanoseconds and the digit count; `(0, 0)` when no `.` is next.
    fn fraction(&mut self) -> Option<(u32, usize)> {
        if !self.eat(b'.') {
            return Some((0, 0));
        }
        let n = self
            .s
            .get(self.i..)
            .unwrap_or_default()
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if !(1..=9).contains(&n) {
            return None;
        }
        let nanos = self.number(n)? * 10u32.pow((9 - n) as u32);
        Some((nanos, n))
    }

    /// `Z` or `±HH:MM[:SS]`, in seconds east of UTC.
    fn offset(&mut self) -> Option<i32> {
        if self.eat(b'Z') {
            return Some(0);
        }
        let sign = if self.eat(b'+') {
            1
        } else if self.eat(b'-') {
            -1
        } else {
            return None;
        };
        let hours = self.number(2)?;
        let minutes = self.after(b':')?.number(2)?;
        let seconds = if self.eat(b':') { self.number(2)? } else { 0 };
        if hours > 18 || minutes > 59 || seconds > 59 {
            return None;
        }
        Some(sign * (hours * 3600 + minutes * 60 + seconds) as i32)
    }
}

/// The unit an integer time most likely counts, from its number of digits (for times after
/// 2001): 13 digits ms, 16 µs, 19 ns, 10 s. `None` when it says nothing (small or odd).
pub fn guess_unit(ticks: i64) -> Option<TimeUnit> {
    match ticks.unsigned_abs().checked_ilog10().map(|d| d + 1) {
        Some(10) => Some(TimeUnit::Seconds),
        Some(13) => Some(TimeUnit::Millis),
        Some(16) => Some(TimeUnit::Micros),
        Some(19) => Some(TimeUnit::Nanos),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: TimeUnit = TimeUnit::Millis;

    /// `-tf default` output (fact sheet §5): offsets `Z` and `+HH:MM`, 3/6/9 fraction digits
    /// for a server in ms/µs/ns; `-tf timestamp` prints the raw count.
    #[test]
    fn iso_times_with_offsets_and_raw_counts() {
        assert_eq!(parse_time("1970-01-01T08:00:00.001+08:00", MS), Ok(1));
        assert_eq!(
            parse_time("2023-11-14T22:13:20.123Z", MS),
            Ok(1_700_000_000_123)
        );
        assert_eq!(
            parse_time("2023-11-15T03:43:20.123456+05:30", TimeUnit::Micros),
            Ok(1_700_000_000_123_456)
        );
        assert_eq!(
            parse_time("2023-11-14T22:13:20.123456789Z", TimeUnit::Nanos),
            Ok(1_700_000_000_123_456_789)
        );
        assert_eq!(parse_time("1700000000123", MS), Ok(1_700_000_000_123));
        assert_eq!(parse_time("0", MS), Ok(0));
        assert_eq!(parse_time("-5", MS), Ok(-5));
        // An offset with seconds (ISO_OFFSET_DATE_TIME prints them when the zone has them).
        assert_eq!(
            parse_time("1900-01-01T08:05:43.000+08:05:43", MS),
            Ok(-2_208_988_800_000)
        );
        // v1.3.0+ prints negative times correctly (IOTDB-6138).
        assert_eq!(parse_time("1969-12-31T23:59:59.999Z", MS), Ok(-1));
    }

    /// The negative-offset bug of v1.0.x to master (`RpcUtils.formatDatetimeStr`, fact sheet
    /// §5): zone -05:00, ts 1700000000123 is printed `2023-11-14T17:13:20-05:00.123`.
    #[test]
    fn the_negative_offset_form_reads_as_the_time_it_stands_for() {
        assert_eq!(
            parse_time("2023-11-14T17:13:20-05:00.123", MS),
            Ok(1_700_000_000_123)
        );
        assert_eq!(
            parse_time("2023-11-14T17:13:20-05:00.123456789", TimeUnit::Nanos),
            Ok(1_700_000_000_123_456_789)
        );
        assert_eq!(
            parse_iso_time("2023-11-14T17:13:20-05:00.123").map(|t| t.digits),
            Some(3)
        );
        // Never printed with a positive offset, nor with two fractions.
        assert!(parse_time("2023-11-14T17:13:20+05:00.123", MS).is_err());
        assert!(parse_time("2023-11-14T17:13:20.1-05:00.123", MS).is_err());
    }

    #[test]
    fn what_is_not_a_time_says_why() {
        assert_eq!(parse_time("", MS), Err(TimeError::Empty));
        assert_eq!(
            parse_time("99999999999999999999", MS),
            Err(TimeError::TooBig("99999999999999999999".into()))
        );
        for bad in [
            "yesterday",
            "2024-03-01T12:00:00.000",
            "2024-03-01 12:00:00.000Z",
            "2024-02-30T12:00:00.000Z",
            "2024-03-01T12:00:00.0000000001Z",
            "2024-03-01T12:00:00.Z",
            "1970-01-01T00:00:00.0-1Z",
            "1969-12-31T23:59:59.-500Z",
            " 2024-03-01T12:00:00.000Z",
            "-",
            "+5",
        ] {
            assert_eq!(
                parse_time(bad, MS),
                Err(TimeError::Unreadable(bad.into())),
                "{bad}"
            );
        }
        assert!(matches!(
            parse_time("2024-03-01T12:00:00.000123Z", MS),
            Err(TimeError::TooFine { .. })
        ));
        assert!(matches!(
            parse_time("9999-12-31T23:59:59.999999999Z", TimeUnit::Nanos),
            Err(TimeError::OutOfRange(_))
        ));
    }

    #[test]
    fn units_guessed_from_digits() {
        assert_eq!(guess_unit(1_700_000_000_123), Some(TimeUnit::Millis));
        assert_eq!(guess_unit(1_700_000_000_123_456), Some(TimeUnit::Micros));
        assert_eq!(guess_unit(1_700_000_000_123_456_789), Some(TimeUnit::Nanos));
        assert_eq!(guess_unit(1_700_000_000), Some(TimeUnit::Seconds));
        assert_eq!(guess_unit(42), None);
    }
}
