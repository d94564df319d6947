//! The client library of our components: a kube-rs client built from a kubeconfig, informers
//! (list then watch into a shared cache, resuming and relisting as kube-rs' watcher does) and
//! lease-based leader election on `coordination.k8s.io/v1` Leases. [`cache`] adds secondary
//! indexes to an informer's cache; [`handler`] hands each watch event to a function instead;
//! [`events`] records Events as Kubernetes' recorder does.

pub mod cache;
pub mod controller;
pub mod events;
pub mod handler;
pub mod leader;
pub mod throttle;
pub mod workqueue;

use std::path::Path;

use futures::{Future, StreamExt};
use kube::{
    config::{KubeConfigOptions, Kubeconfig},
    runtime::{reflector, watcher, WatchStreamExt},
    Api, Resource,
};
use serde::de::DeserializeOwned;

pub use kube;

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The kubeconfig could not be read or parsed.
    #[error("reading the kubeconfig: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    /// The kubeconfig was read but names no usable cluster or user.
    #[error("loading the client configuration: {0}")]
    Config(String),
    /// The HTTP client could not be built (TLS material, proxy...).
    #[error("building the client: {0}")]
    Build(#[from] kube::Error),
}

/// A client from `path` (or `KUBECONFIG`, or `~/.kube/config` when None), using `context`
/// (or the current one). Returns the client and the context's default namespace.
pub async fn from_kubeconfig(
    path: Option<&Path>,
    context: Option<&str>,
) -> Result<(kube::Client, String), ClientError> {
    from_kubeconfig_throttled(path, context, None).await
}

/// [`from_kubeconfig`] whose requests are held to `throttle` (a component's
/// `--kube-api-qps`/`--kube-api-burst`; None: no limit).
pub async fn from_kubeconfig_throttled(
    path: Option<&Path>,
    context: Option<&str>,
    throttle: Option<throttle::Throttle>,
) -> Result<(kube::Client, String), ClientError> {
    let options = KubeConfigOptions {
        context: context.map(str::to_string),
        ..Default::default()
    };
    let config = match path {
        Some(p) => {
            kube::Config::from_custom_kubeconfig(Kubeconfig::read_from(p)?, &options).await?
        }
        None => kube::Config::from_kubeconfig(&options).await?,
    };
    let namespace = config.default_namespace.clone();
    Ok((multiplexed(config, throttle)?, namespace))
}

/// A client whose requests share one HTTP/2 connection when the server offers it (ours
/// does), as client-go's: kube's own builder speaks HTTP/1.1 only, so each request in flight
/// (each watch above all) holds a TCP and TLS connection of its own. 1,000 hollow nodes held
/// 8,500 connections to the apiserver that way, about 40 KB of its memory each. The layers
/// are kube's (base URI, bearer token, extra headers); client certificates go in the TLS
/// configuration. Upgraded connections (exec, port-forward) are not made through it.
/// With `throttle`, every request first waits for its token ([`throttle`]).
pub fn multiplexed(
    config: kube::Config,
    throttle: Option<throttle::Throttle>,
) -> Result<kube::Client, ClientError> {
    use kube::client::ConfigExt;
    let tls = config.rustls_client_config()?;
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(config.connect_timeout);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    let transport =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build::<_, kube::client::Body>(https);
    let service = tower::ServiceBuilder::new()
        .option_layer(throttle.map(throttle::ThrottleLayer::new))
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(Box::<dyn std::error::Error + Send + Sync>::from)
        .service(transport);
    Ok(kube::Client::new(service, config.default_namespace))
}

/// An informer: a shared, always-current cache of the objects `api` lists, and the future that
/// keeps it current (list, then watch from the last resourceVersion; relist on 410 Gone).
/// Run the future (e.g. `tokio::spawn`) and read the store.
pub fn informer<K>(
    api: Api<K>,
    config: watcher::Config,
) -> (reflector::Store<K>, impl Future<Output = ()> + Send)
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, config)
        .default_backoff()
        .reflect(writer)
        .applied_objects();
    (reader, drive(stream))
}

/// Polls an informer's stream forever; the watcher retries (with backoff) after each error.
pub(crate) async fn drive<T, E: std::fmt::Display>(
    stream: impl futures::Stream<Item = Result<T, E>> + Send,
) {
    futures::pin_mut!(stream);
    while let Some(item) = stream.next().await {
        if let Err(e) = item {
            tracing::warn!(error = %e, "informer watch error; retrying");
        }
    }
}
