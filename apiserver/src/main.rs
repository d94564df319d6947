//! The apiserver binary: flags, store connection, watch caches, built-in namespaces, HTTPS.

mod audit;
mod auth;
mod cache;
mod config;
mod discovery;
mod handlers;
mod kubelet;
mod metrics;
mod metrics_api;
mod protobuf;
mod registry;
mod request;
mod server;
mod services;
mod state;
mod storage;
mod tls;

use std::{sync::Arc, time::Duration};

/// jemalloc instead of glibc's malloc: with 30,000 pods it holds the apiserver at 1.75 times
/// the objects' JSON where glibc took 2.05 (BENCHMARKS.md, "Memory per object").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use anyhow::{Context, Result};
use clap::Parser;
use serde_json::json;
use tracing::{info, warn};

use crate::{
    config::Config,
    storage::{Storage, StorageError, StoreTls},
};

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = Config::parse();
    if let Err(e) = run(config).await {
        eprintln!("apiserver: {e:#}");
        std::process::exit(1);
    }
}

fn read_opt(path: &Option<std::path::PathBuf>) -> Result<Option<Vec<u8>>> {
    path.as_ref()
        .map(|p| std::fs::read(p).with_context(|| format!("reading {}", p.display())))
        .transpose()
}

async fn run(config: Config) -> Result<()> {
    let tls_config = tls::server_config(
        &config.tls_cert_file,
        &config.tls_private_key_file,
        config.client_ca_file.as_deref(),
    )?;
    let store_tls = StoreTls {
        ca: read_opt(&config.etcd_cafile)?,
        cert_and_key: match (
            read_opt(&config.etcd_certfile)?,
            read_opt(&config.etcd_keyfile)?,
        ) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => anyhow::bail!("--etcd-certfile and --etcd-keyfile go together"),
        },
    };
    let metrics = metrics::Metrics::new();
    let storage = Storage::connect(
        &config.etcd_servers,
        &store_tls,
        metrics.storage_latency.clone(),
    )
    .await
    .with_context(|| {
        format!(
            "connecting to the store at {}",
            config.etcd_servers.join(",")
        )
    })?;
    let allocator = services::Allocator::new(
        &config.service_cluster_ip_range,
        &config.service_node_port_range,
    )
    .map_err(anyhow::Error::msg)?;
    let state = Arc::new(state::AppState {
        authn: auth::Authenticator::load(config.token_auth_file.as_deref())?,
        authz: auth::Authorizer::load(config.authorization_policy_file.as_deref())?,
        audit: audit::Audit::open(config.audit_log_path.as_deref())
            .context("opening the audit log")?,
        metrics,
        caches: cache::Caches::start(&storage),
        storage: storage.clone(),
        allocator,
        kubelet: kubelet::KubeletClient::new(
            config
                .kubelet_client_certificate
                .as_deref()
                .zip(config.kubelet_client_key.as_deref()),
            config.kubelet_certificate_authority.as_deref(),
            &config.kubelet_preferred_address_types,
        )
        .context("setting up TLS to the agents")?,
        config: config.clone(),
    });
    ensure_namespaces(&storage).await;
    ensure_kubernetes_service(&storage, &state.allocator, &config).await;
    if config.etcd_compaction_interval > 0 {
        tokio::spawn(compactor(
            storage.clone(),
            Duration::from_secs(config.etcd_compaction_interval),
        ));
    }
    let addr = std::net::SocketAddr::new(config.bind_address, config.secure_port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    info!(%addr, store = %config.etcd_servers.join(","), "serving the Kubernetes API over HTTPS");
    tls::serve(listener, tls_config, server::router(state)).await
}

