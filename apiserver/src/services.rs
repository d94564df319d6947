//! Service cluster IP and NodePort allocation. Each allocated IP or port is a reservation key in
//! the store, written in the same transaction as the Service, so several apiservers never hand
//! out the same address.

use std::{collections::HashSet, net::Ipv4Addr};

use api::{
    status::StatusError,
    validation::{ErrorType, FieldError},
};
use rand::Rng;
use serde_json::{json, Value};

const IP_PREFIX: &str = "/registry/ranges/serviceips/";
const PORT_PREFIX: &str = "/registry/ranges/servicenodeports/";

/// The configured ranges.
#[derive(Debug, Clone)]
pub struct Allocator {
    base: u32,
    size: u32,
    cidr: String,
    ports: (u16, u16),
}

/// The reservations an object needs and frees.
#[derive(Debug, Default)]
pub struct Plan {
    pub reserve: Vec<(String, String)>,
    pub release: Vec<String>,
}

impl Allocator {
    /// Parses `10.96.0.0/12` and `30000-32767`.
    pub fn new(cidr: &str, ports: &str) -> Result<Allocator, String> {
        let (ip, bits) = cidr
            .split_once('/')
            .ok_or_else(|| format!("--service-cluster-ip-range {cidr:?} is not a CIDR"))?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| {
            format!("--service-cluster-ip-range {cidr:?}: {ip:?} is not an IPv4 address")
        })?;
        let bits: u32 = bits
            .parse()
            .ok()
            .filter(|b| (8..=30).contains(b))
            .ok_or_else(|| format!("--service-cluster-ip-range {cidr:?}: prefix must be 8-30"))?;
        let size = 1u32 << (32 - bits);
        let base = u32::from(ip) & !(size - 1);
        let (lo, hi) = ports
            .split_once('-')
            .ok_or_else(|| format!("--service-node-port-range {ports:?} is not first-last"))?;
        let lo: u16 = lo
            .trim()
            .parse()
            .map_err(|_| format!("--service-node-port-range {ports:?}: bad first port"))?;
        let hi: u16 = hi
            .trim()
            .parse()
            .map_err(|_| format!("--service-node-port-range {ports:?}: bad last port"))?;
        if lo > hi {
            return Err(format!(
                "--service-node-port-range {ports:?}: first port above last"
            ));
        }
        Ok(Allocator {
            base,
            size,
            cidr: format!("{}/{bits}", Ipv4Addr::from(base)),
            ports: (lo, hi),
        })
    }

    /// The first address of the range: the `kubernetes` Service's.
    pub fn first_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.base + 1)
    }

    pub fn ip_key(ip: &str) -> String {
        format!("{IP_PREFIX}{ip}")
    }

    pub fn port_key(port: i64) -> String {
        format!("{PORT_PREFIX}{port}")
    }

    pub fn ip_prefix() -> &'static str {
        IP_PREFIX
    }

    pub fn port_prefix() -> &'static str {
        PORT_PREFIX
    }

    fn in_range(&self, ip: Ipv4Addr) -> bool {
        let v = u32::from(ip);
        v > self.base && v < self.base + self.size - 1
    }

    /// Fills in a new Service's cluster IP and node ports, choosing free ones at random, and
    /// lists the reservations to write with it. `taken_ips`/`taken_ports` are the current
    /// reservations.
    pub fn plan_create(
        &self,
        svc: &mut Value,
        owner: &str,
        taken_ips: &HashSet<String>,
        taken_ports: &HashSet<i64>,
    ) -> Result<Plan, StatusError> {
        let mut plan = Plan::default();
        let name = svc
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let svc_type = svc
            .pointer("/spec/type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP")
            .to_string();
        let invalid = |e: FieldError| StatusError::invalid("Service", "", &name, &[e]);
        if svc_type != "ExternalName" {
            let requested = svc
                .pointer("/spec/clusterIP")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let ip = match requested.as_str() {
                "None" => None,
                "" => Some(self.random_ip(taken_ips).ok_or_else(|| {
                    invalid(FieldError::new(
                        ErrorType::Invalid,
                        "spec.clusterIPs",
                        None,
                        "failed to allocate IP: range is full",
                    ))
                })?),
                given => {
                    let parsed: Ipv4Addr = given.parse().map_err(|_| {
                        invalid(FieldError::new(
                            ErrorType::Invalid,
                            "spec.clusterIPs[0]",
                            Some(&format!("{given:?}")),
                            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                        ))
                    })?;
                    if !self.in_range(parsed) {
                        return Err(invalid(FieldError::new(
                            ErrorType::Invalid,
                            "spec.clusterIPs",
                            Some(&format!("[\"{given}\"]")),
                            format!(
                                "failed to allocate IP {given}: the provided IP ({given}) is \
                                not in the valid range. The range of valid IPs is {}",
                                self.cidr
                            ),
                        )));
                    }
                    if taken_ips.contains(given) {
                        return Err(invalid(FieldError::new(
                            ErrorType::Invalid,
                            "spec.clusterIPs",
                            Some(&format!("[\"{given}\"]")),
                            format!(
                                "failed to allocate IP {given}: provided IP is already allocated"
                            ),
                        )));
                    }
                    Some(given.to_string())
                }
            };
            if let Some(spec) = svc.get_mut("spec").and_then(Value::as_object_mut) {
                match &ip {
                    Some(ip) => {
                        spec.insert("clusterIP".into(), json!(ip));
                        spec.insert("clusterIPs".into(), json!([ip]));
                        plan.reserve.push((Self::ip_key(ip), owner.to_string()));
                    }
                    None => {
                        spec.insert("clusterIP".into(), json!("None"));
                        spec.insert("clusterIPs".into(), json!(["None"]));
                    }
                }
            }
        }
        if matches!(svc_type.as_str(), "NodePort" | "LoadBalancer") {
            let mut used: HashSet<i64> = taken_ports.clone();
            self.assign_ports(svc, &name, &mut used, &HashSet::new(), owner, &mut plan)?;
        }
        Ok(plan)
    }

    /// Reservations for an update: node ports added or dropped (the cluster IP is immutable).
    pub fn plan_update(
        &self,
        svc: &mut Value,
        old: &Value,
        owner: &str,
        taken_ports: &HashSet<i64>,
    ) -> Result<Plan, StatusError> {
        let mut plan = Plan::default();
        let name = svc
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let old_ports = node_ports(old);
        let svc_type = svc
            .pointer("/spec/type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP")
            .to_string();
        if matches!(svc_type.as_str(), "NodePort" | "LoadBalancer") {
            // Node ports the update left out were put back by `patch_allocated_values`.
            let mut used = taken_ports.clone();
            self.assign_ports(svc, &name, &mut used, &old_ports, owner, &mut plan)?;
        } else if let Some(ports) = svc.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
            for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                p.remove("nodePort");
            }
        }
        let new_ports = node_ports(svc);
        for p in old_ports.difference(&new_ports) {
            plan.release.push(Self::port_key(*p));
        }
        Ok(plan)
    }

    fn assign_ports(
        &self,
        svc: &mut Value,
        name: &str,
        used: &mut HashSet<i64>,
        mine: &HashSet<i64>,
        owner: &str,
        plan: &mut Plan,
    ) -> Result<(), StatusError> {
        let (lo, hi) = (self.ports.0 as i64, self.ports.1 as i64);
        let Some(ports) = svc.pointer_mut("/spec/ports").and_then(Value::as_array_mut) else {
            return Ok(());
        };
        for (i, p) in ports.iter_mut().enumerate() {
            let Some(obj) = p.as_object_mut() else {
                continue;
            };
            // nodePort 0 is Go's zero value: the same as unset.
            match obj
                .get("nodePort")
                .and_then(Value::as_i64)
                .filter(|np| *np != 0)
            {
                Some(np) if mine.contains(&np) => {}
                Some(np) => {
                    let field = format!("spec.ports[{i}].nodePort");
                    if np < lo || np > hi {
                        return Err(StatusError::invalid(
                            "Service",
                            "",
                            name,
                            &[FieldError::new(
                                ErrorType::Invalid,
                                field,
                                Some(&np.to_string()),
                                format!(
                                    "provided port is not in the valid range. The range of valid \
                                ports is {lo}-{hi}"
                                ),
                            )],
                        ));
                    }
                    if used.contains(&np) {
                        return Err(StatusError::invalid(
                            "Service",
                            "",
                            name,
                            &[FieldError::new(
                                ErrorType::Invalid,
                                field,
                                Some(&np.to_string()),
                                "provided port is already allocated",
                            )],
                        ));
                    }
                    used.insert(np);
                    plan.reserve.push((Self::port_key(np), owner.to_string()));
                }
                None => {
                    let np = self.random_port(used).ok_or_else(|| {
                        StatusError::invalid(
                            "Service",
                            "",
                            name,
                            &[FieldError::new(
                                ErrorType::Invalid,
                                format!("spec.ports[{i}].nodePort"),
                                None,
                                "failed to allocate a nodePort: range is full",
                            )],
                        )
                    })?;
                    used.insert(np);
                    obj.insert("nodePort".into(), json!(np));
                    plan.reserve.push((Self::port_key(np), owner.to_string()));
                }
            }
        }
        Ok(())
    }

    fn random_ip(&self, taken: &HashSet<String>) -> Option<String> {
        let mut rng = rand::rng();
        // Skip the network address, the first address (the kubernetes Service) and broadcast.
        let span = self.size.saturating_sub(3);
        if span == 0 {
            return None;
        }
        for _ in 0..64 {
            let ip = Ipv4Addr::from(self.base + 2 + rng.random_range(0..span)).to_string();
            if !taken.contains(&ip) {
                return Some(ip);
            }
        }
        (2..self.size - 1)
            .map(|o| Ipv4Addr::from(self.base + o).to_string())
            .find(|ip| !taken.contains(ip))
    }

    fn random_port(&self, used: &HashSet<i64>) -> Option<i64> {
        let (lo, hi) = (self.ports.0 as i64, self.ports.1 as i64);
        let mut rng = rand::rng();
        for _ in 0..64 {
            let p = rng.random_range(lo..=hi);
            if !used.contains(&p) {
                return Some(p);
            }
        }
        (lo..=hi).find(|p| !used.contains(p))
    }

    /// Every reservation a Service holds (released when it is deleted).
    pub fn held_by(svc: &Value) -> Vec<String> {
        let mut keys = Vec::new();
        if let Some(ip) = svc.pointer("/spec/clusterIP").and_then(Value::as_str) {
            if !ip.is_empty() && ip != "None" {
                keys.push(Self::ip_key(ip));
            }
        }
        keys.extend(node_ports(svc).into_iter().map(Self::port_key));
        keys
    }
}

