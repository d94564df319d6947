//! Per-resource behaviour, as Kubernetes' registry strategies: what the generic create, update
//! and delete handlers do differently for one resource. A [`Strategy`] has a default for every
//! step; a resource that behaves specially has its own file here with its own implementation,
//! and one line in [`STRATEGIES`]. The handlers never branch on a resource's name.
//!
//! Order of the steps the handlers run:
//! - create: server-owned metadata, [`Strategy::prepare_for_create`], defaulting,
//!   [`Strategy::validate_create`], namespace check, then per attempt [`Strategy::allocate`]
//!   (with no old object) and the write;
//! - update: the stored form merged from the request, [`Strategy::prepare_for_update`],
//!   defaulting, [`Strategy::validate_update`], [`Strategy::finish_update`],
//!   [`Strategy::allocate`] (with the old object), then the write — or the removal, when the
//!   object was marked for deletion and nothing holds it any more
//!   ([`Strategy::holds_deletion`], releasing [`Strategy::released_on_delete`]);
//! - delete: [`Strategy::check_delete`], [`Strategy::begin_delete`], then either the marked
//!   object written back or the object removed with [`Strategy::released_on_delete`].

mod deployment;
mod endpoints;
mod event;
mod namespace;
mod pod;
mod replicaset;
mod service;

use api::{registry::Resource, status::StatusError, validation::FieldError};
use futures::future::BoxFuture;
use serde_json::{json, Value};

use std::time::Duration;

use crate::{config::Config, services::Plan, state::AppState, storage::StorageError};

pub use namespace::BUILTIN_NAMESPACES;

/// Why a strategy step that reads the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StrategyError {
    /// The request is refused (invalid, conflicting); sent to the client as it is.
    #[error("{}", .0.message)]
    Refused(StatusError),
    /// Reading the store failed; the handler maps it as any other store error.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<StatusError> for StrategyError {
    fn from(e: StatusError) -> Self {
        StrategyError::Refused(e)
    }
}

/// What a delete request does to an object, as [`Strategy::begin_delete`] decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    /// Remove the object now.
    Remove,
    /// Keep the object, marked with a deletionTimestamp (set by the handler when the strategy
    /// has not), until whatever holds it (finalizers, an agent) lets go.
    Mark,
    /// Nothing to write: the object is answered as it is (e.g. a graceful deletion already
    /// under way with a period no longer than the one asked).
    Unchanged,
}

/// The facts about a delete request a strategy may use.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeleteRequest {
    /// gracePeriodSeconds from DeleteOptions or the query (never negative).
    pub grace: Option<i64>,
    /// The object carries metadata.finalizers (including one the propagation policy added).
    pub has_finalizers: bool,
}

/// How one resource behaves on create, update and delete. Every method has a default: the
/// behaviour of a resource with nothing special about it.
pub trait Strategy: Send + Sync {
    /// Called on a new object after the server has set the metadata it owns (namespace, name
    /// from generateName, uid, creationTimestamp; generation removed), before defaulting and
    /// validation. May set further server-owned fields. Default: nothing.
    fn prepare_for_create(&self, _obj: &mut Value) {}

    /// Called on the stored form of an update (`new`, built from the request and `old`, the
    /// object in the store) before defaulting and validation; `sub` is the subresource written
    /// (`None` for the object itself, `status`, `finalize`). May carry values over from `old`
    /// that the client left out. Default: nothing.
    fn prepare_for_update(&self, _sub: Option<&str>, _new: &mut Value, _old: &Value) {}

    /// Field errors of a defaulted new object (empty: valid). Default: the api crate's
    /// validation of the resource's type.
    fn validate_create(&self, r: &Resource, obj: &Value) -> Vec<FieldError> {
        api::validation::validate(r, obj, None)
    }

    /// Field errors of a defaulted update of `old` to `new` (empty: valid). Default: the api
    /// crate's validation of the resource's type, with the old object for immutable fields.
    fn validate_update(&self, r: &Resource, new: &Value, old: &Value) -> Vec<FieldError> {
        api::validation::validate(r, new, Some(old))
    }

    /// Called on a valid, defaulted update before it is written: fields derived from the final
    /// content (so defaults a client left out do not count as changes), such as
    /// metadata.generation. Default: nothing.
    fn finish_update(&self, _sub: Option<&str>, _new: &mut Value, _old: &Value) {}

    /// Whether a PUT on an absent object creates it (Kubernetes' AllowCreateOnUpdate).
    /// Default: false (404).
    fn allow_create_on_update(&self) -> bool {
        false
    }

    /// How long the store keeps an object after its last write (Kubernetes' TTLFunc), or
    /// None to keep it until deleted. Every write of the object starts the time again.
    /// Default: None.
    fn time_to_live(&self, _config: &Config) -> Option<Duration> {
        None
    }

