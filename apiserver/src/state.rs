//! The state every request shares: configuration, the store connection and its watch caches,
//! authentication and authorization, metrics, audit, the Service allocator and the agent client.

use std::sync::Arc;

use crate::{
    audit::Audit,
    auth::{Authenticator, Authorizer},
    cache::Caches,
    config::Config,
    kubelet::KubeletClient,
    metrics::Metrics,
    services::Allocator,
    storage::Storage,
};

/// Everything a request handler may use.
pub struct AppState {
    pub config: Config,
    pub storage: Storage,
    pub caches: Caches,
    pub authn: Authenticator,
    pub authz: Authorizer,
    pub metrics: Metrics,
    pub audit: Audit,
    pub allocator: Allocator,
    pub kubelet: KubeletClient,
}

/// The state as handlers hold it.
pub type Shared = Arc<AppState>;
