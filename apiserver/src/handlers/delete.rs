//! delete and deletecollection: preconditions, finalizers and propagation policies; what a
//! delete does beyond that (graceful pod deletion, a Terminating namespace, reservations
//! released) is the resource's strategy's (see `crate::registry`).

use api::status::StatusError;
use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::{json, Value};

use super::{
    admission::now,
    output::{Filter, Render},
    read::collection_prefix,
    storage_error, Ctx,
};
use crate::{
    registry::{strategy, DeleteRequest, Deletion},
    storage::{set_resource_version, StorageError, Stored},
};

/// DeleteOptions from the body or the query.
#[derive(Debug, Default)]
struct Options {
    grace: Option<i64>,
    propagation: Option<String>,
    uid: Option<String>,
    rv: Option<String>,
    dry_run: bool,
}

fn options(ctx: &Ctx, body: &[u8]) -> Result<Options, StatusError> {
    let v = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        Some(
            serde_json::from_slice::<Value>(body)
                .map_err(|e| StatusError::bad_request(format!("invalid DeleteOptions: {e}")))?,
        )
    };
    options_from(ctx, v.as_ref())
}

/// DeleteOptions from a decoded body (None: no body) and the query.
fn options_from(ctx: &Ctx, body: Option<&Value>) -> Result<Options, StatusError> {
    let mut o = Options {
        dry_run: ctx.query.dry_run()?,
        ..Default::default()
    };
    if let Some(v) = body {
        o.grace = v.get("gracePeriodSeconds").and_then(Value::as_i64);
        o.propagation = v
            .get("propagationPolicy")
            .and_then(Value::as_str)
            .map(str::to_string);
        o.uid = v
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string);
        o.rv = v
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string);
        if v.get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|d| d == "All"))
        {
            o.dry_run = true;
        }
    }
    if let Some(g) = ctx.query.int("gracePeriodSeconds")? {
        o.grace = Some(g);
    }
    if let Some(p) = ctx.query.get("propagationPolicy") {
        o.propagation = Some(p.to_string());
    }
    if let Some(p) = &o.propagation {
        if !matches!(p.as_str(), "Orphan" | "Background" | "Foreground") {
            return Err(StatusError::invalid(
                "DeleteOptions",
                "",
                "",
                &[api::validation::FieldError::new(
                    api::validation::ErrorType::NotSupported,
                    "propagationPolicy",
                    Some(&format!("{p:?}")),
                    "supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\"",
                )],
            ));
        }
    }
    if o.grace.is_some_and(|g| g < 0) {
        o.grace = Some(0);
    }
    Ok(o)
}

/// DELETE on an object.
pub async fn delete(ctx: &Ctx, body: &[u8]) -> Result<Response, StatusError> {
    let opts = options(ctx, body)?;
    strategy(ctx.req.resource).check_delete(ctx.name())?;
    for _ in 0..8 {
        let current = ctx
            .state
            .storage
            .get(&ctx.key())
            .await
            .map_err(|e| storage_error(ctx, e))?
            .ok_or_else(|| ctx.not_found())?;
        ctx.check_bound(&current.object)?;
        match delete_one(ctx, &current, &opts).await? {
            Ok((code, obj)) => return Ok(Render::Plain.object(ctx, code, obj).into_response()),
            Err(StorageError::Conflict) => continue,
            Err(e) => return Err(storage_error(ctx, e)),
        }
    }
    Err(ctx.conflict())
}

fn check_preconditions(ctx: &Ctx, current: &Stored, opts: &Options) -> Result<(), StatusError> {
    let r = ctx.req.resource;
    if let Some(uid) = &opts.uid {
        let actual = current
            .object
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("");
        if actual != uid {
            return Err(StatusError::conflict(
                &r.qualified_plural(),
                r.group,
                ctx.name(),
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"
                ),
            ));
        }
    }
    if let Some(rv) = &opts.rv {
        if *rv != current.mod_revision.to_string() {
            return Err(StatusError::conflict(
                &r.qualified_plural(),
                r.group,
                ctx.name(),
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, \
                    ResourceVersion in object meta: {}",
                    current.mod_revision
                ),
            ));
        }
    }
    Ok(())
}

