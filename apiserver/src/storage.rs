//! The apiserver's only door to the store: objects as JSON under `/registry/...` keys, with the
//! store's revisions as resourceVersions and compare-and-swap transactions for every write.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, GetOptions, Identity, PutOptions,
    TlsOptions, Txn, TxnOp, TxnOpResponse, WatchOptions, WatchStream,
};
use serde_json::Value;
use tonic::Code;

/// How a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The create found the key already present.
    #[error("already exists")]
    AlreadyExists,
    /// The object is absent (or a compare on its revision failed because it was deleted).
    #[error("not found")]
    NotFound,
    /// The object changed since the revision the caller read.
    #[error("the object has been modified")]
    Conflict,
    /// A reservation key (cluster IP, node port) is already held.
    #[error("reservation {0} is taken")]
    Reserved(String),
    /// The revision asked for has been compacted away.
    #[error("the requested revision {0} has been compacted")]
    Compacted(i64),
    /// The stored bytes are not a JSON object.
    #[error("stored object at {key} is not valid JSON: {err}")]
    Corrupt { key: String, err: String },
    /// The store refused or could not be reached.
    #[error("{0}")]
    Store(#[from] etcd_client::Error),
}

impl StorageError {
    /// The gRPC status code the store answered with; None when it gave no answer of its own
    /// (an error of the client library, or not a store failure at all).
    pub fn code(&self) -> Option<Code> {
        match self {
            StorageError::Store(etcd_client::Error::GRpcStatus(status)) => Some(status.code()),
            _ => None,
        }
    }

    /// True when the store refused the request as too big. etcd answers that with
    /// InvalidArgument ("request is too large"); it is the only InvalidArgument our requests
    /// can meet, as their keys are never empty and their transactions touch a few distinct
    /// keys.
    pub fn is_too_large(&self) -> bool {
        self.code() == Some(Code::InvalidArgument)
    }

    /// True when the store could not answer in time: DeadlineExceeded, or Unavailable, which
    /// etcd answers for a request that timed out inside it ("request timed out") as for an
    /// election that did not finish ("no leader") and a member it cannot reach. The request
    /// may still take effect.
    pub fn is_timeout(&self) -> bool {
        matches!(
            self.code(),
            Some(Code::DeadlineExceeded | Code::Unavailable)
        )
    }
}

/// One object read from the store.
#[derive(Debug, Clone)]
pub struct Stored {
    pub key: String,
    pub object: Value,
    /// The object's resourceVersion.
    pub mod_revision: i64,
}

/// One page of a range read.
#[derive(Debug, Default)]
pub struct Page {
    pub items: Vec<Stored>,
    /// The store revision the page was read at.
    pub revision: i64,
    /// More keys follow the last item.
    pub more: bool,
    /// Number of keys in the range after this page (when `more`).
    pub remaining: i64,
}

/// TLS material to reach the store.
#[derive(Debug, Clone, Default)]
pub struct StoreTls {
    pub ca: Option<Vec<u8>>,
    pub cert_and_key: Option<(Vec<u8>, Vec<u8>)>,
}

/// A connection to the store (cheap to clone).
#[derive(Clone)]
pub struct Storage {
    client: Client,
    /// `etcd_request_duration_seconds{operation, type}`: each call's time in the store, as
    /// kube-apiserver's histogram of the same name, so a slow API call can be told apart
    /// from a slow store.
    latency: prometheus::HistogramVec,
    /// The lease that keys written with a time to live (events) share, as kube-apiserver's
    /// lease manager: one grant a minute, not one per event.
    lease: Arc<tokio::sync::Mutex<Option<SharedLease>>>,
}

/// A granted lease that further keys of the same time to live may join.
#[derive(Debug, Clone, Copy)]
struct SharedLease {
    id: i64,
    /// The time to live it was granted for.
    ttl: Duration,
    /// When the store will expire it (and delete its keys).
    expires: Instant,
}