    /// Chooses what the object needs from shared pools (cluster IPs, node ports) and returns
    /// the reservation keys to write and free in the same transaction as the object. Called
    /// once per write attempt, on a fresh copy of the object, with `old` the stored object on
    /// an update and `None` on a create; may fill in the chosen values. A reservation taken
    /// concurrently fails the write with `StorageError::Reserved` and the handler calls this
    /// again. Default: no reservations.
    fn allocate<'a>(
        &'a self,
        _state: &'a AppState,
        _obj: &'a mut Value,
        _old: Option<&'a Value>,
    ) -> BoxFuture<'a, Result<Plan, StrategyError>> {
        Box::pin(async { Ok(Plan::default()) })
    }

    /// The reservation keys to delete together with the object when it is removed.
    /// Default: none.
    fn released_on_delete(&self, _obj: &Value) -> Vec<String> {
        Vec::new()
    }

    /// Refuses the deletion of the object named `name` (e.g. a namespace that must always
    /// exist). A delete of that object fails with the error; a deletecollection skips it.
    /// Default: every object may be deleted.
    fn check_delete(&self, _name: &str) -> Result<(), StatusError> {
        Ok(())
    }

    /// Decides what a delete does to `obj` (the stored object, with any finalizer the
    /// propagation policy asked already added) and makes the changes a marked object needs
    /// (e.g. a status phase, a graceful deadline). The handler then writes the object back
    /// (`Mark`, adding a deletionTimestamp with a zero grace period when none is set), removes
    /// it (`Remove`), or answers it unwritten (`Unchanged`). Default: `Mark` while the object
    /// has finalizers, else `Remove`.
    fn begin_delete(&self, _obj: &mut Value, req: &DeleteRequest) -> Deletion {
        if req.has_finalizers {
            Deletion::Mark
        } else {
            Deletion::Remove
        }
    }

    /// Whether something other than metadata.finalizers still keeps an object that is marked
    /// for deletion (e.g. spec.finalizers, an agent that has not confirmed). Once no finalizer
    /// is left and this is false, the update that got it there removes the object instead.
    /// Default: false.
    fn holds_deletion(&self, _obj: &Value) -> bool {
        false
    }
}

/// The strategy of resources with nothing special about them.
pub struct Generic;

impl Strategy for Generic {}

/// Every resource with a strategy of its own: (API group, plural, strategy).
static STRATEGIES: &[(&str, &str, &dyn Strategy)] = &[
    ("", "services", &service::Service),
    ("", "namespaces", &namespace::Namespace),
    ("", "pods", &pod::Pod),
    ("", "endpoints", &endpoints::Endpoints),
    ("", "events", &event::Event),
    ("apps", "deployments", &deployment::Deployment),
    ("apps", "replicasets", &replicaset::ReplicaSet),
];

/// The strategy of resource `r`.
pub fn strategy(r: &Resource) -> &'static dyn Strategy {
    STRATEGIES
        .iter()
        .find(|(group, plural, _)| *group == r.group && *plural == r.plural)
        .map_or(&Generic, |(_, _, s)| *s)
}

/// Metadata.generation of a resource whose generation counts spec changes: 1 on create.
fn start_generation(obj: &mut Value) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("generation".into(), json!(1));
    }
}

/// Metadata.generation of a resource whose generation counts spec changes: one more when an
/// update of the object itself (not a subresource) changes the spec.
fn bump_generation(sub: Option<&str>, new: &mut Value, old: &Value) {
    if sub.is_none() && new.get("spec") != old.get("spec") {
        let g = old
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        if let Some(meta) = new.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("generation".into(), json!(g + 1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(group: &str, version: &str, plural: &str) -> &'static Resource {
        api::registry::find(group, version, plural).expect("registered")
    }

    #[test]
    fn every_strategy_names_a_served_resource() {
        for (group, plural, _) in STRATEGIES {
            assert!(
                api::registry::RESOURCES
                    .iter()
                    .any(|r| r.group == *group && r.plural == *plural),
                "{group}/{plural} is not served"
            );
        }
    }

    #[test]
    fn resources_without_a_strategy_get_the_default() {
        let cm = strategy(find("", "v1", "configmaps"));
        let mut obj = json!({"metadata": {"name": "a", "finalizers": ["x"]}});
        assert!(!cm.allow_create_on_update());
        assert!(cm.check_delete("default").is_ok());
        let req = DeleteRequest {
            grace: None,
            has_finalizers: true,
        };
        assert_eq!(cm.begin_delete(&mut obj, &req), Deletion::Mark);
        let req = DeleteRequest {
            grace: None,
            has_finalizers: false,
        };
        assert_eq!(cm.begin_delete(&mut obj, &req), Deletion::Remove);
        assert!(!cm.holds_deletion(&obj));
        assert!(cm.released_on_delete(&obj).is_empty());
    }

    #[test]
    fn generation_counts_spec_changes_of_the_object_only() {
        let old = json!({"metadata": {"generation": 3}, "spec": {"replicas": 1}});
        let mut new = json!({"metadata": {}, "spec": {"replicas": 2}});
        bump_generation(Some("status"), &mut new, &old);
        assert!(new.pointer("/metadata/generation").is_none());
        bump_generation(None, &mut new, &old);
        assert_eq!(new["metadata"]["generation"], 4);
        let mut same = json!({"metadata": {"generation": 3}, "spec": {"replicas": 1}});
        bump_generation(None, &mut same, &old);
        assert_eq!(same["metadata"]["generation"], 3);
    }
}
