//! The containers section of a pod's description (and of a Pod Template): image, ports,
//! command and args, state, resources, probes, environment and mounts, as kubectl prints them.

use serde_json::Value;

use super::text::{arr, num, rfc1123z, s, strings, Text};

/// The containers, with their statuses when describing a pod (None: a template).
pub fn containers(
    w: &mut Text,
    label: &str,
    list: &[Value],
    statuses: Option<&[Value]>,
    space: &str,
) {
    let none = if list.is_empty() { " <none>" } else { "" };
    w.w(0, &format!("{space}{label}:{none}\n"));
    let name_indent = if space.is_empty() { "" } else { " " };
    for c in list {
        let name = s(c, "/name");
        let status = statuses.and_then(|st| st.iter().find(|x| s(x, "/name") == name));
        w.w(1, &format!("{name_indent}{name}:\n"));
        if let Some(st) = status {
            w.w(2, &format!("Container ID:\t{}\n", s(st, "/containerID")));
        }
        w.w(2, &format!("Image:\t{}\n", s(c, "/image")));
        if let Some(st) = status {
            w.w(2, &format!("Image ID:\t{}\n", s(st, "/imageID")));
        }
        let ports = arr(c.pointer("/ports"));
        let port_list = |field: &str| {
            ports
                .iter()
                .map(|p| {
                    let n = p.get(field).and_then(Value::as_i64).unwrap_or(0);
                    format!("{n}/{}", s(p, "/protocol"))
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        for (field, one, many) in [
            ("containerPort", "Port", "Ports"),
            ("hostPort", "Host Port", "Host Ports"),
        ] {
            let text = port_list(field);
            if text.contains(',') {
                w.w(2, &format!("{many}:\t{text}\n"));
            } else {
                let text = if text.is_empty() { "<none>" } else { &text };
                w.w(2, &format!("{one}:\t{text}\n"));
            }
        }
        if !s(c, "/restartPolicy").is_empty() {
            w.w(2, &format!("Restart Policy:\t{}\n", s(c, "/restartPolicy")));
        }
        for (field, title) in [("/command", "Command"), ("/args", "Args")] {
            let items = arr(c.pointer(field));
            if !items.is_empty() {
                w.w(2, &format!("{title}:\n"));
                for item in items {
                    for line in item.as_str().unwrap_or("").split('\n') {
                        w.w(3, &format!("{line}\n"));
                    }
                }
            }
        }
        if let Some(st) = status {
            state(w, "State", st.get("state"));
            if st.pointer("/lastState/terminated").is_some() {
                state(w, "Last State", st.get("lastState"));
            }
            let ready = if st["ready"] == Value::Bool(true) {
                "True"
            } else {
                "False"
            };
            w.w(2, &format!("Ready:\t{ready}\n"));
            w.w(
                2,
                &format!("Restart Count:\t{}\n", num(st, "/restartCount")),
            );
        }
        for (field, title) in [("limits", "Limits"), ("requests", "Requests")] {
            let list = strings(c.pointer(&format!("/resources/{field}")));
            if !list.is_empty() {
                w.w(2, &format!("{title}:\n"));
            }
            for (k, v) in list {
                w.w(3, &format!("{k}:\t{v}\n"));
            }
        }
        for (field, title) in [
            ("livenessProbe", "Liveness"),
            ("readinessProbe", "Readiness"),
            ("startupProbe", "Startup"),
        ] {
            if let Some(p) = c.get(field) {
                w.w(2, &format!("{title}:\t{}\n", probe(p)));
            }
        }
        env(w, c);
        mounts(w, c);
    }
}

fn state(w: &mut Text, title: &str, st: Option<&Value>) {
    let st = st.cloned().unwrap_or(Value::Null);
    if let Some(r) = st.get("running") {
        w.w(2, &format!("{title}:\tRunning\n"));
        w.w(3, &format!("Started:\t{}\n", rfc1123z(s(r, "/startedAt"))));
    } else if let Some(t) = st.get("terminated") {
        w.w(2, &format!("{title}:\tTerminated\n"));
        for (f, name) in [("/reason", "Reason"), ("/message", "Message")] {
            if !s(t, f).is_empty() {
                w.w(3, &format!("{name}:\t{}\n", s(t, f)));
            }
        }
        w.w(3, &format!("Exit Code:\t{}\n", num(t, "/exitCode")));
        if t.get("signal").and_then(Value::as_i64).unwrap_or(0) > 0 {
            w.w(3, &format!("Signal:\t{}\n", num(t, "/signal")));
        }
        w.w(3, &format!("Started:\t{}\n", rfc1123z(s(t, "/startedAt"))));
        w.w(
            3,
            &format!("Finished:\t{}\n", rfc1123z(s(t, "/finishedAt"))),
        );
    } else {
        w.w(2, &format!("{title}:\tWaiting\n"));
        let reason = s(&st, "/waiting/reason");
        if !reason.is_empty() {
            w.w(3, &format!("Reason:\t{reason}\n"));
        }
    }
}

/// A probe as kubectl describes it: `http-get http://:80/ delay=0s timeout=1s ...`.
pub fn probe(p: &Value) -> String {
    let attrs = format!(
        "delay={}s timeout={}s period={}s #success={} #failure={}",
        p.get("initialDelaySeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0),
        p.get("timeoutSeconds").and_then(Value::as_i64).unwrap_or(0),
        p.get("periodSeconds").and_then(Value::as_i64).unwrap_or(0),
        p.get("successThreshold")
            .and_then(Value::as_i64)
            .unwrap_or(0),
        p.get("failureThreshold")
            .and_then(Value::as_i64)
            .unwrap_or(0),
    );
    if let Some(e) = p.get("exec") {
        let cmd: Vec<&str> = arr(e.get("command"))
            .iter()
            .filter_map(Value::as_str)
            .collect();
        format!("exec [{}] {attrs}", cmd.join(" "))
    } else if let Some(h) = p.get("httpGet") {
        let port = num(h, "/port");
        let host = s(h, "/host");
        let host = if port.is_empty() {
            host.to_string()
        } else if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let scheme = s(h, "/scheme").to_lowercase();
        let scheme = if scheme.is_empty() {
            String::new()
        } else {
            format!("{scheme}:")
        };
        format!("http-get {scheme}//{host}{} {attrs}", s(h, "/path"))
    } else if let Some(t) = p.get("tcpSocket") {
        format!("tcp-socket {}:{} {attrs}", s(t, "/host"), num(t, "/port"))
    } else if let Some(g) = p.get("grpc") {
        format!(
            "grpc <pod>:{} {} {attrs}",
            num(g, "/port"),
            s(g, "/service")
        )
    } else {
        format!("unknown {attrs}")
    }
}

fn env(w: &mut Text, c: &Value) {
    let from = arr(c.pointer("/envFrom"));
    if !from.is_empty() {
        w.w(2, "Environment Variables from:\n");
        for e in from {
            let (kind, r) = match (e.get("configMapRef"), e.get("secretRef")) {
                (Some(r), _) => ("ConfigMap", r),
                (None, Some(r)) => ("Secret", r),
                _ => ("", &Value::Null),
            };
            let optional = r["optional"] == Value::Bool(true);
            let prefix = s(e, "/prefix");
            let with = if prefix.is_empty() {
                kind.to_string()
            } else {
                format!("{kind} with prefix '{prefix}'")
            };
            w.w(
                3,
                &format!("{}\t{with}\tOptional: {optional}\n", s(r, "/name")),
            );
        }
    }
    let vars = arr(c.pointer("/env"));
    let none = if vars.is_empty() { "\t<none>" } else { "" };
    w.w(2, &format!("Environment:{none}\n"));
    for e in vars {
        let name = s(e, "/name");
        let Some(from) = e.get("valueFrom") else {
            for (i, line) in s(e, "/value").split('\n').enumerate() {
                if i == 0 {
                    w.w(3, &format!("{name}:\t{line}\n"));
                } else {
                    w.w(3, &format!("\t{line}\n"));
                }
            }
            continue;
        };
        if let Some(f) = from.get("fieldRef") {
            w.w(
                3,
                &format!(
                    "{name}:\t ({}:{})\n",
                    s(f, "/apiVersion"),
                    s(f, "/fieldPath")
                ),
            );
        } else if let Some(r) = from.get("resourceFieldRef") {
            w.w(3, &format!("{name}:\t ({})\n", s(r, "/resource")));
        } else if let Some(r) = from.get("secretKeyRef") {
            w.w(
                3,
                &format!(
                    "{name}:\t<set to the key '{}' in secret '{}'>\tOptional: {}\n",
                    s(r, "/key"),
                    s(r, "/name"),
                    r["optional"] == Value::Bool(true)
                ),
            );
        } else if let Some(r) = from.get("configMapKeyRef") {
            w.w(
                3,
                &format!(
                    "{name}:\t<set to the key '{}' of config map '{}'>\tOptional: {}\n",
                    s(r, "/key"),
                    s(r, "/name"),
                    r["optional"] == Value::Bool(true)
                ),
            );
        }
    }
}

fn mounts(w: &mut Text, c: &Value) {
    let mut list = arr(c.pointer("/volumeMounts")).to_vec();
    let none = if list.is_empty() { "\t<none>" } else { "" };
    w.w(2, &format!("Mounts:{none}\n"));
    list.sort_by(|a, b| s(a, "/mountPath").cmp(s(b, "/mountPath")));
    for m in &list {
        let mut flags = vec![if m["readOnly"] == Value::Bool(true) {
            "ro"
        } else {
            "rw"
        }
        .to_string()];
        if !s(m, "/subPath").is_empty() {
            flags.push(format!("path={:?}", s(m, "/subPath")));
        }
        w.w(
            3,
            &format!(
                "{} from {} ({})\n",
                s(m, "/mountPath"),
                s(m, "/name"),
                flags.join(",")
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn probes() {
        let p = json!({"httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"},
            "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3});
        assert_eq!(
            probe(&p),
            "http-get http://:8080/healthz delay=0s timeout=1s period=10s #success=1 #failure=3"
        );
    }
}
