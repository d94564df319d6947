//! Authentication (client certificates, static bearer tokens) and authorization (cluster-admin
//! and view roles bound to users and groups, and Kubernetes' node restriction for agents).

use std::{collections::HashMap, path::Path};

use api::status::StatusError;
use serde::Deserialize;

/// Who sent a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub groups: Vec<String>,
}

impl UserInfo {
    /// The node name of an agent's identity (`system:node:NAME` in group `system:nodes`).
    pub fn node_name(&self) -> Option<&str> {
        if self.groups.iter().any(|g| g == "system:nodes") {
            self.name.strip_prefix("system:node:")
        } else {
            None
        }
    }
}

/// Identity from a verified TLS client certificate.
#[derive(Debug, Clone, Default)]
pub struct PeerIdentity(pub Option<UserInfo>);

/// Why the auth configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    #[error("reading {path}: {err}")]
    Io { path: String, err: std::io::Error },
    #[error("{path} line {line}: {msg}")]
    TokenFile {
        path: String,
        line: usize,
        msg: String,
    },
    #[error("{path}: {err}")]
    Policy { path: String, err: String },
}

/// Maps bearer tokens to users.
#[derive(Debug, Default)]
pub struct Authenticator {
    tokens: HashMap<String, UserInfo>,
}

impl Authenticator {
    /// Loads a kube-apiserver `--token-auth-file`: `token,user,uid[,"group1,group2"]` per line.
    pub fn load(path: Option<&Path>) -> Result<Self, AuthConfigError> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path).map_err(|err| AuthConfigError::Io {
            path: path.display().to_string(),
            err,
        })?;
        Ok(Authenticator {
            tokens: parse_token_file(&text).map_err(|(line, msg)| AuthConfigError::TokenFile {
                path: path.display().to_string(),
                line,
                msg,
            })?,
        })
    }

    /// The user of a request: its client certificate, else its bearer token. `Err` for a bad
    /// token (401), `Ok(None)` for an anonymous request.
    pub fn authenticate(
        &self,
        peer: &PeerIdentity,
        authorization: Option<&str>,
    ) -> Result<Option<UserInfo>, StatusError> {
        if let Some(header) = authorization {
            let token = header
                .strip_prefix("Bearer ")
                .map(str::trim)
                .ok_or_else(StatusError::unauthorized)?;
            return match self.tokens.get(token) {
                Some(u) => Ok(Some(u.clone())),
                None => Err(StatusError::unauthorized()),
            };
        }
        Ok(peer.0.clone())
    }
}

fn parse_token_file(text: &str) -> Result<HashMap<String, UserInfo>, (usize, String)> {
    let mut out = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields = split_csv(line);
        if fields.len() < 3 {
            return Err((i + 1, "expected token,user,uid[,\"groups\"]".into()));
        }
        let groups = fields
            .get(3)
            .map(|g| {
                g.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        out.insert(
            fields[0].clone(),
            UserInfo {
                name: fields[1].clone(),
                groups,
            },
        );
    }
    Ok(out)
}

fn split_csv(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter().map(|s| s.trim().to_string()).collect()
}

/// A role a user or group can be bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Every verb on every resource.
    ClusterAdmin,
    /// Every verb on namespaced resources; read-only on cluster-scoped ones.
    Edit,
    /// get, list and watch on everything but Secrets; pod logs.
    View,
}

#[derive(Debug, Deserialize)]
struct Binding {
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    group: Option<String>,
    role: Role,
}

/// What a request asks to do.
#[derive(Debug, Clone)]
pub struct Attributes<'a> {
    pub verb: &'a str,
    pub group: &'a str,
    pub resource: &'a str,
    pub subresource: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
}

/// The authorizer's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Allowed if the pod (current state) is bound to this node.
    AllowIfPodBoundTo(String),
    Deny(String),
}

/// Role bindings plus the built-in ones.
#[derive(Debug, Default)]
pub struct Authorizer {
    users: HashMap<String, Role>,
    groups: HashMap<String, Role>,
}

