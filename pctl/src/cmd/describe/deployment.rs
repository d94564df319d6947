//! `describe deployment`: selector, replica counts (with the unavailable ones), strategy,
//! the pod template, conditions and the replica sets it owns.

use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use super::text::{arr, num, rfc1123z, s, selector_text, Text};
use super::Describer;
use crate::resources;

pub struct Deployment;

impl Describer for Deployment {
    fn related(&self, d: &Value) -> Vec<String> {
        let rs = api::registry::find_by_user_name("replicasets");
        rs.map(|r| vec![resources::path(r, Some(s(d, "/metadata/namespace")), None)])
            .unwrap_or_default()
    }

    fn write(&self, w: &mut Text, d: &Value, related: &[Value], _now: Timestamp) {
        w.w(0, &format!("Name:\t{}\n", s(d, "/metadata/name")));
        w.w(0, &format!("Namespace:\t{}\n", s(d, "/metadata/namespace")));
        w.w(
            0,
            &format!(
                "CreationTimestamp:\t{}\n",
                rfc1123z(s(d, "/metadata/creationTimestamp"))
            ),
        );
        w.labels("Labels", d.pointer("/metadata/labels"));
        w.annotations("Annotations", d.pointer("/metadata/annotations"));
        w.w(
            0,
            &format!(
                "Selector:\t{}\n",
                label_selector(d.pointer("/spec/selector"))
            ),
        );
        let n = |p: &str| d.pointer(p).and_then(Value::as_i64).unwrap_or(0);
        w.w(
            0,
            &format!(
                "Replicas:\t{} desired | {} updated | {} total | {} available | {} unavailable\n",
                n("/spec/replicas"),
                n("/status/updatedReplicas"),
                n("/status/replicas"),
                n("/status/availableReplicas"),
                n("/status/unavailableReplicas"),
            ),
        );
        w.w(
            0,
            &format!("StrategyType:\t{}\n", s(d, "/spec/strategy/type")),
        );
        w.w(
            0,
            &format!("MinReadySeconds:\t{}\n", n("/spec/minReadySeconds")),
        );
        if let Some(ru) = d.pointer("/spec/strategy/rollingUpdate") {
            w.w(
                0,
                &format!(
                    "RollingUpdateStrategy:\t{} max unavailable, {} max surge\n",
                    num(ru, "/maxUnavailable"),
                    num(ru, "/maxSurge")
                ),
            );
        }
        if let Some(t) = d.pointer("/spec/template") {
            super::pod::template(w, t);
        }
        let conditions = arr(d.pointer("/status/conditions"));
        if !conditions.is_empty() {
            w.w(0, "Conditions:\n  Type\tStatus\tReason\n");
            w.w(1, "----\t------\t------\n");
            for c in conditions {
                w.w(
                    1,
                    &format!(
                        "{} \t{}\t{}\n",
                        s(c, "/type"),
                        s(c, "/status"),
                        s(c, "/reason")
                    ),
                );
            }
        }
        let uid = s(d, "/metadata/uid");
        let owned: Vec<&Value> = related
            .first()
            .map(|l| arr(l.get("items")))
            .unwrap_or(&[])
            .iter()
            .filter(|rs| {
                arr(rs.pointer("/metadata/ownerReferences"))
                    .iter()
                    .any(|o| s(o, "/uid") == uid && o["controller"] == Value::Bool(true))
            })
            .collect();
        let template = d.pointer("/spec/template").map(without_hash);
        let (new, old): (Vec<&Value>, Vec<&Value>) = owned
            .into_iter()
            .partition(|rs| rs.pointer("/spec/template").map(without_hash) == template);
        let old: Vec<&Value> = old
            .into_iter()
            .filter(|rs| rs.pointer("/spec/replicas").and_then(Value::as_i64) != Some(0))
            .collect();
        // kubectl 1.32 prints these lines only for a deployment that has replica sets.
        if !old.is_empty() || !new.is_empty() {
            w.w(0, &format!("OldReplicaSets:\t{}\n", replica_sets(&old)));
            let new = replica_sets(&new[..new.len().min(1)]);
            w.w(0, &format!("NewReplicaSet:\t{new}\n"));
        }
    }
}

/// A template without the `pod-template-hash` label the controller adds.
fn without_hash(t: &Value) -> Value {
    let mut t = t.clone();
    if let Some(l) = t
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        l.remove("pod-template-hash");
    }
    t
}

fn replica_sets(list: &[&Value]) -> String {
    if list.is_empty() {
        return "<none>".into();
    }
    list.iter()
        .map(|rs| {
            format!(
                "{} ({}/{} replicas created)",
                s(rs, "/metadata/name"),
                rs.pointer("/status/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(0),
                rs.pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(0)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A LabelSelector as kubectl formats it: `app=web,tier in (a,b),!gone`.
pub fn label_selector(sel: Option<&Value>) -> String {
    let Some(sel) = sel else {
        return "<none>".into();
    };
    let mut parts = vec![selector_text(sel.get("matchLabels"))];
    parts.retain(|p| !p.is_empty());
    for e in arr(sel.get("matchExpressions")) {
        let key = s(e, "/key");
        let values: Vec<&str> = arr(e.get("values"))
            .iter()
            .filter_map(Value::as_str)
            .collect();
        parts.push(match s(e, "/operator") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            op => format!("{key} {op} ({})", values.join(",")),
        });
    }
    if parts.is_empty() {
        "<none>".into()
    } else {
        parts.join(",")
    }
}
