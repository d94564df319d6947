//! create, update (PUT) and patch: admission, then a compare-and-swap write on the store's
//! revision (a stale resourceVersion is a 409 Conflict; updates without one retry). Updates
//! start from the watch cache's copy of the object ([`guaranteed_update`]).

use api::status::StatusError;
use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use serde_json::Value;

use super::{
    admission::{self, decode_object, default_and_validate, merge_update, ready_to_delete},
    current::guaranteed_update,
    decode_body,
    output::Render,
    storage_error, Ctx,
};
use crate::{
    registry::{strategy, StrategyError},
    storage::{set_resource_version, StorageError, Stored},
};

/// Attempts of a create before giving up on address collisions with other apiservers.
const RETRIES: usize = 8;

/// Adds `Warning` headers (unknown fields when fieldValidation=Warn).
fn with_warnings(resp: Response, warnings: &[String]) -> Response {
    let mut resp = resp;
    for w in warnings {
        if let Ok(v) = HeaderValue::from_str(&format!("299 - {:?}", w)) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    resp
}

/// Maps a failed strategy step to the Status a client sees.
fn strategy_error(ctx: &Ctx, e: StrategyError) -> StatusError {
    match e {
        StrategyError::Refused(e) => e,
        StrategyError::Storage(e) => storage_error(ctx, e),
    }
}

/// POST on a collection.
pub async fn create(ctx: &Ctx, body: &[u8]) -> Result<Response, StatusError> {
    let r = ctx.req.resource;
    let raw = decode_body(&ctx.headers, body, r.kind)?;
    let (mut obj, warnings) = decode_object(ctx, raw)?;
    admission::prepare_create(ctx, &mut obj)?;
    default_and_validate(r, &mut obj, None)?;
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    admission::check_namespace(ctx, &name).await?;
    let key = r.key(ctx.namespace(), &name);
    let dry_run = ctx.query.dry_run()?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut candidate = obj.clone();
        let plan = strategy(r)
            .allocate(&ctx.state, &mut candidate, None)
            .await
            .map_err(|e| strategy_error(ctx, e))?;
        if dry_run {
            return Ok(with_warnings(
                Render::from_ctx(ctx)
                    .object(ctx, StatusCode::CREATED, candidate)
                    .into_response(),
                &warnings,
            ));
        }
        match ctx
            .state
            .storage
            .create(
                &key,
                &candidate,
                &plan.reserve,
                strategy(r).time_to_live(&ctx.state.config),
            )
            .await
        {
            Ok(rev) => {
                set_resource_version(&mut candidate, rev);
                return Ok(with_warnings(
                    Render::from_ctx(ctx)
                        .object(ctx, StatusCode::CREATED, candidate)
                        .into_response(),
                    &warnings,
                ));
            }
            // Another apiserver took the same random address: pick again.
            Err(StorageError::Reserved(_)) if attempt < RETRIES => continue,
            Err(StorageError::AlreadyExists) => {
                return Err(StatusError::already_exists(
                    &r.qualified_plural(),
                    r.group,
                    &name,
                ));
            }
            Err(e) => return Err(storage_error(ctx, e)),
        }
    }
}

