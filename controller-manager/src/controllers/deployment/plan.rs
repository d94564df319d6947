//! The Deployment controller's scaling decisions, pure: each returns the ReplicaSets to scale
//! (name, new replicas). One rollout step at a time, as Kubernetes' `rolling.go`,
//! `recreate.go` and `sync.go` (proportional scaling).

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};

use super::util::{
    self, max_surge, max_unavailable, replicas, rs_available, rs_available_kept, rs_replicas,
};

/// A scaling decision: ReplicaSet name and its new replicas.
pub type Scale = (String, i32);

fn name(rs: &ReplicaSet) -> String {
    rs.metadata.name.clone().unwrap_or_default()
}

fn sum(rss: &[&ReplicaSet], f: fn(&ReplicaSet) -> i32) -> i32 {
    rss.iter().map(|r| f(r)).sum()
}

/// Replicas a new ReplicaSet should have now (`NewRSNewReplicas`).
pub fn new_rs_replicas(d: &Deployment, all: &[&ReplicaSet], new_replicas: i32) -> i32 {
    if !util::is_rolling(d) {
        return replicas(d);
    }
    let current: i32 = sum(all, rs_replicas);
    let max_total = replicas(d) + max_surge(d);
    if current >= max_total {
        return new_replicas;
    }
    let up = (max_total - current).min(replicas(d) - new_replicas);
    new_replicas + up.max(0)
}

/// Rolling update, step one: scale the new ReplicaSet up within the surge (or down to the
/// replicas). Empty when it already has the right size.
pub fn scale_up_new(d: &Deployment, all: &[&ReplicaSet], new: &ReplicaSet) -> Vec<Scale> {
    let (have, want) = (rs_replicas(new), replicas(d));
    if have == want {
        return Vec::new();
    }
    if have > want {
        return vec![(name(new), want)];
    }
    let n = new_rs_replicas(d, all, have);
    if n == have {
        Vec::new()
    } else {
        vec![(name(new), n)]
    }
}

/// Rolling update, step two: scale old ReplicaSets down without going below
/// replicas - maxUnavailable available pods; unhealthy old replicas go first. A ReplicaSet
/// counts at most its spec.replicas as available ([`rs_available_kept`]): a status that still
/// counts the pods of an unfinished scale-down would let the same pods be taken away twice.
pub fn scale_down_old(
    d: &Deployment,
    olds: &[&ReplicaSet],
    new: Option<&ReplicaSet>,
) -> Vec<Scale> {
    let old_count = sum(olds, rs_replicas);
    if old_count == 0 {
        return Vec::new();
    }
    let mut all: Vec<&ReplicaSet> = olds.to_vec();
    all.extend(new);
    let all_count = sum(&all, rs_replicas);
    let min_available = replicas(d) - max_unavailable(d);
    let new_unavailable = new.map_or(0, |n| rs_replicas(n) - rs_available_kept(n));
    let max_scaled_down = all_count - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return Vec::new();
    }
    let mut sorted: Vec<&ReplicaSet> = olds.to_vec();
    sorted.sort_by(|a, b| {
        a.metadata
            .creation_timestamp
            .cmp(&b.metadata.creation_timestamp)
    });
    // Sizes after each decision, by position in `sorted`.
    let mut size: Vec<i32> = sorted.iter().map(|r| rs_replicas(r)).collect();
    // Unhealthy replicas first (they are not available anyway).
    let mut cleaned = 0;
    for (i, rs) in sorted.iter().enumerate() {
        if cleaned >= max_scaled_down {
            break;
        }
        let unhealthy = size[i] - rs_available_kept(rs);
        if size[i] == 0 || unhealthy <= 0 {
            continue;
        }
        let n = (max_scaled_down - cleaned).min(unhealthy);
        size[i] -= n;
        cleaned += n;
    }
    // Then available ones, down to the minimum availability.
    let available: i32 = all.iter().map(|r| rs_available_kept(r)).sum();
    if available > min_available {
        let total = available - min_available;
        let mut done = 0;
        for s in size.iter_mut() {
            if done >= total {
                break;
            }
            if *s == 0 {
                continue;
            }
            let n = (*s).min(total - done);
            *s -= n;
            done += n;
        }
    }
    sorted
        .iter()
        .zip(size)
        .filter(|(rs, s)| rs_replicas(rs) != *s)
        .map(|(rs, s)| (name(rs), s))
        .collect()
}

/// Recreate, step one: every old ReplicaSet to zero.
pub fn scale_down_all(olds: &[&ReplicaSet]) -> Vec<Scale> {
    olds.iter()
        .filter(|r| rs_replicas(r) != 0)
        .map(|r| (name(r), 0))
        .collect()
}

