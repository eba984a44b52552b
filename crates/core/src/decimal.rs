//! Decimal numbers taken apart into sign, significant digits and magnitude, so that two
//! spellings of one value (`1.50`, `1.5`, `15E-1`) can be compared or written one way.

/// A decimal number: `±0.d1d2…dn × 10^magnitude`, without leading or trailing zeros in its
/// digits (no digits: zero).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decimal {
    /// True for a negative number (never for zero).
    pub negative: bool,
    /// Significant digits, ASCII, first and last not `0` (empty for zero).
    pub digits: String,
    /// The power of ten of the first digit's place, plus one.
    pub magnitude: i64,
}

impl Decimal {
    /// Parses `[+-]digits[.digits][(e|E)[+-]digits]`; `None` for anything else (NaN,
    /// infinities, empty text).
    pub fn parse(text: &str) -> Option<Decimal> {
        let t = text.trim();
        let (negative, body) = match t.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, t.strip_prefix('+').unwrap_or(t)),
        };
        let (mantissa, exp) = match body.find(['e', 'E']) {
            Some(p) => (&body[..p], body[p + 1..].parse::<i64>().ok()?),
            None => (body, 0),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let digits_only = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if (int.is_empty() && frac.is_empty()) || !digits_only(int) || !digits_only(frac) {
            return None;
        }
        let all = format!("{int}{frac}");
        let lead = all.len() - all.trim_start_matches('0').len();
        let digits = all
            .trim_start_matches('0')
            .trim_end_matches('0')
            .to_string();
        if digits.is_empty() {
            return Some(Decimal {
                negative: false,
                digits,
                magnitude: 0,
            });
        }
        let magnitude = (int.len() as i64 - lead as i64).checked_add(exp)?;
        Some(Decimal {
            negative,
            digits,
            magnitude,
        })
    }

    /// The number in plain notation, without an exponent or needless zeros (`-0.0015`,
    /// `1200`, `0`).
    pub fn to_plain(&self) -> String {
        if self.digits.is_empty() {
            return "0".into();
        }
        let mut out = String::with_capacity(self.digits.len() + 4);
        if self.negative {
            out.push('-');
        }
        if self.magnitude <= 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n(
                '0',
                self.magnitude.unsigned_abs() as usize,
            ));
            out.push_str(&self.digits);
        } else {
            let m = usize::try_from(self.magnitude).unwrap_or(usize::MAX);
            if self.digits.len() <= m {
                out.push_str(&self.digits);
                out.extend(std::iter::repeat_n('0', m - self.digits.len()));
            } else {
                out.push_str(&self.digits[..m]);
                out.push('.');
                out.push_str(&self.digits[m..]);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_value_are_one_decimal() {
        for (text, plain) in [
            ("007.50", "7.5"),
            ("-0.000", "0"),
            ("+12", "12"),
            ("1.5E3", "1500"),
            ("15e-1", "1.5"),
            ("-.5", "-0.5"),
            ("1e-30", "0.000000000000000000000000000001"),
            ("120", "120"),
        ] {
            assert_eq!(
                Decimal::parse(text).map(|d| d.to_plain()).as_deref(),
                Some(plain),
                "{text}"
            );
        }
        assert_eq!(Decimal::parse("1.5e3"), Decimal::parse("1500.000"));
        for bad in [
            "NaN",
            "Infinity",
            "",
            ".",
            "1e",
            "1.2.3",
            "e5",
            "1e99999999999999999999",
        ] {
            assert_eq!(Decimal::parse(bad), None, "{bad}");
        }
    }
}
