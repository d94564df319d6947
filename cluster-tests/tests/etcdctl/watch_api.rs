//! The Watch API through an etcd client library (etcd-client), for what etcdctl does not
//! show: several watchers on one gRPC stream, history then live events, filters, prev_kv,
//! duplicate IDs, cancel, progress requests and compaction. Expectations taken from etcd 3.4.

use std::time::Duration;

use etcd_client::{Client, EventType, WatchFilterType, WatchOptions, WatchResponse, WatchStream};

use crate::common::*;

const WAIT: Duration = Duration::from_secs(10);

async fn next(stream: &mut WatchStream) -> WatchResponse {
    match tokio::time::timeout(WAIT, stream.message()).await {
        Ok(Ok(Some(resp))) => resp,
        other => panic!("no watch response: {other:?}"),
    }
}

/// (watch id, event type, key, value, prev value) of every event in `resp`.
type Seen = (i64, &'static str, String, String, Option<String>);

fn events(resp: &WatchResponse) -> Vec<Seen> {
    resp.events()
        .iter()
        .map(|e| {
            let kv = e.kv().expect("kv");
            let kind = match e.event_type() {
                EventType::Put => "PUT",
                EventType::Delete => "DELETE",
            };
            let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            (
                resp.watch_id(),
                kind,
                text(kv.key()),
                text(kv.value()),
                e.prev_kv().map(|p| text(p.value())),
            )
        })
        .collect()
}

/// Reads responses until `n` events arrived; every response must carry events.
async fn read_events(stream: &mut WatchStream, n: usize) -> Vec<Seen> {
    let mut seen = Vec::new();
    while seen.len() < n {
        let resp = next(stream).await;
        assert!(
            !resp.events().is_empty() && !resp.created() && !resp.canceled(),
            "{resp:?}"
        );
        seen.extend(events(&resp));
    }
    seen
}

async fn put(client: &mut Client, key: &str, value: &str) -> i64 {
    let resp = client.put(key, value, None).await.expect("put");
    resp.header().expect("header").revision()
}

#[tokio::test]
async fn many_watchers_on_one_stream() {
    let cluster = three_members().await;
    let mut client = cluster.member_client(0).await.expect("client");
    let first = put(&mut client, "a", "1").await;
    put(&mut client, "b", "1").await;
    client.delete("a", None).await.expect("delete");

    // From a past revision: history first, with the previous values asked for.
    let mut stream = client
        .watch(
            "a",
            Some(
                WatchOptions::new()
                    .with_start_revision(first)
                    .with_prev_key(),
            ),
        )
        .await
        .expect("watch");
    let created = next(&mut stream).await;
    assert!(created.created() && !created.canceled(), "{created:?}");
    let w0 = created.watch_id();
    assert_eq!(
        read_events(&mut stream, 2).await,
        [
            (w0, "PUT", "a".into(), "1".into(), None),
            (w0, "DELETE", "a".into(), "".into(), Some("1".into()))
        ]
    );

    // A second watcher on the same stream, with its own ID, a prefix and a filter.
    stream
        .watch(
            "p/",
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_watch_id(7)
                    .with_filters([WatchFilterType::NoDelete]),
            ),
        )
        .await
        .expect("second watch");
    let created = next(&mut stream).await;
    assert!(
        created.created() && !created.canceled() && created.watch_id() == 7,
        "{created:?}"
    );

    // A watch ID already in use on the stream is refused.
    stream
        .watch("x", Some(WatchOptions::new().with_watch_id(7)))
        .await
        .expect("duplicate watch");
    let dup = next(&mut stream).await;
    assert!(dup.created() && dup.canceled(), "{dup:?}");
    assert_eq!(
        (dup.watch_id(), dup.cancel_reason()),
        (-1, "mvcc: duplicate watch ID provided on the WatchStream"),
        "{dup:?}"
    );

    put(&mut client, "p/x", "1").await;
    client.delete("p/x", None).await.expect("delete");
    put(&mut client, "other", "1").await;
    let last = put(&mut client, "a", "2").await;
    assert_eq!(
        read_events(&mut stream, 2).await,
        [
            (7, "PUT", "p/x".into(), "1".into(), None),
            (w0, "PUT", "a".into(), "2".into(), None)
        ]
    );

    // Everything up to the current revision has been sent: a progress request says so.
    stream.request_progress().await.expect("progress request");
    let progress = next(&mut stream).await;
    assert!(
        progress.events().is_empty() && !progress.created() && !progress.canceled(),
        "{progress:?}"
    );
    assert_eq!(progress.watch_id(), -1);
    assert_eq!(progress.header().expect("header").revision(), last);

    // After a cancel, the watcher gets nothing more; the other one goes on.
    stream.cancel(7).await.expect("cancel");
    let canceled = next(&mut stream).await;
    assert!(
        canceled.canceled() && canceled.watch_id() == 7,
        "{canceled:?}"
    );
    put(&mut client, "p/y", "1").await;
    put(&mut client, "a", "3").await;
    assert_eq!(
        read_events(&mut stream, 1).await,
        [(w0, "PUT", "a".into(), "3".into(), Some("2".into()))]
    );

    // A watch from a compacted revision is canceled with the compaction point.
    let now = put(&mut client, "c", "1").await;
    client.compact(now, None).await.expect("compact");
    stream
        .watch("a", Some(WatchOptions::new().with_start_revision(first)))
        .await
        .expect("watch");
    let mut resp = next(&mut stream).await;
    if resp.created() && !resp.canceled() {
        // etcd answers created first, then cancels.
        resp = next(&mut stream).await;
    }
    assert!(resp.canceled(), "{resp:?}");
    assert_eq!(resp.compact_revision(), now);
    // etcd 3.4 gives no reason here: clients tell it from the compact revision.
    assert_eq!(resp.cancel_reason(), "");
}

/// Many watchers on one stream all see every put, in order, one response per watcher.
#[tokio::test]
async fn every_watcher_of_a_stream_sees_every_event() {
    let cluster = three_members().await;
    let mut client = cluster.member_client(1).await.expect("client");
    let mut stream = client.watch("k", None).await.expect("watch");
    let mut ids = vec![next(&mut stream).await.watch_id()];
    for _ in 1..50 {
        stream.watch("k", None).await.expect("watch");
        let created = next(&mut stream).await;
        assert!(created.created(), "{created:?}");
        ids.push(created.watch_id());
    }
    let mut writer = cluster.member_client(0).await.expect("client");
    for i in 0..20 {
        put(&mut writer, "k", &i.to_string()).await;
    }
    let seen = read_events(&mut stream, ids.len() * 20).await;
    for id in &ids {
        let values: Vec<String> = seen
            .iter()
            .filter(|s| s.0 == *id)
            .map(|s| s.3.clone())
            .collect();
        assert_eq!(
            values,
            (0..20).map(|i| i.to_string()).collect::<Vec<_>>(),
            "watcher {id}"
        );
    }
}