/// Validates and writes `body` as the new state of `current`. `expected_rv`: the
/// resourceVersion the client based its change on, if it gave one: a conflict on it is the
/// answer (409), not a reason to try again. `cached`: `current` is the watch cache's copy,
/// which may be behind the store (see [`guaranteed_update`]).
async fn write_update(
    ctx: &Ctx,
    current: &Stored,
    body: Value,
    expected_rv: Option<i64>,
    cached: bool,
) -> Result<Result<Value, StorageError>, StatusError> {
    let r = ctx.req.resource;
    let sub = ctx.req.subresource.as_deref();
    if let Some(rv) = expected_rv {
        if rv != current.mod_revision {
            return Err(ctx.conflict());
        }
    }
    ctx.check_bound(&current.object)?;
    let strategy = strategy(r);
    let mut new = merge_update(r, sub, body, &current.object);
    strategy.prepare_for_update(sub, &mut new, &current.object);
    default_and_validate(r, &mut new, Some(&current.object))?;
    strategy.finish_update(sub, &mut new, &current.object);
    let plan = strategy
        .allocate(&ctx.state, &mut new, Some(&current.object))
        .await
        .map_err(|e| strategy_error(ctx, e))?;
    if ctx.query.dry_run()? {
        return Ok(Ok(new));
    }
    // A no-op update writes nothing and keeps the resourceVersion, as Kubernetes does; on a
    // cached copy that may be stale it is a conflict, so the caller checks the store's copy.
    if plan.reserve.is_empty()
        && plan.release.is_empty()
        && same_content(&new, &current.object)
        && !ready_to_delete(r, &new)
    {
        if cached {
            return Ok(Err(StorageError::Conflict));
        }
        let mut unchanged = current.object.clone();
        set_resource_version(&mut unchanged, current.mod_revision);
        return Ok(Ok(unchanged));
    }
    let written = if ready_to_delete(r, &new) {
        let release = strategy.released_on_delete(&new);
        ctx.state
            .storage
            .delete(&current.key, current.mod_revision, &release)
            .await
    } else {
        ctx.state
            .storage
            .update(
                &current.key,
                &new,
                current.mod_revision,
                &plan.reserve,
                &plan.release,
                strategy.time_to_live(&ctx.state.config),
            )
            .await
    };
    match written {
        Ok(rev) => {
            set_resource_version(&mut new, rev);
            Ok(Ok(new))
        }
        Err(StorageError::Conflict) if expected_rv.is_some() => Err(ctx.conflict()),
        Err(e) => Ok(Err(e)),
    }
}

/// Equal apart from the resourceVersion.
fn same_content(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
        }
        v
    };
    strip(a) == strip(b)
}

fn body_rv(body: &Value) -> Result<Option<i64>, StatusError> {
    match body
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
    {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| StatusError::bad_request(format!("invalid resourceVersion {v:?}"))),
    }
}

/// PUT on an object (or its status/finalize subresource).
pub async fn update(ctx: &Ctx, body: &[u8]) -> Result<Response, StatusError> {
    let r = ctx.req.resource;
    let raw = decode_body(&ctx.headers, body, r.kind)?;
    let (obj, warnings) = decode_object(ctx, raw)?;
    let body_name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if body_name != ctx.name() {
        return Err(StatusError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({})",
            ctx.name()
        )));
    }
    if let (Some(ns), Some(body_ns)) = (
        ctx.namespace(),
        obj.pointer("/metadata/namespace").and_then(Value::as_str),
    ) {
        if !body_ns.is_empty() && body_ns != ns {
            return Err(StatusError::bad_request(
                "the namespace of the provided object does not \
                match the namespace sent on the request",
            ));
        }
    }
    let expected = body_rv(&obj)?;
    let body = &obj;
    let written = guaranteed_update(ctx, |current, cached| async move {
        write_update(ctx, &current, body.clone(), expected, cached).await
    })
    .await?;
    match written {
        Some(stored) => Ok(with_warnings(
            Render::from_ctx(ctx)
                .object(ctx, StatusCode::OK, stored)
                .into_response(),
            &warnings,
        )),
        None if strategy(r).allow_create_on_update() && ctx.req.subresource.is_none() => {
            create(ctx, &serde_json::to_vec(&obj).unwrap_or_default()).await
        }
        None => Err(ctx.not_found()),
    }
}

/// The patch formats Kubernetes accepts.
enum PatchKind {
    Json,
    Merge,
    Strategic,
}

fn patch_kind(ctx: &Ctx) -> Result<PatchKind, StatusError> {
    let ct = ctx
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = ct.split(';').next().unwrap_or("").trim();
    match media {
        "application/json-patch+json" => Ok(PatchKind::Json),
        "application/merge-patch+json" => Ok(PatchKind::Merge),
        "application/strategic-merge-patch+json" => Ok(PatchKind::Strategic),
        other => Err(StatusError::unsupported_media_type(format!(
            "the body of the request was in an unknown format ({other}) - accepted media types \
                include: application/json-patch+json, application/merge-patch+json, \
                application/strategic-merge-patch+json"
        ))),
    }
}

