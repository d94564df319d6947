//! Writes sent to a follower, which forwards them to the leader in batches: each write gets
//! its own result, and the follower's own reads see it as soon as it is acknowledged.

use etcd_client::GetOptions;

use crate::common::*;

#[tokio::test]
async fn concurrent_writes_through_a_follower_each_get_their_own_result() {
    let cluster = three_members().await;
    let leader = cluster.leader().await.expect("a leader");
    let follower = (0..3).find(|i| *i != leader).expect("a follower");
    let client = cluster.member_client(follower).await.expect("client");
    let writes = (0..64).map(|i| {
        let mut kv = client.kv_client();
        async move {
            let resp = kv
                .put(format!("fwd/{i:02}"), format!("v{i}"), None)
                .await
                .expect("put");
            (i, resp.header().expect("header").revision())
        }
    });
    let mut results = futures::future::join_all(writes).await;
    let mut revisions: Vec<i64> = results.iter().map(|(_, rev)| *rev).collect();
    revisions.sort();
    revisions.dedup();
    assert_eq!(
        revisions.len(),
        64,
        "each write has a revision of its own: {results:?}"
    );
    // Read back on the follower alone (serializable): acknowledged means applied there too.
    results.sort();
    let mut kv = client.kv_client();
    for (i, rev) in results {
        let got = kv
            .get(
                format!("fwd/{i:02}"),
                Some(GetOptions::new().with_serializable()),
            )
            .await
            .expect("get");
        let kv = &got.kvs()[0];
        assert_eq!(
            (kv.value_str().expect("utf-8"), kv.mod_revision()),
            (format!("v{i}").as_str(), rev)
        );
    }
}