/// Kubernetes' patchAllocatedValues, then normalizeClusterIPs: an update (e.g. `kubectl
/// replace` of a manifest that never named them) that leaves out the cluster IP(s), node ports
/// or health-check node port keeps the allocated values instead of being refused as a change.
/// Runs before validation, so an update that names a different cluster IP is still refused.
pub fn patch_allocated_values(new: &mut Value, old: &Value) {
    let kind = |svc: &Value| {
        svc.pointer("/spec/type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP")
            .to_string()
    };
    let (new_type, old_type) = (kind(new), kind(old));
    let needs_cluster_ip = |t: &str| t != "ExternalName";
    let needs_node_port = |svc: &Value, t: &str| {
        t == "NodePort"
            || (t == "LoadBalancer"
                && svc
                    .pointer("/spec/allocateLoadBalancerNodePorts")
                    .and_then(Value::as_bool)
                    != Some(false))
    };
    let needs_hc_node_port = |svc: &Value, t: &str| {
        t == "LoadBalancer"
            && svc
                .pointer("/spec/externalTrafficPolicy")
                .and_then(Value::as_str)
                == Some("Local")
    };
    let old_spec = old.get("spec").cloned().unwrap_or(Value::Null);
    let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let str_of = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_string();
    let list_of = |v: Option<&Value>| -> Vec<Value> {
        v.and_then(Value::as_array).cloned().unwrap_or_default()
    };

    if needs_cluster_ip(&old_type) && needs_cluster_ip(&new_type) {
        if str_of(spec.get("clusterIP")).is_empty() && !str_of(old_spec.get("clusterIP")).is_empty()
        {
            spec.insert("clusterIP".into(), old_spec["clusterIP"].clone());
        }
        if list_of(spec.get("clusterIPs")).is_empty()
            && !list_of(old_spec.get("clusterIPs")).is_empty()
        {
            spec.insert("clusterIPs".into(), old_spec["clusterIPs"].clone());
        }
    }
    // normalizeClusterIPs (the update case): keep clusterIPs in step with clusterIP.
    let (old_ip, old_ips) = (
        str_of(old_spec.get("clusterIP")),
        list_of(old_spec.get("clusterIPs")),
    );
    if !old_ips.is_empty()
        && list_of(spec.get("clusterIPs")).is_empty()
        && str_of(spec.get("clusterIP")) == old_ip
    {
        spec.insert("clusterIPs".into(), Value::Array(old_ips.clone()));
    }
    let new_ip = str_of(spec.get("clusterIP"));
    if new_ip != old_ip {
        let same_ips = list_of(spec.get("clusterIPs")) == old_ips;
        if !old_ip.is_empty() && new_ip.is_empty() && same_ips {
            spec.remove("clusterIPs");
        }
        if !new_ip.is_empty() && same_ips {
            spec.insert("clusterIPs".into(), json!([new_ip]));
        }
    }

    let new_view = Value::Object(spec.clone());
    let new_full = json!({"spec": new_view});
    if needs_node_port(old, &old_type) && needs_node_port(&new_full, &new_type) {
        let used_in = |s: &Value| -> HashSet<i64> {
            s.get("ports")
                .and_then(Value::as_array)
                .map(|ps| {
                    ps.iter()
                        .filter_map(|p| p.get("nodePort").and_then(Value::as_i64))
                        .filter(|np| *np != 0)
                        .collect()
                })
                .unwrap_or_default()
        };
        // Ports the update names itself cannot be patched in for another port.
        let used: HashSet<i64> = used_in(&old_spec)
            .intersection(&used_in(&new_full["spec"]))
            .copied()
            .collect();
        // By port name, as Kubernetes (the user may have changed the port's other fields).
        let by_name: std::collections::HashMap<String, i64> = list_of(old_spec.get("ports"))
            .iter()
            .map(|p| {
                (
                    str_of(p.get("name")),
                    p.get("nodePort").and_then(Value::as_i64).unwrap_or(0),
                )
            })
            .collect();
        if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
            for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                if p.get("nodePort").and_then(Value::as_i64).unwrap_or(0) == 0 {
                    let prev = by_name.get(&str_of(p.get("name"))).copied().unwrap_or(0);
                    if prev != 0 && !used.contains(&prev) {
                        p.insert("nodePort".into(), json!(prev));
                    }
                }
            }
        }
    }
    if needs_hc_node_port(old, &old_type)
        && needs_hc_node_port(&new_full, &new_type)
        && spec
            .get("healthCheckNodePort")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            == 0
    {
        if let Some(hc) = old_spec
            .get("healthCheckNodePort")
            .filter(|v| v.as_i64().unwrap_or(0) != 0)
        {
            spec.insert("healthCheckNodePort".into(), hc.clone());
        }
    }
}

