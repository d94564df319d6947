//! Request dispatch: authentication, authorization, routing to discovery, health, metrics and
//! the resource handlers, plus per-request metrics and the audit line.

use std::time::Instant;

use api::status::StatusError;
use axum::{
    body::{Body, Bytes},
    extract::{Request, State},
    http::{header, HeaderValue, Method, StatusCode},
    response::Response,
    Router,
};
use serde_json::Value;
use tracing::{info_span, Instrument};

use crate::{
    auth::{self, Attributes, Decision, PeerIdentity, UserInfo},
    discovery,
    handlers::{self, json_response},
    metrics_api,
    request::{self, Query, ResourceRequest},
    state::Shared,
};

/// The router: everything goes through [`dispatch`].
pub fn router(state: Shared) -> Router {
    Router::new().fallback(dispatch).with_state(state)
}

/// A Status error response.
pub fn error_response(err: &StatusError) -> Response {
    json_response(
        StatusCode::from_u16(err.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &err.to_status(),
    )
}

fn text_response(code: StatusCode, text: String) -> Response {
    let mut resp = Response::new(Body::from(text));
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Paths anyone may read without credentials, as Kubernetes' system:public-info-viewer.
fn is_public(path: &str) -> bool {
    matches!(path, "/healthz" | "/livez" | "/readyz" | "/version")
        || path.starts_with("/healthz/")
        || path.starts_with("/livez/")
        || path.starts_with("/readyz/")
}

async fn dispatch(State(state): State<Shared>, req: Request) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = Query::parse(req.uri().query());
    let span = info_span!("request", %method, %path);
    async move {
        let peer = req
            .extensions()
            .get::<PeerIdentity>()
            .cloned()
            .unwrap_or_default();
        let authorization = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let user = match state.authn.authenticate(&peer, authorization.as_deref()) {
            Ok(u) => u,
            Err(e) => return error_response(&e),
        };
        if let Some(resp) = non_resource(&state, &method, &path, &query, user.as_ref()).await {
            return resp;
        }
        let Some(user) = user else {
            return error_response(&StatusError::unauthorized());
        };
        if let Some(answer) = metrics_api::serve(&state, &method, &path, &query, &user).await {
            return answer.unwrap_or_else(|e| error_response(&e));
        }
        let rreq = match request::parse_path(&path) {
            Ok(Some(r)) => r,
            Ok(None) => return error_response(&not_found()),
            Err(e) => return error_response(&e),
        };
        let verb = request::verb(&method, &rreq, &query);
        let (resp, code) = resource_request(&state, req, &rreq, &query, verb, &user).await;
        let resource_label = match &rreq.subresource {
            Some(s) => format!("{}/{s}", rreq.resource.plural),
            None => rreq.resource.plural.to_string(),
        };
        state
            .metrics
            .observe(verb, &resource_label, code, started.elapsed());
        if !matches!(verb, "get" | "list" | "watch") {
            state.audit.record(&user, verb, &rreq, code);
        }
        resp
    }
    .instrument(span)
    .await
}

fn not_found() -> StatusError {
    StatusError {
        code: 404,
        reason: "NotFound",
        message: "the server could not find the requested resource".into(),
        details: None,
    }
}

async fn non_resource(
    state: &Shared,
    method: &Method,
    path: &str,
    query: &Query,
    user: Option<&UserInfo>,
) -> Option<Response> {
    let p = path.trim_end_matches('/');
    let p = if p.is_empty() { "/" } else { p };
    if is_public(p) {
        return Some(health_or_version(state, p, query).await);
    }
    let is_non_resource = matches!(
        p,
        "/" | "/api" | "/apis" | "/metrics" | "/openapi/v3" | "/openapi/v2"
    ) || p.starts_with("/openapi/")
        || discovery::is_group_path(p);
    if !is_non_resource {
        return None;
    }
    let Some(user) = user else {
        return Some(error_response(&StatusError::unauthorized()));
    };
    if *method != Method::GET && *method != Method::HEAD {
        return Some(error_response(&StatusError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        )));
    }
    let _ = user;
    Some(match p {
        "/metrics" => {
            state.metrics.observe_caches(&state.caches);
            text_response(StatusCode::OK, state.metrics.render())
        }
        "/openapi/v2" => {
            // An empty OpenAPI v2 document: kubectl falls back to it for group-versions the v3
            // index lacks, and then reports an unknown kind as "no matches for kind".
            let mut resp = Response::new(Body::from(discovery::empty_openapi_v2()));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
                ),
            );
            resp
        }
        "/" => json_response(StatusCode::OK, &discovery::root_paths()),
        _ => match discovery::serve(p, query) {
            Some(v) => json_response(StatusCode::OK, &v),
            None => error_response(&not_found()),
        },
    })
}

