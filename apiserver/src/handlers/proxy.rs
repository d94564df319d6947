//! `pods/log` and `pods/exec`: checked here (the pod, its container, its node), then served by
//! the agent of the pod's node through [`crate::kubelet`].

use api::status::StatusError;
use axum::{
    body::Body,
    http::{header, HeaderValue, Method, StatusCode},
    response::Response,
};
use serde_json::Value;

use super::{storage_error, Ctx};

/// Query parameters of PodLogOptions that the agent understands, with whether each is an
/// integer (checked here so that a bad one is the apiserver's 400, as Kubernetes does).
const LOG_PARAMS: [(&str, bool); 7] = [
    ("follow", false),
    ("previous", false),
    ("timestamps", false),
    ("tailLines", true),
    ("sinceSeconds", true),
    ("limitBytes", true),
    ("sinceTime", false),
];

/// The container a request names, or the pod's only container; Kubernetes' 400s otherwise.
fn container(ctx: &Ctx, pod: &Value) -> Result<String, StatusError> {
    let names: Vec<&str> = ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|k| pod["spec"][*k].as_array().into_iter().flatten())
        .filter_map(|c| c["name"].as_str())
        .collect();
    let regular: Vec<&str> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    match ctx.query.get("container") {
        Some(c) if names.contains(&c) => Ok(c.to_string()),
        Some(c) => Err(StatusError::bad_request(format!(
            "container {c} is not valid for pod {}",
            ctx.name()
        ))),
        None => {
            // kubectl.kubernetes.io/default-container picks one among several.
            let default = pod
                .pointer("/metadata/annotations/kubectl.kubernetes.io~1default-container")
                .and_then(Value::as_str);
            match (default, regular.as_slice()) {
                (Some(d), _) if names.contains(&d) => Ok(d.to_string()),
                (_, [one]) => Ok(one.to_string()),
                _ => Err(StatusError::bad_request(format!(
                    "a container name must be specified for pod {}, choose one of: [{}]",
                    ctx.name(),
                    regular.join(" ")
                ))),
            }
        }
    }
}

async fn pod_and_node(ctx: &Ctx) -> Result<(Value, Option<Value>), StatusError> {
    let pod = ctx
        .state
        .storage
        .get(&ctx.key())
        .await
        .map_err(|e| storage_error(ctx, e))?
        .ok_or_else(|| ctx.not_found())?
        .object;
    let Some(node_name) = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    else {
        return Ok((pod, None));
    };
    let nodes = api::registry::find_by_user_name("nodes")
        .ok_or_else(|| StatusError::internal("no nodes resource"))?;
    let node = ctx
        .state
        .storage
        .get(&nodes.key(None, node_name))
        .await
        .map_err(|e| storage_error(ctx, e))?
        .ok_or_else(|| StatusError::not_found("nodes", "", node_name))?
        .object;
    Ok((pod, Some(node)))
}

fn path_segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// GET `pods/NAME/log`: the container's log from its agent, streamed (`follow=true` keeps it
/// open). A pod not yet on a node has no log: an empty answer, as Kubernetes gives.
pub async fn log(ctx: &Ctx) -> Result<Response, StatusError> {
    let (pod, node) = pod_and_node(ctx).await?;
    let container = container(ctx, &pod)?;
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for (name, integer) in LOG_PARAMS {
        if let Some(v) = ctx.query.get(name) {
            if integer {
                let n = ctx.query.int(name)?.unwrap_or(0);
                if n < 0 || (n == 0 && name != "tailLines") {
                    return Err(StatusError::invalid(
                        "PodLogOptions",
                        "",
                        "",
                        &[api::validation::FieldError::new(
                            api::validation::ErrorType::Invalid,
                            name,
                            Some(v),
                            "must be greater than 0",
                        )],
                    ));
                }
            }
            pairs.push((name, v));
        }
    }
    let Some(node) = node else {
        let mut resp = Response::new(Body::empty());
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        return Ok(resp);
    };
    let (host, port) = ctx.state.kubelet.endpoint(&node)?;
    let ns = ctx.namespace().unwrap_or("default");
    let path = format!(
        "/containerLogs/{}/{}/{}?{}",
        path_segment(ns),
        path_segment(ctx.name()),
        path_segment(&container),
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
    );
    ctx.state.kubelet.stream(&host, port, &path).await
}

/// `pods/NAME/exec` (GET or POST with `Upgrade`): the agent runs the command; the upgraded
/// connection is spliced between kubectl and the agent.
pub async fn exec(ctx: &Ctx, method: &Method) -> Result<Response, StatusError> {
    let commands: Vec<String> = url::form_urlencoded::parse(ctx.raw_query.as_bytes())
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.into_owned())
        .collect();
    if commands.is_empty() {
        return Err(StatusError::bad_request(
            "you must specify at least 1 command",
        ));
    }
    if !(ctx.query.flag("stdin") || ctx.query.flag("stdout") || ctx.query.flag("stderr")) {
        return Err(StatusError::bad_request(
            "you must specify at least one of stdin, stdout, stderr",
        ));
    }
    let (pod, node) = pod_and_node(ctx).await?;
    let container = container(ctx, &pod)?;
    let Some(node) = node else {
        return Err(StatusError::bad_request(format!(
            "pod {} does not have a host assigned",
            ctx.name()
        )));
    };
    if matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    ) {
        return Err(StatusError::bad_request(format!(
            "cannot exec into a container in a completed pod; current phase is {}",
            pod["status"]["phase"].as_str().unwrap_or("")
        )));
    }
    let (host, port) = ctx.state.kubelet.endpoint(&node)?;
    let ns = ctx.namespace().unwrap_or("default");
    let path = format!(
        "/exec/{}/{}/{}?{}",
        path_segment(ns),
        path_segment(ctx.name()),
        path_segment(&container),
        ctx.raw_query
    );
    let upgrade = take_upgrade(ctx);
    let resp = ctx
        .state
        .kubelet
        .upgrade(&host, port, method, &path, &ctx.headers, upgrade)
        .await?;
    debug_assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    Ok(resp)
}

fn take_upgrade(ctx: &Ctx) -> Option<hyper::upgrade::OnUpgrade> {
    match ctx.upgrade.lock() {
        Ok(mut u) => u.take(),
        Err(_) => None,
    }
}
