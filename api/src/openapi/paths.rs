//! `paths` of the OpenAPI v3 documents: the REST operations of each resource with their query
//! parameters, request bodies and the `x-kubernetes-group-version-kind` kubectl looks up.

use serde_json::{json, Map, Value};

use super::schemas::{
    list_schema_name, reference, BINDING, DELETE_OPTIONS, EVICTION, PATCH, SCALE, STATUS,
};
use crate::registry::Resource;

/// How the query parameters of an operation read (descriptions as Kubernetes words them).
fn query(name: &str) -> Value {
    let (ty, description) = match name {
        "allowWatchBookmarks" => (
            "boolean",
            "allowWatchBookmarks requests watch events with type \
            \"BOOKMARK\". Servers that do not implement bookmarks may ignore this flag and \
            bookmarks are sent at the server's discretion. Clients should not assume bookmarks are \
            returned at any specific interval, nor may they assume the server will send any \
            BOOKMARK event during a session. If this is not a watch, this field is ignored.",
        ),
        "continue" => (
            "string",
            "The continue option should be set when retrieving more results \
            from the server. Since this value is server defined, clients may only use the continue \
            value from a previous query result with identical query parameters (except for the \
            value of continue) and the server may reject a continue value it does not recognize.",
        ),
        "fieldSelector" => (
            "string",
            "A selector to restrict the list of returned objects by \
            their fields. Defaults to everything.",
        ),
        "labelSelector" => (
            "string",
            "A selector to restrict the list of returned objects by \
            their labels. Defaults to everything.",
        ),
        "limit" => (
            "integer",
            "limit is a maximum number of responses to return for a list call. \
            If more items exist, the server will set the `continue` field on the list metadata to \
            a value that can be used with the same initial query to retrieve the next set of \
            results.",
        ),
        "resourceVersion" => (
            "string",
            "resourceVersion sets a constraint on what resource \
            versions a request may be served from. See \
            https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions for \
            details.\n\nDefaults to unset",
        ),
        "resourceVersionMatch" => (
            "string",
            "resourceVersionMatch determines how resourceVersion \
            is applied to list calls. It is highly recommended that resourceVersionMatch be set \
            for list calls where resourceVersion is set See \
            https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions for \
            details.\n\nDefaults to unset",
        ),
        "sendInitialEvents" => (
            "boolean",
            "`sendInitialEvents=true` may be set together with \
            `watch=true`. In that case, the watch stream will begin with synthetic events to \
            produce the current state of objects in the collection. Once all such events have been \
            sent, a synthetic \"Bookmark\" event  will be sent.",
        ),
        "timeoutSeconds" => (
            "integer",
            "Timeout for the list/watch call. This limits the duration \
            of the call, regardless of any activity or inactivity.",
        ),
        "watch" => (
            "boolean",
            "Watch for changes to the described resources and return them as a \
            stream of add, update, and remove notifications. Specify resourceVersion.",
        ),
        "dryRun" => (
            "string",
            "When present, indicates that modifications should not be \
            persisted. An invalid or unrecognized dryRun directive will result in an error \
            response and no further processing of the request. Valid values are: - All: all dry \
            run stages will be processed",
        ),
        "fieldManager" => (
            "string",
            "fieldManager is a name associated with the actor or entity \
            that is making these changes. The value must be less than or 128 characters long, and \
            only contain printable characters, as defined by \
            https://golang.org/pkg/unicode/#IsPrint.",
        ),
        "fieldValidation" => (
            "string",
            "fieldValidation instructs the server on how to handle \
            objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid \
            values are: - Ignore: This will ignore any unknown fields that are silently dropped \
            from the object, and will ignore all but the last duplicate field that the decoder \
            encounters. This is the default behavior prior to v1.23. - Warn: This will send a \
            warning via the standard warning response header for each unknown field that is \
            dropped from the object, and for each duplicate field that is encountered. The request \
            will still succeed if there are no other errors, and will only persist the last of any \
            duplicate fields. This is the default in v1.23+ - Strict: This will fail the request \
            with a BadRequest error if any unknown fields would be dropped from the object, or if \
            any duplicate fields are present. The error returned from the server will contain all \
            unknown and duplicate fields encountered.",
        ),
        "force" => (
            "boolean",
            "Force is going to \"force\" Apply requests. It means user will \
            re-acquire conflicting fields owned by other people. Force flag must be unset for \
            non-apply patch requests.",
        ),
        "gracePeriodSeconds" => (
            "integer",
            "The duration in seconds before the object should be \
            deleted. Value must be non-negative integer. The value zero indicates delete \
            immediately. If this value is nil, the default grace period for the specified type \
            will be used. Defaults to a per object value if not specified. zero means delete \
            immediately.",
        ),
        "orphanDependents" => (
            "boolean",
            "Deprecated: please use the PropagationPolicy, this \
            field will be deprecated in 1.7. Should the dependent objects be orphaned. If \
            true/false, the \"orphan\" finalizer will be added to/removed from the object's \
            finalizers list. Either this field or PropagationPolicy may be set, but not both.",
        ),
        "propagationPolicy" => (
            "string",
            "Whether and how garbage collection will be performed. \
            Either this field or OrphanDependents may be set, but not both. The default policy is \
            decided by the existing finalizer set in the metadata.finalizers and the \
            resource-specific default policy. Acceptable values are: 'Orphan' - orphan the \
            dependents; 'Background' - allow the garbage collector to delete the dependents in the \
            background; 'Foreground' - a cascading policy that deletes all dependents in the \
            foreground.",
        ),
        "pretty" => (
            "string",
            "If 'true', then the output is pretty printed. Defaults to 'false' \
            unless the user-agent indicates a browser or command-line tool.",
        ),
        _ => ("string", ""),
    };
    json!({
        "name": name,
        "in": "query",
        "description": description,
        "schema": { "type": ty, "uniqueItems": true }
    })
}

