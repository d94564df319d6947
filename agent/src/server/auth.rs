//! Who may call the agent API. The TLS handshake already required a client certificate from
//! the cluster CA; here the user it names ([`Peer`]) is checked: the pod endpoints (logs,
//! exec, stats) need a user or group of the [`Policy`], as the kubelet asks for `nodes/proxy`
//! (`nodes/stats`); `/healthz` and `/metrics` need only the certificate.

use std::collections::HashSet;

use api::status::StatusError;
use axum::{
    extract::{Request, State},
    middleware::Next,
    response::Response,
};
use tlsfiles::CertUser;

use super::{status, Ctx};

/// The user of the connection's client certificate (None: no usable subject).
#[derive(Debug, Clone)]
pub struct Peer(pub Option<CertUser>);

/// The users and groups allowed the pod endpoints.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub users: HashSet<String>,
    pub groups: HashSet<String>,
}

impl Policy {
    pub fn new(users: &[String], groups: &[String]) -> Policy {
        let set = |v: &[String]| v.iter().filter(|s| !s.is_empty()).cloned().collect();
        Policy {
            users: set(users),
            groups: set(groups),
        }
    }

    /// Whether `user` may use the pod endpoints.
    pub fn allows(&self, user: &CertUser) -> bool {
        self.users.contains(&user.name) || user.groups.iter().any(|g| self.groups.contains(g))
    }
}

/// The kubelet's resource for a path, as its Forbidden messages name it.
fn subresource(path: &str) -> &'static str {
    if path.starts_with("/stats") {
        "stats"
    } else {
        "proxy"
    }
}

fn user(req: &Request) -> Option<CertUser> {
    req.extensions().get::<Peer>().and_then(|p| p.0.clone())
}

/// Any client with a certificate of the cluster CA.
pub async fn authenticated(req: Request, next: Next) -> Response {
    match user(&req) {
        Some(_) => next.run(req).await,
        None => status(StatusError::unauthorized()),
    }
}

/// Only the users and groups of the policy.
pub async fn authorize_pods(State(ctx): State<Ctx>, req: Request, next: Next) -> Response {
    let Some(u) = user(&req) else {
        return status(StatusError::unauthorized());
    };
    if ctx.policy.allows(&u) {
        return next.run(req).await;
    }
    tracing::info!(user = %u.name, path = %req.uri().path(), "agent API request forbidden");
    status(StatusError::forbidden(format!(
        "Forbidden (user={}, verb={}, resource=nodes, subresource(s)=[{}])",
        u.name,
        if req.method() == axum::http::Method::GET {
            "get"
        } else {
            "create"
        },
        subresource(req.uri().path())
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(name: &str, groups: &[&str]) -> CertUser {
        CertUser {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    #[test]
    fn the_apiserver_and_masters_are_allowed_others_not() {
        let p = Policy::new(
            &["kube-apiserver-kubelet-client".into()],
            &["system:masters".into()],
        );
        assert!(p.allows(&u("kube-apiserver-kubelet-client", &[])));
        assert!(p.allows(&u("admin", &["system:masters"])));
        assert!(!p.allows(&u("viewer", &["system:viewers"])));
        assert!(!p.allows(&u("system:node:n2", &["system:nodes"])));
        // An empty entry allows nobody.
        assert!(!Policy::new(&[String::new()], &[]).allows(&u("", &[])));
    }
}
