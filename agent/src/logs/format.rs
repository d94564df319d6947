//! The CRI log line format, `<RFC 3339 time> <stdout|stderr> <F|P> <text>\n` (`P`: a partial
//! line continued by the next entry; `F`: the line's last part), and how `kubectl logs` shows
//! it: the text of each line, optionally after the time in the kubelet's format.

use k8s_openapi::jiff::Timestamp;

/// One parsed log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    pub time: Timestamp,
    pub stream: &'a str,
    /// `P`: the text continues in the next entry.
    pub partial: bool,
    pub text: &'a [u8],
}

/// Parses one line (with or without its newline); None when it is not in the CRI format.
pub fn parse(line: &[u8]) -> Option<Entry<'_>> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let mut parts = line.splitn(4, |b| *b == b' ');
    let time = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    let stream = std::str::from_utf8(parts.next()?).ok()?;
    let partial = match parts.next()? {
        b"P" => true,
        b"F" => false,
        _ => return None,
    };
    Some(Entry {
        time,
        stream,
        partial,
        text: parts.next().unwrap_or_default(),
    })
}

/// The time as the kubelet prints it with `timestamps=true`: RFC 3339, nine fractional digits.
pub fn kubelet_time(t: Timestamp) -> String {
    format!(
        "{}.{:09}Z",
        t.strftime("%Y-%m-%dT%H:%M:%S"),
        t.subsec_nanosecond()
    )
}

/// Joins entries into the lines a client sees, keeping the filters of `kubectl logs` that
/// apply per line: `since` (lines written before it are skipped) and `timestamps`.
#[derive(Debug, Default)]
pub struct Lines {
    pub since: Option<Timestamp>,
    pub timestamps: bool,
    /// The parts of a line seen so far, and the time of its first part.
    pending: Vec<u8>,
    first: Option<Timestamp>,
}

impl Lines {
    pub fn new(since: Option<Timestamp>, timestamps: bool) -> Lines {
        Lines {
            since,
            timestamps,
            ..Lines::default()
        }
    }

    /// Feeds one line of a log file; returns the complete output line it ends, if any.
    /// Lines not in the CRI format are skipped (a torn write after a crash).
    pub fn push(&mut self, raw: &[u8]) -> Option<Vec<u8>> {
        let e = parse(raw)?;
        let first = *self.first.get_or_insert(e.time);
        self.pending.extend_from_slice(e.text);
        if e.partial {
            return None;
        }
        self.first = None;
        let text = std::mem::take(&mut self.pending);
        if self.since.is_some_and(|s| first < s) {
            return None;
        }
        let mut out = Vec::with_capacity(text.len() + 32);
        if self.timestamps {
            out.extend_from_slice(kubelet_time(first).as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(&text);
        out.push(b'\n');
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_and_partial_entries() {
        let e = parse(b"2024-05-01T10:00:00.5Z stdout F hello world\n").unwrap();
        assert_eq!(e.stream, "stdout");
        assert!(!e.partial);
        assert_eq!(e.text, b"hello world");
        assert_eq!(kubelet_time(e.time), "2024-05-01T10:00:00.500000000Z");
        let e = parse(b"2024-05-01T10:00:00Z stderr P part").unwrap();
        assert!(e.partial);
        // An empty line is an F entry with no text.
        assert_eq!(parse(b"2024-05-01T10:00:00Z stdout F\n").unwrap().text, b"");
        assert!(parse(b"garbage").is_none());
        assert!(parse(b"2024-05-01T10:00:00Z stdout X y").is_none());
    }

    #[test]
    fn joins_partials_and_filters_by_time() {
        let mut l = Lines::new(None, false);
        assert_eq!(l.push(b"2024-05-01T10:00:00Z stdout P hel\n"), None);
        assert_eq!(
            l.push(b"2024-05-01T10:00:01Z stdout F lo\n").unwrap(),
            b"hello\n"
        );
        let mut l = Lines::new(Some("2024-05-01T10:00:01Z".parse().unwrap()), true);
        assert_eq!(l.push(b"2024-05-01T10:00:00Z stdout F old\n"), None);
        assert_eq!(
            l.push(b"2024-05-01T10:00:02.25Z stdout F new\n").unwrap(),
            b"2024-05-01T10:00:02.250000000Z new\n"
        );
    }
}