fn path_param(name: &str, description: String) -> Value {
    json!({ "name": name, "in": "path", "description": description, "required": true,
            "schema": { "type": "string", "uniqueItems": true } })
}

fn queries(names: &[&str]) -> Vec<Value> {
    names.iter().map(|n| query(n)).collect()
}

const LIST_QUERIES: &[&str] = &[
    "allowWatchBookmarks",
    "continue",
    "fieldSelector",
    "labelSelector",
    "limit",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
    "watch",
];
const WRITE_QUERIES: &[&str] = &["dryRun", "fieldManager", "fieldValidation"];
const PATCH_QUERIES: &[&str] = &["dryRun", "fieldManager", "fieldValidation", "force"];
const DELETE_QUERIES: &[&str] = &[
    "dryRun",
    "gracePeriodSeconds",
    "orphanDependents",
    "propagationPolicy",
];
const DELETE_COLLECTION_QUERIES: &[&str] = &[
    "continue",
    "dryRun",
    "fieldSelector",
    "gracePeriodSeconds",
    "labelSelector",
    "limit",
    "orphanDependents",
    "propagationPolicy",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
];

/// JSON and YAML content of one schema.
fn content(schema: &str) -> Value {
    json!({
        "application/json": { "schema": reference(schema) },
        "application/yaml": { "schema": reference(schema) }
    })
}

fn response(description: &str, schema: &str) -> Value {
    json!({ "description": description, "content": content(schema) })
}

/// What distinguishes the operations of one path: its group, kind and naming.
struct Op<'a> {
    r: &'a Resource,
    /// `CoreV1`, `AppsV1`, `CoordinationV1`.
    group_prefix: String,
    tag: String,
}

impl Op<'_> {
    fn operation(
        &self,
        verb: &str,
        action: &str,
        id_suffix: &str,
        description: String,
        gvk: Value,
    ) -> Map<String, Value> {
        let mut op = Map::new();
        op.insert("description".into(), Value::String(description));
        op.insert(
            "operationId".into(),
            Value::String(format!("{verb}{}{id_suffix}", self.group_prefix)),
        );
        op.insert("tags".into(), json!([self.tag]));
        op.insert("x-kubernetes-action".into(), Value::String(action.into()));
        op.insert("x-kubernetes-group-version-kind".into(), gvk);
        op.insert(
            "responses".into(),
            json!({ "401": { "description": "Unauthorized" } }),
        );
        op
    }

    fn gvk(&self) -> Value {
        json!({ "group": self.r.group, "kind": self.r.kind, "version": self.r.version })
    }
}

fn with(
    mut op: Map<String, Value>,
    params: &[&str],
    body: Option<Value>,
    responses: &[(&str, Value)],
) -> Value {
    if !params.is_empty() {
        op.insert("parameters".into(), Value::Array(queries(params)));
    }
    if let Some(b) = body {
        op.insert("requestBody".into(), b);
    }
    if let Some(Value::Object(rs)) = op.get_mut("responses") {
        for (code, resp) in responses {
            rs.insert((*code).to_string(), resp.clone());
        }
    }
    Value::Object(op)
}

