//! Selecting and rendering objects: label/field selector filters, and the response's form —
//! plain JSON or, when the Accept header asks for it, kubectl's server-side Table.

use api::{
    selectors::{FieldSelector, LabelSelector},
    status::StatusError,
    table::IncludeObject,
};
use axum::{
    body::Body,
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use serde_json::{json, Value};

use super::{Ctx, Json};
use crate::cache::CachedObject;

/// The label and field selectors of a list, watch or deletecollection.
pub struct Filter {
    labels: Option<LabelSelector>,
    fields: Option<FieldSelector>,
}

impl Filter {
    pub fn from_query(ctx: &Ctx) -> Result<Filter, StatusError> {
        let labels = match ctx.query.get("labelSelector") {
            Some(s) => {
                Some(LabelSelector::parse(s).map_err(|e| StatusError::bad_request(e.to_string()))?)
            }
            None => None,
        };
        let fields = match ctx.query.get("fieldSelector") {
            Some(s) => Some(
                FieldSelector::parse(ctx.req.resource, s)
                    .map_err(|e| StatusError::bad_request(e.to_string()))?,
            ),
            None => None,
        };
        Ok(Filter { labels, fields })
    }

    /// A filter of these selectors (None: no selection by labels, or fields).
    #[cfg(test)]
    pub fn new(labels: Option<LabelSelector>, fields: Option<FieldSelector>) -> Filter {
        Filter { labels, fields }
    }

    /// The value an `=` term of the field selector requires of `field`.
    pub fn single_value(&self, field: &str) -> Option<&str> {
        self.fields.as_ref()?.single_value(field)
    }

    pub fn is_everything(&self) -> bool {
        self.labels.is_none() && self.fields.is_none()
    }

    pub fn matches(&self, obj: &Value) -> bool {
        if let Some(l) = &self.labels {
            let empty = serde_json::Map::new();
            let labels = obj
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .unwrap_or(&empty);
            if !l.matches(labels) {
                return false;
            }
        }
        if let Some(f) = &self.fields {
            if !f.matches(obj) {
                return false;
            }
        }
        true
    }

    /// [`Filter::matches`] for an object of the watch cache, without decoding it.
    pub fn matches_cached(&self, obj: &CachedObject) -> bool {
        self.labels.as_ref().is_none_or(|l| obj.labels_match(l))
            && self.fields.as_ref().is_none_or(|f| obj.fields_match(f))
    }
}

/// A list's metadata: its resourceVersion, and the continue token with the count left.
fn list_meta(rv: i64, cont: Option<String>, remaining: Option<i64>) -> Value {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if let Some(c) = cont {
        meta["continue"] = json!(c);
        if let Some(n) = remaining.filter(|n| *n > 0) {
            meta["remainingItemCount"] = json!(n);
        }
    }
    meta
}

/// A JSON response.
pub fn json_response(code: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut resp = Response::new(Body::from(bytes));
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

impl IntoResponse for Json {
    fn into_response(self) -> Response {
        json_response(self.0, &self.1)
    }
}

/// Whether the client asked for a `meta.k8s.io/v1 Table`.
pub fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map(|accept| {
            accept
                .split(',')
                .next()
                .is_some_and(|first| first.contains("as=Table"))
        })
        .unwrap_or(false)
}

/// How the client wants objects: plain, or as a Table.
pub enum Render {
    Plain,
    Table(IncludeObject),
}

impl Render {
    pub fn from_ctx(ctx: &Ctx) -> Render {
        if wants_table(&ctx.headers) {
            Render::Table(IncludeObject::parse(ctx.query.get("includeObject")))
        } else {
            Render::Plain
        }
    }

    /// One object (get, create, update...).
    pub fn object(&self, ctx: &Ctx, code: StatusCode, obj: Value) -> Json {
        match self {
            Render::Plain => Json(code, obj),
            Render::Table(include) => {
                let rv = obj
                    .pointer("/metadata/resourceVersion")
                    .cloned()
                    .unwrap_or(json!(""));
                let mut t = api::table::table(
                    ctx.req.resource,
                    std::slice::from_ref(&obj),
                    *include,
                    jiff::Timestamp::now(),
                );
                t["metadata"] = json!({"resourceVersion": rv});
                Json(code, t)
            }
        }
    }

    /// A list of objects of the watch cache, their JSON copied as it is.
    pub fn list_shared(
        &self,
        ctx: &Ctx,
        items: Vec<std::sync::Arc<CachedObject>>,
        rv: i64,
        cont: Option<String>,
        remaining: Option<i64>,
    ) -> Response {
        match self {
            Render::Table(_) => self
                .list(
                    ctx,
                    items.iter().map(|o| o.value()).collect(),
                    rv,
                    cont,
                    remaining,
                )
                .into_response(),
            Render::Plain => {
                let r = ctx.req.resource;
                let meta = list_meta(rv, cont, remaining);
                let size: usize = items.iter().map(|o| o.size()).sum();
                let mut buf = Vec::with_capacity(size + 128);
                buf.extend_from_slice(
                    format!(
                        "{{\"kind\":{:?},\"apiVersion\":{:?},\"metadata\":",
                        r.list_kind(),
                        r.api_version()
                    )
                    .as_bytes(),
                );
                let _ = serde_json::to_writer(&mut buf, &meta);
                buf.extend_from_slice(b",\"items\":[");
                for (i, o) in items.iter().enumerate() {
                    if i > 0 {
                        buf.push(b',');
                    }
                    buf.extend_from_slice(&o.json());
                }
                buf.extend_from_slice(b"]}");
                let mut resp = Response::new(Body::from(buf));
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                resp
            }
        }
    }

    /// A list with its metadata.
    pub fn list(
        &self,
        ctx: &Ctx,
        items: Vec<Value>,
        rv: i64,
        cont: Option<String>,
        remaining: Option<i64>,
    ) -> Json {
        let meta = list_meta(rv, cont, remaining);
        match self {
            Render::Plain => {
                let r = ctx.req.resource;
                Json(
                    StatusCode::OK,
                    json!({"kind": r.list_kind(), "apiVersion": r.api_version(), "metadata": meta,
                        "items": items}),
                )
            }
            Render::Table(include) => {
                let mut t =
                    api::table::table(ctx.req.resource, &items, *include, jiff::Timestamp::now());
                t["metadata"] = meta;
                Json(StatusCode::OK, t)
            }
        }
    }
}
