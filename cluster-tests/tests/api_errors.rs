//! Bad input and refused requests: each gets Kubernetes' status code and a message naming the
//! problem, and nothing stored changes.

mod common;

use cluster_tests::{ApiCluster, Identity, Identity::*};
use common::api::{api, kubectl_ok_stdin as ok_stdin};
use common::{stderr, stdout};
use serde_json::Value;

/// Every object under /registry, as the store holds them (to prove refusals change nothing).
fn snapshot(c: &ApiCluster) -> Value {
    let out = c.kubectl(
        Admin,
        &["get", "pods,deploy,svc,cm,nodes,ns", "-A", "-o", "json"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let mut v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    v
}

fn refused(c: &ApiCluster, id: Identity, args: &[&str], input: Option<&str>) -> String {
    let out = match input {
        Some(i) => c.kubectl_stdin(id, args, i),
        None => c.kubectl(id, args),
    };
    assert!(
        !out.status.success(),
        "kubectl {args:?} should have failed: {}",
        stdout(&out)
    );
    stderr(&out)
}

const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: base}\n\
                   spec: {nodeName: n1, containers: [{name: c, image: busybox}]}\n";

#[tokio::test(flavor = "multi_thread")]
async fn bad_manifests_are_refused_with_kubernetes_messages() {
    let c = api().await;
    ok_stdin(&c, &["create", "-f", "-"], POD);
    let before = snapshot(&c);

    let e = refused(
        &c,
        Admin,
        &["create", "-f", "-"],
        Some("apiVersion: v1\nkind: Pod\nmetadata: {name: x\nspec: ["),
    );
    assert_eq!(
        e.trim(),
        "error: error parsing STDIN: error converting YAML to JSON: yaml: line 3: did not find \
         expected ',' or '}'"
    );
    let (code, body) = c.curl(
        Admin,
        "POST",
        "/api/v1/namespaces/default/pods",
        Some(("application/json", b"{\"apiVersion\": \"v1\", \"kind\": ")),
    );
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("\"reason\":\"BadRequest\"") && body.contains("json parse error"),
        "{body}"
    );

    let e = refused(
        &c,
        Admin,
        &["create", "-f", "-"],
        Some("apiVersion: v1\nkind: Widget\nmetadata: {name: w}\n"),
    );
    assert!(
        e.contains("no matches for kind \"Widget\" in version \"v1\""),
        "{e}"
    );
    let e = refused(
        &c,
        Admin,
        &["create", "-f", "-"],
        Some("apiVersion: apps/v9\nkind: Deployment\nmetadata: {name: d}\n"),
    );
    assert!(
        e.contains("no matches for kind \"Deployment\" in version \"apps/v9\""),
        "{e}"
    );

    let e = refused(
        &c,
        Admin,
        &["create", "-f", "-"],
        Some(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: Bad_Name}\n\
             spec: {containers: [{name: c, image: i}]}\n",
        ),
    );
    assert!(
        e.contains("The Pod \"Bad_Name\" is invalid")
            && e.contains(
                "metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"
            ),
        "{e}"
    );

    let e = refused(
        &c,
        Admin,
        &["create", "-f", "-"],
        Some("apiVersion: v1\nkind: Pod\nmetadata: {name: empty}\nspec: {}\n"),
    );
    assert!(e.contains("spec.containers: Required value"), "{e}");

    let e = refused(
        &c,
        Admin,
        &["create", "-f", "-"],
        Some(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: neg}\n\
             spec: {replicas: -1, selector: {matchLabels: {a: b}}, template: \
             {metadata: {labels: {a: b}}, spec: {containers: [{name: c, image: i}]}}}\n",
        ),
    );
    assert!(
        e.contains("spec.replicas: Invalid value: -1: must be greater than or equal to 0"),
        "{e}"
    );
    let negative = serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "neg"},
        "spec": {"replicas": -1, "selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
    let (code, body) = c.curl(
        Admin,
        "POST",
        "/apis/apps/v1/namespaces/default/deployments",
        Some(("application/json", negative.to_string().as_bytes())),
    );
    assert_eq!(code, 422, "{body}");
    let status: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["reason"], "Invalid");
    assert_eq!(status["details"]["causes"][0]["field"], "spec.replicas");

    let e = refused(
        &c,
        Admin,
        &["create", "-f", "-"],
        Some(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: extra}\n\
             spec: {foo: 1, containers: [{name: c, image: i}]}\n",
        ),
    );
    assert!(e.contains("unknown field \"spec.foo\""), "{e}");

    let e = refused(
        &c,
        Admin,
        &["scale", "deploy", "missing", "--replicas=2"],
        None,
    );
    assert!(e.contains("deployments.apps \"missing\" not found"), "{e}");

    // Oversize bodies: 413 before anything is decoded.
    let big = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "big"}, "data": {"k": "x".repeat(4 * 1024 * 1024)}})
    .to_string();
    let (code, body) = c.curl(
        Admin,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        Some(("application/json", big.as_bytes())),
    );
    assert_eq!(code, 413, "{body}");
    assert!(body.contains("Request entity too large"), "{body}");

    assert_eq!(
        snapshot(&c),
        before,
        "a refused request changed stored objects"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn stale_resource_version_is_a_conflict() {
    let c = api().await;
    ok_stdin(
        &c,
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\ndata: {k: v1}\n",
    );
    let (code, body) = c.curl(
        Admin,
        "GET",
        "/api/v1/namespaces/default/configmaps/cm",
        None,
    );
    assert_eq!(code, 200, "{body}");
    let mut stale: Value = serde_json::from_str(&body).unwrap();
    ok_stdin(
        &c,
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\ndata: {k: v2}\n",
    );
    stale["data"]["k"] = Value::from("lost");
    let (code, body) = c.curl(
        Admin,
        "PUT",
        "/api/v1/namespaces/default/configmaps/cm",
        Some(("application/json", stale.to_string().as_bytes())),
    );
    assert_eq!(code, 409, "{body}");
    assert!(
        body.contains(
            "Operation cannot be fulfilled on configmaps \\\"cm\\\": the object has been modified"
        ),
        "{body}"
    );
    let e = refused(
        &c,
        Admin,
        &["replace", "-f", "-"],
        Some(&serde_yaml_like(&stale)),
    );
    assert!(e.contains("the object has been modified"), "{e}");
    let now = c.kubectl(Admin, &["get", "cm", "cm", "-o", "jsonpath={.data.k}"]);
    assert_eq!(stdout(&now), "v2");
    // Delete preconditions.
    let (code, body) = c.curl(
        Admin,
        "DELETE",
        "/api/v1/namespaces/default/configmaps/cm",
        Some((
            "application/json",
            br#"{"preconditions":{"uid":"not-the-uid"}}"#,
        )),
    );
    assert_eq!(code, 409, "{body}");
    assert!(
        body.contains("Precondition failed: UID in precondition: not-the-uid"),
        "{body}"
    );
}

/// JSON is YAML: kubectl reads it either way.
fn serde_yaml_like(v: &Value) -> String {
    v.to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn authentication_authorization_and_node_restriction() {
    let c = api().await;
    ok_stdin(&c, &["create", "-f", "-"], POD);
    ok_stdin(
        &c,
        &["create", "-f", "-"],
        &POD.replace("name: base", "name: other")
            .replace("nodeName: n1", "nodeName: n2"),
    );
    for n in ["n1", "n2"] {
        ok_stdin(
            &c,
            &["create", "-f", "-"],
            &format!("apiVersion: v1\nkind: Node\nmetadata: {{name: {n}}}\n"),
        );
    }
    let before = snapshot(&c);

    refused(&c, Anonymous, &["get", "pods"], None);
    let e = refused(&c, BogusToken, &["get", "pods"], None);
    assert!(e.contains("You must be logged in to the server"), "{e}");
    let (code, body) = c.curl(Anonymous, "GET", "/api/v1/namespaces/default/pods", None);
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("\"reason\":\"Unauthorized\""), "{body}");
    let (code, _) = c.curl(BogusToken, "GET", "/api/v1/namespaces/default/pods", None);
    assert_eq!(code, 401);
    assert!(c.kubectl(TokenAdmin, &["get", "pods"]).status.success());
    let (code, _) = c.curl(Anonymous, "GET", "/healthz", None);
    assert_eq!(code, 200);

    // The viewer reads but may not write, nor read secrets.
    assert!(c.kubectl(Viewer, &["get", "pods"]).status.success());
    let e = refused(&c, Viewer, &["run", "x", "--image=busybox"], None);
    assert!(
        e.contains(
            "pods is forbidden: User \"viewer\" cannot create resource \"pods\" in API group \
             \"\" in the namespace \"default\""
        ),
        "{e}"
    );
    let e = refused(&c, Viewer, &["get", "secrets"], None);
    assert!(e.contains("cannot list resource \"secrets\""), "{e}");

    // An agent changes only its own node and pods bound to it.
    assert!(c
        .kubectl(Node1, &["label", "node", "n1", "seen=yes"])
        .status
        .success());
    let e = refused(&c, Node1, &["label", "node", "n2", "seen=yes"], None);
    assert!(
        e.contains(
            "nodes \"n2\" is forbidden: User \"system:node:n1\" cannot patch resource \"nodes\""
        ),
        "{e}"
    );
    let status = r#"{"status":{"phase":"Running"}}"#;
    assert!(c
        .kubectl(
            Node1,
            &[
                "patch",
                "pod",
                "base",
                "--subresource=status",
                "--type=merge",
                "-p",
                status
            ]
        )
        .status
        .success());
    let e = refused(
        &c,
        Node1,
        &[
            "patch",
            "pod",
            "other",
            "--subresource=status",
            "--type=merge",
            "-p",
            status,
        ],
        None,
    );
    assert_eq!(
        e.trim(),
        "Error from server (Forbidden): pods \"other\" is forbidden: User \"system:node:n1\" \
         cannot update resource \"pods/status\" in API group \"\" in the namespace \"default\": \
         node \"n1\" can only modify pods bound to it"
    );
    let e = refused(&c, Node1, &["delete", "pod", "other"], None);
    assert_eq!(
        e.trim(),
        "Error from server (Forbidden): pods \"other\" is forbidden: User \"system:node:n1\" \
         cannot delete resource \"pods\" in API group \"\" in the namespace \"default\": node \
         \"n1\" can only modify pods bound to it"
    );
    let e = refused(&c, Node1, &["run", "sneaky", "--image=busybox"], None);
    assert_eq!(
        e.trim(),
        "Error from server (Forbidden): pods is forbidden: User \"system:node:n1\" cannot \
         create resource \"pods\" in API group \"\" in the namespace \"default\": node \"n1\" \
         can only update the status of, or delete, pods bound to it"
    );

    // Only the allowed changes happened.
    let after = snapshot(&c);
    let items = |v: &Value| {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["kind"].as_str().unwrap().to_string(),
                    i["metadata"]["name"].as_str().unwrap().to_string(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(items(&before), items(&after));
    let other = c.kubectl(
        Admin,
        &["get", "pod", "other", "-o", "jsonpath={.status.phase}"],
    );
    assert_eq!(stdout(&other), "Pending");
    let base = c.kubectl(
        Admin,
        &["get", "pod", "base", "-o", "jsonpath={.status.phase}"],
    );
    assert_eq!(stdout(&base), "Running");
}
