//! What a plain (unquoted) YAML scalar means to a YAML 1.1 reader, as kubectl's YAML library
//! (go-yaml v2) resolves it: `y`, `no`, `On` are booleans, `0777` is octal, `1_000` an integer,
//! `.inf` a float, `~` null, `2024-01-01` a timestamp. The writer quotes every string that would
//! resolve to something else; the reader gives plain scalars these types.

/// The type and value a plain scalar resolves to.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolved {
    Str,
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    /// A date or date-time; kubectl's reader keeps it as the string.
    Timestamp,
}

/// The words YAML 1.1 reads as booleans, null and special floats (exactly these spellings).
fn word(s: &str) -> Option<Resolved> {
    Some(match s {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            Resolved::Bool(true)
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            Resolved::Bool(false)
        }
        "" | "~" | "null" | "Null" | "NULL" => Resolved::Null,
        ".nan" | ".NaN" | ".NAN" => Resolved::Float(f64::NAN),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => Resolved::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => Resolved::Float(f64::NEG_INFINITY),
        _ => return None,
    })
}

/// Resolves a plain scalar.
pub fn resolve(s: &str) -> Resolved {
    if let Some(r) = word(s) {
        return r;
    }
    match s.as_bytes().first() {
        Some(b'.') => {
            if float_syntax(s) {
                if let Ok(f) = s.parse::<f64>() {
                    return Resolved::Float(f);
                }
            }
            Resolved::Str
        }
        Some(b'+' | b'-' | b'0'..=b'9') => {
            if is_timestamp(s) {
                return Resolved::Timestamp;
            }
            let plain = s.replace('_', "");
            if let Some(r) = integer(&plain) {
                return r;
            }
            if float_syntax(&plain) {
                if let Ok(f) = plain.parse::<f64>() {
                    return Resolved::Float(f);
                }
            }
            Resolved::Str
        }
        _ => Resolved::Str,
    }
}

/// Whether a string written plain would be read back as something else (then it is quoted),
/// including YAML 1.1's sexagesimal numbers (`1:20`).
pub fn needs_quotes(s: &str) -> bool {
    resolve(s) != Resolved::Str || is_base60_float(s)
}

