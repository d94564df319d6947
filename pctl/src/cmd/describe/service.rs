//! `describe service`: selector, type, IPs, each port with its target and endpoints, session
//! affinity.

use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use super::text::{arr, num, s, selector_text, Text};
use super::Describer;
use crate::resources;

pub struct Service;

impl Describer for Service {
    fn related(&self, svc: &Value) -> Vec<String> {
        let ep = api::registry::find_by_user_name("endpoints");
        ep.map(|r| {
            vec![resources::path(
                r,
                Some(s(svc, "/metadata/namespace")),
                Some(s(svc, "/metadata/name")),
            )]
        })
        .unwrap_or_default()
    }

    fn write(&self, w: &mut Text, svc: &Value, related: &[Value], _now: Timestamp) {
        w.w(0, &format!("Name:\t{}\n", s(svc, "/metadata/name")));
        w.w(
            0,
            &format!("Namespace:\t{}\n", s(svc, "/metadata/namespace")),
        );
        w.labels("Labels", svc.pointer("/metadata/labels"));
        w.annotations("Annotations", svc.pointer("/metadata/annotations"));
        w.w(
            0,
            &format!(
                "Selector:\t{}\n",
                selector_text(svc.pointer("/spec/selector"))
            ),
        );
        w.w(0, &format!("Type:\t{}\n", s(svc, "/spec/type")));
        let policy = s(svc, "/spec/ipFamilyPolicy");
        if !policy.is_empty() {
            w.w(0, &format!("IP Family Policy:\t{policy}\n"));
        }
        let joined = |p: &str| {
            let v: Vec<&str> = arr(svc.pointer(p))
                .iter()
                .filter_map(Value::as_str)
                .collect();
            if v.is_empty() {
                "<none>".to_string()
            } else {
                v.join(",")
            }
        };
        w.w(
            0,
            &format!("IP Families:\t{}\n", joined("/spec/ipFamilies")),
        );
        w.w(0, &format!("IP:\t{}\n", s(svc, "/spec/clusterIP")));
        w.w(0, &format!("IPs:\t{}\n", joined("/spec/clusterIPs")));
        if !arr(svc.pointer("/spec/externalIPs")).is_empty() {
            w.w(
                0,
                &format!("External IPs:\t{}\n", joined("/spec/externalIPs")),
            );
        }
        for (field, title) in [
            ("/spec/loadBalancerIP", "IP"),
            ("/spec/externalName", "External Name"),
        ] {
            if !s(svc, field).is_empty() {
                w.w(0, &format!("{title}:\t{}\n", s(svc, field)));
            }
        }
        let endpoints = related.first().cloned().unwrap_or(Value::Null);
        for p in arr(svc.pointer("/spec/ports")) {
            let name = match s(p, "/name") {
                "" => "<unset>",
                n => n,
            };
            let proto = s(p, "/protocol");
            w.w(0, &format!("Port:\t{name}\t{}/{proto}\n", num(p, "/port")));
            w.w(
                0,
                &format!("TargetPort:\t{}/{proto}\n", num(p, "/targetPort")),
            );
            if p.get("nodePort").and_then(Value::as_i64).unwrap_or(0) != 0 {
                w.w(
                    0,
                    &format!("NodePort:\t{name}\t{}/{proto}\n", num(p, "/nodePort")),
                );
            }
            w.w(
                0,
                &format!("Endpoints:\t{}\n", endpoint_list(&endpoints, s(p, "/name"))),
            );
        }
        w.w(
            0,
            &format!("Session Affinity:\t{}\n", s(svc, "/spec/sessionAffinity")),
        );
        for (field, title) in [
            ("/spec/externalTrafficPolicy", "External Traffic Policy"),
            ("/spec/internalTrafficPolicy", "Internal Traffic Policy"),
        ] {
            if !s(svc, field).is_empty() {
                w.w(0, &format!("{title}:\t{}\n", s(svc, field)));
            }
        }
    }
}

/// The ready `ip:port` pairs of the port named `port` (the first three, then a count), or
/// `<none>`.
fn endpoint_list(endpoints: &Value, port: &str) -> String {
    let mut list = Vec::new();
    for subset in arr(endpoints.get("subsets")) {
        for p in arr(subset.get("ports"))
            .iter()
            .filter(|p| s(p, "/name") == port)
        {
            for a in arr(subset.get("addresses")) {
                list.push(format!("{}:{}", s(a, "/ip"), num(p, "/port")));
            }
        }
    }
    match list.len() {
        0 => "<none>".into(),
        n if n > 3 => format!("{} + {} more...", list[..3].join(","), n - 3),
        _ => list.join(","),
    }
}
