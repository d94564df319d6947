//! A node for tests: the real agent on a private containerd ([`Containerd`]: its own state,
//! socket, CNI network slot and images), registered with an [`ApiCluster`] under the node's
//! own identity, as `scripts/up.sh` runs it. Dropping it stops the agent, unmounts its tmpfs
//! volumes, then removes every container, sandbox, mount and network rule the node made.
//!
//! ```no_run
//! # async fn demo(api: &cluster_tests::ApiCluster) -> anyhow::Result<()> {
//! use cluster_tests::{ContainerdNode, Identity};
//! let node = ContainerdNode::start(api, Identity::Node1, &[]).await?;
//! assert_eq!(node.name(), "n1");
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Pod;

use crate::{ApiCluster, Component, Containerd, Identity};

/// A running agent on its own containerd.
#[derive(Debug)]
pub struct ContainerdNode {
    name: String,
    root: PathBuf,
    port: u16,
    /// The agent process (kill and restart it to test adoption).
    pub agent: Component,
    // Dropped after the agent (fields drop in order): the agent must not re-create what the
    // harness removes.
    containerd: Containerd,
}

impl ContainerdNode {
    /// Starts a containerd under the cluster's directory and the agent of node `id` on it
    /// (`extra`: more agent flags; `--pod-cidr=` alone starts it without a pod CIDR, so that it
    /// waits for `Node.spec.podCIDR`). Returns once the agent runs; the Node may not be Ready
    /// yet.
    pub async fn start(api: &ApiCluster, id: Identity, extra: &[&str]) -> Result<ContainerdNode> {
        let name = id
            .node()
            .with_context(|| format!("{id:?} is not a node identity"))?
            .to_string();
        let static_network = !extra.contains(&"--pod-cidr=");
        let containerd =
            Containerd::start_with(&api.dir().join(format!("cd-{name}")), static_network).await?;
        let root = api.dir().join(format!("agent-{name}"));
        // The agent API (logs, exec, stats) on its own port, with a serving certificate of
        // the cluster CA, accepting the cluster CA's clients (the apiserver's).
        let port = crate::ports::allocate()?;
        let (cert, key) = api.agent_serving_cert(&name)?;
        let mut args: Vec<String> = vec![
            format!("--kubeconfig={}", api.kubeconfig(id).display()),
            format!("--hostname-override={name}"),
            "--node-ip=127.0.0.1".into(),
            "--runtime=cri".into(),
            format!("--container-runtime-endpoint={}", containerd.endpoint()),
            format!("--root-dir={}", root.display()),
            // Each test node has its own cgroup tree, named after its network slot.
            format!("--cgroup-root=/{}", containerd.bridge()),
            "--node-status-update-frequency=1s".into(),
            "--relist-period=200ms".into(),
            "--address=127.0.0.1".into(),
            format!("--port={port}"),
            format!("--tls-cert-file={}", cert.display()),
            format!("--tls-private-key-file={}", key.display()),
            format!("--client-ca-file={}", api.ca().display()),
        ];
        if static_network {
            args.push(format!("--pod-cidr={}", containerd.pod_cidr()));
        }
        args.extend(
            extra
                .iter()
                .filter(|a| **a != "--pod-cidr=")
                .map(|s| s.to_string()),
        );
        let agent = Component::start("agent", &args, api.dir())?;
        Ok(ContainerdNode {
            name,
            root,
            port,
            agent,
            containerd,
        })
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The port of the agent API on 127.0.0.1 (HTTPS, client certificates of the cluster CA).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The agent's root directory (pod volumes, logs).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The node's containerd.
    pub fn containerd(&self) -> &Containerd {
        &self.containerd
    }

    /// What instance `attempt` of container `container` of `pod` wrote (stdout and stderr, in
    /// order), read from the CRI log file the agent has containerd write
    /// (`<root>/logs/<ns>_<pod>_<uid>/<container>/<attempt>.log`); empty when there is none.
    pub fn container_output(&self, pod: &Pod, container: &str, attempt: u32) -> String {
        let m = &pod.metadata;
        let dir = format!(
            "{}_{}_{}",
            m.namespace.as_deref().unwrap_or("default"),
            m.name.as_deref().unwrap_or_default(),
            m.uid.as_deref().unwrap_or_default()
        );
        let path = self
            .root
            .join("logs")
            .join(dir)
            .join(container)
            .join(format!("{attempt}.log"));
        let text = std::fs::read_to_string(path).unwrap_or_default();
        // CRI log lines: `<time> <stream> <P|F> <text>`; P lines continue on the next one.
        let mut out = String::new();
        for line in text.lines() {
            let mut parts = line.splitn(4, ' ');
            let (_, _, tag, rest) = (parts.next(), parts.next(), parts.next(), parts.next());
            out.push_str(rest.unwrap_or_default());
            if tag != Some("P") {
                out.push('\n');
            }
        }
        out
    }

    /// Waits (60 s at most) until the node's Node object is Ready, as seen by `client`.
    pub async fn wait_ready(&self, client: &kube::Client) {
        let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client.clone());
        crate::wait::node_ready(&nodes, &self.name, 60, || self.logs(60)).await;
    }

    /// A pod bound to this node: `spec` with `nodeName` set.
    pub fn pod(&self, name: &str, spec: serde_json::Value) -> Pod {
        let mut spec = spec;
        spec["nodeName"] = serde_json::json!(self.name);
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name},
            "spec": spec,
        }))
        .expect("a valid pod")
    }

    /// A busybox container `name` running `sh -c command`.
    pub fn busybox(name: &str, command: &str) -> serde_json::Value {
        serde_json::json!({"name": name, "image": crate::BUSYBOX_IMAGE,
            "command": ["sh", "-c", command]})
    }

    /// The last lines of the agent's and containerd's logs (for failure messages).
    pub fn logs(&self, lines: usize) -> String {
        format!(
            "--- agent ---\n{}\n--- containerd ---\n{}",
            self.agent.log_tail(lines),
            self.containerd.log_tail(lines / 2)
        )
    }
}

/// Unmounts every mount point under `dir`, deepest first (the agent's tmpfs volumes: memory
/// emptyDirs, secrets, projected volumes).
fn unmount_under(dir: &Path) {
    let prefix = format!("{}/", dir.display());
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|p| p.starts_with(&prefix))
        .collect();
    points.sort_by(|a, b| b.cmp(a));
    for p in points {
        let _ = std::process::Command::new("umount")
            .args(["-l", p])
            .status();
    }
}

impl Drop for ContainerdNode {
    fn drop(&mut self) {
        self.agent.stop(Duration::from_secs(5));
        unmount_under(&self.root);
    }
}