fn body(schema: &str) -> Value {
    json!({ "content": { "*/*": { "schema": reference(schema) } }, "required": true })
}

fn patch_body() -> Value {
    let mut types = Map::new();
    for t in [
        "application/apply-patch+yaml",
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
    ] {
        types.insert(t.into(), json!({ "schema": reference(PATCH) }));
    }
    json!({ "content": types, "required": true })
}

/// get/put/patch of one object (or of its `status`/`scale` subresource) of `schema`.
fn read_write(
    op: &Op,
    id_suffix: &str,
    what: &str,
    schema: &str,
    gvk: Value,
) -> Map<String, Value> {
    let mut item = Map::new();
    let ok = response("OK", schema);
    let created = response("Created", schema);
    item.insert(
        "get".into(),
        with(
            op.operation(
                "read",
                "get",
                id_suffix,
                format!("read {what}"),
                gvk.clone(),
            ),
            &[],
            None,
            &[("200", ok.clone())],
        ),
    );
    item.insert(
        "put".into(),
        with(
            op.operation(
                "replace",
                "put",
                id_suffix,
                format!("replace {what}"),
                gvk.clone(),
            ),
            WRITE_QUERIES,
            Some(body(schema)),
            &[("200", ok.clone()), ("201", created.clone())],
        ),
    );
    item.insert(
        "patch".into(),
        with(
            op.operation(
                "patch",
                "patch",
                id_suffix,
                format!("partially update {what}"),
                gvk,
            ),
            PATCH_QUERIES,
            Some(patch_body()),
            &[("200", ok), ("201", created)],
        ),
    );
    item
}

fn set_params(mut item: Map<String, Value>, params: Vec<Value>) -> Value {
    item.insert("parameters".into(), Value::Array(params));
    Value::Object(item)
}

