//! What a URL asks for: the resource, namespace, name, subresource and verb of a request, and
//! its query parameters.

use std::collections::HashMap;

use api::{registry::Resource, status::StatusError};

/// A request for a resource (as opposed to discovery, health, metrics).
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceRequest {
    pub resource: &'static Resource,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

/// Parses `/api/v1/...` and `/apis/GROUP/VERSION/...`. `Ok(None)` when the path is not a
/// resource path at all; `Err` (404) for an unknown resource.
pub fn parse_path(path: &str) -> Result<Option<ResourceRequest>, StatusError> {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] if !rest.is_empty() => ("", *v, rest),
        ["apis", g, v, rest @ ..] if !rest.is_empty() => (*g, *v, rest),
        _ => return Ok(None),
    };
    let not_found = || StatusError {
        code: 404,
        reason: "NotFound",
        message: "the server could not find the requested resource".into(),
        details: None,
    };
    let find = |plural: &str| api::registry::find(group, version, plural).ok_or_else(not_found);
    let req = |r: &'static Resource, ns: Option<&str>, name: Option<&str>, sub: Option<&str>| {
        ResourceRequest {
            resource: r,
            namespace: ns.map(str::to_string),
            name: name.map(str::to_string),
            subresource: sub.map(str::to_string),
        }
    };
    let out = match rest {
        ["namespaces", ns, plural, tail @ ..]
            if group.is_empty() && matches!(*plural, "status" | "finalize") && tail.is_empty() =>
        {
            req(find("namespaces")?, None, Some(ns), Some(plural))
        }
        ["namespaces", ns, plural, tail @ ..] => {
            let r = find(plural)?;
            if !r.namespaced {
                return Err(not_found());
            }
            match tail {
                [] => req(r, Some(ns), None, None),
                [name] => req(r, Some(ns), Some(name), None),
                [name, sub] if r.has_subresource(sub) => req(r, Some(ns), Some(name), Some(sub)),
                _ => return Err(not_found()),
            }
        }
        [plural] => req(find(plural)?, None, None, None),
        [plural, name] => {
            let r = find(plural)?;
            if r.namespaced {
                return Err(not_found());
            }
            req(r, None, Some(name), None)
        }
        [plural, name, sub] => {
            let r = find(plural)?;
            if r.namespaced || !r.has_subresource(sub) {
                return Err(not_found());
            }
            req(r, None, Some(name), Some(sub))
        }
        _ => return Err(not_found()),
    };
    Ok(Some(out))
}

/// Decoded query parameters.
#[derive(Debug, Default, Clone)]
pub struct Query(pub HashMap<String, String>);

impl Query {
    pub fn parse(query: Option<&str>) -> Query {
        let mut map = HashMap::new();
        if let Some(q) = query {
            for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
                map.insert(k.into_owned(), v.into_owned());
            }
        }
        Query(map)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }

    /// An integer parameter; 400 naming it when it is not one.
    pub fn int(&self, key: &str) -> Result<Option<i64>, StatusError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                StatusError::bad_request(format!(
                    "invalid value for {key}: {v:?} is not an integer"
                ))
            }),
        }
    }

    /// `dryRun=All`.
    pub fn dry_run(&self) -> Result<bool, StatusError> {
        match self.get("dryRun") {
            None => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(StatusError::bad_request(format!(
                "Invalid dryRun value: {other:?}; supported values: \"All\""
            ))),
        }
    }
}

/// The verb of a request on a resource, as authorization and metrics name it.
pub fn verb(method: &axum::http::Method, req: &ResourceRequest, query: &Query) -> &'static str {
    // Connecting to a pod is authorized as create whatever the method (a WebSocket exec is a
    // GET), as Kubernetes does since 1.30.
    if matches!(
        req.subresource.as_deref(),
        Some("exec" | "attach" | "portforward")
    ) && matches!(*method, axum::http::Method::GET | axum::http::Method::POST)
    {
        return "create";
    }
    match *method {
        axum::http::Method::GET | axum::http::Method::HEAD => {
            if req.name.is_some() {
                "get"
            } else if query.flag("watch") {
                "watch"
            } else {
                "list"
            }
        }
        axum::http::Method::POST => "create",
        axum::http::Method::PUT => "update",
        axum::http::Method::PATCH => "patch",
        axum::http::Method::DELETE => {
            if req.name.is_some() {
                "delete"
            } else {
                "deletecollection"
            }
        }
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_resource_paths() {
        let r = parse_path("/api/v1/namespaces/default/pods/web/status")
            .unwrap()
            .unwrap();
        assert_eq!(
            (
                r.resource.plural,
                r.namespace.as_deref(),
                r.name.as_deref(),
                r.subresource.as_deref()
            ),
            ("pods", Some("default"), Some("web"), Some("status"))
        );
        let r = parse_path("/api/v1/namespaces/foo").unwrap().unwrap();
        assert_eq!(
            (r.resource.plural, r.name.as_deref()),
            ("namespaces", Some("foo"))
        );
        let r = parse_path("/api/v1/namespaces/foo/finalize")
            .unwrap()
            .unwrap();
        assert_eq!(
            (
                r.resource.plural,
                r.name.as_deref(),
                r.subresource.as_deref()
            ),
            ("namespaces", Some("foo"), Some("finalize"))
        );
        let r = parse_path("/apis/apps/v1/deployments").unwrap().unwrap();
        assert_eq!((r.resource.plural, r.namespace), ("deployments", None));
        let r = parse_path("/api/v1/nodes/n1/status").unwrap().unwrap();
        assert_eq!(r.subresource.as_deref(), Some("status"));
        assert!(parse_path("/api/v1").unwrap().is_none());
        assert_eq!(parse_path("/api/v1/widgets").unwrap_err().code, 404);
        assert_eq!(
            parse_path("/api/v1/namespaces/x/nodes").unwrap_err().code,
            404
        );
        assert_eq!(parse_path("/api/v1/pods/x").unwrap_err().code, 404);
    }
}
