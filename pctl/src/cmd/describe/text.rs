//! The text of a description as kubectl builds it: lines whose cells end with tabs, aligned by
//! Go's `text/tabwriter` (padding 2) when flushed, plus the small formatters every kind
//! shares (labels, annotations, tolerations, times, ages).

use std::collections::BTreeMap;

use k8s_openapi::jiff::{tz::TimeZone, Timestamp};
use serde_json::Value;

use crate::cmd::apply::LAST_APPLIED;

/// kubectl shortens annotations longer than this and prints them on their own lines.
const MAX_ANNOTATION_LEN: usize = 140;

/// A description being written: `pending` is not aligned yet, `done` is.
#[derive(Default)]
pub struct Text {
    done: String,
    pending: String,
}

impl Text {
    /// Appends `s` at `level` (two spaces each) of indentation.
    pub fn w(&mut self, level: usize, s: &str) {
        for _ in 0..level {
            self.pending.push_str("  ");
        }
        self.pending.push_str(s);
    }

    /// Aligns what was written so far (kubectl flushes before the events table).
    pub fn flush(&mut self) {
        self.done.push_str(&tabwrite(&self.pending, 2));
        self.pending.clear();
    }

    /// The text with its tabs, unaligned (`rollout history --revision` prints it so).
    pub fn raw(self) -> String {
        self.done + &self.pending
    }

    pub fn finish(mut self) -> String {
        self.flush();
        self.done
    }

    /// `Title:\tk=v` then `\tk=v` lines, sorted; `<none>` when empty.
    pub fn labels(&mut self, title: &str, m: Option<&Value>) {
        self.w(0, &format!("{title}:\t"));
        let entries = strings(m);
        if entries.is_empty() {
            self.w(0, "<none>\n");
        }
        for (i, (k, v)) in entries.iter().enumerate() {
            if i > 0 {
                self.w(0, "\t");
            }
            self.w(0, &format!("{k}={v}\n"));
        }
    }

    /// Annotations as kubectl prints them: `k: v`, without the last-applied configuration,
    /// long or multi-line values on lines of their own.
    pub fn annotations(&mut self, title: &str, m: Option<&Value>) {
        self.w(0, &format!("{title}:\t"));
        let mut entries = strings(m);
        entries.remove(LAST_APPLIED);
        if entries.is_empty() {
            self.w(0, "<none>\n");
        }
        for (i, (k, v)) in entries.iter().enumerate() {
            if i > 0 {
                self.w(0, "\t");
            }
            let v = v.strip_suffix('\n').unwrap_or(v);
            if v.len() + k.len() + 2 > MAX_ANNOTATION_LEN || v.contains('\n') {
                self.w(0, &format!("{k}:\n"));
                for line in v.split('\n') {
                    self.w(
                        0,
                        &format!("\t  {}\n", shorten(line, MAX_ANNOTATION_LEN - 2)),
                    );
                }
            } else {
                self.w(0, &format!("{k}: {v}\n"));
            }
        }
    }

    /// `key=value:Effect op=Exists for 300s` lines, sorted by key.
    pub fn tolerations(&mut self, title: &str, t: Option<&Value>) {
        self.w(0, &format!("{title}:\t"));
        let mut items = arr(t).to_vec();
        if items.is_empty() {
            self.w(0, "<none>\n");
        }
        items.sort_by(|a, b| s(a, "/key").cmp(s(b, "/key")));
        for (i, t) in items.iter().enumerate() {
            if i > 0 {
                self.w(0, "\t");
            }
            let (key, value, effect) = (s(t, "/key"), s(t, "/value"), s(t, "/effect"));
            let mut line = key.to_string();
            if !value.is_empty() {
                line.push_str(&format!("={value}"));
            }
            if !effect.is_empty() {
                line.push_str(&format!(":{effect}"));
            }
            if s(t, "/operator") == "Exists" && value.is_empty() {
                line.push_str(if key.is_empty() && effect.is_empty() {
                    "op=Exists"
                } else {
                    " op=Exists"
                });
            }
            if let Some(secs) = t.get("tolerationSeconds").and_then(Value::as_i64) {
                line.push_str(&format!(" for {secs}s"));
            }
            self.w(0, &format!("{line}\n"));
        }
    }
}

