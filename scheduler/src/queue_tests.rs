//! Tests of the scheduling queue.

use super::*;
use serde_json::json;

fn pod(name: &str, priority: i32) -> Arc<Pod> {
    Arc::new(
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": "default"},
            "spec": {"priority": priority, "containers": [{"name": "c", "image": "i"}]}}))
        .unwrap(),
    )
}

fn queue() -> Queue {
    Queue::new(HashMap::from([
        (
            "NodeResourcesFit",
            vec![ClusterEvent::NodeAdded, ClusterEvent::AssignedPodDeleted],
        ),
        (
            "TaintToleration",
            vec![ClusterEvent::NodeAdded, ClusterEvent::NodeTaintsChanged],
        ),
    ]))
}

fn names(q: &Queue) -> Vec<String> {
    std::iter::from_fn(|| q.try_pop()).map(|p| p.key).collect()
}

#[test]
fn backoff_doubles_up_to_ten_seconds() {
    let s = Duration::from_secs;
    let want = [
        (1, s(1)),
        (2, s(2)),
        (3, s(4)),
        (4, s(8)),
        (5, s(10)),
        (30, s(10)),
    ];
    for (attempts, d) in want {
        assert_eq!(backoff(attempts), d, "{attempts}");
    }
}

#[test]
fn priority_then_arrival() {
    let q = queue();
    q.add(pod("a", 0));
    q.add(pod("b", 10));
    q.add(pod("c", 0));
    q.add(pod("d", 10));
    assert_eq!(
        names(&q),
        ["default/b", "default/d", "default/a", "default/c"]
    );
}

#[test]
fn unschedulable_pods_wait_for_an_event_their_plugins_care_about() {
    let q = queue();
    q.add(pod("fit", 0));
    q.add(pod("taint", 0));
    let a = q.try_pop().unwrap();
    let b = q.try_pop().unwrap();
    q.unschedulable(&a.key, BTreeSet::from(["NodeResourcesFit"]), a.cycle);
    q.unschedulable(&b.key, BTreeSet::from(["TaintToleration"]), b.cycle);
    assert_eq!(
        q.sizes(),
        Sizes {
            active: 0,
            backoff: 0,
            unschedulable: 2
        }
    );
    // A taint change helps only the pod TaintToleration rejected; it is still backing off.
    q.on_event(ClusterEvent::NodeTaintsChanged);
    assert_eq!(
        q.sizes(),
        Sizes {
            active: 0,
            backoff: 1,
            unschedulable: 1
        }
    );
    assert!(q.try_pop().is_none());
    // After its back-off (1 s for the first attempt) it is active again.
    q.flush_at(Instant::now() + Duration::from_millis(1100));
    assert_eq!(names(&q), ["default/taint"]);
    q.on_event(ClusterEvent::AssignedPodDeleted);
    q.flush_at(Instant::now() + Duration::from_millis(1100));
    assert_eq!(names(&q), ["default/fit"]);
}

#[test]
fn an_event_during_the_attempt_is_not_lost() {
    let q = queue();
    q.add(pod("a", 0));
    let a = q.try_pop().unwrap();
    q.on_event(ClusterEvent::NodeAdded);
    q.unschedulable(&a.key, BTreeSet::from(["NodeResourcesFit"]), a.cycle);
    assert_eq!(q.sizes().backoff, 1);
}

#[test]
fn spec_change_retries_and_status_change_does_not() {
    let q = queue();
    q.add(pod("a", 0));
    let a = q.try_pop().unwrap();
    q.unschedulable(&a.key, BTreeSet::from(["TaintToleration"]), a.cycle);
    let mut status_only = (*pod("a", 0)).clone();
    status_only.status = Some(Default::default());
    q.add(Arc::new(status_only));
    assert_eq!(q.sizes().unschedulable, 1);
    let mut labelled = (*pod("a", 0)).clone();
    labelled.metadata.labels = Some([("x".to_string(), "y".to_string())].into());
    q.add(Arc::new(labelled));
    assert_eq!(q.sizes().backoff, 1);
}

#[test]
fn long_unschedulable_pods_are_flushed_and_deleted_ones_vanish() {
    let q = queue();
    q.add(pod("a", 0));
    q.add(pod("b", 0));
    let a = q.try_pop().unwrap();
    q.unschedulable(&a.key, BTreeSet::from(["TaintToleration"]), a.cycle);
    q.delete("default/b");
    assert!(q.try_pop().is_none());
    q.flush_at(Instant::now() + MAX_UNSCHEDULABLE + Duration::from_secs(1));
    let again = q.try_pop().unwrap();
    assert_eq!((again.key.as_str(), again.attempts), ("default/a", 2));
    // A failed binding puts it back after back-off.
    q.done(&again.key);
    assert!(!q.contains("default/a"));
    q.requeue(again);
    assert_eq!(q.sizes().backoff, 1);
}

#[tokio::test]
async fn pop_waits_for_a_pod() {
    let q = Arc::new(queue());
    let q2 = q.clone();
    let waiter = tokio::spawn(async move { q2.pop().await.key });
    tokio::time::sleep(Duration::from_millis(20)).await;
    q.add(pod("late", 0));
    assert_eq!(waiter.await.unwrap(), "default/late");
}
