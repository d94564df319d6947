//! A Deployment's status from its ReplicaSets, and its Available and Progressing conditions
//! (with progressDeadlineSeconds), as Kubernetes' `sync.go` and `progress.go` compute them.

use std::time::Duration;

use k8s_openapi::{
    api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet},
    apimachinery::pkg::apis::meta::v1::Time,
    jiff::Timestamp,
};

use super::util::{max_unavailable, replicas, rs_replicas};

pub const AVAILABLE: &str = "Available";
pub const PROGRESSING: &str = "Progressing";
pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
pub const RS_UPDATED: &str = "ReplicaSetUpdated";
pub const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
pub const PAUSED: &str = "DeploymentPaused";
pub const RESUMED: &str = "DeploymentResumed";

/// A condition stamped `now`.
pub fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// The condition of a type.
pub fn get<'a>(s: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    s.conditions.as_ref()?.iter().find(|c| c.type_ == type_)
}

fn remove(s: &mut DeploymentStatus, type_: &str) {
    if let Some(c) = s.conditions.as_mut() {
        c.retain(|c| c.type_ != type_);
    }
}

/// Sets a condition (`SetDeploymentCondition`): unchanged if status and reason are the same;
/// the transition time kept if only the reason changes.
pub fn set(s: &mut DeploymentStatus, mut c: DeploymentCondition) {
    if let Some(cur) = get(s, &c.type_) {
        if cur.status == c.status && cur.reason == c.reason {
            return;
        }
        if cur.status == c.status {
            c.last_transition_time = cur.last_transition_time.clone();
        }
    }
    remove(s, &c.type_);
    s.conditions.get_or_insert_with(Vec::new).push(c);
}

fn status_sum(
    rss: &[&ReplicaSet],
    f: fn(&k8s_openapi::api::apps::v1::ReplicaSetStatus) -> i32,
) -> i32 {
    rss.iter().filter_map(|r| r.status.as_ref()).map(f).sum()
}

/// The counts and the Available condition (`calculateStatus`).
pub fn calculate(
    d: &Deployment,
    all: &[&ReplicaSet],
    new: Option<&ReplicaSet>,
    now: Timestamp,
) -> DeploymentStatus {
    let old = d.status.clone().unwrap_or_default();
    let available = status_sum(all, |s| s.available_replicas.unwrap_or(0));
    let total: i32 = all.iter().map(|r| rs_replicas(r)).sum();
    let nonzero = |n: i32| (n > 0).then_some(n);
    let mut s = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: nonzero(status_sum(all, |s| s.replicas)),
        updated_replicas: nonzero(new.map_or(0, |n| n.status.as_ref().map_or(0, |s| s.replicas))),
        ready_replicas: nonzero(status_sum(all, |s| s.ready_replicas.unwrap_or(0))),
        available_replicas: nonzero(available),
        unavailable_replicas: nonzero((total - available).max(0)),
        collision_count: old.collision_count,
        conditions: old.conditions.clone(),
        ..Default::default()
    };
    let c = if available >= replicas(d) - max_unavailable(d) {
        condition(
            AVAILABLE,
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.".into(),
            now,
        )
    } else {
        condition(
            AVAILABLE,
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.".into(),
            now,
        )
    };
    set(&mut s, c);
    s
}

fn progress_deadline(d: &Deployment) -> Option<i32> {
    d.spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .filter(|s| *s != i32::MAX)
}

fn n(v: Option<i32>) -> i32 {
    v.unwrap_or(0)
}

/// Every replica updated and available (`DeploymentComplete`).
pub fn complete(d: &Deployment, s: &DeploymentStatus) -> bool {
    let r = replicas(d);
    n(s.updated_replicas) == r
        && n(s.replicas) == r
        && n(s.available_replicas) == r
        && s.observed_generation >= d.metadata.generation
}

/// More updated, fewer old, more ready or more available than last time.
fn progressing(d: &Deployment, s: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let old_old = n(old.replicas) - n(old.updated_replicas);
    let new_old = n(s.replicas) - n(s.updated_replicas);
    n(s.updated_replicas) > n(old.updated_replicas)
        || new_old < old_old
        || n(s.ready_replicas) > n(old.ready_replicas)
        || n(s.available_replicas) > n(old.available_replicas)
}

/// When the rollout's deadline passes (None: no deadline running).
pub fn deadline(d: &Deployment, s: &DeploymentStatus) -> Option<Timestamp> {
    let secs = progress_deadline(d)?;
    let c = get(s, PROGRESSING)?;
    if matches!(c.reason.as_deref(), Some(NEW_RS_AVAILABLE | TIMED_OUT)) {
        return None;
    }
    let from = c.last_update_time.as_ref()?.0;
    Some(from + Duration::from_secs(secs.max(0) as u64))
}

