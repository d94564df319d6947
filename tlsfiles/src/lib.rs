//! PEM files to rustls, shared by the servers that speak TLS with client certificates (the
//! apiserver and the agent): certificate chains, private keys, CA bundles as trust roots, and
//! the user a verified client certificate names (CN the user, each O a group, as Kubernetes),
//! and [`AnyServerCert`] for clients that do not verify the server (probes, unverified kubelets).

mod any_server_cert;

use std::path::{Path, PathBuf};

pub use any_server_cert::AnyServerCert;

use rustls::{
    pki_types::{CertificateDer, PrivateKeyDer},
    RootCertStore,
};

/// Why a PEM file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not valid PEM.
    #[error("parsing {path}: {source}")]
    Parse {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file holds no certificate (or no private key) where one was expected.
    #[error("{path} holds no PEM {what}")]
    Missing { path: PathBuf, what: &'static str },
    /// rustls refused a certificate as a trust root.
    #[error("adding a CA certificate from {path}: {source}")]
    Root {
        path: PathBuf,
        source: rustls::Error,
    },
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The certificates in the PEM file at `path` (at least one).
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let pem = read(path)?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| Error::Parse {
            path: path.to_path_buf(),
            source,
        })?;
    if certs.is_empty() {
        return Err(Error::Missing {
            path: path.to_path_buf(),
            what: "certificate",
        });
    }
    Ok(certs)
}

/// The private key in the PEM file at `path`.
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    let pem = read(path)?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|source| Error::Parse {
            path: path.to_path_buf(),
            source,
        })?
        .ok_or_else(|| Error::Missing {
            path: path.to_path_buf(),
            what: "private key",
        })
}

/// The certificates of the CA bundle at `path` as rustls trust roots.
pub fn root_store(path: &Path) -> Result<RootCertStore, Error> {
    let mut roots = RootCertStore::empty();
    for c in read_certs(path)? {
        roots.add(c).map_err(|source| Error::Root {
            path: path.to_path_buf(),
            source,
        })?;
    }
    Ok(roots)
}

/// The user a client certificate names: its subject's CN, and each O as a group.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CertUser {
    pub name: String,
    pub groups: Vec<String>,
}

/// The user named by `cert` (None when it is not X.509 or has no CN).
pub fn user_of(cert: &CertificateDer<'_>) -> Option<CertUser> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let subject = parsed.subject();
    let name = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_string))
        .collect();
    Some(CertUser { name, groups })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_name_the_path() {
        let e = read_certs(Path::new("/nonexistent/ca.crt")).unwrap_err();
        assert!(matches!(e, Error::Read { .. }));
        assert!(e.to_string().contains("/nonexistent/ca.crt"));
    }

    #[test]
    fn a_file_without_certificates_is_refused() {
        let dir = std::env::temp_dir().join(format!("tlsfiles-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("empty.pem");
        std::fs::write(&f, "not pem\n").unwrap();
        assert!(matches!(read_certs(&f), Err(Error::Missing { .. })));
        assert!(matches!(read_key(&f), Err(Error::Missing { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