/// Scaling outside a rollout (`scale`): the only active (or the latest) ReplicaSet takes the
/// replicas; a saturated new one lets old ones go; during a rolling update the difference is
/// spread over the active ReplicaSets in proportion to their size.
pub fn proportional(
    d: &Deployment,
    new: Option<&ReplicaSet>,
    olds: &[&ReplicaSet],
    status_replicas: i32,
) -> Vec<Scale> {
    let want = replicas(d);
    let active = |r: &&ReplicaSet| rs_replicas(r) > 0;
    let mut all: Vec<&ReplicaSet> = olds.to_vec();
    all.extend(new);
    let actives: Vec<&ReplicaSet> = all.iter().copied().filter(active).collect();
    // FindActiveOrLatest.
    let single = match actives.len() {
        0 => new.or_else(|| {
            olds.iter().copied().max_by(|a, b| {
                a.metadata
                    .creation_timestamp
                    .cmp(&b.metadata.creation_timestamp)
            })
        }),
        1 => Some(actives[0]),
        _ => None,
    };
    if let Some(rs) = single {
        return if rs_replicas(rs) == want {
            Vec::new()
        } else {
            vec![(name(rs), want)]
        };
    }
    if let Some(n) = new {
        let saturated = rs_replicas(n) == want
            && util::annotation_int(n, util::DESIRED_REPLICAS) == Some(i64::from(want))
            && rs_available(n) == want;
        if saturated {
            return scale_down_all(&olds.iter().copied().filter(active).collect::<Vec<_>>());
        }
    }
    if !util::is_rolling(d) {
        return Vec::new();
    }
    let current = sum(&actives, rs_replicas);
    let allowed = if want > 0 { want + max_surge(d) } else { 0 };
    let to_add = allowed - current;
    if to_add == 0 {
        return Vec::new();
    }
    let mut sorted = actives.clone();
    sorted.sort_by(|a, b| {
        rs_replicas(b).cmp(&rs_replicas(a)).then_with(|| {
            let (x, y) = (
                &a.metadata.creation_timestamp,
                &b.metadata.creation_timestamp,
            );
            if to_add > 0 {
                y.cmp(x)
            } else {
                x.cmp(y)
            }
        })
    });
    let mut added = 0;
    let mut sizes: Vec<i32> = Vec::new();
    for rs in &sorted {
        let mut p = 0;
        if rs_replicas(rs) != 0 && to_add != added {
            let fraction = if want == 0 {
                -rs_replicas(rs)
            } else {
                let target = want + max_surge(d);
                let annotated = util::annotation_int(rs, util::MAX_REPLICAS)
                    .map(|v| v as i32)
                    .unwrap_or(status_replicas)
                    .max(1);
                let size = f64::from(rs_replicas(rs)) * f64::from(target) / f64::from(annotated);
                size.round() as i32 - rs_replicas(rs)
            };
            let allowed = to_add - added;
            p = if to_add > 0 {
                fraction.min(allowed)
            } else {
                fraction.max(allowed)
            };
        }
        added += p;
        sizes.push(rs_replicas(rs) + p);
    }
    if let Some(first) = sizes.first_mut() {
        *first = (*first + to_add - added).max(0);
    }
    sorted
        .iter()
        .zip(sizes)
        .filter(|(rs, s)| rs_replicas(rs) != *s)
        .map(|(rs, s)| (name(rs), s))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy(
        replicas: i32,
        surge: serde_json::Value,
        unavailable: serde_json::Value,
    ) -> Deployment {
        serde_json::from_value(json!({"metadata": {"name": "d"}, "spec": {"replicas": replicas,
            "selector": {"matchLabels": {"a": "b"}}, "template": {},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}}}))
        .unwrap()
    }

    fn rs(
        name: &str,
        created: &str,
        replicas: i32,
        available: i32,
        max: Option<i32>,
    ) -> ReplicaSet {
        let mut v = json!({"metadata": {"name": name, "uid": name, "creationTimestamp": created},
            "spec": {"replicas": replicas, "selector": {}}, "status": {"replicas": replicas, "availableReplicas": available}});
        if let Some(m) = max {
            v["metadata"]["annotations"] = json!({util::MAX_REPLICAS: m.to_string()});
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn rolling_update_steps_keep_availability() {
        // 10 replicas, surge 3 (25% up), unavailable 2 (25% down).
        let d = deploy(10, json!("25%"), json!("25%"));
        let old = rs("old", "2026-01-01T00:00:00Z", 10, 10, None);
        let new = rs("new", "2026-01-02T00:00:00Z", 0, 0, None);
        // Up to 13 pods in all: new gets 3.
        assert_eq!(
            scale_up_new(&d, &[&old, &new], &new),
            [("new".to_string(), 3)]
        );
        let new = rs("new", "2026-01-02T00:00:00Z", 3, 0, None);
        assert!(scale_up_new(&d, &[&old, &new], &new).is_empty());
        // 13 pods, 10 available, at least 8 must stay: old goes to 8.
        assert_eq!(
            scale_down_old(&d, &[&old], Some(&new)),
            [("old".to_string(), 8)]
        );
        // New pods not yet available: nothing more may go.
        let old = rs("old", "2026-01-01T00:00:00Z", 8, 6, None);
        assert!(scale_down_old(&d, &[&old], Some(&new)).is_empty());
        // Old unavailable replicas go first, then available ones down to the minimum (8).
        let new = rs("new", "2026-01-02T00:00:00Z", 3, 3, None);
        assert_eq!(
            scale_down_old(&d, &[&old], Some(&new)),
            [("old".to_string(), 5)]
        );
        let old = rs("old", "2026-01-01T00:00:00Z", 8, 8, None);
        let new = rs("new", "2026-01-02T00:00:00Z", 3, 3, None);
        assert_eq!(
            scale_down_old(&d, &[&old], Some(&new)),
            [("old".to_string(), 5)]
        );
    }

    #[test]
    fn scale_down_counts_only_the_available_pods_a_replicaset_keeps() {
        // 5 replicas: surge 2, unavailable 1, so 4 must stay available.
        let d = deploy(5, json!("25%"), json!("25%"));
        // The old ReplicaSet was just scaled from 5 to 4 and its status still counts the pod
        // being deleted; the new one has 3, 2 of them available. 4 + 2 are available once the
        // old one has caught up: it may go to 2, not to 1 (1 + 2 = 3 ready pods).
        let old = rs("old", "2026-01-01T00:00:00Z", 4, 5, None);
        let new = rs("new", "2026-01-02T00:00:00Z", 3, 2, None);
        assert_eq!(
            scale_down_old(&d, &[&old], Some(&new)),
            [("old".to_string(), 2)]
        );
        // The new ReplicaSet scaled from 3 to 2 with its status still at 3 available: it keeps
        // 2, so with 3 old ones available only one old pod may go.
        let old = rs("old", "2026-01-01T00:00:00Z", 3, 3, None);
        let new = rs("new", "2026-01-02T00:00:00Z", 2, 3, None);
        assert_eq!(
            scale_down_old(&d, &[&old], Some(&new)),
            [("old".to_string(), 2)]
        );
    }

    #[test]
    fn zero_surge_scales_down_first() {
        let d = deploy(3, json!(0), json!(1));
        let old = rs("old", "2026-01-01T00:00:00Z", 3, 3, None);
        let new = rs("new", "2026-01-02T00:00:00Z", 0, 0, None);
        assert!(scale_up_new(&d, &[&old, &new], &new).is_empty());
        assert_eq!(
            scale_down_old(&d, &[&old], Some(&new)),
            [("old".to_string(), 2)]
        );
    }

    #[test]
    fn scaling_mid_rollout_is_proportional() {
        // Deployment went from 10 to 20 (surge 3 → 5) while old had 8 and new 5 (max 13).
        let d = deploy(20, json!("25%"), json!("25%"));
        let old = rs("old", "2026-01-01T00:00:00Z", 8, 8, Some(13));
        let new = rs("new", "2026-01-02T00:00:00Z", 5, 5, Some(13));
        let plan = proportional(&d, Some(&new), &[&old], 13);
        // 25 allowed, 13 present: +12 split 8:5 → old +7 (15), new +5 (10) with leftover.
        let total: i32 = plan.iter().map(|(_, n)| n).sum();
        assert_eq!(total, 25);
        assert!(plan.contains(&("old".to_string(), 15)));
        assert!(plan.contains(&("new".to_string(), 10)));
    }

    #[test]
    fn scaling_a_settled_deployment_moves_its_only_replicaset() {
        let d = deploy(5, json!("25%"), json!("25%"));
        let only = rs("only", "2026-01-01T00:00:00Z", 1, 1, None);
        assert_eq!(
            proportional(&d, Some(&only), &[], 1),
            [("only".to_string(), 5)]
        );
        let zero = rs("z", "2026-01-01T00:00:00Z", 0, 0, None);
        assert_eq!(scale_down_all(&[&only, &zero]), [("only".to_string(), 0)]);
    }
}
