//! An API cluster: a store cluster (ours or real etcd) with one or more apiserver processes in
//! front, certificates for every identity the tests use, a kubeconfig per identity, and helpers
//! that run the real `kubectl` (and `curl`) against it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::{
    ports, process,
    tls::{make_ca, sign_subject},
    Cluster, ClusterConfig,
};

/// Path of the kubectl the tests drive.
pub const KUBECTL_BIN: &str = "/usr/bin/kubectl";

/// The bearer token of the `token-admin` identity and of the viewer token.
pub const ADMIN_TOKEN: &str = "admin-token-0123456789";
pub const VIEWER_TOKEN: &str = "viewer-token-0123456789";

/// Who a request comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// Client certificate CN=admin, O=system:masters.
    Admin,
    /// Client certificate CN=viewer, O=system:viewers.
    Viewer,
    /// Client certificate CN=system:node:n1, O=system:nodes.
    Node1,
    /// Client certificate CN=system:node:n2, O=system:nodes.
    Node2,
    /// Bearer token of an admin.
    TokenAdmin,
    /// A bearer token the server does not know.
    BogusToken,
    /// No credentials at all.
    Anonymous,
}

impl Identity {
    const ALL: [Identity; 7] = [
        Identity::Admin,
        Identity::Viewer,
        Identity::Node1,
        Identity::Node2,
        Identity::TokenAdmin,
        Identity::BogusToken,
        Identity::Anonymous,
    ];

    fn name(self) -> &'static str {
        match self {
            Identity::Admin => "admin",
            Identity::Viewer => "viewer",
            Identity::Node1 => "node-n1",
            Identity::Node2 => "node-n2",
            Identity::TokenAdmin => "token-admin",
            Identity::BogusToken => "bogus-token",
            Identity::Anonymous => "anonymous",
        }
    }

    /// The node this identity is the agent of (`n1`, `n2`), for node identities.
    pub fn node(self) -> Option<&'static str> {
        match self {
            Identity::Node1 => Some("n1"),
            Identity::Node2 => Some("n2"),
            _ => None,
        }
    }

    /// The certificate subject, for identities that present one.
    fn subject(self) -> Option<&'static str> {
        match self {
            Identity::Admin => Some("/O=system:masters/CN=admin"),
            Identity::Viewer => Some("/O=system:viewers/CN=viewer"),
            Identity::Node1 => Some("/O=system:nodes/CN=system:node:n1"),
            Identity::Node2 => Some("/O=system:nodes/CN=system:node:n2"),
            _ => None,
        }
    }
}

/// The scheduler's and controller-manager's flag that lifts their client-side limits
/// (`--kube-api-qps`): for benchmarks that measure what they can do, not their default pace.
pub const UNTHROTTLED: &str = "--kube-api-qps=-1";

/// What [`ApiCluster::start`] starts.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The store cluster (flavor from `STORE_FLAVOR`; with `tls`, the apiserver uses mutual TLS).
    pub store: ClusterConfig,
    /// Number of apiserver processes.
    pub replicas: usize,
    /// Appended to every apiserver's command line.
    pub extra_args: Vec<String>,
    /// Seconds between the BOOKMARKs of a watch that asks for them (`--bookmark-interval`):
    /// 1 by default, so tests see them quickly; None keeps the apiserver's own default, for
    /// benchmarks that hold thousands of watches as a real cluster would.
    pub bookmark_interval: Option<u64>,
}

impl ApiConfig {
    /// One store member, one apiserver.
    pub fn new() -> ApiConfig {
        ApiConfig {
            store: ClusterConfig::new(1),
            replicas: 1,
            extra_args: Vec::new(),
            bookmark_interval: Some(1),
        }
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self::new()
    }
}

struct Server {
    port: u16,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

/// A running store plus apiservers. Dropping it kills everything (logs printed on panic).
pub struct ApiCluster {
    pub store: Cluster,
    dir: PathBuf,
    servers: Vec<Server>,
    binary: PathBuf,
}

/// The apiserver binary: `$APISERVER_BIN`, else `<target>/debug/apiserver`.
pub fn apiserver_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("APISERVER_BIN").filter(|v| !v.is_empty()) {
        return PathBuf::from(bin);
    }
    crate::debug_dir().join("apiserver")
}

/// openssl extensions of a client certificate.
const CLIENT_CERT: &str = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n\
                           extendedKeyUsage=clientAuth\n";

