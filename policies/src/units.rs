//! Sizes (`"256MiB"`) and durations (`"30s"`) as written in `policy.toml`.
//!
//! Both are a whole, non-negative number followed by a unit, optionally
//! separated by spaces. Errors are plain messages; the caller adds the file,
//! position and key.

use std::time::Duration;

/// Size units accepted by [`parse_size`], with their value in bytes.
pub const SIZE_UNITS: [(&str, u64); 7] = [
    ("B", 1),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
];

/// Duration units accepted by [`parse_duration`], with their value in milliseconds.
pub const DURATION_UNITS: [(&str, u64); 5] = [
    ("ms", 1),
    ("s", 1_000),
    ("min", 60_000),
    ("m", 60_000),
    ("h", 3_600_000),
];

/// Parses a size such as `"256MiB"`, `"10 MB"` or `"512B"` into bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let (number, unit) = split(text, "\"256MiB\"")?;
    if unit.is_empty() {
        return Err(format!(
            "{text:?} needs a unit, e.g. \"256MiB\" (write a plain integer without quotes for bytes)"
        ));
    }
    let factor = lookup(&SIZE_UNITS, unit)?;
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// Parses a duration such as `"500ms"`, `"30s"`, `"5min"`, `"5m"` or `"2h"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = split(text, "\"30s\"")?;
    if unit.is_empty() {
        return Err(format!("{text:?} needs a unit, e.g. \"30s\""));
    }
    let factor = lookup(&DURATION_UNITS, unit)?;
    number
        .checked_mul(factor)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// Formats bytes with the unit giving the smallest whole number (`"16MiB"`, `"400MB"`).
pub fn format_size(bytes: u64) -> String {
    SIZE_UNITS
        .iter()
        .rev() // binary units first, so they win ties
        .filter(|(_, factor)| bytes >= *factor && bytes % factor == 0)
        .min_by_key(|(_, factor)| bytes / factor)
        .map_or_else(
            || format!("{bytes}B"),
            |(unit, factor)| format!("{}{unit}", bytes / factor),
        )
}

/// Formats a duration in the largest unit that divides it exactly (`"10min"`).
pub fn format_duration(duration: Duration) -> String {
    let ms = duration.as_millis();
    for (unit, factor) in [("h", 3_600_000), ("min", 60_000), ("s", 1_000)] {
        if ms >= factor && ms % factor == 0 {
            return format!("{}{unit}", ms / factor);
        }
    }
    format!("{ms}ms")
}

/// Splits `"256 MiB"` into `(256, "MiB")`, rejecting signs, fractions and overflow.
fn split<'t>(text: &'t str, example: &str) -> Result<(u64, &'t str), String> {
    let trimmed = text.trim();
    if trimmed.starts_with('-') {
        return Err(format!("{text:?} must not be negative"));
    }
    let digits_end = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, rest) = trimmed.split_at(digits_end);
    if digits.is_empty() {
        return Err(format!(
            "{text:?} is not a number with a unit, e.g. {example}"
        ));
    }
    if rest.starts_with(['.', ',']) {
        return Err(format!(
            "{text:?} must be a whole number (use a smaller unit instead of a fraction)"
        ));
    }
    let number = digits
        .parse::<u64>()
        .map_err(|_| format!("{text:?} is too large"))?;
    Ok((number, rest.trim_start()))
}

fn lookup(units: &[(&str, u64)], unit: &str) -> Result<u64, String> {
    units
        .iter()
        .find(|(name, _)| *name == unit)
        .map(|(_, factor)| *factor)
        .ok_or_else(|| {
            let names: Vec<&str> = units.iter().map(|(name, _)| *name).collect();
            format!("unknown unit {unit:?} (expected {})", names.join(", "))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("256 MiB"), Ok(256 << 20));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_size("1KB"), Ok(1000));
        assert_eq!(parse_size("4GiB"), Ok(4 << 30));
        assert_eq!(parse_size("0B"), Ok(0));
        assert!(parse_size("MB2").is_err());
        let err = parse_size("10MB2").unwrap_err();
        assert!(err.contains("unknown unit \"MB2\""), "{err}");
        assert!(err.contains("B, KB, MB, GB, KiB, MiB, GiB"), "{err}");
        assert!(parse_size("256").unwrap_err().contains("needs a unit"));
        assert!(parse_size("-1MiB").unwrap_err().contains("negative"));
        assert!(parse_size("1.5GiB").unwrap_err().contains("whole number"));
        assert!(parse_size("99999999999999999999B")
            .unwrap_err()
            .contains("too large"));
        assert!(parse_size("99999999999GiB")
            .unwrap_err()
            .contains("too large"));
        assert!(parse_size("").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("30 s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5min"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert!(parse_duration("30").unwrap_err().contains("needs a unit"));
        assert!(parse_duration("1h30m")
            .unwrap_err()
            .contains("unknown unit"));
        assert!(parse_duration("-1s").unwrap_err().contains("negative"));
        assert!(parse_duration("0.5s").unwrap_err().contains("whole number"));
        assert!(parse_duration("18446744073709551615h")
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn formatting() {
        assert_eq!(format_size(16 << 20), "16MiB");
        assert_eq!(format_size(4 << 30), "4GiB");
        assert_eq!(format_size(1000), "1KB");
        assert_eq!(format_size(400_000_000), "400MB");
        assert_eq!(format_size(1001), "1001B");
        assert_eq!(format_size(0), "0B");
        assert_eq!(format_duration(Duration::from_millis(10)), "10ms");
        assert_eq!(format_duration(Duration::from_secs(600)), "10min");
        assert_eq!(format_duration(Duration::from_secs(3600)), "1h");
        assert_eq!(format_duration(Duration::ZERO), "0ms");
    }
}