/// The status after a rollout step, Progressing included (`syncRolloutStatus`).
pub fn rollout(
    d: &Deployment,
    all: &[&ReplicaSet],
    new: Option<&ReplicaSet>,
    now: Timestamp,
) -> DeploymentStatus {
    let mut s = calculate(d, all, new, now);
    if progress_deadline(d).is_none() {
        remove(&mut s, PROGRESSING);
        return s;
    }
    let current = get(&s, PROGRESSING).cloned();
    let done = n(s.replicas) == n(s.updated_replicas)
        && current
            .as_ref()
            .is_some_and(|c| c.reason.as_deref() == Some(NEW_RS_AVAILABLE));
    if done {
        return s;
    }
    let rs_name = new
        .and_then(|r| r.metadata.name.clone())
        .unwrap_or_default();
    if complete(d, &s) {
        let msg = format!("ReplicaSet {rs_name:?} has successfully progressed.");
        set(
            &mut s,
            condition(PROGRESSING, "True", NEW_RS_AVAILABLE, msg, now),
        );
    } else if progressing(d, &s) {
        let msg = match new {
            Some(_) => format!("ReplicaSet {rs_name:?} is progressing."),
            None => format!(
                "Deployment {:?} is progressing.",
                d.metadata.name.as_deref().unwrap_or("")
            ),
        };
        let mut c = condition(PROGRESSING, "True", RS_UPDATED, msg, now);
        if let Some(cur) = &current {
            if cur.status == "True" {
                c.last_transition_time = cur.last_transition_time.clone();
            }
            remove(&mut s, PROGRESSING);
        }
        set(&mut s, c);
    } else if deadline(d, &s).is_some_and(|t| t < now) {
        let msg = format!("ReplicaSet {rs_name:?} has timed out progressing.");
        set(&mut s, condition(PROGRESSING, "False", TIMED_OUT, msg, now));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy(status: serde_json::Value) -> Deployment {
        serde_json::from_value(json!({"metadata": {"name": "d", "generation": 2},
            "spec": {"replicas": 2, "progressDeadlineSeconds": 60, "selector": {}, "template": {}},
            "status": status}))
        .unwrap()
    }

    fn rs(name: &str, replicas: i32, ready: i32) -> ReplicaSet {
        serde_json::from_value(
            json!({"metadata": {"name": name}, "spec": {"replicas": replicas, "selector": {}},
            "status": {"replicas": replicas, "readyReplicas": ready, "availableReplicas": ready}}),
        )
        .unwrap()
    }

    #[test]
    fn complete_rollout_is_new_replicaset_available() {
        let t: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let d = deploy(json!({}));
        let new = rs("d-abc", 2, 2);
        let s = rollout(&d, &[&new], Some(&new), t);
        assert_eq!(s.updated_replicas, Some(2));
        assert_eq!(s.unavailable_replicas, None);
        assert_eq!(get(&s, AVAILABLE).unwrap().status, "True");
        let p = get(&s, PROGRESSING).unwrap();
        assert_eq!(p.reason.as_deref(), Some(NEW_RS_AVAILABLE));
        assert_eq!(
            p.message.as_deref(),
            Some("ReplicaSet \"d-abc\" has successfully progressed.")
        );
    }

    #[test]
    fn a_stuck_rollout_times_out_after_the_deadline() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let d = deploy(
            json!({"replicas": 2, "updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1, "observedGeneration": 2,
            "conditions": [{"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated",
                "lastUpdateTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}),
        );
        let old = rs("d-old", 1, 1);
        let new = rs("d-new", 1, 0);
        let s = rollout(&d, &[&old, &new], Some(&new), t0 + Duration::from_secs(30));
        assert_eq!(
            get(&s, PROGRESSING).unwrap().reason.as_deref(),
            Some(RS_UPDATED)
        );
        let s = rollout(&d, &[&old, &new], Some(&new), t0 + Duration::from_secs(61));
        let p = get(&s, PROGRESSING).unwrap();
        assert_eq!(
            (p.status.as_str(), p.reason.as_deref()),
            ("False", Some(TIMED_OUT))
        );
        // 2 replicas, maxUnavailable 25% rounds down to 0: one available is not enough.
        assert_eq!(get(&s, AVAILABLE).unwrap().status, "False");
    }
}
