//! Pure helpers of the Deployment controller, after Kubernetes' `deploymentutil`: surge and
//! unavailability from numbers or percentages, the pod-template hash, revisions and the
//! replica annotations, finding the new and old ReplicaSets.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        apps::v1::{Deployment, ReplicaSet},
        core::v1::PodTemplateSpec,
    },
    apimachinery::pkg::util::intstr::IntOrString,
};

/// Label telling a ReplicaSet's (and its pods') template apart.
pub const HASH_LABEL: &str = "pod-template-hash";
/// The revision of a Deployment and of its ReplicaSets.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Earlier revisions a ReplicaSet had (after rollbacks to it).
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// The Deployment's replicas when the ReplicaSet was last scaled.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// The Deployment's replicas plus surge when the ReplicaSet was last scaled.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";

/// Annotations of a Deployment never copied to its ReplicaSets.
const NOT_COPIED: [&str; 5] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
];

/// A number, or a percentage of `total` rounded up or down (Kubernetes'
/// `GetScaledValueFromIntOrPercent`). None for a string that is not a percentage.
pub fn scaled_value(v: &IntOrString, total: i32, round_up: bool) -> Option<i32> {
    match v {
        IntOrString::Int(n) => Some(*n),
        IntOrString::String(s) => {
            let p: i64 = s.strip_suffix('%')?.parse().ok()?;
            let x = p * i64::from(total);
            let v = if round_up {
                (x + 99).div_euclid(100)
            } else {
                x.div_euclid(100)
            };
            Some(v as i32)
        }
    }
}

/// (maxSurge, maxUnavailable) for `desired` replicas: surge rounded up, unavailable down, and
/// never both zero (then unavailable is 1), as `ResolveFenceposts`.
pub fn fenceposts(
    surge: Option<&IntOrString>,
    unavailable: Option<&IntOrString>,
    desired: i32,
) -> (i32, i32) {
    let default = IntOrString::String("25%".into());
    let s = scaled_value(surge.unwrap_or(&default), desired, true).unwrap_or(0);
    let u = scaled_value(unavailable.unwrap_or(&default), desired, false).unwrap_or(0);
    if s == 0 && u == 0 {
        (0, 1)
    } else {
        (s, u)
    }
}

/// The Deployment's replicas.
pub fn replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

fn rolling(d: &Deployment) -> Option<(Option<&IntOrString>, Option<&IntOrString>)> {
    let st = d.spec.as_ref()?.strategy.as_ref();
    if st
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate")
        != "RollingUpdate"
    {
        return None;
    }
    let ru = st.and_then(|s| s.rolling_update.as_ref());
    Some((
        ru.and_then(|r| r.max_surge.as_ref()),
        ru.and_then(|r| r.max_unavailable.as_ref()),
    ))
}

/// True for the RollingUpdate strategy.
pub fn is_rolling(d: &Deployment) -> bool {
    rolling(d).is_some()
}

/// The resolved maxSurge (0 for Recreate).
pub fn max_surge(d: &Deployment) -> i32 {
    rolling(d).map_or(0, |(s, u)| fenceposts(s, u, replicas(d)).0)
}

/// The resolved maxUnavailable, at most the replicas (0 for Recreate or no replicas).
pub fn max_unavailable(d: &Deployment) -> i32 {
    let r = replicas(d);
    match rolling(d) {
        Some((s, u)) if r > 0 => fenceposts(s, u, r).1.min(r),
        _ => 0,
    }
}

/// FNV-1a, 32 bits.
fn fnv32a(data: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in data {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// The pod-template hash: FNV-1a of the template (and collision count), written with
/// Kubernetes' "safe" alphabet (no vowels, no look-alikes). Stable for a given template.
pub fn template_hash(t: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut t = t.clone();
    strip_hash(&mut t);
    let mut data = serde_json::to_vec(&t).unwrap_or_default();
    if let Some(c) = collision_count {
        data.extend_from_slice(&(c as u32).to_le_bytes());
    }
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    fnv32a(&data)
        .to_string()
        .bytes()
        .map(|b| ALPHANUMS[b as usize % ALPHANUMS.len()] as char)
        .collect()
}

fn strip_hash(t: &mut PodTemplateSpec) {
    if let Some(m) = t.metadata.as_mut() {
        if let Some(l) = m.labels.as_mut() {
            l.remove(HASH_LABEL);
            if l.is_empty() {
                m.labels = None;
            }
        }
    }
}

/// Templates equal apart from the pod-template-hash label.
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    let (mut a, mut b) = (a.clone(), b.clone());
    strip_hash(&mut a);
    strip_hash(&mut b);
    a == b
}

/// The annotation `key` as a number.
pub fn annotation_int(rs: &ReplicaSet, key: &str) -> Option<i64> {
    rs.metadata.annotations.as_ref()?.get(key)?.parse().ok()
}

/// The ReplicaSet's revision (0 when unset).
pub fn revision(rs: &ReplicaSet) -> i64 {
    annotation_int(rs, REVISION).unwrap_or(0)
}

/// Spec replicas of a ReplicaSet.
pub fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// Available replicas of a ReplicaSet.
pub fn rs_available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

/// Available replicas a ReplicaSet keeps once its controller has caught up with its spec: at
/// most `spec.replicas`. Right after a scale-down its status still counts the pods being
/// deleted (the ReplicaSet controller computes it from the pods it saw before deleting, as
/// Kubernetes' does), and the surplus goes not-ready pods first, so the available pods that
/// stay are the lesser of the two.
pub fn rs_available_kept(rs: &ReplicaSet) -> i32 {
    rs_available(rs).min(rs_replicas(rs)).max(0)
}

/// The oldest of the ReplicaSets whose template is the Deployment's (the new one, as
/// `FindNewReplicaSet`), and all the others, oldest first.
pub fn split_new_old<'a>(
    d: &Deployment,
    rss: &'a [ReplicaSet],
) -> (Option<&'a ReplicaSet>, Vec<&'a ReplicaSet>) {
    let template = d
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let mut sorted: Vec<&ReplicaSet> = rss.iter().collect();
    sorted.sort_by(|a, b| {
        a.metadata
            .creation_timestamp
            .cmp(&b.metadata.creation_timestamp)
            .then(a.metadata.name.cmp(&b.metadata.name))
    });
    let new = sorted.iter().copied().find(|rs| {
        rs.spec
            .as_ref()
            .and_then(|s| s.template.as_ref())
            .is_some_and(|t| equal_ignore_hash(t, &template))
    });
    let old = sorted
        .into_iter()
        .filter(|rs| new.is_none_or(|n| n.metadata.uid != rs.metadata.uid))
        .collect();
    (new, old)
}

