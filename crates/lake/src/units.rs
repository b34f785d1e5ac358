//! Sizes and durations as people write them in config files and flags
//! (`"128MiB"`, `"10s"`), and sizes as the CLI prints them (`1.5 MiB`). The
//! one place both directions live, so what we print we also accept.

use std::time::Duration;

/// Parses sizes such as `1048576`, `"512KiB"`, `"128MiB"`, `"1GB"`.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '_'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.replace('_', "").parse().map_err(|_| {
        format!("invalid size {text:?}: use a number with an optional unit such as \"128MiB\"")
    })?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "kib" | "k" => 1 << 10,
        "mb" => 1_000_000,
        "mib" | "m" => 1 << 20,
        "gb" => 1_000_000_000,
        "gib" | "g" => 1 << 30,
        other => {
            return Err(format!(
                "invalid size {text:?}: unknown unit {other:?} (use B, KiB, MiB, GiB, KB, MB or GB)"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {text:?} is too large"))
}

/// A size for people: `512 B`, `1.5 KiB`, `128.0 MiB` (binary units, one
/// decimal); [`parse_bytes`] reads it back.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Parses a duration such as `"10s"`, `"5m"` or `"7d"`; `what` names the
/// setting in the error.
pub fn parse_duration(text: &str, what: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        format!("{what}: invalid duration {text:?} ({e}); use e.g. \"10s\", \"5m\", \"7d\"")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("128MiB").unwrap(), 128 << 20);
        assert_eq!(parse_bytes("1_000").unwrap(), 1000);
        assert_eq!(parse_bytes("2 GB").unwrap(), 2_000_000_000);
        assert!(
            parse_bytes("12 parsecs")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(parse_bytes("MiB").is_err());
    }

    #[test]
    fn formatted_sizes_read_back() {
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(1536), "1.5 KiB");
        assert_eq!(format_bytes(128 << 20), "128.0 MiB");
        for n in [0_u64, 1023, 1 << 20, 5 << 30] {
            let shown = format_bytes(n).replace(' ', "");
            let back = parse_bytes(&shown.replace(".0", "")).ok();
            if !shown.contains('.') || shown.contains(".0") {
                assert_eq!(back, Some(n), "{shown}");
            }
        }
    }
}