/// The string entries of a JSON map, sorted.
pub fn strings(m: Option<&Value>) -> BTreeMap<String, String> {
    m.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn shorten(s: &str, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    } else {
        s.to_string()
    }
}

/// The string at `ptr`, or "".
pub fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

/// The array at `v`, or none.
pub fn arr(v: Option<&Value>) -> &[Value] {
    v.and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// A number or string at `ptr` as Go's %v prints it ("" when absent).
pub fn num(v: &Value, ptr: &str) -> String {
    match v.pointer(ptr) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// `a=1,b=2`: a label map (or a selector's matchLabels) as kubectl joins it.
pub fn selector_text(m: Option<&Value>) -> String {
    strings(m)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A timestamp in Go's RFC1123Z in the local time zone, as kubectl prints it.
pub fn rfc1123z(t: &str) -> String {
    match t.parse::<Timestamp>() {
        Ok(ts) => ts
            .to_zoned(TimeZone::system())
            .strftime("%a, %d %b %Y %H:%M:%S %z")
            .to_string(),
        Err(_) => t.to_string(),
    }
}

/// How long ago `t` was, as kubectl's ages (`<unknown>` when unset).
pub fn since(t: &str, now: Timestamp) -> String {
    match t.parse::<Timestamp>() {
        Ok(ts) => api::table::human_duration(now.as_second() - ts.as_second()),
        Err(_) => "<unknown>".into(),
    }
}

/// Go's text/tabwriter with a space pad: each tab-terminated cell is padded to the widest cell
/// of its column block (consecutive lines that have that cell) plus `padding`.
pub fn tabwrite(text: &str, padding: usize) -> String {
    let lines: Vec<Vec<&str>> = text
        .split_inclusive('\n')
        .map(|l| l.strip_suffix('\n').unwrap_or(l).split('\t').collect())
        .collect();
    let mut widths: Vec<Vec<usize>> = lines.iter().map(|l| vec![0; l.len()]).collect();
    columns(&lines, &mut widths, 0, 0, lines.len(), padding);
    let mut out = String::new();
    for (line, w) in lines.iter().zip(&widths) {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if j + 1 < line.len() {
                let pad = w[j].saturating_sub(cell.chars().count());
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    }
    if !text.ends_with('\n') {
        out.pop();
    }
    out
}

/// Sets the width of column `col` for each block of lines in `from..to` that has it, then
/// recurses into the next column within that block (tabwriter's `format`).
fn columns(
    lines: &[Vec<&str>],
    widths: &mut [Vec<usize>],
    col: usize,
    from: usize,
    to: usize,
    padding: usize,
) {
    let mut i = from;
    while i < to {
        if col + 1 >= lines[i].len() {
            i += 1;
            continue;
        }
        let start = i;
        let mut width = 0;
        while i < to && col + 1 < lines[i].len() {
            width = width.max(lines[i][col].chars().count() + padding);
            i += 1;
        }
        for w in &mut widths[start..i] {
            w[col] = width;
        }
        columns(lines, widths, col + 1, start, i, padding);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tabwriter_blocks() {
        let t = "Name:\tweb\nService Account:\tdefault\nContainers:\n  c:\n    Image:\tx\n";
        assert_eq!(
            tabwrite(t, 2),
            "Name:             web\nService Account:  default\nContainers:\n  c:\n    Image:  x\n"
        );
        assert_eq!(
            tabwrite("a\tb\tc\nlong\t\tz\n", 2),
            "a     b  c\nlong     z\n"
        );
    }

    #[test]
    fn labels_annotations_tolerations() {
        let mut t = Text::default();
        t.labels("Labels", Some(&json!({"b": "2", "a": "1"})));
        t.annotations(
            "Annotations",
            Some(&json!({LAST_APPLIED: "{}", "x": "y", "long": "z".repeat(150)})),
        );
        t.tolerations(
            "Tolerations",
            Some(&json!([
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                 "effect": "NoExecute", "tolerationSeconds": 300},
                {"operator": "Exists"},
            ])),
        );
        let out = t.finish();
        let want = format!(
            "Labels:       a=1\n              b=2\nAnnotations:  long:\n                {}...\n              x: y\n\
             Tolerations:  op=Exists\n              node.kubernetes.io/unreachable:NoExecute op=Exists for 300s\n",
            "z".repeat(138)
        );
        assert_eq!(out, want);
    }
}
