//! The scale subresource of Deployments and ReplicaSets (an `autoscaling/v1 Scale` view of
//! spec.replicas) and the binding subresource of Pods (how the scheduler assigns a node).
//! Both update from the watch cache's copy first, as the other updates
//! ([`guaranteed_update`]).

use api::{
    status::StatusError,
    validation::{ErrorType, FieldError},
};
use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::{json, Value};

use super::{
    admission::now, current::guaranteed_update, decode_body, storage_error, write, Ctx, Json,
};
use crate::storage::{set_resource_version, StorageError, Stored};

fn scale_of(obj: &Value) -> Value {
    let meta = &obj["metadata"];
    let selector = obj
        .pointer("/spec/selector")
        .and_then(|s| {
            serde_json::from_value::<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>(
                s.clone(),
            )
            .ok()
        })
        .and_then(|s| api::selectors::LabelSelector::from_k8s(&s).ok())
        .map(|s| s.to_string())
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"],
            "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(1))},
        "status": {
            "replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector,
        },
    })
}

/// get, update or patch of `.../scale`.
pub async fn scale(ctx: &Ctx, verb: &str, body: &[u8]) -> Result<Response, StatusError> {
    if verb == "get" {
        let current = ctx
            .state
            .storage
            .get(&ctx.key())
            .await
            .map_err(|e| storage_error(ctx, e))?
            .ok_or_else(|| ctx.not_found())?;
        return Ok(Json(StatusCode::OK, scale_of(&current.object)).into_response());
    }
    let scale = guaranteed_update(ctx, |current, _| async move {
        rescale(ctx, verb, body, &current).await
    })
    .await?
    .ok_or_else(|| ctx.not_found())?;
    Ok(Json(StatusCode::OK, scale).into_response())
}

/// One try of a scale update or patch on `current`: the Scale written.
async fn rescale(
    ctx: &Ctx,
    verb: &str,
    body: &[u8],
    current: &Stored,
) -> Result<Result<Value, StorageError>, StatusError> {
    let scale = scale_of(&current.object);
    let new_scale = if verb == "update" {
        decode_body(&ctx.headers, body, "Scale")?
    } else {
        let (kind, doc) = write::read_patch(ctx, body)?;
        write::apply_patch(ctx, &scale, &doc, &kind)?
    };
    if let Some(rv) = new_scale
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        if rv != current.mod_revision.to_string() {
            return Err(ctx.conflict());
        }
    }
    let replicas = match new_scale.pointer("/spec/replicas") {
        None | Some(Value::Null) => 0,
        Some(v) => v
            .as_i64()
            .ok_or_else(|| StatusError::bad_request("Scale.spec.replicas must be an integer"))?,
    };
    if replicas < 0 {
        return Err(StatusError::invalid(
            "Scale",
            "autoscaling",
            ctx.name(),
            &[FieldError::new(
                ErrorType::Invalid,
                "spec.replicas",
                Some(&replicas.to_string()),
                "must be greater than or equal to 0",
            )],
        ));
    }
    let mut obj = current.object.clone();
    obj["spec"]["replicas"] = json!(replicas);
    if obj.get("spec") != current.object.get("spec") {
        let g = obj
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        obj["metadata"]["generation"] = json!(g + 1);
    }
    if ctx.query.dry_run()? {
        return Ok(Ok(scale_of(&obj)));
    }
    Ok(ctx
        .state
        .storage
        .update(&current.key, &obj, current.mod_revision, &[], &[], None)
        .await
        .map(|rev| {
            set_resource_version(&mut obj, rev);
            scale_of(&obj)
        }))
}

/// POST `pods/NAME/binding`: assigns the pod to a node, once.
pub async fn binding(ctx: &Ctx, body: &[u8]) -> Result<Response, StatusError> {
    let binding = decode_body(&ctx.headers, body, "Binding")?;
    let target = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if target.is_empty() {
        return Err(StatusError::invalid(
            "Binding",
            "",
            ctx.name(),
            &[FieldError::new(
                ErrorType::Required,
                "target.name",
                None,
                "",
            )],
        ));
    }
    if let Some(kind) = binding.pointer("/target/kind").and_then(Value::as_str) {
        if !kind.is_empty() && kind != "Node" {
            return Err(StatusError::invalid(
                "Binding",
                "",
                ctx.name(),
                &[FieldError::new(
                    ErrorType::NotSupported,
                    "target.kind",
                    Some(&format!("{kind:?}")),
                    "supported values: \"Node\"",
                )],
            ));
        }
    }
    let (binding, target) = (&binding, &target);
    guaranteed_update(ctx, |current, _| async move {
        bind(ctx, &current, binding, target).await
    })
    .await?
    .ok_or_else(|| ctx.not_found())?;
    Ok(Json(StatusCode::CREATED, api::status::success(None)).into_response())
}

/// One try of a binding on `current`: the pod assigned to `target`, unless it is assigned
/// already, being deleted or another pod (its UID).
async fn bind(
    ctx: &Ctx,
    current: &Stored,
    binding: &Value,
    target: &str,
) -> Result<Result<(), StorageError>, StatusError> {
    ctx.check_bound(&current.object)?;
    let mut pod = current.object.clone();
    if pod.pointer("/metadata/deletionTimestamp").is_some() {
        return Err(StatusError::conflict(
            "pods/binding",
            "",
            ctx.name(),
            "pod is being deleted, cannot be assigned to a host",
        ));
    }
    if let Some(node) = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    {
        return Err(StatusError::conflict(
            "pods/binding",
            "",
            ctx.name(),
            &format!("pod {} is already assigned to node \"{node}\"", ctx.name()),
        ));
    }
    if let Some(uid) = binding.pointer("/metadata/uid").and_then(Value::as_str) {
        if pod.pointer("/metadata/uid").and_then(Value::as_str) != Some(uid) {
            return Err(StatusError::conflict(
                "pods/binding",
                "",
                ctx.name(),
                "the UID in the binding does not match the pod's",
            ));
        }
    }
    pod["spec"]["nodeName"] = json!(target);
    let conditions = pod["status"]
        .as_object_mut()
        .map(|s| s.entry("conditions").or_insert(json!([])));
    if let Some(Value::Array(list)) = conditions {
        list.retain(|c| c.get("type").and_then(Value::as_str) != Some("PodScheduled"));
        list.push(
            json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null,
            "lastTransitionTime": now()}),
        );
    }
    if ctx.query.dry_run()? {
        return Ok(Ok(()));
    }
    Ok(ctx
        .state
        .storage
        .update(&current.key, &pod, current.mod_revision, &[], &[], None)
        .await
        .map(|_| ()))
}
