//! Table-driven tests of the strategic merge patch directives.

use serde_json::{json, Value};

use super::*;
use crate::registry::find;

fn pods() -> &'static Resource {
    find("", "v1", "pods").expect("pods")
}

fn pod(containers: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "finalizers": ["a", "b"],
        "labels": {"x": "1"}},
           "spec": {"containers": containers, "tolerations": [{"key": "k1"}, {"key": "k2"}]}})
}

fn two() -> Value {
    pod(
        json!([{"name": "web", "image": "nginx:1", "ports": [{"containerPort": 80}]},
            {"name": "side", "image": "busybox"}]),
    )
}

fn apply(doc: &Value, patch: Value) -> Value {
    apply_strategic_merge_patch(pods(), doc, &patch).expect("patch applies")
}

fn names(doc: &Value) -> Vec<&str> {
    doc["spec"]["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect()
}

#[test]
fn containers_merge_by_name() {
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            json!({"spec": {"containers": [{"name": "web", "image": "nginx:2"}]}}),
            vec!["web", "side"],
        ),
        (
            json!({"spec": {"containers": [{"name": "new", "image": "redis"}]}}),
            vec!["new", "web", "side"],
        ),
        (
            json!({"spec": {"containers": [{"name": "side", "$patch": "delete"}]}}),
            vec!["web"],
        ),
        (
            json!({"spec": {"containers": [{"name": "only", "image": "x"},
                {"$patch": "replace"}]}}),
            vec!["only"],
        ),
    ];
    for (patch, want) in cases {
        let out = apply(&two(), patch.clone());
        assert_eq!(names(&out), want, "{patch}");
    }
    let out = apply(
        &two(),
        json!({"spec": {"containers": [{"name": "web", "image": "nginx:2"}]}}),
    );
    assert_eq!(out["spec"]["containers"][0]["image"], "nginx:2");
    assert_eq!(
        out["spec"]["containers"][0]["ports"],
        json!([{"containerPort": 80}])
    );
}

#[test]
fn nested_lists_merge_on_their_own_keys() {
    let patch = json!({"spec": {"containers": [{"name": "web", "ports": [{"containerPort": 443}],
        "env": [{"name": "A", "value": "1"}]}]}});
    let out = apply(&two(), patch);
    assert_eq!(
        out["spec"]["containers"][0]["ports"],
        json!([{"containerPort": 443}, {"containerPort": 80}])
    );
    assert_eq!(
        out["spec"]["containers"][0]["env"],
        json!([{"name": "A", "value": "1"}])
    );
}

#[test]
fn lists_without_strategy_are_replaced() {
    let out = apply(&two(), json!({"spec": {"tolerations": [{"key": "k3"}]}}));
    assert_eq!(out["spec"]["tolerations"], json!([{"key": "k3"}]));
}

#[test]
fn finalizers_merge_as_a_set() {
    let cases = [
        (
            json!({"metadata": {"finalizers": ["c"]}}),
            json!(["c", "a", "b"]),
        ),
        (
            json!({"metadata": {"finalizers": ["b"]}}),
            json!(["a", "b"]),
        ),
        (
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
            json!(["b"]),
        ),
        (
            json!({"metadata": {"$setElementOrder/finalizers": ["b", "a", "c"],
                "finalizers": ["c"]}}),
            json!(["b", "a", "c"]),
        ),
        (json!({"metadata": {"finalizers": null}}), Value::Null),
    ];
    for (patch, want) in cases {
        let out = apply(&two(), patch.clone());
        assert_eq!(
            out["metadata"]
                .get("finalizers")
                .cloned()
                .unwrap_or(Value::Null),
            want,
            "{patch}"
        );
    }
}

#[test]
fn set_element_order_orders_the_result() {
    // What kubectl apply sends when the config reorders containers, changes one and drops one.
    let doc = pod(
        json!([{"name": "a", "image": "1"}, {"name": "b", "image": "1"}, {"name": "c",
            "image": "1"}]),
    );
    let patch = json!({"spec": {
        "$setElementOrder/containers": [{"name": "c"}, {"name": "a"}, {"name": "d"}],
        "containers": [{"name": "a", "image": "2"}, {"name": "d", "image": "1"}, {"name": "b",
            "$patch": "delete"}]}});
    let out = apply(&doc, patch);
    assert_eq!(names(&out), vec!["c", "a", "d"]);
    assert_eq!(out["spec"]["containers"][1]["image"], "2");
}