/// openssl extensions of a serving certificate for `san` (`IP:...,DNS:...`).
fn server_cert(san: &str) -> String {
    format!(
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n\
         extendedKeyUsage=serverAuth\nsubjectAltName={san}\n"
    )
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

impl ApiCluster {
    /// Starts the store, makes the certificates, starts the apiservers and waits until each
    /// answers `/readyz`.
    pub async fn start(cfg: ApiConfig) -> Result<ApiCluster> {
        let binary = apiserver_binary();
        if !binary.is_file() {
            bail!(
                "apiserver binary not found at {} (build it with `cargo build -p apiserver`)",
                binary.display()
            );
        }
        if !Path::new(KUBECTL_BIN).is_file() {
            bail!("kubectl not found at {KUBECTL_BIN}");
        }
        let store = Cluster::start(cfg.store.clone()).await?;
        let dir = store.dir().join("api");
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let pki = dir.join("pki");
        fs::create_dir_all(&pki)?;
        make_ca(
            &pki.join("ca.crt"),
            &pki.join("ca.key"),
            "apiserver test CA",
        )?;
        let ca = pki.join("ca.crt");
        let ca_key = pki.join("ca.key");
        sign_subject(
            &pki,
            &ca,
            &ca_key,
            "apiserver",
            "/CN=kube-apiserver",
            &server_cert("IP:127.0.0.1,DNS:localhost"),
        )?;
        // The apiserver's client certificate towards agents, as kube-apiserver-kubelet-client.
        sign_subject(
            &pki,
            &ca,
            &ca_key,
            "apiserver-kubelet-client",
            "/O=system:masters/CN=kube-apiserver-kubelet-client",
            CLIENT_CERT,
        )?;
        for id in Identity::ALL {
            if let Some(subject) = id.subject() {
                sign_subject(&pki, &ca, &ca_key, id.name(), subject, CLIENT_CERT)?;
            }
        }
        let tokens = dir.join("tokens.csv");
        fs::write(
            &tokens,
            format!(
                "{ADMIN_TOKEN},token-admin,1,\"system:masters\"\n\
                 {VIEWER_TOKEN},token-viewer,2,\"system:viewers\"\n"
            ),
        )?;
        let mut cluster = ApiCluster {
            store,
            dir: dir.clone(),
            servers: Vec::new(),
            binary,
        };
        for i in 0..cfg.replicas.max(1) {
            let port = ports::allocate()?;
            let mut args = vec![
                format!("--etcd-servers={}", cluster.store.client_urls().join(",")),
                "--bind-address=127.0.0.1".into(),
                format!("--secure-port={port}"),
                format!("--tls-cert-file={}", s(&pki.join("apiserver.crt"))),
                format!("--tls-private-key-file={}", s(&pki.join("apiserver.key"))),
                format!("--client-ca-file={}", s(&ca)),
                format!("--token-auth-file={}", s(&tokens)),
                format!(
                    "--audit-log-path={}",
                    s(&dir.join(format!("audit-{i}.log")))
                ),
                format!(
                    "--kubelet-client-certificate={}",
                    s(&pki.join("apiserver-kubelet-client.crt"))
                ),
                format!(
                    "--kubelet-client-key={}",
                    s(&pki.join("apiserver-kubelet-client.key"))
                ),
                format!("--kubelet-certificate-authority={}", s(&ca)),
            ];
            if let Some(t) = cluster.store.tls_files() {
                args.push(format!("--etcd-cafile={}", s(&t.ca_cert)));
                args.push(format!("--etcd-certfile={}", s(&t.client_cert)));
                args.push(format!("--etcd-keyfile={}", s(&t.client_key)));
            }
            if let Some(secs) = cfg.bookmark_interval {
                args.push(format!("--bookmark-interval={secs}"));
            }
            args.extend(cfg.extra_args.iter().cloned());
            cluster.servers.push(Server {
                port,
                args,
                log: dir.join(format!("apiserver-{i}.log")),
                child: None,
            });
        }
        for i in 0..cluster.servers.len() {
            cluster.spawn(i)?;
        }
        for i in 0..cluster.servers.len() {
            cluster.wait_ready(i)?;
        }
        for id in Identity::ALL {
            cluster.write_kubeconfig(id)?;
        }
        Ok(cluster)
    }

    fn spawn(&mut self, i: usize) -> Result<()> {
        let server = &mut self.servers[i];
        server.child = Some(process::spawn_logged(
            &self.binary,
            &server.args,
            &server.log,
        )?);
        Ok(())
    }

    fn wait_ready(&mut self, i: usize) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = format!("{}/readyz", self.url(i));
        loop {
            let out = Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
                .arg(self.ca())
                .arg(&url)
                .output();
            if out.as_ref().is_ok_and(|o| o.stdout == b"200") {
                return Ok(());
            }
            if let Some(child) = self.servers[i].child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    bail!(
                        "apiserver {i} exited ({status}) before it was ready:\n{}",
                        self.log_tail(i, 30)
                    );
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "apiserver {i} was not ready within 30 s:\n{}",
                    self.log_tail(i, 30)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A serving certificate for the agent of node `node` signed by the cluster CA (CN
    /// `system:node:NODE`, SAN 127.0.0.1), as `pctl certs generate --nodes` makes it; returns
    /// the certificate and key files.
    pub fn agent_serving_cert(&self, node: &str) -> Result<(PathBuf, PathBuf)> {
        let pki = self.dir.join("pki");
        let name = format!("agent-{node}");
        sign_subject(
            &pki,
            &pki.join("ca.crt"),
            &pki.join("ca.key"),
            &name,
            &format!("/O=system:nodes/CN=system:node:{node}"),
            &server_cert("IP:127.0.0.1"),
        )?;
        Ok((
            pki.join(format!("{name}.crt")),
            pki.join(format!("{name}.key")),
        ))
    }

    /// Starts an [`AgentDouble`](crate::agent_double::AgentDouble) for node `node`, with a
    /// serving certificate from the cluster CA, and returns it with its port.
    pub async fn start_agent_double(&self, node: &str) -> Result<crate::agent_double::AgentDouble> {
        let (cert, key) = self.agent_serving_cert(node)?;
        crate::agent_double::AgentDouble::start(&cert, &key, &self.ca()).await
    }

    /// Starts the scheduler and the controller-manager against this apiserver, with the
    /// admin's kubeconfig and without leader election, logging into [`ApiCluster::dir`].
    pub fn start_controllers(&self) -> Result<(crate::Component, crate::Component)> {
        self.start_controllers_with(&[])
    }

    /// [`ApiCluster::start_controllers`] with `extra` on both command lines (e.g.
    /// [`UNTHROTTLED`], or other `--kube-api-qps`).
    pub fn start_controllers_with(
        &self,
        extra: &[&str],
    ) -> Result<(crate::Component, crate::Component)> {
        let kubeconfig = format!(
            "--kubeconfig={}",
            self.kubeconfig(Identity::Admin).display()
        );
        let mut scheduler_args = vec![
            kubeconfig.clone(),
            format!("--port={}", crate::ports::allocate()?),
            "--leader-elect=false".into(),
        ];
        scheduler_args.extend(extra.iter().map(|a| a.to_string()));
        let scheduler = crate::Component::start("scheduler", &scheduler_args, self.dir())?;
        let mut cm_args = vec![kubeconfig, "--port=0".into(), "--leader-elect=false".into()];
        cm_args.extend(extra.iter().map(|a| a.to_string()));
        let cm = crate::Component::start("controller-manager", &cm_args, self.dir())?;
        Ok((scheduler, cm))
    }

    /// The cluster's working directory (certificates, kubeconfigs, logs).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The HTTPS URL of apiserver `i`.
    pub fn url(&self, i: usize) -> String {
        format!("https://127.0.0.1:{}", self.servers[i].port)
    }

    /// The CA that signed the apiserver and client certificates.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("pki").join("ca.crt")
    }

    /// The certificate and key of an identity that has one.
    pub fn client_cert(&self, id: Identity) -> Option<(PathBuf, PathBuf)> {
        id.subject().map(|_| {
            (
                self.dir.join("pki").join(format!("{}.crt", id.name())),
                self.dir.join("pki").join(format!("{}.key", id.name())),
            )
        })
    }

    /// The kubeconfig of an identity (pointing at apiserver 0).
    pub fn kubeconfig(&self, id: Identity) -> PathBuf {
        self.dir.join(format!("{}.kubeconfig", id.name()))
    }

    fn write_kubeconfig(&self, id: Identity) -> Result<()> {
        let user = match (id, self.client_cert(id)) {
            (_, Some((crt, key))) => format!(
                "    client-certificate: {}\n    client-key: {}\n",
                s(&crt),
                s(&key)
            ),
            (Identity::TokenAdmin, _) => format!("    token: {ADMIN_TOKEN}\n"),
            (Identity::BogusToken, _) => "    token: not-a-known-token\n".to_string(),
            _ => "    {}\n".to_string(),
        };
        let user = if user.trim() == "{}" {
            "  user: {}\n".to_string()
        } else {
            format!("  user:\n{user}")
        };
        let text = format!(
            "\
apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: {server}
    certificate-authority: {ca}
users:
- name: {name}
{user}contexts:
- name: test
  context:
    cluster: test
    user: {name}
    namespace: default
current-context: test
",
            server = self.url(0),
            ca = s(&self.ca()),
            name = id.name(),
        );
        let path = self.kubeconfig(id);
        fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    }

    fn kubectl_command(&self, id: Identity, args: &[&str]) -> Command {
        let mut cmd = Command::new(KUBECTL_BIN);
        cmd.arg(format!("--kubeconfig={}", s(&self.kubeconfig(id))))
            .arg(format!(
                "--cache-dir={}",
                s(&self.dir.join(format!("kube-cache-{}", id.name())))
            ))
            .args(args)
            .env_remove("KUBECONFIG");
        cmd
    }

    /// Runs kubectl as `id`.
    pub fn kubectl(&self, id: Identity, args: &[&str]) -> Output {
        crate::output_or_panic(self.kubectl_command(id, args).stdin(Stdio::null()), None)
    }

    /// Runs kubectl as `id` with `stdin` as its standard input.
    pub fn kubectl_stdin(&self, id: Identity, args: &[&str], stdin: &str) -> Output {
        crate::output_or_panic(
            &mut self.kubectl_command(id, args),
            Some(stdin.as_bytes().to_vec()),
        )
    }

    /// Starts a long-running kubectl (e.g. `get -w`) whose output goes to the returned file.
    pub fn kubectl_background(&self, id: Identity, args: &[&str], out: &Path) -> Child {
        let file = fs::File::create(out).expect("creating the output file");
        let err = file.try_clone().expect("duplicating the output file");
        self.kubectl_command(id, args)
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .expect("running kubectl")
    }

    /// A raw HTTPS request with curl as `id`: returns (HTTP status, body).
    pub fn curl(
        &self,
        id: Identity,
        method: &str,
        path: &str,
        body: Option<(&str, &[u8])>,
    ) -> (u16, String) {
        let mut cmd = Command::new("curl");
        cmd.args([
            "-s",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "-X",
            method,
            "--cacert",
        ])
        .arg(self.ca());
        if let Some((crt, key)) = self.client_cert(id) {
            cmd.arg("--cert").arg(crt).arg("--key").arg(key);
        }
        match id {
            Identity::TokenAdmin => {
                cmd.arg("-H")
                    .arg(format!("Authorization: Bearer {ADMIN_TOKEN}"));
            }
            Identity::BogusToken => {
                cmd.arg("-H").arg("Authorization: Bearer not-a-known-token");
            }
            _ => {}
        }
        let body_file = self.dir.join(format!("curl-body-{}", std::process::id()));
        if let Some((content_type, bytes)) = body {
            fs::write(&body_file, bytes).expect("writing the request body");
            cmd.arg("-H")
                .arg(format!("Content-Type: {content_type}"))
                .arg("--data-binary")
                .arg(format!("@{}", s(&body_file)));
        }
        cmd.arg(format!("{}{path}", self.url(0)));
        let out = crate::output_or_panic(cmd.stdin(Stdio::null()), None);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    /// Kills apiserver `i` (SIGKILL).
    pub fn kill_apiserver(&mut self, i: usize) {
        if let Some(mut c) = self.servers[i].child.take() {
            process::kill(&mut c);
        }
    }

    /// Starts apiserver `i` again and waits until it is ready.
    pub fn restart_apiserver(&mut self, i: usize) -> Result<()> {
        self.kill_apiserver(i);
        self.spawn(i)?;
        self.wait_ready(i)
    }

    /// The process id of apiserver `i`, while it runs.
    pub fn apiserver_pid(&self, i: usize) -> Option<u32> {
        self.servers[i].child.as_ref().map(|c| c.id())
    }

    /// The last `lines` lines of apiserver `i`'s log.
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        let text = fs::read_to_string(&self.servers[i].log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The audit log of apiserver `i`.
    pub fn audit_log(&self, i: usize) -> String {
        fs::read_to_string(self.dir.join(format!("audit-{i}.log"))).unwrap_or_default()
    }
}

impl Drop for ApiCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for i in 0..self.servers.len() {
                eprintln!(
                    "cluster-tests: apiserver {i} log tail:\n{}",
                    self.log_tail(i, 40)
                );
            }
        }
        for i in 0..self.servers.len() {
            self.kill_apiserver(i);
        }
    }
}
