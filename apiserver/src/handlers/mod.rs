//! Resource handlers: the verbs on objects (read, write, delete, watch) and subresources.

mod admission;
mod current;
mod delete;
pub(crate) mod output;
mod proxy;
pub(crate) mod read;
mod subresource;
mod watch;
mod write;

use api::status::StatusError;
use axum::{
    body::Bytes,
    http::{header, HeaderMap, Method, StatusCode},
    response::{IntoResponse, Response},
};
use serde_json::Value;

use crate::{
    auth::UserInfo,
    request::{Query, ResourceRequest},
    state::Shared,
    storage::StorageError,
};

/// One request's context.
pub struct Ctx {
    pub state: Shared,
    pub req: ResourceRequest,
    pub query: Query,
    pub headers: HeaderMap,
    pub user: UserInfo,
    /// Set when the caller is an agent allowed only on pods bound to this node.
    pub bound_node: Option<String>,
    /// The query string as sent (exec repeats `command=`).
    pub raw_query: String,
    /// The client connection's upgrade, for exec.
    pub upgrade: std::sync::Mutex<Option<hyper::upgrade::OnUpgrade>>,
}

impl Ctx {
    /// The name in the URL (callers only use this on named requests).
    pub fn name(&self) -> &str {
        self.req.name.as_deref().unwrap_or("")
    }

    pub fn namespace(&self) -> Option<&str> {
        self.req.namespace.as_deref()
    }

    /// The storage key of the named object.
    pub fn key(&self) -> String {
        self.req.resource.key(self.namespace(), self.name())
    }

    /// 404 for the named object.
    pub fn not_found(&self) -> StatusError {
        StatusError::not_found(
            &self.req.resource.qualified_plural(),
            self.req.resource.group,
            self.name(),
        )
    }

    /// 409 for a stale resourceVersion on the named object.
    pub fn conflict(&self) -> StatusError {
        StatusError::conflict(
            &self.req.resource.qualified_plural(),
            self.req.resource.group,
            self.name(),
            StatusError::STALE,
        )
    }

    /// Enforces node restriction on an existing pod: an agent may only touch pods bound to it.
    pub fn check_bound(&self, pod: &Value) -> Result<(), StatusError> {
        if let Some(node) = &self.bound_node {
            let bound = pod
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .unwrap_or("");
            if bound != node {
                let verb = if self.req.subresource.is_some() {
                    "update"
                } else {
                    "delete"
                };
                let attrs = crate::auth::Attributes {
                    verb,
                    group: "",
                    resource: "pods",
                    subresource: self.req.subresource.as_deref(),
                    namespace: self.namespace(),
                    name: self.req.name.as_deref(),
                };
                return Err(crate::auth::forbidden(
                    &self.user,
                    &attrs,
                    &format!("node \"{node}\" can only modify pods bound to it"),
                ));
            }
        }
        Ok(())
    }
}

/// A JSON body with a status code.
pub struct Json(pub StatusCode, pub Value);

/// Maps a store failure to the Status a client sees.
pub fn storage_error(ctx: &Ctx, e: StorageError) -> StatusError {
    match e {
        StorageError::AlreadyExists => StatusError::already_exists(
            &ctx.req.resource.qualified_plural(),
            ctx.req.resource.group,
            ctx.name(),
        ),
        StorageError::NotFound => ctx.not_found(),
        StorageError::Conflict => ctx.conflict(),
        StorageError::Compacted(rv) => StatusError::gone(format!("too old resource version: {rv}")),
        ref e if e.is_too_large() => StatusError::too_large("etcdserver: request is too large"),
        StorageError::Reserved(k) => StatusError::conflict(
            &ctx.req.resource.qualified_plural(),
            ctx.req.resource.group,
            ctx.name(),
            &format!("{k} was allocated concurrently; try again"),
        ),
        StorageError::Corrupt { .. } => StatusError::internal(e.to_string()),
        ref e if e.is_timeout() => StatusError::timeout(format!("request timed out: {e}")),
        StorageError::Store(err) => StatusError::internal(err.to_string()),
    }
}

/// Runs one resource request.
pub async fn handle(
    ctx: &Ctx,
    method: &Method,
    verb: &str,
    body: Bytes,
) -> Result<Response, StatusError> {
    let sub = ctx.req.subresource.as_deref();
    let resp = match (verb, sub) {
        ("get", None | Some("status")) => read::get(ctx).await?.into_response(),
        ("list", None) => read::list(ctx).await?,
        ("watch", None) => return watch::watch(ctx).await,
        ("create", None) => write::create(ctx, &body).await?,
        ("update", None | Some("status") | Some("finalize")) => write::update(ctx, &body).await?,
        ("patch", None | Some("status")) => write::patch(ctx, &body).await?,
        ("delete", None) => delete::delete(ctx, &body).await?,
        ("deletecollection", None) => delete::delete_collection(ctx, &body).await?,
        ("get" | "update" | "patch", Some("scale")) => subresource::scale(ctx, verb, &body).await?,
        ("create", Some("binding")) => subresource::binding(ctx, &body).await?,
        ("create", Some("eviction")) => delete::evict(ctx, &body).await?,
        ("get", Some("log")) => proxy::log(ctx).await?,
        ("create", Some("exec")) => proxy::exec(ctx, method).await?,
        _ => {
            return Err(StatusError::method_not_allowed(format!(
                "the server does not allow this method on the requested resource ({method} {}{})",
                ctx.req.resource.plural,
                sub.map(|s| format!("/{s}")).unwrap_or_default()
            )))
        }
    };
    Ok(resp)
}

/// Decodes a request body (JSON, or YAML by Content-Type) into a JSON object.
pub fn decode_body(headers: &HeaderMap, body: &[u8], what: &str) -> Result<Value, StatusError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(StatusError::bad_request(
            "the request body is empty: an object is required",
        ));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if content_type.starts_with("application/vnd.kubernetes.protobuf") {
        return crate::protobuf::decode(body)
            .map(|(_, _, obj)| obj)
            .map_err(|e| match e {
                crate::protobuf::ProtoError::Malformed | crate::protobuf::ProtoError::NoMagic => {
                    StatusError::bad_request(format!(
                        "the object provided is unrecognized (must be of type {what}): {e}"
                    ))
                }
                other => StatusError::unsupported_media_type(other.to_string()),
            });
    }
    if content_type.starts_with("application/cbor") {
        return Err(StatusError::unsupported_media_type(format!(
            "the body of the request was in an unknown format - accepted media types include: \
                application/json, application/yaml (got {content_type})"
        )));
    }
    let value: Value = if content_type.starts_with("application/yaml")
        || content_type.starts_with("application/x-yaml")
    {
        serde_norway::from_slice(body).map_err(|e| {
            StatusError::bad_request(format!(
                "the object provided is unrecognized (must be of type {what}): yaml: {e}"
            ))
        })?
    } else {
        serde_json::from_slice(body).map_err(|e| {
            StatusError::bad_request(format!(
                "the object provided is unrecognized (must be of type \
                {what}): couldn't get version/kind; json parse error: {e}"
            ))
        })?
    };
    if !value.is_object() {
        return Err(StatusError::bad_request(format!(
            "the object provided is unrecognized (must be of type {what}): not a JSON object"
        )));
    }
    Ok(value)
}

pub use admission::now;
pub use output::json_response;