impl SharedLease {
    /// Whether a key written at `now` that must live `ttl` may join this lease: the lease
    /// outlives it by at least `ttl`, and by no more than the reuse period.
    fn fits(&self, ttl: Duration, now: Instant) -> bool {
        self.ttl == ttl && now + ttl <= self.expires
    }
}

/// How much longer than asked a shared lease lives, so that it can be joined for that long:
/// 5% of the time to live, at most a minute (kube-apiserver's reuse period).
fn reuse_period(ttl: Duration) -> Duration {
    (ttl / 20).min(Duration::from_secs(60))
}

/// The resource a registry key belongs to: `/registry/pods/ns/name` is `pods`.
fn key_type(key: &str) -> &str {
    key.strip_prefix("/registry/")
        .and_then(|rest| rest.split('/').next())
        .filter(|t| !t.is_empty())
        .unwrap_or("other")
}

impl Storage {
    /// Connects to the store members (`http://` or `https://` URLs).
    pub async fn connect(
        endpoints: &[String],
        tls: &StoreTls,
        latency: prometheus::HistogramVec,
    ) -> Result<Self, StorageError> {
        let mut options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(3))
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5));
        if tls.ca.is_some() || tls.cert_and_key.is_some() {
            let mut t = TlsOptions::new();
            if let Some(ca) = &tls.ca {
                t = t.ca_certificate(Certificate::from_pem(ca.clone()));
            }
            if let Some((cert, key)) = &tls.cert_and_key {
                t = t.identity(Identity::from_pem(cert.clone(), key.clone()));
            }
            options = options.with_tls(t);
        }
        let client = Client::connect(endpoints, Some(options)).await?;
        Ok(Storage {
            client,
            latency,
            lease: Default::default(),
        })
    }

    /// The lease a key that must live `ttl` joins: the shared one while it fits, else a new
    /// grant of `ttl` plus the reuse period.
    async fn lease_for(&self, ttl: Duration) -> Result<i64, StorageError> {
        let mut shared = self.lease.lock().await;
        let now = Instant::now();
        if let Some(l) = shared.filter(|l| l.fits(ttl, now)) {
            return Ok(l.id);
        }
        let asked = (ttl + reuse_period(ttl)).as_secs_f64().ceil().max(1.0) as i64;
        let granted = self
            .timed(
                "grant",
                "/registry/store-leases",
                self.client.lease_client().grant(asked, None),
            )
            .await?;
        // The store may grant more than asked (its minimum), never less.
        let lease = SharedLease {
            id: granted.id(),
            ttl,
            expires: now + Duration::from_secs(granted.ttl().max(asked) as u64),
        };
        *shared = Some(lease);
        Ok(lease.id)
    }

    /// Forgets the shared lease `id` (the store no longer has it).
    async fn drop_lease(&self, id: i64) {
        let mut shared = self.lease.lock().await;
        if shared.is_some_and(|l| l.id == id) {
            *shared = None;
        }
    }

    /// Runs `txn` built for the lease a key of `ttl` joins (none without a ttl). A lease the
    /// store no longer knows (NotFound: revoked, or lost with a restore) is dropped and the
    /// write tried once more with a new one.
    async fn txn_with_lease(
        &self,
        operation: &str,
        key: &str,
        ttl: Option<Duration>,
        build: impl Fn(Option<PutOptions>) -> Txn,
    ) -> Result<etcd_client::TxnResponse, StorageError> {
        let mut retried = false;
        loop {
            let lease = match ttl {
                Some(ttl) => Some(self.lease_for(ttl).await?),
                None => None,
            };
            let txn = build(lease.map(|id| PutOptions::new().with_lease(id)));
            match self.timed(operation, key, self.kv().txn(txn)).await {
                Err(e) => {
                    let e = StorageError::from(e);
                    match lease {
                        Some(id) if !retried && e.code() == Some(Code::NotFound) => {
                            self.drop_lease(id).await;
                            retried = true;
                        }
                        _ => return Err(e),
                    }
                }
                Ok(r) => return Ok(r),
            }
        }
    }

    /// Runs the store call `call`, timed as `operation` on `key`'s resource.
    async fn timed<T>(&self, operation: &str, key: &str, call: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let out = call.await;
        self.latency
            .with_label_values(&[operation, key_type(key)])
            .observe(started.elapsed().as_secs_f64());
        out
    }

    /// A KV client that accepts responses of any size (a big list), as kube-apiserver's.
    fn kv(&self) -> etcd_client::KvClient {
        self.client
            .kv_client()
            .max_decoding_message_size(i32::MAX as usize)
    }

    fn decode(key: &[u8], value: &[u8], mod_revision: i64) -> Result<Stored, StorageError> {
        let key = String::from_utf8_lossy(key).into_owned();
        let mut object: Value =
            serde_json::from_slice(value).map_err(|e| StorageError::Corrupt {
                key: key.clone(),
                err: e.to_string(),
            })?;
        set_resource_version(&mut object, mod_revision);
        Ok(Stored {
            key,
            object,
            mod_revision,
        })
    }

    fn encode(object: &Value) -> Vec<u8> {
        let mut copy = object.clone();
        if let Some(meta) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
        }
        serde_json::to_vec(&copy).unwrap_or_default()
    }

    /// Reads one object (linearizable).
    pub async fn get(&self, key: &str) -> Result<Option<Stored>, StorageError> {
        let resp = self.timed("get", key, self.kv().get(key, None)).await?;
        match resp.kvs().first() {
            Some(kv) => Ok(Some(Self::decode(kv.key(), kv.value(), kv.mod_revision())?)),
            None => Ok(None),
        }
    }

    /// Reads up to `limit` objects (0: all) whose keys start with `prefix`, beginning after
    /// `start` (a full key, inclusive when `inclusive`), at `revision` (0: now).
    pub async fn list(
        &self,
        prefix: &str,
        start: Option<&str>,
        limit: i64,
        revision: i64,
    ) -> Result<Page, StorageError> {
        let end = prefix_end(prefix);
        let from = start
            .map(|s| format!("{s}\0"))
            .unwrap_or_else(|| prefix.to_string());
        let mut opts = GetOptions::new().with_range(end);
        if limit > 0 {
            opts = opts.with_limit(limit);
        }
        if revision > 0 {
            opts = opts.with_revision(revision);
        }
        let resp = match self
            .timed("list", prefix, self.kv().get(from, Some(opts)))
            .await
        {
            Ok(r) => r,
            Err(e) => return Err(self.range_error(e, revision).await),
        };
        let revision = resp.header().map(|h| h.revision()).unwrap_or_default();
        let mut items = Vec::with_capacity(resp.kvs().len());
        for kv in resp.kvs() {
            items.push(Self::decode(kv.key(), kv.value(), kv.mod_revision())?);
        }
        let remaining = resp.count() - items.len() as i64;
        Ok(Page {
            items,
            revision,
            more: resp.more(),
            remaining,
        })
    }

    /// What a failed read at `revision` (0: now) means. etcd answers OutOfRange both for a
    /// revision compacted away and for one it has not reached yet; the current revision tells
    /// them apart.
    async fn range_error(&self, e: etcd_client::Error, revision: i64) -> StorageError {
        let e = StorageError::from(e);
        if revision > 0 && e.code() == Some(Code::OutOfRange) {
            if let Ok(current) = self.current_revision().await {
                if revision <= current {
                    return StorageError::Compacted(revision);
                }
            }
        }
        e
    }

    /// The store's current revision (a linearizable read).
    pub async fn current_revision(&self) -> Result<i64, StorageError> {
        let resp = self
            .client
            .kv_client()
            .get(
                "/registry/health",
                Some(GetOptions::new().with_count_only()),
            )
            .await?;
        Ok(resp.header().map(|h| h.revision()).unwrap_or_default())
    }

    /// Creates `key` (which must be absent) together with reservation keys (which must be absent
    /// too). Returns the new object's resourceVersion.
    pub async fn create(
        &self,
        key: &str,
        object: &Value,
        reserve: &[(String, String)],
        ttl: Option<Duration>,
    ) -> Result<i64, StorageError> {
        let value = Self::encode(object);
        let build = |lease: Option<PutOptions>| {
            let mut compares = vec![Compare::create_revision(key, CompareOp::Equal, 0)];
            let mut ops = vec![TxnOp::put(key, value.clone(), lease)];
            for (k, v) in reserve {
                compares.push(Compare::create_revision(k.as_str(), CompareOp::Equal, 0));
                ops.push(TxnOp::put(k.as_str(), v.as_bytes(), None));
            }
            let mut failure = vec![TxnOp::get(key, None)];
            for (k, _) in reserve {
                failure.push(TxnOp::get(k.as_str(), None));
            }
            Txn::new().when(compares).and_then(ops).or_else(failure)
        };
        let resp = self.txn_with_lease("create", key, ttl, build).await?;
        if resp.succeeded() {
            return Ok(resp.header().map(|h| h.revision()).unwrap_or_default());
        }
        let responses = resp.op_responses();
        if let Some(TxnOpResponse::Get(g)) = responses.first() {
            if !g.kvs().is_empty() {
                return Err(StorageError::AlreadyExists);
            }
        }
        for (i, r) in responses.iter().enumerate().skip(1) {
            if let TxnOpResponse::Get(g) = r {
                if !g.kvs().is_empty() {
                    return Err(StorageError::Reserved(reserve[i - 1].0.clone()));
                }
            }
        }
        Err(StorageError::Conflict)
    }

    /// Replaces `key` if its revision is still `expected`, adding and removing reservation
    /// keys in the same transaction. Returns the new resourceVersion.
    pub async fn update(
        &self,
        key: &str,
        object: &Value,
        expected: i64,
        reserve: &[(String, String)],
        release: &[String],
        ttl: Option<Duration>,
    ) -> Result<i64, StorageError> {
        let value = Self::encode(object);
        let build = |lease: Option<PutOptions>| {
            let mut compares = vec![Compare::mod_revision(key, CompareOp::Equal, expected)];
            let mut ops = vec![TxnOp::put(key, value.clone(), lease)];
            for (k, v) in reserve {
                compares.push(Compare::create_revision(k.as_str(), CompareOp::Equal, 0));
                ops.push(TxnOp::put(k.as_str(), v.as_bytes(), None));
            }
            for k in release {
                ops.push(TxnOp::delete(k.as_str(), None));
            }
            Txn::new()
                .when(compares)
                .and_then(ops)
                .or_else(vec![TxnOp::get(key, None)])
        };
        let resp = self.txn_with_lease("update", key, ttl, build).await?;
        if resp.succeeded() {
            return Ok(resp.header().map(|h| h.revision()).unwrap_or_default());
        }
        match resp.op_responses().first() {
            Some(TxnOpResponse::Get(g)) if g.kvs().is_empty() => Err(StorageError::NotFound),
            Some(TxnOpResponse::Get(g)) if g.kvs()[0].mod_revision() == expected => Err(
                StorageError::Reserved(reserve.first().map(|r| r.0.clone()).unwrap_or_default()),
            ),
            _ => Err(StorageError::Conflict),
        }
    }

    /// Deletes `key` if its revision is still `expected`, with the reservation keys it held.
    /// Returns the deletion's revision.
    pub async fn delete(
        &self,
        key: &str,
        expected: i64,
        release: &[String],
    ) -> Result<i64, StorageError> {
        let mut ops = vec![TxnOp::delete(key, None)];
        for k in release {
            ops.push(TxnOp::delete(k.as_str(), None));
        }
        let txn = Txn::new()
            .when(vec![Compare::mod_revision(key, CompareOp::Equal, expected)])
            .and_then(ops)
            .or_else(vec![TxnOp::get(key, None)]);
        let resp = self.timed("delete", key, self.kv().txn(txn)).await?;
        if resp.succeeded() {
            return Ok(resp.header().map(|h| h.revision()).unwrap_or_default());
        }
        match resp.op_responses().first() {
            Some(TxnOpResponse::Get(g)) if g.kvs().is_empty() => Err(StorageError::NotFound),
            _ => Err(StorageError::Conflict),
        }
    }

    /// Keys (not values) under `prefix`: used for reservation bookkeeping.
    pub async fn keys(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let resp = self
            .client
            .kv_client()
            .get(
                prefix,
                Some(GetOptions::new().with_prefix().with_keys_only()),
            )
            .await?;
        Ok(resp
            .kvs()
            .iter()
            .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
            .collect())
    }

    /// Compare-and-swap on a plain key's version (used by the compactor's election).
    pub async fn put_if_version(
        &self,
        key: &str,
        value: &str,
        version: i64,
    ) -> Result<(bool, i64, String), StorageError> {
        let txn = Txn::new()
            .when(vec![Compare::version(key, CompareOp::Equal, version)])
            .and_then(vec![TxnOp::put(key, value.as_bytes(), None)])
            .or_else(vec![TxnOp::get(key, None)]);
        let resp = self.kv().txn(txn).await?;
        if resp.succeeded() {
            return Ok((true, version + 1, value.to_string()));
        }
        match resp.op_responses().first() {
            Some(TxnOpResponse::Get(g)) if !g.kvs().is_empty() => {
                let kv = &g.kvs()[0];
                Ok((
                    false,
                    kv.version(),
                    String::from_utf8_lossy(kv.value()).into_owned(),
                ))
            }
            _ => Ok((false, 0, String::new())),
        }
    }

    /// Compacts the store's history up to `revision`.
    pub async fn compact(&self, revision: i64) -> Result<(), StorageError> {
        self.kv().compact(revision, None).await?;
        Ok(())
    }

    /// Opens a watch on `prefix` from `start_revision`, with previous values and progress
    /// notifications. Returns the stream on which progress can also be requested.
    pub async fn watch(
        &self,
        prefix: &str,
        start_revision: i64,
    ) -> Result<WatchStream, StorageError> {
        let opts = WatchOptions::new()
            .with_prefix()
            .with_start_revision(start_revision)
            .with_prev_key()
            .with_progress_notify();
        Ok(self.client.watch_client().watch(prefix, Some(opts)).await?)
    }

    /// Decodes a watch event's key/value into a stored object.
    pub fn decode_kv(kv: &etcd_client::KeyValue) -> Result<Stored, StorageError> {
        Self::decode(kv.key(), kv.value(), kv.mod_revision())
    }
}

/// Sets `metadata.resourceVersion`.
pub fn set_resource_version(object: &mut Value, revision: i64) {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert(
            "resourceVersion".into(),
            Value::String(revision.to_string()),
        );
    }
}

/// The end of the key range holding every key that starts with `prefix`.
pub fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_type_is_the_resource_of_a_registry_key() {
        assert_eq!(key_type("/registry/pods/default/web-1"), "pods");
        assert_eq!(key_type("/registry/pods/"), "pods");
        assert_eq!(key_type("/registry/namespaces/kube-system"), "namespaces");
        assert_eq!(key_type("/registry/"), "other");
        assert_eq!(key_type("/elsewhere"), "other");
    }

    #[test]
    fn prefix_end_increments_last_byte() {
        assert_eq!(prefix_end("/registry/pods/"), b"/registry/pods0".to_vec());
    }
}