/// Deletes (or marks for deletion) one object. Inner `Err` is a store error to retry on.
async fn delete_one(
    ctx: &Ctx,
    current: &Stored,
    opts: &Options,
) -> Result<Result<(StatusCode, Value), StorageError>, StatusError> {
    check_preconditions(ctx, current, opts)?;
    let strategy = strategy(ctx.req.resource);
    let mut obj = current.object.clone();
    // Finalizers asked by the propagation policy.
    let finalizer = match opts.propagation.as_deref() {
        Some("Foreground") => Some("foregroundDeletion"),
        Some("Orphan") => Some("orphan"),
        _ => None,
    };
    if let Some(f) = finalizer {
        let list = obj["metadata"]
            .as_object_mut()
            .map(|m| m.entry("finalizers").or_insert(json!([])));
        if let Some(Value::Array(list)) = list {
            if !list.iter().any(|x| x == f) {
                list.push(json!(f));
            }
        }
    }
    let has_finalizers = obj
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty());
    let request = DeleteRequest {
        grace: opts.grace,
        has_finalizers,
    };
    let mark = match strategy.begin_delete(&mut obj, &request) {
        Deletion::Unchanged => return Ok(Ok((StatusCode::OK, obj))),
        Deletion::Mark => true,
        Deletion::Remove => false,
    };
    if mark {
        if obj.pointer("/metadata/deletionTimestamp").is_none() {
            obj["metadata"]["deletionTimestamp"] = json!(now());
            if obj
                .pointer("/metadata/deletionGracePeriodSeconds")
                .is_none()
            {
                obj["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            }
        }
        if opts.dry_run {
            return Ok(Ok((StatusCode::OK, obj)));
        }
        return Ok(ctx
            .state
            .storage
            .update(
                &current.key,
                &obj,
                current.mod_revision,
                &[],
                &[],
                strategy.time_to_live(&ctx.state.config),
            )
            .await
            .map(|rev| {
                set_resource_version(&mut obj, rev);
                (StatusCode::OK, obj)
            }));
    }
    if opts.dry_run {
        return Ok(Ok((StatusCode::OK, obj)));
    }
    let release = strategy.released_on_delete(&obj);
    Ok(ctx
        .state
        .storage
        .delete(&current.key, current.mod_revision, &release)
        .await
        .map(|_| (StatusCode::OK, obj)))
}

/// POST `pods/NAME/eviction` (policy/v1 Eviction, as `kubectl drain` sends): a delete with the
/// Eviction's deleteOptions. No PodDisruptionBudget exists in this API, so nothing refuses it.
pub async fn evict(ctx: &Ctx, body: &[u8]) -> Result<Response, StatusError> {
    let eviction = super::decode_body(&ctx.headers, body, "Eviction")?;
    let kind = eviction
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("Eviction");
    if kind != "Eviction" {
        return Err(StatusError::bad_request(format!(
            "the object provided is unrecognized (must be of type Eviction): kind {kind:?}"
        )));
    }
    let named = eviction
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if named != ctx.name() {
        return Err(StatusError::bad_request(
            "name in URL does not match name in Eviction object",
        ));
    }
    let opts = options_from(ctx, eviction.get("deleteOptions").filter(|v| !v.is_null()))?;
    for _ in 0..8 {
        let current = ctx
            .state
            .storage
            .get(&ctx.key())
            .await
            .map_err(|e| storage_error(ctx, e))?
            .ok_or_else(|| ctx.not_found())?;
        ctx.check_bound(&current.object)?;
        match delete_one(ctx, &current, &opts).await? {
            Ok(_) => {
                return Ok(
                    (StatusCode::CREATED, axum::Json(api::status::success(None))).into_response(),
                )
            }
            Err(StorageError::Conflict) => continue,
            Err(e) => return Err(storage_error(ctx, e)),
        }
    }
    Err(ctx.conflict())
}

/// DELETE on a collection: every object matching the selectors.
pub async fn delete_collection(ctx: &Ctx, body: &[u8]) -> Result<Response, StatusError> {
    let opts = options(ctx, body)?;
    let filter = Filter::from_query(ctx)?;
    let prefix = collection_prefix(ctx);
    let mut deleted = Vec::new();
    let mut start: Option<String> = None;
    loop {
        let page = ctx
            .state
            .storage
            .list(&prefix, start.as_deref(), 500, 0)
            .await
            .map_err(|e| storage_error(ctx, e))?;
        for s in &page.items {
            start = Some(s.key.clone());
            if !filter.matches(&s.object) {
                continue;
            }
            let name = s.key.rsplit('/').next().unwrap_or("");
            if strategy(ctx.req.resource).check_delete(name).is_err() {
                continue;
            }
            ctx.check_bound(&s.object)?;
            match delete_one(ctx, s, &opts).await? {
                Ok((_, obj)) => deleted.push(obj),
                Err(StorageError::Conflict | StorageError::NotFound) => {}
                Err(e) => return Err(storage_error(ctx, e)),
            }
        }
        if !page.more {
            break;
        }
    }
    let rev = ctx
        .state
        .storage
        .current_revision()
        .await
        .map_err(|e| storage_error(ctx, e))?;
    Ok(Render::Plain
        .list(ctx, deleted, rev, None, None)
        .into_response())
}