/// An integer as Go's `strconv.ParseInt(s, 0, 64)` (then `ParseUint`) reads it: an optional
/// sign, then `0x`, `0o`, `0b`, a leading `0` (octal) or decimal digits.
fn integer(s: &str) -> Option<Resolved> {
    let (negative, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u128::from_str_radix(digits, radix).ok()?;
    if negative {
        let v = i128::try_from(magnitude).ok().map(|m| -m)?;
        i64::try_from(v).ok().map(Resolved::Int)
    } else if let Ok(v) = i64::try_from(magnitude) {
        Some(Resolved::Int(v))
    } else {
        u64::try_from(magnitude).ok().map(Resolved::Uint)
    }
}

/// go-yaml's float pattern: `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`.
fn float_syntax(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            digits(&mut i);
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// `[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?`: YAML 1.1's base-60 numbers.
fn is_base60_float(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (s, _) = match s.split_once('.') {
        Some((head, frac)) if frac.chars().all(|c| c.is_ascii_digit() || c == '_') => (head, frac),
        Some(_) => return false,
        None => (s, ""),
    };
    let mut parts = s.split(':');
    let first = parts.next().unwrap_or("");
    if !first.starts_with(|c: char| c.is_ascii_digit())
        || !first.chars().all(|c| c.is_ascii_digit() || c == '_')
    {
        return false;
    }
    let mut any = false;
    for p in parts {
        any = true;
        let ok = match p.as_bytes() {
            [d] => d.is_ascii_digit(),
            [t, d] => (b'0'..=b'5').contains(t) && d.is_ascii_digit(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    any
}

/// Reads 1 or 2 digits (Go's non-fixed numeric layout fields), advancing `i`.
fn num(b: &[u8], i: &mut usize) -> Option<u32> {
    let start = *i;
    while *i < b.len() && *i - start < 2 && b[*i].is_ascii_digit() {
        *i += 1;
    }
    (*i > start).then(|| {
        b[start..*i]
            .iter()
            .fold(0, |n, d| n * 10 + u32::from(d - b'0'))
    })
}

fn expect(b: &[u8], i: &mut usize, c: u8) -> bool {
    let ok = b.get(*i) == Some(&c);
    *i += usize::from(ok);
    ok
}

/// One of go-yaml's timestamp layouts: `YYYY-M-D`, `YYYY-M-DTh:m:s[.f](Z|±hh:mm)` (or `t`), or
/// `YYYY-M-D h:m:s[.f]`, with valid calendar values.
fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 5 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return false;
    }
    let year: u32 = s[..4].parse().unwrap_or(0);
    let mut i = 5;
    let Some(month) = num(b, &mut i) else {
        return false;
    };
    if !expect(b, &mut i, b'-') {
        return false;
    }
    let Some(day) = num(b, &mut i) else {
        return false;
    };
    let leap = year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    if day == 0 || day > days {
        return false;
    }
    if i == b.len() {
        return true;
    }
    let zoned = match b[i] {
        b'T' | b't' => true,
        b' ' => false,
        _ => return false,
    };
    i += 1;
    let mut clock = [0u32; 3];
    for (k, part) in clock.iter_mut().enumerate() {
        if k > 0 && !expect(b, &mut i, b':') {
            return false;
        }
        match num(b, &mut i) {
            Some(v) => *part = v,
            None => return false,
        }
    }
    if clock[0] > 23 || clock[1] > 59 || clock[2] > 59 {
        return false;
    }
    if expect(b, &mut i, b'.') {
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    if !zoned {
        return i == b.len();
    }
    match b.get(i) {
        Some(b'Z') => i + 1 == b.len(),
        Some(b'+' | b'-') => {
            let z = &b[i + 1..];
            z.len() == 5 && z[2] == b':' && [0, 1, 3, 4].iter().all(|k| z[*k].is_ascii_digit())
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_1_1_words() {
        for s in ["y", "Y", "yes", "YES", "on", "On", "true", "TRUE"] {
            assert_eq!(resolve(s), Resolved::Bool(true), "{s}");
        }
        for s in ["n", "no", "No", "off", "OFF", "false", "False"] {
            assert_eq!(resolve(s), Resolved::Bool(false), "{s}");
        }
        for s in ["", "~", "null", "NULL"] {
            assert_eq!(resolve(s), Resolved::Null, "{s}");
        }
        // Only go-yaml's spellings: mixed case stays a string.
        for s in [
            "yEs", "oN", "nULL", "web", "<<", "-", "1.2.3", "1-2", "v1", "_1",
        ] {
            assert_eq!(resolve(s), Resolved::Str, "{s}");
        }
    }

    #[test]
    fn numbers() {
        assert_eq!(resolve("0777"), Resolved::Int(0o777));
        assert_eq!(resolve("0x1F"), Resolved::Int(31));
        assert_eq!(resolve("0o17"), Resolved::Int(15));
        assert_eq!(resolve("0b101"), Resolved::Int(5));
        assert_eq!(resolve("-0b11"), Resolved::Int(-3));
        assert_eq!(resolve("1_000"), Resolved::Int(1000));
        assert_eq!(resolve("+12"), Resolved::Int(12));
        assert_eq!(resolve("18446744073709551615"), Resolved::Uint(u64::MAX));
        assert_eq!(resolve("1e3"), Resolved::Float(1000.0));
        assert_eq!(resolve(".5"), Resolved::Float(0.5));
        assert_eq!(resolve("08"), Resolved::Float(8.0));
        assert_eq!(resolve("-.inf"), Resolved::Float(f64::NEG_INFINITY));
        assert!(matches!(resolve(".NaN"), Resolved::Float(f) if f.is_nan()));
        assert_eq!(resolve("1e"), Resolved::Str);
        assert_eq!(resolve("0x"), Resolved::Str);
        assert!(needs_quotes("1:20"));
        assert!(needs_quotes("-190:20:30.15"));
        assert!(!needs_quotes("1:70"));
        assert!(!needs_quotes("a:1"));
    }

    #[test]
    fn timestamps() {
        for s in [
            "2024-01-01",
            "2024-1-2",
            "2024-01-01T00:00:00Z",
            "2024-02-29t10:00:00.5+02:00",
            "2024-01-01 10:00:00",
        ] {
            assert_eq!(resolve(s), Resolved::Timestamp, "{s}");
        }
        for s in [
            "2023-02-29",
            "2024-13-01",
            "2024-01-01T25:00:00Z",
            "2024-01-01 10:00:00Z",
            "2024-01-01x",
            "20240-01-01",
        ] {
            assert_ne!(resolve(s), Resolved::Timestamp, "{s}");
        }
    }
}
