//! Numbers formatted for people, shared by the report and the connectors' notes.

/// A byte count in binary units with one decimal: `512 B`, `1.5 KiB`, `39.4 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A duration in µs in the two largest units that matter: `0.4s`, `12.3s`, `5m 02s`,
/// `3h 07m`, `9d 4h`, `74y 28d`.
pub fn duration_us(us: i64) -> String {
    let s = us.unsigned_abs() / 1_000_000;
    let sign = if us < 0 { "-" } else { "" };
    let (m, h, d) = (60u64, 3_600u64, 86_400u64);
    let y = 365 * d;
    if s < m {
        format!("{sign}{:.1}s", us.unsigned_abs() as f64 / 1e6)
    } else if s < h {
        format!("{sign}{}m {:02}s", s / m, s % m)
    } else if s < d {
        format!("{sign}{}h {:02}m", s / h, (s % h) / m)
    } else if s < y {
        format!("{sign}{}d {}h", s / d, (s % d) / h)
    } else {
        format!("{sign}{}y {}d", s / y, (s % y) / d)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_read_well() {
        use super::duration_us;
        assert_eq!(duration_us(400_000), "0.4s");
        assert_eq!(duration_us(302_000_000), "5m 02s");
        assert_eq!(duration_us(3 * 3_600_000_000 + 7 * 60_000_000), "3h 07m");
        assert_eq!(duration_us(34_572_605_200_000), "1y 35d");
        assert_eq!(duration_us(-1_500_000), "-1.5s");
    }

    #[test]
    fn byte_counts_read_well() {
        assert_eq!(super::bytes(512), "512 B");
        assert_eq!(super::bytes(1536), "1.5 KiB");
        assert_eq!(super::bytes(10 * 1024 * 1024 * 1024), "10.0 GiB");
    }
}
