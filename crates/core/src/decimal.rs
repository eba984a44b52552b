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

impl Decimal {
    /// The number in scientific notation: `d[.ddd]E±x` (`1.2E+125`, `-5E-3`, `0`).
    pub fn to_scientific(&self) -> String {
        if self.digits.is_empty() {
            return "0".into();
        }
        let sign = if self.negative { "-" } else { "" };
        let (first, rest) = self.digits.split_at(1);
        let exp = self.magnitude - 1;
        let dot = if rest.is_empty() { "" } else { "." };
        format!(
            "{sign}{first}{dot}{rest}E{}{}",
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        )
    }

    /// Plain notation up to 40 characters (every 38-digit integer, `0.000123`), scientific
    /// beyond: `1.2E+125` rather than 126 digits.
    pub fn to_compact(&self) -> String {
        let plain = self.to_plain();
        if plain.len() <= 40 {
            plain
        } else {
            self.to_scientific()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compact_spelling_is_plain_near_one_and_scientific_far_from_it() {
        for (text, compact) in [
            ("1.2E+125", "1.2E+125"),
            ("1200", "1200"),
            ("1.2e7", "12000000"),
            ("123456789012345678901", "123456789012345678901"),
            ("1e38", "100000000000000000000000000000000000000"),
            ("1e40", "1E+40"),
            ("0.000123", "0.000123"),
            ("1e-7", "0.0000001"),
            ("1e-39", "1E-39"),
            ("-123456789e-130", "-1.23456789E-122"),
            ("0", "0"),
        ] {
            let d = Decimal::parse(text);
            assert_eq!(
                d.map(|d| d.to_compact()).as_deref(),
                Some(compact),
                "{text}"
            );
        }
        // Both spellings read back as the same number.
        for text in ["1.2E+125", "-7.5E-44", "9E+3"] {
            let d = Decimal::parse(text);
            let back = d.as_ref().and_then(|d| Decimal::parse(&d.to_scientific()));
            assert_eq!(back, d, "{text}");
        }
    }

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