/// Creates the built-in namespaces when absent (several apiservers may race; the store decides).
async fn ensure_namespaces(storage: &Storage) {
    let namespaces =
        api::registry::find("", "v1", "namespaces").expect("namespaces are registered");
    for name in registry::BUILTIN_NAMESPACES {
        let key = namespaces.key(None, name);
        let mut backoff = Duration::from_millis(200);
        loop {
            let obj = json!({
                "kind": "Namespace",
                "apiVersion": "v1",
                "metadata": {
                    "name": name,
                    "uid": uuid::Uuid::new_v4().to_string(),
                    "creationTimestamp": handlers::now(),
                    "labels": {"kubernetes.io/metadata.name": name},
                },
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            });
            match storage.create(&key, &obj, &[], None).await {
                Ok(_) | Err(StorageError::AlreadyExists) => {
                    ensure_default_service_account(storage, name).await;
                    break;
                }
                Err(e) => {
                    warn!(namespace = name, error = %e, "creating a built-in namespace failed; \
                        retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

/// Creates the `default` ServiceAccount of a built-in namespace (pods name it by default).
async fn ensure_default_service_account(storage: &Storage, namespace: &str) {
    let sas =
        api::registry::find("", "v1", "serviceaccounts").expect("serviceaccounts are registered");
    let sa = json!({
        "kind": "ServiceAccount", "apiVersion": "v1",
        "metadata": {"name": "default", "namespace": namespace,
            "uid": uuid::Uuid::new_v4().to_string(), "creationTimestamp": handlers::now()},
    });
    match storage
        .create(&sas.key(Some(namespace), "default"), &sa, &[], None)
        .await
    {
        Ok(_) | Err(StorageError::AlreadyExists) => {}
        Err(e) => warn!(namespace, error = %e, "creating the default ServiceAccount failed"),
    }
}

/// Creates the `kubernetes` Service (the first address of the service range) and adds this
/// apiserver's address to its Endpoints, as kube-apiserver does.
async fn ensure_kubernetes_service(
    storage: &Storage,
    allocator: &services::Allocator,
    config: &Config,
) {
    let services = api::registry::find("", "v1", "services").expect("services are registered");
    let endpoints = api::registry::find("", "v1", "endpoints").expect("endpoints are registered");
    let ip = allocator.first_ip().to_string();
    let svc = json!({
        "kind": "Service", "apiVersion": "v1",
        "metadata": {"name": "kubernetes", "namespace": "default",
            "uid": uuid::Uuid::new_v4().to_string(),
            "creationTimestamp": handlers::now(),
                "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"type": "ClusterIP", "clusterIP": ip, "clusterIPs": [ip],
            "sessionAffinity": "None",
            "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                "internalTrafficPolicy": "Cluster",
            "ports": [{"name": "https", "port": 443, "protocol": "TCP",
                "targetPort": config.secure_port}]},
        "status": {"loadBalancer": {}},
    });
    let reserve = [(
        services::Allocator::ip_key(&ip),
        "default/kubernetes".to_string(),
    )];
    match storage
        .create(
            &services.key(Some("default"), "kubernetes"),
            &svc,
            &reserve,
            None,
        )
        .await
    {
        Ok(_) | Err(StorageError::AlreadyExists) | Err(StorageError::Reserved(_)) => {}
        Err(e) => warn!(error = %e, "creating the kubernetes Service failed"),
    }
    let address = config.bind_address.to_string();
    let key = endpoints.key(Some("default"), "kubernetes");
    for _ in 0..5 {
        let current = match storage.get(&key).await {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "reading the kubernetes Endpoints failed");
                return;
            }
        };
        let port = json!({"name": "https", "port": config.secure_port, "protocol": "TCP"});
        let result = match current {
            None => {
                let ep = json!({
                    "kind": "Endpoints", "apiVersion": "v1",
                    "metadata": {"name": "kubernetes", "namespace": "default",
                        "uid": uuid::Uuid::new_v4().to_string(),
                        "creationTimestamp": handlers::now(),
                            "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
                    "subsets": [{"addresses": [{"ip": address}], "ports": [port]}],
                });
                storage.create(&key, &ep, &[], None).await.map(|_| ())
            }
            Some(cur) => {
                let mut ep = cur.object.clone();
                let subsets = ep["subsets"].as_array().cloned().unwrap_or_default();
                let present = subsets.iter().any(|s| {
                    s["ports"]
                        .as_array()
                        .is_some_and(|ps| ps.iter().any(|p| p["port"] == port["port"]))
                        && s["addresses"]
                            .as_array()
                            .is_some_and(|a| a.iter().any(|x| x["ip"] == json!(address)))
                });
                if present {
                    return;
                }
                let mut subsets = subsets;
                match subsets.iter_mut().find(|s| {
                    s["ports"]
                        .as_array()
                        .is_some_and(|ps| ps.iter().any(|p| p["port"] == port["port"]))
                }) {
                    Some(s) => {
                        if let Some(a) = s["addresses"].as_array_mut() {
                            a.push(json!({"ip": address}));
                        }
                    }
                    None => subsets.push(json!({"addresses": [{"ip": address}], "ports": [port]})),
                }
                ep["subsets"] = json!(subsets);
                storage
                    .update(&key, &ep, cur.mod_revision, &[], &[], None)
                    .await
                    .map(|_| ())
            }
        };
        match result {
            Ok(()) => return,
            Err(StorageError::Conflict | StorageError::AlreadyExists) => continue,
            Err(e) => {
                warn!(error = %e, "writing the kubernetes Endpoints failed");
                return;
            }
        }
    }
}

/// Compacts the store's history every `interval`, as kube-apiserver does: the apiservers agree
/// through a compare-and-swap on one key, so one compaction happens per interval in all.
async fn compactor(storage: Storage, interval: Duration) {
    const KEY: &str = "compact_rev_key";
    let mut version = 0;
    let mut last_rev = 0;
    loop {
        tokio::time::sleep(interval).await;
        let current = match storage.current_revision().await {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "compactor: reading the revision failed");
                continue;
            }
        };
        match storage
            .put_if_version(KEY, &current.to_string(), version)
            .await
        {
            Ok((true, v, _)) => {
                version = v;
                if last_rev > 0 {
                    match storage.compact(last_rev).await {
                        Ok(()) => info!(revision = last_rev, "compacted the store"),
                        Err(e) => warn!(revision = last_rev, error = %e, "compaction failed"),
                    }
                }
                last_rev = current;
            }
            Ok((false, v, value)) => {
                // Another apiserver compacted this interval; follow its schedule.
                version = v;
                last_rev = value.parse().unwrap_or(0);
            }
            Err(e) => warn!(error = %e, "compactor: store unreachable"),
        }
    }
}