impl Authorizer {
    /// Built-in bindings: group system:masters → cluster-admin, group system:viewers → view,
    /// users system:kube-scheduler and system:kube-controller-manager → cluster-admin; plus the
    /// bindings of `path` (YAML list of `{user|group: NAME, role: cluster-admin|edit|view}`).
    pub fn load(path: Option<&Path>) -> Result<Self, AuthConfigError> {
        let mut a = Authorizer::default();
        a.groups.insert("system:masters".into(), Role::ClusterAdmin);
        a.groups.insert("system:viewers".into(), Role::View);
        a.users
            .insert("system:kube-scheduler".into(), Role::ClusterAdmin);
        a.users
            .insert("system:kube-controller-manager".into(), Role::ClusterAdmin);
        if let Some(path) = path {
            let text = std::fs::read_to_string(path).map_err(|err| AuthConfigError::Io {
                path: path.display().to_string(),
                err,
            })?;
            let bindings: Vec<Binding> =
                serde_json::from_value(yaml_to_json(&text).map_err(|err| {
                    AuthConfigError::Policy {
                        path: path.display().to_string(),
                        err,
                    }
                })?)
                .map_err(|e| AuthConfigError::Policy {
                    path: path.display().to_string(),
                    err: e.to_string(),
                })?;
            for b in bindings {
                match (b.user, b.group) {
                    (Some(u), None) => {
                        a.users.insert(u, b.role);
                    }
                    (None, Some(g)) => {
                        a.groups.insert(g, b.role);
                    }
                    _ => {
                        return Err(AuthConfigError::Policy {
                            path: path.display().to_string(),
                            err: "each binding needs exactly one of user or group".into(),
                        })
                    }
                }
            }
        }
        Ok(a)
    }

    /// Decides whether `user` may do `attrs`.
    pub fn authorize(&self, user: &UserInfo, attrs: &Attributes<'_>) -> Decision {
        let mut roles: Vec<Role> = Vec::new();
        if let Some(r) = self.users.get(&user.name) {
            roles.push(*r);
        }
        for g in &user.groups {
            if let Some(r) = self.groups.get(g) {
                roles.push(*r);
            }
        }
        if roles.iter().any(|r| role_allows(*r, attrs)) {
            return Decision::Allow;
        }
        if let Some(node) = user.node_name() {
            return node_decision(node, attrs);
        }
        Decision::Deny(String::new())
    }
}

fn is_read(verb: &str) -> bool {
    matches!(verb, "get" | "list" | "watch")
}

fn role_allows(role: Role, a: &Attributes<'_>) -> bool {
    match role {
        Role::ClusterAdmin => true,
        Role::Edit => is_read(a.verb) || a.namespace.is_some() && a.resource != "namespaces",
        Role::View => {
            (is_read(a.verb)
                && a.resource != "secrets"
                && a.subresource.is_none_or(|s| s == "status" || s == "scale"))
                || (a.verb == "get" && a.resource == "pods" && a.subresource == Some("log"))
        }
    }
}

/// Kubernetes' node authorizer and NodeRestriction, for `system:node:NODE`.
fn node_decision(node: &str, a: &Attributes<'_>) -> Decision {
    let deny = |why: &str| Decision::Deny(why.to_string());
    match (a.resource, a.subresource) {
        ("nodes", _) if is_read(a.verb) => Decision::Allow,
        ("nodes", _) => {
            if a.name == Some(node) {
                Decision::Allow
            } else {
                deny(&format!(
                    "node \"{node}\" is not allowed to modify node \"{}\"",
                    a.name.unwrap_or("")
                ))
            }
        }
        ("leases", None) if a.namespace == Some("kube-node-lease") => {
            if a.name == Some(node) || (is_read(a.verb) && a.name.is_none()) {
                Decision::Allow
            } else {
                deny(&format!("node \"{node}\" may only use its own lease"))
            }
        }
        ("pods", None) if is_read(a.verb) => Decision::Allow,
        ("pods", Some("status")) if matches!(a.verb, "get" | "update" | "patch") => {
            Decision::AllowIfPodBoundTo(node.to_string())
        }
        ("pods", None) if a.verb == "delete" => Decision::AllowIfPodBoundTo(node.to_string()),
        ("pods", Some("log" | "exec")) => deny("nodes may not use pod logs or exec"),
        ("pods", _) => deny(&format!(
            "node \"{node}\" can only update the status of, or delete, pods bound to it"
        )),
        ("events", None)
            if matches!(
                a.verb,
                "create" | "update" | "patch" | "get" | "list" | "watch"
            ) =>
        {
            Decision::Allow
        }
        ("services" | "endpoints" | "namespaces", None) if is_read(a.verb) => Decision::Allow,
        ("configmaps" | "secrets", None) if a.verb == "get" => Decision::Allow,
        _ => Decision::Deny(String::new()),
    }
}

