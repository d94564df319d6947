//! One object as the watch cache keeps it: its compact JSON, written once inside the watch line
//! that announced it, and the few values selectors read, packed in one allocation. A decoded
//! `serde_json::Value` of a pod is several times its JSON (a map node and a string per field);
//! the cache decodes only for the rare readers that need one (tables, admission, metrics).
//! Once no event of the window holds the object, the cache may replace it with a copy whose
//! JSON is compressed ([`CachedObject::packed`], see [`super::pack`]).

use std::sync::Arc;

use api::selectors::{field_value, selectable_fields, FieldSelector, LabelSelector};
use bytes::Bytes;
use serde_json::Value;

use super::{
    pack::{Dictionary, PackError, Packed, Packer},
    EventKind,
};

/// A cached object: `{"type":"KIND","object":` JSON `}\n` in one buffer, shared by the cache's
/// map, its event window and every watcher the line goes to; or, once idle, its JSON
/// compressed.
#[derive(Debug)]
pub struct CachedObject {
    body: Body,
    /// Which event type the line announces (or announced, for a packed object).
    kind: EventKind,
    selectable: Selectable,
}

#[derive(Debug)]
enum Body {
    /// The watch line.
    Line(Bytes),
    /// The JSON alone, compressed.
    Packed(Packed),
}

/// The start of a watch line announcing an object as `kind`.
fn line_prefix(kind: EventKind) -> &'static [u8] {
    match kind {
        EventKind::Added => b"{\"type\":\"ADDED\",\"object\":",
        EventKind::Modified => b"{\"type\":\"MODIFIED\",\"object\":",
        EventKind::Deleted => b"{\"type\":\"DELETED\",\"object\":",
    }
}

const LINE_SUFFIX: &[u8] = b"}\n";

impl CachedObject {
    /// Encodes `object` (a `kind` of resource; with its resourceVersion set) for the cache,
    /// its line announcing it as `event`.
    pub fn new(kind: &str, object: &Value, event: EventKind) -> CachedObject {
        let prefix = line_prefix(event);
        let mut line = Vec::with_capacity(prefix.len() + 1024);
        line.extend_from_slice(prefix);
        // Writing a Value into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut line, object);
        line.extend_from_slice(LINE_SUFFIX);
        CachedObject {
            // Boxed first, so the buffer holds exactly the line and no spare capacity.
            body: Body::Line(Bytes::from(line.into_boxed_slice())),
            kind: event,
            selectable: Selectable::of(kind, object),
        }
    }

    /// The same object with its JSON compressed by `packer` with `dict`; None when it is
    /// packed already.
    pub fn packed(
        &self,
        packer: &mut Packer,
        dict: &Arc<Dictionary>,
    ) -> Option<Result<CachedObject, PackError>> {
        if self.is_packed() {
            return None;
        }
        // A slice of the line, not a copy.
        let json = self.json();
        Some(packer.pack(&json, dict).map(|p| CachedObject {
            body: Body::Packed(p),
            kind: self.kind,
            selectable: Selectable(self.selectable.0.clone()),
        }))
    }

    /// Whether the JSON is held compressed.
    pub fn is_packed(&self) -> bool {
        matches!(self.body, Body::Packed(_))
    }

    /// The object as compact JSON.
    pub fn json(&self) -> Bytes {
        match &self.body {
            Body::Line(line) => {
                let start = line_prefix(self.kind).len();
                line.slice(start..line.len() - LINE_SUFFIX.len())
            }
            Body::Packed(p) => match p.unpack() {
                Ok(json) => Bytes::from(json),
                Err(e) => {
                    // Only a bug can get here: the bytes were compressed in this process
                    // with the dictionary they hold.
                    tracing::error!(error = %e, "unpacking a cached object");
                    Bytes::from_static(b"null")
                }
            },
        }
    }

    /// The object decoded (for the few readers that need a Value).
    pub fn value(&self) -> Value {
        // The bytes were written from a Value: they parse.
        serde_json::from_slice(&self.json()).unwrap_or(Value::Null)
    }

