//! JSON values written as kubectl writes YAML (go-yaml v2 behind `-o yaml`): keys in go-yaml's
//! natural order, sequences in mappings not indented, strings plain where a reader reads them
//! back as the same string, else double-quoted (`"y"`, `"0777"`, `"2024-01-01T00:00:00Z"`),
//! single-quoted where plain is not allowed (`'* * * * *'`), multi-line strings as `|` blocks,
//! and long lines folded at spaces past column 80.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::resolve::needs_quotes;

/// go-yaml's preferred line width: a space past this column becomes a line break.
const WIDTH: usize = 80;

/// The YAML document for `v`.
pub fn to_string(v: &Value) -> String {
    let mut e = Emitter::default();
    e.node(v, 0, true);
    e.out
}

#[derive(Default)]
struct Emitter {
    out: String,
    column: usize,
}

impl Emitter {
    fn put(&mut self, c: char) {
        self.out.push(c);
        self.column += 1;
    }

    fn put_str(&mut self, s: &str) {
        self.out.push_str(s);
        self.column += s.chars().count();
    }

    fn newline(&mut self) {
        self.out.push('\n');
        self.column = 0;
    }

    /// A line break, then spaces up to `indent`.
    fn indent(&mut self, indent: usize) {
        if self.column > 0 {
            self.newline();
        }
        while self.column < indent {
            self.put(' ');
        }
    }

    /// A node at `indent` (the column of its keys or dashes); `inline`: the first line is
    /// already started (after `- `), so it is not indented again.
    fn node(&mut self, v: &Value, indent: usize, inline: bool) {
        match v {
            Value::Object(m) if !m.is_empty() => self.mapping(m, indent, inline),
            Value::Array(a) if !a.is_empty() => self.sequence(a, indent, inline),
            // A sequence item: `indent` is already two past its dash.
            scalar => {
                self.scalar(scalar, indent, false);
                self.end_line();
            }
        }
    }

    fn end_line(&mut self) {
        if self.column > 0 {
            self.newline();
        }
    }

    fn mapping(&mut self, m: &Map<String, Value>, indent: usize, mut inline: bool) {
        let mut keys: Vec<&String> = m.keys().collect();
        keys.sort_by(|a, b| natural(a, b));
        for k in keys {
            if !inline {
                self.indent(indent);
            }
            inline = false;
            self.string(k, indent + 2, true);
            self.put(':');
            match &m[k.as_str()] {
                Value::Object(c) if !c.is_empty() => {
                    self.newline();
                    self.mapping(c, indent + 2, false);
                }
                // go-yaml's indentless sequences: the dashes line up with the key.
                Value::Array(c) if !c.is_empty() => {
                    self.newline();
                    self.sequence(c, indent, false);
                }
                scalar => {
                    self.put(' ');
                    self.scalar(scalar, indent + 2, false);
                    self.end_line();
                }
            }
        }
    }

    fn sequence(&mut self, a: &[Value], indent: usize, mut inline: bool) {
        for item in a {
            if !inline {
                self.indent(indent);
            }
            inline = false;
            self.put_str("- ");
            self.node(item, indent + 2, true);
        }
    }

    fn scalar(&mut self, v: &Value, indent: usize, key: bool) {
        match v {
            Value::Null => self.put_str("null"),
            Value::Bool(b) => self.put_str(if *b { "true" } else { "false" }),
            Value::Number(n) => self.put_str(&number(n)),
            Value::String(s) => self.string(s, indent, key),
            Value::Object(_) => self.put_str("{}"),
            Value::Array(_) => self.put_str("[]"),
        }
    }

    fn string(&mut self, s: &str, indent: usize, key: bool) {
        let a = Analysis::of(s);
        let style = if s.contains('\n') {
            if a.block_allowed && !key {
                Style::Literal
            } else {
                Style::Double
            }
        } else if needs_quotes(s) {
            Style::Double
        } else if a.block_plain_allowed {
            Style::Plain
        } else if a.single_quoted_allowed {
            Style::Single
        } else {
            Style::Double
        };
        let breaks = !key;
        match style {
            Style::Plain => self.plain(s, indent, breaks),
            Style::Single => self.single(s, indent, breaks),
            Style::Double => self.double(s, indent, breaks),
            Style::Literal => self.literal(s, indent),
        }
    }