/// The `paths` entries of one resource.
pub fn for_resource(r: &Resource, out: &mut Map<String, Value>) {
    let group_word = r.group.split('.').next().unwrap_or("");
    let group_prefix = format!(
        "{}{}",
        if r.group.is_empty() {
            "Core".to_string()
        } else {
            capitalize(group_word)
        },
        capitalize(r.version)
    );
    let tag = format!(
        "{}_{}",
        if r.group.is_empty() {
            "core"
        } else {
            group_word
        },
        r.version
    );
    let op = Op {
        r,
        group_prefix,
        tag,
    };
    let root = if r.group.is_empty() {
        format!("/api/{}", r.version)
    } else {
        format!("/apis/{}/{}", r.group, r.version)
    };
    let scope = if r.namespaced { "Namespaced" } else { "" };
    let collection = if r.namespaced {
        format!("{root}/namespaces/{{namespace}}/{}", r.plural)
    } else {
        format!("{root}/{}", r.plural)
    };
    let mut common = vec![];
    if r.namespaced {
        common.push(path_param(
            "namespace",
            "object name and auth scope, such as for teams and projects".into(),
        ));
    }
    common.push(query("pretty"));
    let mut named = vec![path_param("name", format!("name of the {}", r.kind))];
    named.extend(common.iter().cloned());
    let kind_id = format!("{scope}{}", r.kind);
    let list = list_schema_name(r);

    let mut coll = Map::new();
    coll.insert(
        "get".into(),
        with(
            op.operation(
                "list",
                "list",
                &kind_id,
                format!("list or watch objects of kind {}", r.kind),
                op.gvk(),
            ),
            LIST_QUERIES,
            None,
            &[("200", response("OK", &list))],
        ),
    );
    coll.insert(
        "post".into(),
        with(
            op.operation(
                "create",
                "post",
                &kind_id,
                format!("create a {}", r.kind),
                op.gvk(),
            ),
            WRITE_QUERIES,
            Some(body(r.schema_name)),
            &[
                ("200", response("OK", r.schema_name)),
                ("201", response("Created", r.schema_name)),
                ("202", response("Accepted", r.schema_name)),
            ],
        ),
    );
    coll.insert(
        "delete".into(),
        with(
            op.operation(
                "deletecollection",
                "deletecollection",
                &kind_id,
                format!("delete collection of {}", r.kind),
                op.gvk(),
            ),
            DELETE_COLLECTION_QUERIES,
            Some(json!({ "content": { "*/*": { "schema": reference(DELETE_OPTIONS) } } })),
            &[("200", response("OK", STATUS))],
        ),
    );
    out.insert(collection.clone(), set_params(coll, common.clone()));

    let what = format!("the specified {}", r.kind);
    let mut item = read_write(&op, &kind_id, &what, r.schema_name, op.gvk());
    item.insert(
        "delete".into(),
        with(
            op.operation(
                "delete",
                "delete",
                &kind_id,
                format!("delete a {}", r.kind),
                op.gvk(),
            ),
            DELETE_QUERIES,
            Some(json!({ "content": { "*/*": { "schema": reference(DELETE_OPTIONS) } } })),
            &[
                ("200", response("OK", STATUS)),
                ("202", response("Accepted", STATUS)),
            ],
        ),
    );
    out.insert(
        format!("{collection}/{{name}}"),
        set_params(item, named.clone()),
    );

    if r.namespaced {
        let mut all = Map::new();
        all.insert(
            "get".into(),
            with(
                op.operation(
                    "list",
                    "list",
                    &format!("{}ForAllNamespaces", r.kind),
                    format!("list or watch objects of kind {}", r.kind),
                    op.gvk(),
                ),
                LIST_QUERIES,
                None,
                &[("200", response("OK", &list))],
            ),
        );
        out.insert(
            format!("{root}/{}", r.plural),
            set_params(all, vec![query("pretty")]),
        );
    }
    if r.has_subresource("status") {
        let item = read_write(
            &op,
            &format!("{kind_id}Status"),
            &format!("status of {what}"),
            r.schema_name,
            op.gvk(),
        );
        out.insert(
            format!("{collection}/{{name}}/status"),
            set_params(item, named.clone()),
        );
    }
    if r.has_subresource("scale") {
        let gvk = json!({ "group": "autoscaling", "kind": "Scale", "version": "v1" });
        let item = read_write(
            &op,
            &format!("{kind_id}Scale"),
            &format!("scale of {what}"),
            SCALE,
            gvk,
        );
        out.insert(
            format!("{collection}/{{name}}/scale"),
            set_params(item, named.clone()),
        );
    }
    // POST-only subresources that take an object of their own kind: pods/binding, pods/eviction.
    for (sub, group, kind, schema) in [
        ("binding", "", "Binding", BINDING),
        ("eviction", "policy", "Eviction", EVICTION),
    ] {
        if !r.has_subresource(sub) {
            continue;
        }
        let gvk = json!({ "group": group, "kind": kind, "version": "v1" });
        let mut item = Map::new();
        item.insert(
            "post".into(),
            with(
                op.operation(
                    "create",
                    "post",
                    &format!("{kind_id}{kind}"),
                    format!("create {sub} of a {}", r.kind),
                    gvk,
                ),
                WRITE_QUERIES,
                Some(body(schema)),
                &[
                    ("200", response("OK", schema)),
                    ("201", response("Created", schema)),
                    ("202", response("Accepted", schema)),
                ],
            ),
        );
        let mut params = vec![path_param("name", format!("name of the {kind}"))];
        params.extend(common.iter().cloned());
        out.insert(
            format!("{collection}/{{name}}/{sub}"),
            set_params(item, params),
        );
    }
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::find;

    #[test]
    fn namespaced_resource_paths_and_ids() {
        let mut out = Map::new();
        for_resource(
            find("apps", "v1", "deployments").expect("deployments"),
            &mut out,
        );
        let item = &out["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"];
        assert_eq!(
            item["patch"]["operationId"],
            "patchAppsV1NamespacedDeployment"
        );
        assert_eq!(
            item["patch"]["x-kubernetes-group-version-kind"]["kind"],
            "Deployment"
        );
        let names: Vec<&str> = item["patch"]["parameters"]
            .as_array()
            .expect("params")
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert!(names.contains(&"fieldValidation"));
        assert!(item["patch"]["requestBody"]["content"]
            .get("application/strategic-merge-patch+json")
            .is_some());
        assert!(out.contains_key("/apis/apps/v1/deployments"));
        assert_eq!(
            out["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]["get"]
                ["x-kubernetes-group-version-kind"]["group"],
            "autoscaling"
        );
    }

    #[test]
    fn cluster_scoped_resource_paths() {
        let mut out = Map::new();
        for_resource(find("", "v1", "nodes").expect("nodes"), &mut out);
        assert_eq!(out["/api/v1/nodes"]["get"]["operationId"], "listCoreV1Node");
        assert_eq!(
            out["/api/v1/nodes/{name}/status"]["put"]["operationId"],
            "replaceCoreV1NodeStatus"
        );
        assert_eq!(
            out["/api/v1/nodes/{name}"]["parameters"]
                .as_array()
                .map(Vec::len),
            Some(2)
        );
    }
}