#[test]
fn server_only_elements_keep_their_place() {
    let doc = pod(json!([{"name": "x"}, {"name": "a"}, {"name": "b"}]));
    let patch = json!({"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}});
    let out = apply(&doc, patch);
    assert_eq!(names(&out), vec!["x", "b", "a"]);
}

#[test]
fn map_directives() {
    let cases = [
        (
            json!({"metadata": {"labels": {"x": null, "y": "2"}}}),
            json!({"y": "2"}),
        ),
        (
            json!({"metadata": {"labels": {"$patch": "replace", "z": "3"}}}),
            json!({"z": "3"}),
        ),
        (
            json!({"metadata": {"labels": {"$patch": "delete"}}}),
            json!({}),
        ),
        (
            json!({"metadata": {"labels": {"$patch": "merge", "z": "3"}}}),
            json!({"x": "1", "z": "3"}),
        ),
    ];
    for (patch, want) in cases {
        let out = apply(&two(), patch.clone());
        assert_eq!(out["metadata"]["labels"], want, "{patch}");
    }
}

#[test]
fn retain_keys_clears_other_fields() {
    let deploy = find("apps", "v1", "deployments").expect("deployments");
    let doc =
        json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
    let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}});
    let out = apply_strategic_merge_patch(deploy, &doc, &patch).expect("applies");
    assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
    let bad = json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}});
    let err = apply_strategic_merge_patch(deploy, &doc, &bad).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid patch format of retainKeys at spec.strategy"
    );
}

#[test]
fn volumes_retain_keys_per_element() {
    let doc = json!({"spec": {"containers": [], "volumes": [{"name": "v", "emptyDir": {}}]}});
    let patch = json!({"spec": {"volumes": [{"name": "v", "$retainKeys": ["name", "configMap"],
        "configMap": {"name": "cm"}}]}});
    let out = apply(&doc, patch);
    assert_eq!(
        out["spec"]["volumes"],
        json!([{"name": "v", "configMap": {"name": "cm"}}])
    );
}

#[test]
fn new_values_have_directives_applied() {
    let doc = json!({"metadata": {"name": "p"}});
    let out = apply(
        &doc,
        json!({"spec": {"containers": [{"name": "a", "image": "i", "stdin": null}]}}),
    );
    assert_eq!(
        out["spec"],
        json!({"containers": [{"name": "a", "image": "i"}]})
    );
}

#[test]
fn errors_name_the_problem() {
    let cases = [
        (
            json!({"spec": {"containers": [{"image": "x"}]}}),
            "element of spec.containers does not contain declared merge key: name",
        ),
        (
            json!({"spec": {"containers": [{"name": "web", "$patch": "merge"}]}}),
            "merging lists cannot yet be specified in the patch (at spec.containers)",
        ),
        (
            json!({"metadata": {"labels": {"$patch": "bogus"}}}),
            "unknown patch type \"bogus\" at metadata.labels",
        ),
        (
            json!({"metadata": {"finalizers": [{"a": 1}]}}),
            "list metadata.finalizers mixes elements of different types",
        ),
        (
            json!({"spec": {"$setElementOrder/containers": "web"}}),
            "$setElementOrder/containers at spec must be a list",
        ),
    ];
    for (patch, want) in cases {
        let err = apply_strategic_merge_patch(pods(), &two(), &patch).unwrap_err();
        assert_eq!(err.to_string(), want, "{patch}");
    }
    assert_eq!(
        apply_strategic_merge_patch(pods(), &two(), &json!([])).unwrap_err(),
        PatchError::NotAnObject("strategic merge patch")
    );
}

#[test]
fn kubectl_apply_patch_replaces_containers_in_order() {
    // The body kubectl 1.32 `apply` sent for a config going from [a, b] to [c, a:2].
    let live = pod(json!([{"name": "a", "image": "1"}, {"name": "b", "image": "1"}]));
    let patch = json!({"metadata": {"annotations": {
            "kubectl.kubernetes.io/last-applied-configuration": "{}"}},
        "spec": {"$setElementOrder/containers": [{"name": "c"}, {"name": "a"}],
                 "containers": [{"image": "1", "name": "c"}, {"image": "2", "name": "a"},
                     {"$patch": "delete", "name": "b"}]}});
    let out = apply(&live, patch);
    assert_eq!(
        out["spec"]["containers"],
        json!([{"name": "c", "image": "1"}, {"name": "a", "image": "2"}])
    );
    assert_eq!(
        out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
        "{}"
    );
    assert_eq!(out["metadata"]["labels"], json!({"x": "1"}));
}
