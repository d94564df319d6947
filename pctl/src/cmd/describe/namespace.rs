//! `describe namespace`: status, conditions, and its resource quotas and limit ranges (the
//! sections are left out when the server does not serve those kinds). No events, as kubectl.

use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use super::text::{arr, rfc1123z, s, Text};
use super::Describer;

pub struct Namespace;

impl Describer for Namespace {
    fn related(&self, ns: &Value) -> Vec<String> {
        let name = s(ns, "/metadata/name");
        vec![
            format!("/api/v1/namespaces/{name}/resourcequotas"),
            format!("/api/v1/namespaces/{name}/limitranges"),
        ]
    }

    fn events(&self) -> bool {
        false
    }

    fn write(&self, w: &mut Text, ns: &Value, related: &[Value], _now: Timestamp) {
        w.w(0, &format!("Name:\t{}\n", s(ns, "/metadata/name")));
        w.labels("Labels", ns.pointer("/metadata/labels"));
        w.annotations("Annotations", ns.pointer("/metadata/annotations"));
        w.w(0, &format!("Status:\t{}\n", s(ns, "/status/phase")));
        let conditions = arr(ns.pointer("/status/conditions"));
        if !conditions.is_empty() {
            w.w(0, "Conditions:\n");
            w.w(1, "Type\tStatus\tLastTransitionTime\tReason\tMessage\n");
            w.w(1, "----\t------\t------------------\t------\t-------\n");
            for c in conditions {
                w.w(
                    1,
                    &format!(
                        "{}\t{}\t{}\t{}\t{}\n",
                        s(c, "/type"),
                        s(c, "/status"),
                        rfc1123z(s(c, "/lastTransitionTime")),
                        s(c, "/reason"),
                        s(c, "/message")
                    ),
                );
            }
        }
        if let Some(quotas) = related.first().filter(|v| !v.is_null()) {
            w.w(0, "\n");
            if arr(quotas.get("items")).is_empty() {
                w.w(0, "No resource quota.\n");
            }
            for q in arr(quotas.get("items")) {
                w.w(
                    0,
                    &format!("Resource Quotas\n  Name:\t{}\n", s(q, "/metadata/name")),
                );
                w.w(1, "Resource\tUsed\tHard\n");
                w.w(1, "--------\t---\t---\n");
                let hard = q.pointer("/status/hard").and_then(Value::as_object);
                for (k, v) in hard.into_iter().flatten() {
                    let used = q
                        .pointer(&format!("/status/used/{k}"))
                        .and_then(Value::as_str)
                        .unwrap_or("0");
                    w.w(1, &format!("{k}\t{used}\t{}\n", v.as_str().unwrap_or("")));
                }
            }
        }
        if let Some(limits) = related.get(1).filter(|v| !v.is_null()) {
            w.w(0, "\n");
            if arr(limits.get("items")).is_empty() {
                w.w(0, "No LimitRange resource.\n");
            }
        }
    }
}