async fn health_or_version(state: &Shared, path: &str, query: &Query) -> Response {
    match path {
        "/version" => json_response(StatusCode::OK, &discovery::version()),
        "/readyz" | "/readyz/etcd" => {
            let store = tokio::time::timeout(
                std::time::Duration::from_secs(2),
                state.storage.current_revision(),
            )
            .await;
            let store_ok = matches!(store, Ok(Ok(_)));
            let caches_ok = state.caches.ready();
            let verbose = query.0.contains_key("verbose");
            let mut lines = vec![
                format!("[{}]ping ok", "+"),
                if store_ok {
                    "[+]etcd ok".to_string()
                } else {
                    "[-]etcd failed: reason withheld".to_string()
                },
                if caches_ok {
                    "[+]watch-cache ok".to_string()
                } else {
                    "[-]watch-cache failed: not synced".to_string()
                },
            ];
            if store_ok && caches_ok {
                if verbose {
                    lines.push("readyz check passed".into());
                    text_response(StatusCode::OK, lines.join("\n") + "\n")
                } else {
                    text_response(StatusCode::OK, "ok".into())
                }
            } else {
                lines.push("readyz check failed".into());
                text_response(StatusCode::INTERNAL_SERVER_ERROR, lines.join("\n") + "\n")
            }
        }
        _ => text_response(StatusCode::OK, "ok".into()),
    }
}

async fn resource_request(
    state: &Shared,
    req: Request,
    rreq: &ResourceRequest,
    query: &Query,
    verb: &'static str,
    user: &UserInfo,
) -> (Response, u16) {
    let attrs = Attributes {
        verb,
        group: rreq.resource.group,
        resource: rreq.resource.plural,
        subresource: rreq.subresource.as_deref(),
        namespace: rreq.namespace.as_deref(),
        name: rreq.name.as_deref(),
    };
    let (mut parts, body) = req.into_parts();
    let upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
    let connects = rreq.subresource.as_deref() == Some("exec");
    let body: Bytes = if !connects
        && matches!(
            parts.method,
            Method::POST | Method::PUT | Method::PATCH | Method::DELETE
        ) {
        match read_body(body, state.config.max_request_bytes).await {
            Some(b) => b,
            None => {
                let e = StatusError::too_large(format!(
                    "Request entity too large: limit is {}",
                    state.config.max_request_bytes
                ));
                return (error_response(&e), 413);
            }
        }
    } else {
        Bytes::new()
    };
    // Creates name their object in the body; node restriction needs that name.
    let body_name = if verb == "create" && rreq.name.is_none() {
        serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
            v.pointer("/metadata/name")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
    } else {
        None
    };
    let decide = Attributes {
        name: attrs.name.or(body_name.as_deref()),
        ..attrs.clone()
    };
    let bound_node = match state.authz.authorize(user, &decide) {
        Decision::Allow => None,
        Decision::AllowIfPodBoundTo(node) => Some(node),
        Decision::Deny(why) => {
            let e = auth::forbidden(user, &attrs, &why);
            return (error_response(&e), 403);
        }
    };
    let ctx = handlers::Ctx {
        state: state.clone(),
        req: rreq.clone(),
        query: query.clone(),
        headers: parts.headers.clone(),
        user: user.clone(),
        bound_node,
        raw_query: parts.uri.query().unwrap_or("").to_string(),
        upgrade: std::sync::Mutex::new(if connects { upgrade } else { None }),
    };
    let result = handlers::handle(&ctx, &parts.method, verb, body).await;
    match result {
        Ok(resp) => {
            let code = resp.status().as_u16();
            (resp, code)
        }
        Err(e) => (error_response(&e), e.code),
    }
}

/// Reads a request body of at most `limit` bytes. A larger one is read to its end (up to a
/// bound) and dropped, so the client gets the 413 rather than a reset stream; None then.
async fn read_body(body: Body, limit: usize) -> Option<Bytes> {
    use futures::StreamExt;
    let mut stream = body.into_data_stream();
    let mut buf = Vec::new();
    let mut seen = 0usize;
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else { return None };
        seen += chunk.len();
        if seen <= limit {
            buf.extend_from_slice(&chunk);
        } else if seen > limit.saturating_mul(8) {
            return None;
        }
    }
    (seen <= limit).then(|| Bytes::from(buf))
}
