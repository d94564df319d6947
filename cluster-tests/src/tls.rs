//! Test certificates made with the `openssl` command-line tool.
//!
//! One CA signs a member certificate (used by every member, for serving clients and peers and
//! as the client side of peer connections) and a client certificate for etcdctl and etcd-client.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Paths of the PEM files of a TLS cluster.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// CA certificate that signed everything below (`--trusted-ca-file`, `--cacert`).
    pub ca_cert: PathBuf,
    /// Member certificate with SANs 127.0.0.1 and localhost (`--cert-file`, `--peer-cert-file`).
    pub server_cert: PathBuf,
    /// Key of the member certificate.
    pub server_key: PathBuf,
    /// Client certificate (`--cert` of etcdctl).
    pub client_cert: PathBuf,
    /// Key of the client certificate (`--key` of etcdctl).
    pub client_key: PathBuf,
}

impl TlsFiles {
    /// Creates a fresh CA, member and client certificate in `dir` (which must exist).
    pub fn generate(dir: &Path) -> Result<TlsFiles> {
        let files = TlsFiles {
            ca_cert: dir.join("ca.crt"),
            server_cert: dir.join("server.crt"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.crt"),
            client_key: dir.join("client.key"),
        };
        let ca_key = dir.join("ca.key");

        make_ca(&files.ca_cert, &ca_key, "cluster-tests CA")
            .context("creating the CA certificate")?;

        let server_ext = "basicConstraints=CA:FALSE\n\
            keyUsage=critical,digitalSignature\n\
            extendedKeyUsage=serverAuth,clientAuth\n\
            subjectAltName=IP:127.0.0.1,DNS:localhost\n";
        sign(
            dir,
            &files,
            &ca_key,
            "server",
            "cluster-tests member",
            server_ext,
        )
        .context("creating the member certificate")?;

        let client_ext = "basicConstraints=CA:FALSE\n\
            keyUsage=critical,digitalSignature\n\
            extendedKeyUsage=clientAuth\n";
        sign(dir, &files, &ca_key, "client", "root", client_ext)
            .context("creating the client certificate")?;
        Ok(files)
    }

    /// The etcd-client TLS options: trust the CA, present the client certificate.
    pub fn client_tls_options(&self) -> Result<etcd_client::TlsOptions> {
        let ca = read(&self.ca_cert)?;
        let cert = read(&self.client_cert)?;
        let key = read(&self.client_key)?;
        Ok(etcd_client::TlsOptions::new()
            .ca_certificate(etcd_client::Certificate::from_pem(ca))
            .identity(etcd_client::Identity::from_pem(cert, key)))
    }
}

/// Makes `<name>.key` and `<name>.crt` in `dir`, signed by the CA, with the given extensions.
fn sign(
    dir: &Path,
    files: &TlsFiles,
    ca_key: &Path,
    name: &str,
    common_name: &str,
    extensions: &str,
) -> Result<()> {
    sign_subject(
        dir,
        &files.ca_cert,
        ca_key,
        name,
        &format!("/CN={common_name}"),
        extensions,
    )
}

/// Makes a self-signed CA certificate and key.
pub(crate) fn make_ca(cert: &Path, key: &Path, common_name: &str) -> Result<()> {
    openssl(&[
        "req",
        "-x509",
        "-nodes",
        "-days",
        "7",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-subj",
        &format!("/CN={common_name}"),
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout",
        path_str(key)?,
        "-out",
        path_str(cert)?,
    ])
}

/// Makes `<name>.key` and `<name>.crt` in `dir` for `subject` (`/O=group/CN=user`), signed by
/// the CA at `ca_cert`/`ca_key`, with the given extensions.
pub(crate) fn sign_subject(
    dir: &Path,
    ca_cert: &Path,
    ca_key: &Path,
    name: &str,
    subject: &str,
    extensions: &str,
) -> Result<()> {
    let key = dir.join(format!("{name}.key"));
    let csr = dir.join(format!("{name}.csr"));
    let crt = dir.join(format!("{name}.crt"));
    let ext = dir.join(format!("{name}.ext"));
    fs::write(&ext, extensions).with_context(|| format!("writing {}", ext.display()))?;
    openssl(&[
        "req",
        "-new",
        "-nodes",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-subj",
        subject,
        "-keyout",
        path_str(&key)?,
        "-out",
        path_str(&csr)?,
    ])?;
    openssl(&[
        "x509",
        "-req",
        "-days",
        "7",
        "-in",
        path_str(&csr)?,
        "-CA",
        path_str(ca_cert)?,
        "-CAkey",
        path_str(ca_key)?,
        "-CAcreateserial",
        "-extfile",
        path_str(&ext)?,
        "-out",
        path_str(&crt)?,
    ])
}

fn openssl(args: &[&str]) -> Result<()> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .context("running the openssl command-line tool (is it installed?)")?;
    if !out.status.success() {
        bail!(
            "openssl {} failed ({}): {}",
            args.first().copied().unwrap_or_default(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn path_str(path: &Path) -> Result<&str> {
    path.to_str()
        .with_context(|| format!("path is not UTF-8: {}", path.display()))
}

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("reading {}", path.display()))
}
