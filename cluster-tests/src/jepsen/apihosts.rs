//! Apiservers in containers on the store's network, each given every store member
//! (`--etcd-servers`), serving HTTPS with a certificate of a CA made for the run; clients use
//! the admin token.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::docker::{Container, RunSpec};
use super::hosts::StoreHosts;
use super::image;
use crate::tls::{make_ca, sign_subject};
use crate::{apiserver_binary, ADMIN_TOKEN};

const PORT: u16 = 6443;

/// The apiservers of a run. Drop it before the [`StoreHosts`] whose network it uses.
pub struct ApiHosts {
    containers: Vec<Container>,
    /// One kubeconfig per apiserver (admin token, the run's CA).
    kubeconfigs: Vec<PathBuf>,
    _dir: tempfile::TempDir,
}

impl ApiHosts {
    /// Starts `n` apiservers on the hosts' network and waits until each answers `/readyz`.
    pub async fn start(hosts: &StoreHosts, n: usize) -> Result<ApiHosts> {
        let image = image::ensure("apiserver", &apiserver_binary())?;
        let dir = tempfile::Builder::new()
            .prefix("jepsen-api-")
            .tempdir()
            .context("creating the apiservers' directory")?;
        let pki = dir.path().join("pki");
        std::fs::create_dir_all(&pki)?;
        let (ca, ca_key) = (pki.join("ca.crt"), pki.join("ca.key"));
        make_ca(&ca, &ca_key, "jepsen apiserver CA")?;
        let network = hosts.network();
        let ips: Vec<String> = (0..n)
            .map(|i| network.ip(u8::try_from(201 + i).unwrap_or(254)))
            .collect();
        let san: Vec<String> = ips.iter().map(|ip| format!("IP:{ip}")).collect();
        sign_subject(
            &pki,
            &ca,
            &ca_key,
            "apiserver",
            "/CN=kube-apiserver",
            &format!(
                "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n\
                 extendedKeyUsage=serverAuth\nsubjectAltName={}\n",
                san.join(",")
            ),
        )?;
        std::fs::write(
            pki.join("tokens.csv"),
            format!("{ADMIN_TOKEN},token-admin,1,\"system:masters\"\n"),
        )?;
        let etcd = hosts
            .members()
            .iter()
            .filter(|m| m.active())
            .map(|m| m.client_url())
            .collect::<Vec<_>>()
            .join(",");
        let pki_dir = pki.to_str().context("path is not UTF-8")?.to_owned();
        let mut api = ApiHosts {
            containers: Vec::new(),
            kubeconfigs: Vec::new(),
            _dir: dir,
        };
        for (i, ip) in ips.iter().enumerate() {
            let container = Container::run(RunSpec {
                name: &format!("{}-api{}", network.name, i + 1),
                image: &image,
                network,
                ip,
                mounts: vec![(pki_dir.clone(), "/pki".to_owned())],
                args: vec![
                    format!("--etcd-servers={etcd}"),
                    format!("--bind-address={ip}"),
                    format!("--secure-port={PORT}"),
                    "--tls-cert-file=/pki/apiserver.crt".to_owned(),
                    "--tls-private-key-file=/pki/apiserver.key".to_owned(),
                    "--client-ca-file=/pki/ca.crt".to_owned(),
                    "--token-auth-file=/pki/tokens.csv".to_owned(),
                    "--bookmark-interval=1".to_owned(),
                ],
            })?;
            api.containers.push(container);
            let kubeconfig = api._dir.path().join(format!("api{}.kubeconfig", i + 1));
            std::fs::write(&kubeconfig, kubeconfig_text(ip, &ca))?;
            api.kubeconfigs.push(kubeconfig);
        }
        api.wait_ready(Duration::from_secs(30)).await?;
        Ok(api)
    }

    /// A client of apiserver `i`, with `timeout` on every request.
    pub async fn client(&self, i: usize, timeout: Duration) -> Result<kube::Client> {
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfigs[i])
            .context("reading a kubeconfig")?;
        let mut config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await?;
        config.connect_timeout = Some(timeout);
        config.read_timeout = Some(timeout);
        config.write_timeout = Some(timeout);
        Ok(kube::Client::try_from(config)?)
    }

    pub fn len(&self) -> usize {
        self.containers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.containers.is_empty()
    }

    async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        for i in 0..self.len() {
            let client = self.client(i, Duration::from_secs(2)).await?;
            loop {
                let request = http::Request::get("/readyz").body(Vec::new())?;
                match client.request_text(request).await {
                    Ok(_) => break,
                    Err(e) if Instant::now() > deadline => bail!(
                        "apiserver {} not ready in {timeout:?}: {e}\n{}",
                        self.containers[i].name,
                        self.containers[i].logs(30)
                    ),
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        }
        Ok(())
    }

    /// The last lines of every apiserver's output.
    pub fn logs(&self, lines: usize) -> String {
        self.containers
            .iter()
            .map(|c| format!("--- {} ({}) ---\n{}\n", c.name, c.ip, c.logs(lines)))
            .collect()
    }
}

fn kubeconfig_text(ip: &str, ca: &Path) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: jepsen\n  cluster:\n    server: https://{ip}:{PORT}\n    certificate-authority: {}\nusers:\n- name: admin\n  user:\n    token: {ADMIN_TOKEN}\ncontexts:\n- name: jepsen\n  context:\n    cluster: jepsen\n    user: admin\n    namespace: default\ncurrent-context: jepsen\n",
        ca.display()
    )
}