/// Applies a patch document to an object.
pub fn apply_patch(
    ctx: &Ctx,
    current: &Value,
    patch: &Value,
    kind: &PatchKindRef,
) -> Result<Value, StatusError> {
    let out = match kind.0 {
        PatchKind::Json => api::patch::apply_json_patch(current, patch),
        PatchKind::Merge => api::patch::apply_merge_patch(current, patch),
        PatchKind::Strategic => {
            api::patch::apply_strategic_merge_patch(ctx.req.resource, current, patch)
        }
    };
    out.map_err(|e| StatusError {
        code: 422,
        reason: "Invalid",
        message: e.to_string(),
        details: None,
    })
}

/// A patch format, as the caller of [`apply_patch`] names it.
pub struct PatchKindRef(PatchKind);

/// Reads the patch format and document of a PATCH request.
pub fn read_patch(ctx: &Ctx, body: &[u8]) -> Result<(PatchKindRef, Value), StatusError> {
    let kind = patch_kind(ctx)?;
    let doc: Value = serde_json::from_slice(body)
        .map_err(|e| StatusError::bad_request(format!("error decoding patch: {e}")))?;
    match kind {
        PatchKind::Json if !doc.is_array() => Err(StatusError::bad_request(
            "json patch must be a JSON array of operations",
        )),
        PatchKind::Merge | PatchKind::Strategic if !doc.is_object() => {
            Err(StatusError::bad_request("patch must be a JSON object"))
        }
        _ => Ok((PatchKindRef(kind), doc)),
    }
}

/// PATCH on an object (or its status subresource).
pub async fn patch(ctx: &Ctx, body: &[u8]) -> Result<Response, StatusError> {
    let (kind, doc) = read_patch(ctx, body)?;
    let (doc, kind) = (&doc, &kind);
    let (stored, warnings) = guaranteed_update(ctx, |current, cached| async move {
        patch_once(ctx, &current, doc, kind, cached).await
    })
    .await?
    .ok_or_else(|| ctx.not_found())?;
    Ok(with_warnings(
        Render::from_ctx(ctx)
            .object(ctx, StatusCode::OK, stored)
            .into_response(),
        &warnings,
    ))
}

/// One try of a patch on `current`: the patched object written, with the warnings of its
/// decoding.
async fn patch_once(
    ctx: &Ctx,
    current: &Stored,
    doc: &Value,
    kind: &PatchKindRef,
    cached: bool,
) -> Result<Result<(Value, Vec<String>), StorageError>, StatusError> {
    let r = ctx.req.resource;
    let patched = apply_patch(ctx, &current.object, doc, kind)?;
    let (obj, warnings) = decode_object(ctx, patched)?;
    if obj.pointer("/metadata/name").and_then(Value::as_str) != Some(ctx.name()) {
        return Err(StatusError::bad_request(format!(
            "metadata.name: Invalid value: the name of a {} cannot be changed by a patch",
            r.kind
        )));
    }
    // A resourceVersion written by the patch is a precondition.
    let expected = match body_rv(&obj)? {
        Some(rv) if rv != current.mod_revision => return Err(ctx.conflict()),
        Some(rv) => Some(rv).filter(|_| patch_sets_rv(doc)),
        None => None,
    };
    let written = write_update(ctx, current, obj, expected, cached).await?;
    Ok(written.map(|stored| (stored, warnings)))
}

/// Whether the patch document itself names a resourceVersion.
fn patch_sets_rv(doc: &Value) -> bool {
    match doc {
        Value::Object(_) => doc.pointer("/metadata/resourceVersion").is_some(),
        Value::Array(ops) => ops
            .iter()
            .any(|op| op.get("path").and_then(Value::as_str) == Some("/metadata/resourceVersion")),
        _ => false,
    }
}
