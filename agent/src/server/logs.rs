//! `GET /containerLogs/NS/POD/CONTAINER`: a container's log as the kubelet serves it, with
//! `follow`, `previous`, `tailLines`, `sinceSeconds`/`sinceTime`, `limitBytes` and
//! `timestamps`. The instance is the container's newest one of this node (`previous`: the one
//! before it, which the agent keeps); its files are read by [`crate::logs::read`].

use std::{collections::HashMap, sync::Arc};

use api::status::StatusError;
use axum::{
    body::Body,
    extract::{Path, RawQuery, State},
    http::header,
    response::{IntoResponse, Response},
};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use tokio::sync::mpsc;

use super::{status, Ctx};
use crate::{
    logs::{instance_log, pod_dir, read},
    pods::labels,
    runtime::{api as cri, Runtime},
};

/// The query as flags and values (the last of repeated keys wins).
pub fn query_map(raw: Option<&str>) -> HashMap<String, String> {
    url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// `true`/`1` (the apiserver forwards what the client sent).
pub fn flag(q: &HashMap<String, String>, name: &str) -> bool {
    q.get(name)
        .is_some_and(|v| v == "true" || v == "1" || v == "True")
}

fn number(q: &HashMap<String, String>, name: &str) -> Result<Option<i64>, StatusError> {
    q.get(name)
        .map(|v| {
            v.parse::<i64>()
                .map_err(|_| StatusError::bad_request(format!("invalid {name} {v:?}")))
        })
        .transpose()
}

/// The read options of a query (`now` resolves `sinceSeconds`).
pub fn options(q: &HashMap<String, String>, now: Timestamp) -> Result<read::Options, StatusError> {
    let positive = |name: &str| -> Result<Option<i64>, StatusError> {
        match number(q, name)? {
            Some(n) if n <= 0 => Err(StatusError::bad_request(format!(
                "{name}: must be greater than 0"
            ))),
            n => Ok(n),
        }
    };
    let since = match (positive("sinceSeconds")?, q.get("sinceTime")) {
        (Some(_), Some(_)) => {
            return Err(StatusError::bad_request(
                "at most one of sinceTime or sinceSeconds may be specified",
            ))
        }
        (Some(s), None) => Some(now - SignedDuration::from_secs(s)),
        (None, Some(t)) => Some(
            t.parse::<Timestamp>()
                .map_err(|e| StatusError::bad_request(format!("invalid sinceTime {t:?}: {e}")))?,
        ),
        (None, None) => None,
    };
    let tail_lines = match number(q, "tailLines")? {
        Some(n) if n < 0 => {
            return Err(StatusError::bad_request(
                "tailLines: must be greater than or equal to 0",
            ))
        }
        n => n.map(|n| n as usize),
    };
    Ok(read::Options {
        follow: flag(q, "follow"),
        tail_lines,
        limit_bytes: positive("limitBytes")?.map(|n| n as u64),
        since,
        timestamps: flag(q, "timestamps"),
    })
}

/// The instances of a pod's container on this node, newest first.
pub async fn instances(
    runtime: &dyn Runtime,
    node: &str,
    ns: &str,
    pod: &str,
    container: &str,
) -> Result<Vec<cri::Container>, StatusError> {
    let mut selector = labels::node_selector(node);
    selector.insert(labels::POD_NAMESPACE.into(), ns.into());
    selector.insert(labels::POD_NAME.into(), pod.into());
    selector.insert(labels::CONTAINER_NAME.into(), container.into());
    let mut list = runtime
        .list_containers(cri::ContainerFilter {
            label_selector: selector,
            ..Default::default()
        })
        .await
        .map_err(|e| StatusError::internal(format!("listing containers: {e}")))?;
    let attempt = |c: &cri::Container| c.metadata.as_ref().map(|m| m.attempt).unwrap_or(0);
    list.sort_by_key(|c| std::cmp::Reverse((c.created_at, attempt(c))));
    Ok(list)
}

pub async fn container_logs(
    State(ctx): State<Ctx>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    let q = query_map(q.as_deref());
    let mut options = match options(&q, Timestamp::now()) {
        Ok(o) => o,
        Err(e) => return status(e),
    };
    let previous = flag(&q, "previous");
    let list = match instances(ctx.runtime.as_ref(), &ctx.node, &ns, &pod, &container).await {
        Ok(l) => l,
        Err(e) => return status(e),
    };
    let chosen = if previous { list.get(1) } else { list.first() };
    let Some(c) = chosen else {
        return status(StatusError::bad_request(if previous {
            format!("previous terminated container \"{container}\" in pod \"{pod}\" not found")
        } else {
            format!(
                "container \"{container}\" in pod \"{pod}\" is waiting to start: \
                 ContainerCreating"
            )
        }));
    };
    let uid = c.labels.get(labels::POD_UID).cloned().unwrap_or_default();
    let attempt = c.metadata.as_ref().map(|m| m.attempt).unwrap_or(0);
    let log = instance_log(
        &pod_dir(&ctx.log_root, &ns, &pod, &uid),
        &container,
        attempt,
    );
    // A previous instance has ended: nothing to follow.
    options.follow &= !previous;
    let (runtime, id) = (ctx.runtime.clone(), c.id.clone());
    let alive: read::Alive = Box::new(move || {
        let (runtime, id): (Arc<dyn Runtime>, String) = (runtime.clone(), id.clone());
        Box::pin(async move {
            match runtime.container_status(&id).await {
                Ok(s) => s.state == cri::ContainerState::ContainerRunning as i32,
                // Gone, or the runtime cannot tell: stop following rather than hang.
                Err(_) => false,
            }
        })
    });
    let (tx, rx) = mpsc::channel::<Vec<u8>>(16);
    let key = format!("{ns}/{pod}/{container}");
    tokio::spawn(async move {
        if let Err(e) = read::run(log, options, alive, tx).await {
            tracing::warn!(container = %key, error = %e, "reading the container log");
        }
    });
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, std::io::Error>(chunk), rx))
    });
    (
        [(header::CONTENT_TYPE, "text/plain")],
        Body::from_stream(body),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_options() {
        let now: Timestamp = "2024-05-01T10:00:10Z".parse().unwrap();
        let q = query_map(Some(
            "follow=true&tailLines=3&sinceSeconds=5&limitBytes=100&timestamps=1",
        ));
        let o = options(&q, now).unwrap();
        assert!(o.follow && o.timestamps);
        assert_eq!(o.tail_lines, Some(3));
        assert_eq!(o.limit_bytes, Some(100));
        assert_eq!(o.since, Some("2024-05-01T10:00:05Z".parse().unwrap()));
        let q = query_map(Some("sinceTime=2024-05-01T09:00:00Z"));
        assert_eq!(
            options(&q, now).unwrap().since,
            Some("2024-05-01T09:00:00Z".parse().unwrap())
        );
        for bad in [
            "tailLines=-1",
            "limitBytes=0",
            "sinceSeconds=x",
            "sinceSeconds=1&sinceTime=2024-05-01T09:00:00Z",
            "sinceTime=yesterday",
        ] {
            let e = options(&query_map(Some(bad)), now).unwrap_err();
            assert_eq!(e.code, 400, "{bad}");
        }
    }
}
