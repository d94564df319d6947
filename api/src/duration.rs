//! Durations as Kubernetes' command lines take them: Go's `time.ParseDuration` syntax
//! (`500ms`, `10s`, `1m30s`, `1h0m0s`), and a bare number meaning seconds.

use std::time::Duration;

/// Why a duration did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("invalid duration {0:?}")]
    Invalid(String),
    #[error("unknown unit {unit:?} in duration {input:?} (use ns, us, ms, s, m or h)")]
    Unit { unit: String, input: String },
    #[error("negative duration {0:?}")]
    Negative(String),
}

/// Parses `s`: one or more number-unit pairs (`1h30m`, `2.5s`), or a bare number of seconds.
pub fn parse(s: &str) -> Result<Duration, DurationError> {
    let input = s.trim();
    let invalid = || DurationError::Invalid(input.to_string());
    if input.starts_with('-') {
        return Err(DurationError::Negative(input.to_string()));
    }
    let rest = input.strip_prefix('+').unwrap_or(input);
    if rest.is_empty() {
        return Err(invalid());
    }
    if let Ok(secs) = rest.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|_| invalid());
    }
    let mut total = 0.0;
    let mut rest = rest;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, after) = rest.split_at(num_len);
        let n: f64 = num.parse().map_err(|_| invalid())?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err(invalid()),
            _ => {
                return Err(DurationError::Unit {
                    unit: unit.to_string(),
                    input: input.to_string(),
                })
            }
        };
        total += n * scale;
        rest = after;
    }
    Duration::try_from_secs_f64(total).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_and_bare_seconds() {
        assert_eq!(parse("1h0m0s"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("2.5s"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse(" 0 "), Ok(Duration::ZERO));
        assert_eq!(parse("1us"), Ok(Duration::from_micros(1)));
    }

    #[test]
    fn bad_durations_are_named() {
        assert_eq!(parse(""), Err(DurationError::Invalid(String::new())));
        assert_eq!(parse("h"), Err(DurationError::Invalid("h".into())));
        assert_eq!(parse("-1s"), Err(DurationError::Negative("-1s".into())));
        assert_eq!(
            parse("3d"),
            Err(DurationError::Unit {
                unit: "d".into(),
                input: "3d".into()
            })
        );
        assert!(parse("1.2.3s").is_err());
    }
}