fn node_ports(svc: &Value) -> HashSet<i64> {
    svc.pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .filter_map(|p| p.get("nodePort").and_then(Value::as_i64))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_ip_and_node_ports() {
        let a = Allocator::new("10.96.0.0/12", "30000-32767").unwrap();
        assert_eq!(a.first_ip().to_string(), "10.96.0.1");
        let mut svc = json!({"metadata": {"name": "web"}, "spec": {"type": "NodePort",
            "ports": [{"port": 80}, {"port": 81, "nodePort": 30080}]}});
        let plan = a
            .plan_create(&mut svc, "default/web", &HashSet::new(), &HashSet::new())
            .unwrap();
        let ip: Ipv4Addr = svc["spec"]["clusterIP"].as_str().unwrap().parse().unwrap();
        assert!(a.in_range(ip));
        assert_eq!(svc["spec"]["ports"][1]["nodePort"], 30080);
        assert!(svc["spec"]["ports"][0]["nodePort"].as_i64().unwrap() >= 30000);
        assert_eq!(plan.reserve.len(), 3);
        let mut dup = json!({"metadata": {"name": "x"}, "spec": {"type": "NodePort",
            "ports": [{"port": 80, "nodePort": 30080}]}});
        let taken: HashSet<i64> = [30080].into();
        let err = a
            .plan_create(&mut dup, "default/x", &HashSet::new(), &taken)
            .unwrap_err();
        assert_eq!(err.code, 422);
        assert!(
            err.message.contains("provided port is already allocated"),
            "{}",
            err.message
        );
        let mut out = json!({"metadata": {"name": "y"}, "spec": {"clusterIP": "10.0.0.1",
            "ports": [{"port": 80}]}});
        assert!(a
            .plan_create(&mut out, "default/y", &HashSet::new(), &HashSet::new())
            .unwrap_err()
            .message
            .contains("not in the valid range"));
    }

    #[test]
    fn an_update_that_omits_allocated_values_keeps_them() {
        let old = json!({"spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local",
            "healthCheckNodePort": 31000, "clusterIP": "10.96.0.7", "clusterIPs": ["10.96.0.7"],
            "ports": [{"name": "http", "port": 80, "nodePort": 30080}, {"name": "admin", "port": 81,
                "nodePort": 30081}]}});
        // Ports matched by name (the port number changed), an explicit node port kept.
        let mut new = json!({"spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local",
            "ports": [{"name": "http", "port": 8080}, {"name": "admin", "port": 81,
            "nodePort": 30090}]}});
        patch_allocated_values(&mut new, &old);
        assert_eq!(new["spec"]["clusterIP"], "10.96.0.7");
        assert_eq!(new["spec"]["clusterIPs"], json!(["10.96.0.7"]));
        assert_eq!(new["spec"]["ports"][0]["nodePort"], 30080);
        assert_eq!(new["spec"]["ports"][1]["nodePort"], 30090);
        assert_eq!(new["spec"]["healthCheckNodePort"], 31000);
        // An old port the update gives to another port is not patched in twice.
        let mut new = json!({"spec": {"type": "NodePort", "ports": [{"name": "http", "port": 80},
            {"name": "admin", "port": 81, "nodePort": 30080}]}});
        patch_allocated_values(&mut new, &old);
        assert!(new["spec"]["ports"][0].get("nodePort").is_none(), "{new}");
        // A new clusterIP with the old clusterIPs: clusterIPs follows it (and validation refuses).
        let mut new = json!({"spec": {"clusterIP": "10.96.0.8", "ports": [{"port": 80}]}});
        patch_allocated_values(&mut new, &old);
        assert_eq!(new["spec"]["clusterIPs"], json!(["10.96.0.8"]));
        // To ExternalName: nothing patched in.
        let mut new = json!({"spec": {"type": "ExternalName", "externalName": "example.com"}});
        patch_allocated_values(&mut new, &old);
        assert!(
            new["spec"].get("clusterIP").is_none() && new["spec"].get("ports").is_none(),
            "{new}"
        );
        // To ClusterIP: no node ports kept.
        let mut new =
            json!({"spec": {"type": "ClusterIP", "ports": [{"name": "http", "port": 80}]}});
        patch_allocated_values(&mut new, &old);
        assert!(
            new["spec"]["ports"][0].get("nodePort").is_none()
                && new["spec"]["clusterIP"] == "10.96.0.7",
            "{new}"
        );
    }
}
