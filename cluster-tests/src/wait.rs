//! Waiting in tests: poll a check until it gives a value, wait for a Node to be Ready, and
//! read what a Pod's status (its first container's state, a condition) and its events say, as
//! the tests wait on them.

use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{Api, ListParams};

/// Polls `check` every 100 ms until it gives a value; after `secs` seconds, panics naming
/// `what`, with `logs()` (the logs of the components under test).
pub async fn until<T, F, Fut>(what: &str, secs: u64, logs: impl Fn() -> String, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}\n{}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The state of the pod's container `name` as kubectl's STATUS column words it (`running`,
/// else the waiting or terminated reason), its restart count and its container id.
pub fn container_state_of(p: &Pod, name: &str) -> (String, i32, Option<String>) {
    let cs = p
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|l| l.iter().find(|c| c.name == name));
    let Some(cs) = cs else {
        return (String::new(), 0, None);
    };
    let st = cs.state.clone().unwrap_or_default();
    let what = if st.running.is_some() {
        "running".to_string()
    } else if let Some(w) = st.waiting {
        w.reason.unwrap_or_default()
    } else if let Some(t) = st.terminated {
        t.reason.unwrap_or_default()
    } else {
        String::new()
    };
    (what, cs.restart_count, cs.container_id.clone())
}

/// [`container_state_of`] the pod's first container.
pub fn container_state(p: &Pod) -> (String, i32, Option<String>) {
    let first = p
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .map(|c| c.name.clone())
        .unwrap_or_default();
    container_state_of(p, &first)
}

/// The status (`True`, `False`, `Unknown`) of the pod's condition `kind`.
pub fn condition(p: &Pod, kind: &str) -> Option<String> {
    p.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| c.status.clone())
}

/// Waits up to `secs` seconds for Node `name` to report Ready.
pub async fn node_ready(nodes: &Api<Node>, name: &str, secs: u64, logs: impl Fn() -> String) {
    until(&format!("node {name} Ready"), secs, logs, || async {
        let n = nodes.get_opt(name).await.ok().flatten()?;
        n.status?
            .conditions?
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
            .then_some(())
    })
    .await
}

/// The messages of the events about object `name` (in the Api's namespace) with `reason`.
pub async fn event_messages(events: &Api<Event>, name: &str, reason: &str) -> Vec<String> {
    let list = events
        .list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    list.into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .filter_map(|e| e.message)
        .collect()
}
