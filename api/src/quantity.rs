//! Resource quantities (`100m`, `1.5Gi`, `2`, `1e3`): parsing with Kubernetes' rules and
//! comparison.

use std::cmp::Ordering;

/// Kubernetes' message for a malformed quantity.
pub const QUANTITY_ERROR: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// Why a quantity could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{QUANTITY_ERROR}")]
pub struct QuantityError;

/// A parsed quantity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quantity(f64);

impl Quantity {
    /// The value in base units (cores, bytes).
    pub fn value(self) -> f64 {
        self.0
    }

    /// The value in thousandths (millicores), rounded up as Kubernetes does.
    pub fn milli(self) -> i128 {
        (self.0 * 1000.0).ceil() as i128
    }
}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        self.0.partial_cmp(&other.0)
    }
}

/// Parses a quantity string.
pub fn parse(s: &str) -> Result<Quantity, QuantityError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(QuantityError);
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let unsigned = num.strip_prefix(['+', '-']).unwrap_or(num);
    if unsigned.is_empty()
        || unsigned.contains(['+', '-'])
        || unsigned.matches('.').count() > 1
        || unsigned == "."
    {
        return Err(QuantityError);
    }
    let n: f64 = num.parse().map_err(|_| QuantityError)?;
    let mult = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exp if exp.starts_with(['e', 'E']) => {
            let e: i32 = exp[1..].parse().map_err(|_| QuantityError)?;
            10f64.powi(e)
        }
        _ => return Err(QuantityError),
    };
    Ok(Quantity(n * mult))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubernetes_forms() {
        assert_eq!(parse("100m").unwrap().milli(), 100);
        assert_eq!(parse("2").unwrap().milli(), 2000);
        assert_eq!(
            parse("1.5Gi").unwrap().value(),
            1.5 * 1024.0 * 1024.0 * 1024.0
        );
        assert_eq!(parse("1e3").unwrap().value(), 1000.0);
        assert_eq!(parse("500Ki").unwrap().value(), 512000.0);
        assert!(parse("100m").unwrap() < parse("1").unwrap());
        for bad in ["", "abc", "1.2.3", "10x", "--1", "1Gb"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
