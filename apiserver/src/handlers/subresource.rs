//! The scale subresource of Deployments and ReplicaSets (an `autoscaling/v1 Scale` view of
//! spec.replicas) and the binding subresource of Pods (how the scheduler assigns a node).

use api::{
    status::StatusError,
    validation::{ErrorType, FieldError},
};
use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::{json, Value};

use super::{admission::now, decode_body, storage_error, write, Ctx, Json};
use crate::storage::{set_resource_version, StorageError};

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
    for _ in 0..8 {
        let current = ctx
            .state
            .storage
            .get(&ctx.key())
            .await
            .map_err(|e| storage_error(ctx, e))?
            .ok_or_else(|| ctx.not_found())?;
        let scale = scale_of(&current.object);
        if verb == "get" {
            return Ok(Json(StatusCode::OK, scale).into_response());
        }
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
            Some(v) => v.as_i64().ok_or_else(|| {
                StatusError::bad_request("Scale.spec.replicas must be an integer")
            })?,
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
            return Ok(Json(StatusCode::OK, scale_of(&obj)).into_response());
        }
        match ctx
            .state
            .storage
            .update(&current.key, &obj, current.mod_revision, &[], &[], None)
            .await
        {
            Ok(rev) => {
                set_resource_version(&mut obj, rev);
                return Ok(Json(StatusCode::OK, scale_of(&obj)).into_response());
            }
            Err(StorageError::Conflict) => continue,
            Err(e) => return Err(storage_error(ctx, e)),
        }
    }
    Err(ctx.conflict())
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
    let mut attempts = 0;
    loop {
        attempts += 1;
        if attempts > 8 {
            return Err(ctx.conflict());
        }
        let current = ctx
            .state
            .storage
            .get(&ctx.key())
            .await
            .map_err(|e| storage_error(ctx, e))?
            .ok_or_else(|| ctx.not_found())?;
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
            break;
        }
        match ctx
            .state
            .storage
            .update(&current.key, &pod, current.mod_revision, &[], &[], None)
            .await
        {
            Ok(_) => break,
            Err(StorageError::Conflict) => continue,
            Err(e) => return Err(storage_error(ctx, e)),
        }
    }
    Ok(Json(StatusCode::CREATED, api::status::success(None)).into_response())
}