    /// The watch line announcing this object as `kind`: the shared buffer when it was written
    /// for that kind, else a copy with the other prefix.
    pub fn line(&self, kind: EventKind) -> Bytes {
        if let (Body::Line(line), true) = (&self.body, kind == self.kind) {
            return line.clone();
        }
        let json = self.json();
        let prefix = line_prefix(kind);
        let mut line = Vec::with_capacity(prefix.len() + json.len() + LINE_SUFFIX.len());
        line.extend_from_slice(prefix);
        line.extend_from_slice(&json);
        line.extend_from_slice(LINE_SUFFIX);
        Bytes::from(line)
    }

    /// Bytes this object's buffers hold (for the event window's bound).
    pub fn size(&self) -> usize {
        let body = match &self.body {
            Body::Line(line) => line.len(),
            Body::Packed(p) => p.size(),
        };
        body + self.selectable.0.len()
    }

    /// The value a field selector compares for `field` of this object (a `kind`), as
    /// [`api::selectors::field_value`] gives it.
    pub fn field(&self, kind: &str, field: &str) -> &str {
        self.selectable.field(kind, field)
    }

    /// Whether the object's labels match.
    pub fn labels_match(&self, selector: &LabelSelector) -> bool {
        selector.matches_by(&|key| self.selectable.label(key))
    }

    /// Whether the object's fields match (`selector` is for this object's kind).
    pub fn fields_match(&self, selector: &FieldSelector) -> bool {
        selector.matches_by(&|field| self.selectable.field(selector.kind(), field))
    }
}

/// What label and field selectors read of an object: its string-valued labels, then the value
/// of each field its kind can be selected by (in `selectable_fields` order), each string
/// preceded by its length as a LEB128 number.
#[derive(Debug, Default)]
struct Selectable(Box<[u8]>);

fn put_len(buf: &mut Vec<u8>, mut n: usize) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            buf.push(byte);
            break;
        }
        buf.push(byte | 0x80);
    }
}

fn put(buf: &mut Vec<u8>, s: &str) {
    put_len(buf, s.len());
    buf.extend_from_slice(s.as_bytes());
}

/// Reads one LEB128 number at `*at`, moving past it.
fn take_len(buf: &[u8], at: &mut usize) -> Option<usize> {
    let mut n = 0usize;
    let mut shift = 0;
    loop {
        let byte = *buf.get(*at)?;
        *at += 1;
        n |= ((byte & 0x7f) as usize) << shift;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift >= usize::BITS {
            return None;
        }
    }
    Some(n)
}

/// Reads one length-prefixed string at `*at`, moving past it.
fn take<'a>(buf: &'a [u8], at: &mut usize) -> Option<&'a str> {
    let n = take_len(buf, at)?;
    let s = buf.get(*at..*at + n)?;
    *at += n;
    // Written from &str.
    std::str::from_utf8(s).ok()
}

