//! Durations as written in DAG files: `"30s"`, `"5m"`, `"1h 30m"`, or an
//! integer number of seconds.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

/// A duration read from TOML: a humantime string (`"90s"`, `"1h 30m"`) or an
/// integer number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Dur(pub Duration);

impl Dur {
    /// Parses `"30s"`, `"5m"`, `"1h 30m"`, `"2d"` or `"45"` (seconds).
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if let Ok(secs) = t.parse::<u64>() {
            return Ok(Dur(Duration::from_secs(secs)));
        }
        humantime::parse_duration(t).map(Dur).map_err(|e| {
            format!("invalid duration {s:?} ({e}); write it like \"30s\", \"5m\" or \"1h 30m\"")
        })
    }
}

impl std::fmt::Display for Dur {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(i64),
            Text(String),
        }
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "expected a duration such as \"30s\", \"5m\" or a number of seconds",
            )
        })? {
            Raw::Secs(n) if n >= 0 => Ok(Dur(Duration::from_secs(n as u64))),
            Raw::Secs(n) => Err(serde::de::Error::custom(format!(
                "duration must not be negative, got {n}"
            ))),
            Raw::Text(s) => Dur::parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

impl schemars::JsonSchema for Dur {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A duration: \"30s\", \"5m\", \"1h 30m\", \"2d\", or an integer number of seconds.",
            "oneOf": [{"type": "string"}, {"type": "integer", "minimum": 0}]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_forms() {
        assert_eq!(Dur::parse("30s").unwrap().0, Duration::from_secs(30));
        assert_eq!(Dur::parse("1h 30m").unwrap().0, Duration::from_secs(5400));
        assert_eq!(Dur::parse("45").unwrap().0, Duration::from_secs(45));
        assert_eq!(Dur::parse("250ms").unwrap().0, Duration::from_millis(250));
        assert!(Dur::parse("soon").unwrap_err().contains("invalid duration"));
    }

    #[test]
    fn deserializes_numbers_and_strings() {
        #[derive(Deserialize)]
        struct T {
            a: Dur,
            b: Dur,
        }
        let t: T = toml::from_str("a = 10\nb = \"2m\"").unwrap();
        assert_eq!((t.a.0.as_secs(), t.b.0.as_secs()), (10, 120));
        assert!(toml::from_str::<T>("a = -1\nb = 1").is_err());
    }
}