/// Copies the Deployment's annotations to the ReplicaSet (except the controller's own); true
/// when something changed.
pub fn copy_annotations(d: &Deployment, rs_annotations: &mut BTreeMap<String, String>) -> bool {
    let mut changed = false;
    for (k, v) in d.metadata.annotations.iter().flatten() {
        if NOT_COPIED.contains(&k.as_str()) {
            continue;
        }
        if rs_annotations.get(k) != Some(v) {
            rs_annotations.insert(k.clone(), v.clone());
            changed = true;
        }
    }
    changed
}

/// Sets the new ReplicaSet's revision to `new_revision` when lower, remembering the old one in
/// the revision history (as `SetNewReplicaSetAnnotations`); true when something changed.
pub fn set_new_rs_revision(annotations: &mut BTreeMap<String, String>, new_revision: i64) -> bool {
    let old = annotations.get(REVISION).cloned().unwrap_or_default();
    let old_n: i64 = if old.is_empty() {
        0
    } else {
        match old.parse() {
            Ok(n) => n,
            Err(_) => return false,
        }
    };
    if old_n >= new_revision {
        return false;
    }
    annotations.insert(REVISION.into(), new_revision.to_string());
    if !old.is_empty() {
        let mut history: Vec<String> = annotations
            .get(REVISION_HISTORY)
            .filter(|h| !h.is_empty())
            .map(|h| h.split(',').map(str::to_string).collect())
            .unwrap_or_default();
        history.push(old);
        annotations.insert(REVISION_HISTORY.into(), history.join(","));
    }
    true
}

/// Sets the desired- and max-replicas annotations; true when they changed.
pub fn set_replicas_annotations(
    annotations: &mut BTreeMap<String, String>,
    desired: i32,
    max: i32,
) -> bool {
    let mut changed = false;
    for (k, v) in [(DESIRED_REPLICAS, desired), (MAX_REPLICAS, max)] {
        let v = v.to_string();
        if annotations.get(k) != Some(&v) {
            annotations.insert(k.into(), v);
            changed = true;
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> IntOrString {
        IntOrString::String(v.into())
    }

    #[test]
    fn percentages_round_as_kubernetes() {
        assert_eq!(scaled_value(&s("25%"), 10, true), Some(3));
        assert_eq!(scaled_value(&s("25%"), 10, false), Some(2));
        assert_eq!(scaled_value(&s("100%"), 7, false), Some(7));
        assert_eq!(scaled_value(&IntOrString::Int(2), 10, true), Some(2));
        assert_eq!(scaled_value(&s("abc"), 10, true), None);
        // Defaults 25%/25% for 1 replica: surge 1, unavailable 0.
        assert_eq!(fenceposts(None, None, 1), (1, 0));
        assert_eq!(fenceposts(None, None, 4), (1, 1));
        // Both zero: one may be unavailable.
        assert_eq!(
            fenceposts(Some(&IntOrString::Int(0)), Some(&s("10%")), 5),
            (0, 1)
        );
        assert_eq!(
            fenceposts(Some(&s("50%")), Some(&IntOrString::Int(0)), 5),
            (3, 0)
        );
    }

    #[test]
    fn template_hash_is_stable_and_ignores_its_label() {
        let mut t: PodTemplateSpec = serde_json::from_value(serde_json::json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "i:1"}]}}))
        .unwrap();
        let h = template_hash(&t, None);
        assert_eq!(h, template_hash(&t, None));
        assert!(h
            .bytes()
            .all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b)));
        assert_ne!(h, template_hash(&t, Some(1)));
        let mut labelled = t.clone();
        labelled
            .metadata
            .as_mut()
            .unwrap()
            .labels
            .as_mut()
            .unwrap()
            .insert(HASH_LABEL.into(), h.clone());
        assert_eq!(template_hash(&labelled, None), h);
        assert!(equal_ignore_hash(&labelled, &t));
        t.spec.as_mut().unwrap().containers[0].image = Some("i:2".into());
        assert!(!equal_ignore_hash(&labelled, &t));
    }

    #[test]
    fn revisions_move_forward_with_history() {
        let mut a = BTreeMap::new();
        assert!(set_new_rs_revision(&mut a, 1));
        assert_eq!(a[REVISION], "1");
        assert!(!set_new_rs_revision(&mut a, 1));
        assert!(set_new_rs_revision(&mut a, 3));
        assert_eq!(a[REVISION], "3");
        assert_eq!(a[REVISION_HISTORY], "1");
        assert!(set_new_rs_revision(&mut a, 5));
        assert_eq!(a[REVISION_HISTORY], "1,3");
    }
}