impl Selectable {
    fn of(kind: &str, object: &Value) -> Selectable {
        let mut buf = Vec::with_capacity(128);
        let labels: Vec<(&String, &str)> = object
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k, v)))
                    .collect()
            })
            .unwrap_or_default();
        put_len(&mut buf, labels.len());
        for (k, v) in labels {
            put(&mut buf, k);
            put(&mut buf, v);
        }
        for field in selectable_fields(kind) {
            put(&mut buf, &field_value(kind, object, field));
        }
        Selectable(buf.into_boxed_slice())
    }

    /// The number of labels and the offset of the first.
    fn labels_start(&self) -> (usize, usize) {
        let mut at = 0;
        let n = take_len(&self.0, &mut at).unwrap_or(0);
        (n, at)
    }

    fn label(&self, key: &str) -> Option<&str> {
        let (n, mut at) = self.labels_start();
        for _ in 0..n {
            let k = take(&self.0, &mut at)?;
            let v = take(&self.0, &mut at)?;
            if k == key {
                return Some(v);
            }
        }
        None
    }

    fn field(&self, kind: &str, field: &str) -> &str {
        let (n, mut at) = self.labels_start();
        for _ in 0..2 * n {
            if take(&self.0, &mut at).is_none() {
                return "";
            }
        }
        for f in selectable_fields(kind) {
            let Some(v) = take(&self.0, &mut at) else {
                return "";
            };
            if f == field {
                return v;
            }
        }
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Value {
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "default", "resourceVersion": "7",
                "labels": {"app": "web", "tier": "front", "odd": 5}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": "Running"}})
    }

    #[test]
    fn keeps_the_compact_json_inside_its_watch_line() {
        let o = CachedObject::new("Pod", &pod(), EventKind::Modified);
        assert_eq!(o.json(), serde_json::to_vec(&pod()).unwrap());
        assert_eq!(o.value(), pod());
        let line = o.line(EventKind::Modified);
        let want = format!("{{\"type\":\"MODIFIED\",\"object\":{}}}\n", pod());
        assert_eq!(line, want.as_bytes());
        // The same buffer, not a copy.
        assert_eq!(line.as_ptr(), o.line(EventKind::Modified).as_ptr());
        let added = o.line(EventKind::Added);
        let want = format!("{{\"type\":\"ADDED\",\"object\":{}}}\n", pod());
        assert_eq!(added, want.as_bytes());
    }

    #[test]
    fn selectors_match_as_on_the_value() {
        let kind = "Pod";
        let o = CachedObject::new(kind, &pod(), EventKind::Added);
        let resource = api::registry::find("", "v1", "pods").unwrap();
        for s in [
            "app=web",
            "app!=web",
            "app in (web,db)",
            "app notin (web)",
            "tier",
            "!tier",
            "odd",
            "!odd",
            "missing",
            "app=web,tier=front",
            "app=web,tier=back",
        ] {
            let sel = LabelSelector::parse(s).unwrap();
            let labels = pod()["metadata"]["labels"].as_object().unwrap().clone();
            assert_eq!(o.labels_match(&sel), sel.matches(&labels), "{s}");
        }
        for s in [
            "spec.nodeName=n1",
            "spec.nodeName=n2",
            "spec.nodeName!=n1",
            "status.phase=Running",
            "metadata.name=web-1,metadata.namespace=default",
            "spec.hostNetwork=false",
            "status.podIP=",
            "status.nominatedNodeName!=",
        ] {
            let sel = FieldSelector::parse(resource, s).unwrap();
            assert_eq!(o.fields_match(&sel), sel.matches(&pod()), "{s}");
        }
    }

    #[test]
    fn a_packed_object_reads_as_the_plain_one() {
        let o = CachedObject::new("Pod", &pod(), EventKind::Modified);
        let samples: Vec<Vec<u8>> = (0..200)
            .map(|i| {
                let mut p = pod();
                p["metadata"]["name"] = json!(format!("web-{i}"));
                serde_json::to_vec(&p).unwrap()
            })
            .collect();
        let refs: Vec<&[u8]> = samples.iter().map(Vec::as_slice).collect();
        let dict = Arc::new(Dictionary::train(&refs, 4096).unwrap());
        let mut packer = Packer::default();
        let p = o.packed(&mut packer, &dict).unwrap().unwrap();
        assert!(p.is_packed() && !o.is_packed());
        assert!(p.packed(&mut packer, &dict).is_none(), "packed once");
        assert!(p.size() < o.size());
        assert_eq!(p.json(), o.json());
        assert_eq!(p.value(), pod());
        for kind in [EventKind::Added, EventKind::Modified, EventKind::Deleted] {
            assert_eq!(p.line(kind), o.line(kind));
        }
        let sel = LabelSelector::parse("app=web,tier=front").unwrap();
        assert!(p.labels_match(&sel));
        assert_eq!(p.field("Pod", "spec.nodeName"), "n1");
    }

    #[test]
    fn long_values_round_trip() {
        let mut p = pod();
        let long = "x".repeat(300);
        p["metadata"]["labels"]["long"] = json!(long);
        p["spec"]["nodeName"] = json!(long);
        let o = CachedObject::new("Pod", &p, EventKind::Added);
        assert_eq!(o.selectable.label("long"), Some(long.as_str()));
        assert_eq!(o.selectable.field("Pod", "spec.nodeName"), long);
        assert_eq!(o.selectable.field("Pod", "status.phase"), "Running");
    }
}
