//! Cluster setup: `certs generate` makes a CA and the certificate of every component and
//! identity; `kubeconfig` writes a standard kubeconfig (data embedded) for one of them.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use base64::Engine;
use clap::Args;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

#[derive(Debug, Args)]
pub struct CertsArgs {
    /// Only `generate` is offered.
    #[arg(value_parser = ["generate"])]
    pub action: String,
    /// Directory to write the PEM files to.
    #[arg(long, default_value = "pki")]
    pub dir: PathBuf,
    /// Extra names and addresses of the serving certificates (apiserver, store, and each
    /// node's agent API: give the nodes' addresses here).
    #[arg(long, value_delimiter = ',')]
    pub hosts: Vec<String>,
    /// Node names to make agent certificates for (CN system:node:NAME, O system:nodes).
    #[arg(long, value_delimiter = ',')]
    pub nodes: Vec<String>,
}

/// (file name, CN, groups, server use, client use, extra SANs)
fn identities(nodes: &[String]) -> Vec<(String, String, Vec<&'static str>, bool, bool)> {
    let mut out = vec![
        (
            "apiserver".to_string(),
            "kube-apiserver".to_string(),
            vec![],
            true,
            false,
        ),
        ("store".into(), "store".into(), vec![], true, true),
        (
            "apiserver-etcd-client".into(),
            "kube-apiserver".into(),
            vec![],
            false,
            true,
        ),
        // The operator's client certificate for the store (etcdctl, `pctl store`): the store
        // accepts any client certificate of the cluster CA (`--client-cert-auth`).
        (
            "store-operator".into(),
            "store-operator".into(),
            vec![],
            false,
            true,
        ),
        (
            "apiserver-kubelet-client".into(),
            "kube-apiserver-kubelet-client".into(),
            vec!["system:masters"],
            false,
            true,
        ),
        (
            "admin".into(),
            "admin".into(),
            vec!["system:masters"],
            false,
            true,
        ),
        (
            "viewer".into(),
            "viewer".into(),
            vec!["system:viewers"],
            false,
            true,
        ),
        (
            "scheduler".into(),
            "system:kube-scheduler".into(),
            vec![],
            false,
            true,
        ),
        (
            "controller-manager".into(),
            "system:kube-controller-manager".into(),
            vec![],
            false,
            true,
        ),
    ];
    for n in nodes {
        // An agent both calls the apiserver and serves pods/log and pods/exec to it.
        out.push((
            format!("node-{n}"),
            format!("system:node:{n}"),
            vec!["system:nodes"],
            true,
            true,
        ));
    }
    out
}

fn write_key(path: &Path, pem: &str) -> Result<()> {
    fs::write(path, pem).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

pub fn generate(a: CertsArgs) -> Result<()> {
    fs::create_dir_all(&a.dir).with_context(|| format!("creating {}", a.dir.display()))?;
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.distinguished_name = DistinguishedName::new();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "pctl cluster CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = ca_params.self_signed(&ca_key)?;
    fs::write(a.dir.join("ca.crt"), ca.pem())?;
    write_key(&a.dir.join("ca.key"), &ca_key.serialize_pem())?;
    let mut server_names: Vec<String> = [
        "localhost",
        "127.0.0.1",
        "::1",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "10.96.0.1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    server_names.extend(a.hosts.iter().cloned());
    for (file, cn, groups, server, client) in identities(&a.nodes) {
        let key = KeyPair::generate()?;
        // A node's serving certificate (the agent API) also names the node, as the
        // kubelet's does; the apiserver dials the node's address (`--hosts` adds it).
        let mut names = if server {
            server_names.clone()
        } else {
            Vec::new()
        };
        if let Some(node) = cn.strip_prefix("system:node:") {
            names.push(node.to_string());
        }
        let mut p = CertificateParams::new(names)?;
        p.distinguished_name = DistinguishedName::new();
        for g in groups {
            p.distinguished_name.push(DnType::OrganizationName, g);
        }
        p.distinguished_name.push(DnType::CommonName, cn.as_str());
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = [
            (server, ExtendedKeyUsagePurpose::ServerAuth),
            (client, ExtendedKeyUsagePurpose::ClientAuth),
        ]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, u)| u)
        .collect();
        let cert = p.signed_by(&key, &ca, &ca_key)?;
        fs::write(a.dir.join(format!("{file}.crt")), cert.pem())?;
        write_key(&a.dir.join(format!("{file}.key")), &key.serialize_pem())?;
        outln!("{}/{file}.crt (CN={cn})", a.dir.display());
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct KubeconfigArgs {
    /// The apiserver URL.
    #[arg(long, default_value = "https://127.0.0.1:6443")]
    pub server: String,
    /// The directory `pctl certs generate` wrote.
    #[arg(long, default_value = "pki")]
    pub certs_dir: PathBuf,
    /// Which identity: admin, viewer, scheduler, controller-manager or node-NAME.
    #[arg(long, default_value = "admin")]
    pub user: String,
}

pub fn kubeconfig(a: KubeconfigArgs) -> Result<()> {
    let b64 = |p: PathBuf| -> Result<String> {
        let bytes = fs::read(&p).map_err(|e| {
            anyhow!(
                "error: reading {}: {e} (run `pctl certs generate` first)",
                p.display()
            )
        })?;
        Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
    };
    let ca = b64(a.certs_dir.join("ca.crt"))?;
    let crt = b64(a.certs_dir.join(format!("{}.crt", a.user)))?;
    let key = b64(a.certs_dir.join(format!("{}.key", a.user)))?;
    out!(
        concat!(
            "apiVersion: v1\n",
            "kind: Config\n",
            "clusters:\n",
            "- name: cluster\n",
            "  cluster:\n",
            "    server: {}\n",
            "    certificate-authority-data: {ca}\n",
            "users:\n",
            "- name: {user}\n",
            "  user:\n",
            "    client-certificate-data: {crt}\n",
            "    client-key-data: {key}\n",
            "contexts:\n",
            "- name: {user}@cluster\n",
            "  context:\n",
            "    cluster: cluster\n",
            "    user: {user}\n",
            "    namespace: default\n",
            "current-context: {user}@cluster\n",
        ),
        a.server,
        user = a.user,
        // Named explicitly: a `concat!` format string does not capture variables.
        ca = ca,
        crt = crt,
        key = key,
    );
    Ok(())
}