/// The Forbidden error for a denied request, worded as Kubernetes' RBAC denial.
pub fn forbidden(user: &UserInfo, a: &Attributes<'_>, why: &str) -> StatusError {
    let target = match a.name {
        Some(n) if !n.is_empty() => format!("{} \"{n}\"", qualified(a)),
        _ => qualified(a),
    };
    let resource = match a.subresource {
        Some(s) => format!("{}/{s}", a.resource),
        None => a.resource.to_string(),
    };
    let scope = match a.namespace {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".to_string(),
    };
    let mut msg = format!(
        "{target} is forbidden: User \"{}\" cannot {} resource \"{resource}\" in API group \"{}\" \
            {scope}",
        user.name, a.verb, a.group
    );
    if !why.is_empty() {
        msg.push_str(": ");
        msg.push_str(why);
    }
    StatusError::forbidden(msg)
}

fn qualified(a: &Attributes<'_>) -> String {
    if a.group.is_empty() {
        a.resource.to_string()
    } else {
        format!("{}.{}", a.resource, a.group)
    }
}

/// Reads the policy file (YAML or JSON).
fn yaml_to_json(text: &str) -> Result<serde_json::Value, String> {
    serde_norway::from_str(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo {
            name: name.into(),
            groups: groups.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn attrs<'a>(
        verb: &'a str,
        resource: &'a str,
        sub: Option<&'a str>,
        ns: Option<&'a str>,
        name: Option<&'a str>,
    ) -> Attributes<'a> {
        Attributes {
            verb,
            group: "",
            resource,
            subresource: sub,
            namespace: ns,
            name,
        }
    }

    #[test]
    fn token_file_parses_groups() {
        let t = parse_token_file("abc,alice,1,\"system:masters,dev\"\n# c\nxyz,bob,2\n").unwrap();
        assert_eq!(t["abc"], user("alice", &["system:masters", "dev"]));
        assert_eq!(t["xyz"].groups.len(), 0);
    }

    #[test]
    fn roles_and_node_restriction() {
        let a = Authorizer::load(None).unwrap();
        let admin = user("admin", &["system:masters"]);
        let viewer = user("viewer", &["system:viewers"]);
        let node = user("system:node:n1", &["system:nodes"]);
        assert_eq!(
            a.authorize(&admin, &attrs("delete", "nodes", None, None, Some("x"))),
            Decision::Allow
        );
        assert_eq!(
            a.authorize(&viewer, &attrs("list", "pods", None, Some("default"), None)),
            Decision::Allow
        );
        assert!(matches!(
            a.authorize(
                &viewer,
                &attrs("create", "pods", None, Some("default"), None)
            ),
            Decision::Deny(_)
        ));
        assert!(matches!(
            a.authorize(
                &viewer,
                &attrs("get", "secrets", None, Some("default"), Some("s"))
            ),
            Decision::Deny(_)
        ));
        assert_eq!(
            a.authorize(
                &node,
                &attrs("update", "nodes", Some("status"), None, Some("n1"))
            ),
            Decision::Allow
        );
        assert!(matches!(
            a.authorize(&node, &attrs("update", "nodes", None, None, Some("n2"))),
            Decision::Deny(_)
        ));
        assert_eq!(
            a.authorize(
                &node,
                &attrs("update", "pods", Some("status"), Some("default"), Some("p"))
            ),
            Decision::AllowIfPodBoundTo("n1".into())
        );
        assert!(matches!(
            a.authorize(&node, &attrs("create", "pods", None, Some("default"), None)),
            Decision::Deny(_)
        ));
        assert!(matches!(
            a.authorize(
                &user("nobody", &[]),
                &attrs("get", "pods", None, Some("d"), Some("p"))
            ),
            Decision::Deny(_)
        ));
    }

    #[test]
    fn forbidden_message_matches_rbac() {
        let e = forbidden(
            &user("bob", &[]),
            &attrs("create", "pods", None, Some("default"), None),
            "",
        );
        assert_eq!(
            e.message,
            "pods is forbidden: User \"bob\" cannot create resource \"pods\" in \
            API group \"\" in the namespace \"default\""
        );
        assert_eq!(e.code, 403);
    }

    #[test]
    fn policy_yaml() {
        let v = yaml_to_json(
            "- user: alice\n  role: view\n- group: ops # comment\n  role: cluster-admin\n",
        )
        .unwrap();
        assert_eq!(v[1]["group"], "ops");
    }
}