    fn plain(&mut self, s: &str, indent: usize, breaks: bool) {
        let chars: Vec<char> = s.chars().collect();
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                if breaks && !spaces && self.column > WIDTH && chars.get(i + 1) != Some(&' ') {
                    self.indent(indent);
                } else {
                    self.put(c);
                }
                spaces = true;
            } else {
                self.put(c);
                spaces = false;
            }
        }
    }

    fn single(&mut self, s: &str, indent: usize, breaks: bool) {
        let chars: Vec<char> = s.chars().collect();
        self.put('\'');
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                if breaks
                    && !spaces
                    && self.column > WIDTH
                    && i > 0
                    && i + 1 < chars.len()
                    && chars[i + 1] != ' '
                {
                    self.indent(indent);
                } else {
                    self.put(c);
                }
                spaces = true;
            } else {
                if c == '\'' {
                    self.put('\'');
                }
                self.put(c);
                spaces = false;
            }
        }
        self.put('\'');
    }

    fn double(&mut self, s: &str, indent: usize, breaks: bool) {
        let chars: Vec<char> = s.chars().collect();
        self.put('"');
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if !printable(c) || is_break(c) || c == '\u{feff}' || c == '"' || c == '\\' {
                self.put('\\');
                match c {
                    '\0' => self.put('0'),
                    '\u{7}' => self.put('a'),
                    '\u{8}' => self.put('b'),
                    '\t' => self.put('t'),
                    '\n' => self.put('n'),
                    '\u{b}' => self.put('v'),
                    '\u{c}' => self.put('f'),
                    '\r' => self.put('r'),
                    '\u{1b}' => self.put('e'),
                    '"' => self.put('"'),
                    '\\' => self.put('\\'),
                    '\u{85}' => self.put('N'),
                    '\u{a0}' => self.put('_'),
                    '\u{2028}' => self.put('L'),
                    '\u{2029}' => self.put('P'),
                    c if u32::from(c) <= 0xff => self.put_str(&format!("x{:02X}", u32::from(c))),
                    c if u32::from(c) <= 0xffff => self.put_str(&format!("u{:04X}", u32::from(c))),
                    c => self.put_str(&format!("U{:08X}", u32::from(c))),
                }
                spaces = false;
            } else if c == ' ' {
                if breaks && !spaces && self.column > WIDTH && i > 0 && i + 1 < chars.len() {
                    self.indent(indent);
                    if chars[i + 1] == ' ' {
                        self.put('\\');
                    }
                } else {
                    self.put(c);
                }
                spaces = true;
            } else {
                self.put(c);
                spaces = false;
            }
        }
        self.put('"');
    }

    /// `|` (with `-` when there is no final newline, `+` when there are several, and an
    /// indentation digit when the text starts with a space), then the lines at `indent`.
    fn literal(&mut self, s: &str, indent: usize) {
        self.put('|');
        if s.starts_with([' ', '\n']) {
            self.put('2');
        }
        if !s.ends_with('\n') {
            self.put('-');
        } else if s == "\n" || s.ends_with("\n\n") {
            self.put('+');
        }
        self.newline();
        for line in s.split_inclusive('\n') {
            let text = line.strip_suffix('\n').unwrap_or(line);
            if !text.is_empty() {
                self.indent(indent);
                self.put_str(text);
            }
            if line.ends_with('\n') {
                self.newline();
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Style {
    Plain,
    Single,
    Double,
    Literal,
}

/// Characters go-yaml writes as they are (others are escaped in double quotes).
fn printable(c: char) -> bool {
    matches!(u32::from(c), 0x0a | 0x20..=0x7e | 0xa0..=0xd7ff | 0xe000..=0xfffd) && c != '\u{feff}'
}

fn is_break(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// go-yaml's scalar analysis: which styles can carry the string unchanged.
struct Analysis {
    block_plain_allowed: bool,
    single_quoted_allowed: bool,
    block_allowed: bool,
}

impl Analysis {
    fn of(s: &str) -> Analysis {
        if s.is_empty() {
            return Analysis {
                block_plain_allowed: true,
                single_quoted_allowed: true,
                block_allowed: false,
            };
        }
        let chars: Vec<char> = s.chars().collect();
        let mut block_indicators = s.starts_with("---") || s.starts_with("...");
        let (mut special, mut line_breaks) = (false, false);
        let (mut leading_space, mut leading_break) = (false, false);
        let (mut trailing_space, mut trailing_break) = (false, false);
        let (mut break_space, mut space_break) = (false, false);
        let (mut previous_space, mut previous_break) = (false, false);
        let mut preceded_by_whitespace = true;
        for (i, &c) in chars.iter().enumerate() {
            let last = i + 1 == chars.len();
            let followed_by_whitespace =
                last || matches!(chars[i + 1], ' ' | '\t') || is_break(chars[i + 1]);
            if i == 0 {
                match c {
                    '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\''
                    | '"' | '%' | '@' | '`' => block_indicators = true,
                    '?' | ':' | '-' if followed_by_whitespace => block_indicators = true,
                    _ => {}
                }
            } else {
                match c {
                    ':' if followed_by_whitespace => block_indicators = true,
                    '#' if preceded_by_whitespace => block_indicators = true,
                    _ => {}
                }
            }
            if !printable(c) {
                special = true;
            }
            if c == ' ' {
                leading_space |= i == 0;
                trailing_space |= last;
                break_space |= previous_break;
                (previous_space, previous_break) = (true, false);
            } else if is_break(c) {
                line_breaks = true;
                leading_break |= i == 0;
                trailing_break |= last;
                space_break |= previous_space;
                (previous_space, previous_break) = (false, true);
            } else {
                (previous_space, previous_break) = (false, false);
            }
            preceded_by_whitespace = matches!(c, ' ' | '\t' | '\0') || is_break(c);
        }
        let mut a = Analysis {
            block_plain_allowed: true,
            single_quoted_allowed: true,
            block_allowed: true,
        };
        if leading_space || leading_break || trailing_space || trailing_break {
            a.block_plain_allowed = false;
        }
        if trailing_space {
            a.block_allowed = false;
        }
        if break_space {
            a.block_plain_allowed = false;
            a.single_quoted_allowed = false;
        }
        if space_break || special {
            a.block_plain_allowed = false;
            a.single_quoted_allowed = false;
            a.block_allowed = false;
        }
        if line_breaks || block_indicators {
            a.block_plain_allowed = false;
        }
        a
    }
}

/// A number as go-yaml writes it: integers as they are, floats in Go's shortest `%g`
/// (`0.5`, `1e+06`, `.inf`).
fn number(n: &serde_json::Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    if f.is_nan() {
        return ".nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { ".inf" } else { "-.inf" }.into();
    }
    if f == 0.0 {
        return "0".into();
    }
    // Shortest round-trip digits and their exponent; Go's %g switches to %e outside -4..6.
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let sign = if f < 0.0 { "-" } else { "" };
    if (-4..6).contains(&exp) {
        return format!("{f}");
    }
    let exp_sign = if exp < 0 { '-' } else { '+' };
    format!("{sign}{mantissa}e{exp_sign}{:02}", exp.abs())
}

/// go-yaml's key order: letters after other characters, digit runs compared as numbers.
fn natural(a: &str, b: &str) -> Ordering {
    let (ar, br): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    for i in 0..ar.len().min(br.len()) {
        if ar[i] == br[i] {
            continue;
        }
        let (al, bl) = (ar[i].is_alphabetic(), br[i].is_alphabetic());
        if al && bl {
            return ar[i].cmp(&br[i]);
        }
        if al || bl {
            return if bl {
                Ordering::Less
            } else {
                Ordering::Greater
            };
        }
        let (mut an, mut bn) = (0i64, 0i64);
        if ar[i] == '0' || br[i] == '0' {
            let mut j = i;
            while j > 0 && ar[j - 1].is_ascii_digit() {
                j -= 1;
                if ar[j] != '0' {
                    (an, bn) = (1, 1);
                    break;
                }
            }
        }
        let mut ai = i;
        while ai < ar.len() && ar[ai].is_ascii_digit() {
            an = an
                .saturating_mul(10)
                .saturating_add(i64::from(ar[ai] as u8 - b'0'));
            ai += 1;
        }
        let mut bi = i;
        while bi < br.len() && br[bi].is_ascii_digit() {
            bn = bn
                .saturating_mul(10)
                .saturating_add(i64::from(br[bi] as u8 - b'0'));
            bi += 1;
        }
        if an != bn {
            return an.cmp(&bn);
        }
        if ai != bi {
            return ai.cmp(&bi);
        }
        return ar[i].cmp(&br[i]);
    }
    ar.len().cmp(&br.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quotes_what_yaml_1_1_would_misread() {
        let v = json!({"labels": {"a": "y", "b": "0777", "c": "On", "d": "2024-01-01T00:00:00Z",
            "e": "", "f": "null", "g": "1:20", "h": "web", "i": "yEs", "j": ".5"}});
        assert_eq!(
            to_string(&v),
            "labels:\n  a: \"y\"\n  b: \"0777\"\n  c: \"On\"\n  d: \"2024-01-01T00:00:00Z\"\n  \
             e: \"\"\n  f: \"null\"\n  g: \"1:20\"\n  h: web\n  i: yEs\n  j: \".5\"\n"
        );
    }

    #[test]
    fn styles_like_go_yaml() {
        let v = json!({
            "plain": "a b", "lead": " x", "trail": "x ", "star": "* * * * *", "colon": "a: b",
            "hash": "a #b", "tab": "a\tb", "quote": "it's", "dash": "- x", "url": "http://x:80/",
            "multi": "l1\nl2\n", "nofinal": "l1\nl2", "emoji": "😀",
        });
        assert_eq!(
            to_string(&v),
            "colon: 'a: b'\ndash: '- x'\nemoji: \"\\U0001F600\"\nhash: 'a #b'\nlead: ' x'\n\
             multi: |\n  l1\n  l2\nnofinal: |-\n  l1\n  l2\nplain: a b\nquote: it's\n\
             star: '* * * * *'\ntab: \"a\\tb\"\ntrail: 'x '\nurl: http://x:80/\n"
        );
    }

    #[test]
    fn blocks_like_kubectl() {
        let v = json!({"metadata": {"name": "p", "annotations": {}}, "spec": {"containers": [
            {"name": "c", "args": ["a", "-c"], "ports": []}]}, "items": [[1, 2]], "n": 1.5,
            "big": 1_000_000.0, "none": null, "t": true});
        assert_eq!(
            to_string(&v),
            "big: 1e+06\nitems:\n- - 1\n  - 2\nmetadata:\n  annotations: {}\n  name: p\n\"n\": 1.5\n\
             none: null\nspec:\n  containers:\n  - args:\n    - a\n    - -c\n    name: c\n    \
             ports: []\nt: true\n"
        );
    }

    #[test]
    fn long_lines_fold_past_80_columns() {
        let words = "word ".repeat(20);
        let v = json!({"message": words.trim_end()});
        let out = to_string(&v);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert!(lines[0].len() > 80 && lines[0].len() < 90, "{out}");
        assert!(lines[1].starts_with("  word"), "{out}");
    }

    #[test]
    fn keys_in_go_yaml_order() {
        let mut keys = vec!["item10", "item9", "b", "A", "_x", "a.b", "ab", "a"];
        keys.sort_by(|a, b| natural(a, b));
        assert_eq!(keys, ["_x", "A", "a", "a.b", "ab", "b", "item9", "item10"]);
    }
}
