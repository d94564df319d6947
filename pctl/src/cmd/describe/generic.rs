//! `describe` for the kinds without a describer of their own: identity, labels, annotations
//! and the creation time.

use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use super::text::{rfc1123z, s, Text};
use super::Describer;

pub struct Generic;

impl Describer for Generic {
    fn write(&self, w: &mut Text, o: &Value, _related: &[Value], _now: Timestamp) {
        w.w(0, &format!("Name:\t{}\n", s(o, "/metadata/name")));
        if !s(o, "/metadata/namespace").is_empty() {
            w.w(0, &format!("Namespace:\t{}\n", s(o, "/metadata/namespace")));
        }
        w.labels("Labels", o.pointer("/metadata/labels"));
        w.annotations("Annotations", o.pointer("/metadata/annotations"));
        w.w(
            0,
            &format!(
                "CreationTimestamp:\t{}\n",
                rfc1123z(s(o, "/metadata/creationTimestamp"))
            ),
        );
    }
}
