//! `pctl store`: administration of the store cluster that kubectl lacks and operators otherwise
//! do with etcdctl: member list/add/remove, snapshot save (a backup over the etcd Maintenance
//! API) and snapshot restore (a new member data dir from a backup, offline). Restore makes a
//! RocksDB data dir, which the `store` binary does (`store snapshot restore`): pctl runs it, so
//! that pctl itself links no database.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};

use crate::output;

#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Store members to talk to (comma-separated client URLs). Unset: etcdctl's
    /// `ETCDCTL_ENDPOINTS`, else the cluster `scripts/up.sh` started from this directory
    /// (`.run/store.env`), else http://127.0.0.1:2379. The TLS files fall back the same way.
    #[arg(
        long,
        env = "PCTL_STORE_ENDPOINTS",
        value_delimiter = ',',
        global = true
    )]
    pub endpoints: Vec<String>,
    /// CA bundle that signed the members' certificates (https endpoints).
    #[arg(long, env = "PCTL_STORE_CACERT", global = true)]
    pub cacert: Option<PathBuf>,
    /// Client certificate, when the store asks for one (`--client-cert-auth`).
    #[arg(long, env = "PCTL_STORE_CERT", global = true, requires = "key")]
    pub cert: Option<PathBuf>,
    /// Key of the client certificate.
    #[arg(long, env = "PCTL_STORE_KEY", global = true, requires = "cert")]
    pub key: Option<PathBuf>,
    #[command(subcommand)]
    pub what: StoreCmd,
}

#[derive(Debug, Subcommand)]
pub enum StoreCmd {
    /// Members of the store cluster.
    Member {
        #[command(subcommand)]
        op: MemberOp,
    },
    /// Backups of the store.
    Snapshot {
        #[command(subcommand)]
        op: SnapshotOp,
    },
}

#[derive(Debug, Subcommand)]
pub enum MemberOp {
    /// List the members (ID, STATUS, NAME, PEER URLS, CLIENT URLS, IS LEARNER).
    List,
    /// Add a member; prints the flags to start it with.
    Add {
        /// The new member's name (its `--name`).
        name: String,
        /// The new member's peer URLs (comma-separated).
        #[arg(long, value_delimiter = ',', required = true)]
        peer_urls: Vec<String>,
    },
    /// Remove a member, by hex ID (as `member list` prints it) or by name.
    Remove {
        /// Member ID or name.
        member: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SnapshotOp {
    /// Stream a consistent backup of the store from one member into FILE.
    Save {
        /// The backup file to write.
        file: PathBuf,
    },
    /// Create a new member data dir from a backup (offline); do it for each member with the
    /// same file, then start them as a new cluster.
    Restore {
        /// The backup file (from `snapshot save` or `etcdctl snapshot save` on our store).
        file: PathBuf,
        /// Name of the member this data dir is for.
        #[arg(long, default_value = "default")]
        name: String,
        /// Where to create the data dir (must not exist; default `<name>.store`).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

/// The file `scripts/up.sh` writes with the store's endpoint and the operator's TLS files.
const UP_ENV_FILE: &str = ".run/store.env";

/// `export NAME=VALUE` lines of a shell env file.
fn env_file(text: &str) -> std::collections::HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("export ")?.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
        .collect()
}

/// Fills what the flags and `PCTL_STORE_*` left unset from etcdctl's variables, then from
/// `.run/store.env`, then the plain local default.
fn with_defaults(mut a: StoreArgs) -> StoreArgs {
    let file = std::fs::read_to_string(UP_ENV_FILE)
        .map(|t| env_file(&t))
        .unwrap_or_default();
    let lookup = |name: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .or_else(|| file.get(name).cloned())
    };
    let tls_given = a.cacert.is_some() || a.cert.is_some();
    if a.endpoints.is_empty() {
        a.endpoints = lookup("ETCDCTL_ENDPOINTS")
            .map(|v| v.split(',').map(str::to_string).collect())
            .unwrap_or_else(|| vec!["http://127.0.0.1:2379".into()]);
    }
    if !tls_given {
        a.cacert = lookup("ETCDCTL_CACERT").map(PathBuf::from);
        let pair = (lookup("ETCDCTL_CERT"), lookup("ETCDCTL_KEY"));
        if let (Some(cert), Some(key)) = pair {
            a.cert = Some(PathBuf::from(cert));
            a.key = Some(PathBuf::from(key));
        }
    }
    a
}

pub async fn store(a: StoreArgs) -> Result<()> {
    let a = with_defaults(a);
    match &a.what {
        StoreCmd::Snapshot {
            op:
                SnapshotOp::Restore {
                    file,
                    name,
                    data_dir,
                },
        } => {
            let dir = data_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(format!("{name}.store")));
            restore(file, name, &dir)?;
            outln!("Snapshot restored into {} (member {name})", dir.display());
            outln!(
                "Start it with: store --name {name} --data-dir {} --initial-cluster-state new ...",
                dir.display()
            );
            Ok(())
        }
        StoreCmd::Snapshot {
            op: SnapshotOp::Save { file },
        } => save(&a, file).await,
        StoreCmd::Member { op } => member(&a, op).await,
    }
}

/// A client for `endpoints` with the TLS material of `a`.
async fn connect(a: &StoreArgs, endpoints: &[String]) -> Result<Client> {
    let mut options = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(Duration::from_secs(30));
    if a.cacert.is_some() || a.cert.is_some() {
        let mut t = TlsOptions::new();
        if let Some(ca) = &a.cacert {
            t = t.ca_certificate(Certificate::from_pem(
                std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?,
            ));
        }
        if let (Some(cert), Some(key)) = (&a.cert, &a.key) {
            let cert =
                std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?;
            let key = std::fs::read(key).with_context(|| format!("reading {}", key.display()))?;
            t = t.identity(Identity::from_pem(cert, key));
        }
        options = options.with_tls(t);
    }
    Client::connect(endpoints, Some(options))
        .await
        .with_context(|| format!("connecting to the store at {}", endpoints.join(",")))
}

async fn member(a: &StoreArgs, op: &MemberOp) -> Result<()> {
    let mut c = connect(a, &a.endpoints).await?;
    match op {
        MemberOp::List => {
            let resp = c.member_list().await?;
            let mut rows = vec![[
                "ID",
                "STATUS",
                "NAME",
                "PEER URLS",
                "CLIENT URLS",
                "IS LEARNER",
            ]
            .map(String::from)
            .to_vec()];
            for m in resp.members() {
                // etcd's rule: a member that has not started yet has no name.
                let started = if m.name().is_empty() {
                    "unstarted"
                } else {
                    "started"
                };
                rows.push(vec![
                    format!("{:x}", m.id()),
                    started.into(),
                    m.name().into(),
                    m.peer_urls().join(","),
                    m.client_urls().join(","),
                    m.is_learner().to_string(),
                ]);
            }
            out!("{}", output::align(&rows));
        }
        MemberOp::Add { name, peer_urls } => {
            let resp = c.member_add(peer_urls, None).await?;
            let added = resp
                .member()
                .ok_or_else(|| anyhow!("the store did not return the added member"))?;
            let cluster_id = resp.header().map(|h| h.cluster_id()).unwrap_or_default();
            outln!("Member {:x} added to cluster {cluster_id:x}", added.id());
            let mut initial = Vec::new();
            for m in resp.member_list() {
                let n = if m.id() == added.id() {
                    name.as_str()
                } else {
                    m.name()
                };
                for u in m.peer_urls() {
                    initial.push(format!("{n}={u}"));
                }
            }
            outln!();
            outln!("Start it with:");
            outln!(
                "store --name {name} --initial-advertise-peer-urls {} --listen-peer-urls {} \
                 --initial-cluster {} --initial-cluster-state existing",
                peer_urls.join(","),
                peer_urls.join(","),
                initial.join(",")
            );
        }
        MemberOp::Remove { member } => {
            let list = c.member_list().await?;
            let by_name: Vec<u64> = list
                .members()
                .iter()
                .filter(|m| m.name() == member)
                .map(|m| m.id())
                .collect();
            let id = match (u64::from_str_radix(member, 16), by_name.as_slice()) {
                (Ok(id), _) if list.members().iter().any(|m| m.id() == id) => id,
                (_, [id]) => *id,
                (_, []) => bail!("error: member {member} not found in the cluster"),
                _ => bail!("error: several members are named {member}; remove one by its ID"),
            };
            let resp = c.member_remove(id).await?;
            let cluster_id = resp.header().map(|h| h.cluster_id()).unwrap_or_default();
            outln!("Member {id:x} removed from cluster {cluster_id:x}");
        }
    }
    Ok(())
}

async fn save(a: &StoreArgs, file: &Path) -> Result<()> {
    // One member serves the whole backup: like etcdctl, take the first endpoint only.
    let first = a
        .endpoints
        .first()
        .cloned()
        .ok_or_else(|| anyhow!("error: no store endpoint"))?;
    let mut c = connect(a, std::slice::from_ref(&first)).await?;
    let mut stream = c.snapshot().await?;
    // Written beside the target as it arrives, checked, and renamed: FILE is either absent or a
    // whole, checked backup.
    let mut out = store_backup::Writer::create(file)?;
    let mut last_report = std::time::Instant::now();
    while let Some(msg) = stream.message().await? {
        out.write(msg.blob())?;
        if last_report.elapsed() > Duration::from_secs(1) {
            errln!(
                "received {} bytes, {} to go",
                out.len(),
                msg.remaining_bytes()
            );
            last_report = std::time::Instant::now();
        }
    }
    let size = out.finish().map_err(|e| match e {
        store_backup::BackupError::Checksum => {
            anyhow!("error: the backup from {first} is not valid: {e}")
        }
        e => e.into(),
    })?;
    outln!("Snapshot saved at {} ({size} bytes)", file.display());
    Ok(())
}

/// The `store` binary: beside pctl's own executable first, then on PATH.
fn store_binary() -> Result<PathBuf> {
    let name = format!("store{}", std::env::consts::EXE_SUFFIX);
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(&name)));
    if let Some(path) = beside.as_ref().filter(|p| p.is_file()) {
        return Ok(path.clone());
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(&name))
                .find(|p| p.is_file())
        })
        .unwrap_or_default();
    on_path.ok_or_else(|| {
        let where_ = beside
            .as_ref()
            .and_then(|p| p.parent())
            .map(|d| format!("beside pctl in {}", d.display()))
            .unwrap_or_else(|| "beside pctl".into());
        anyhow!(
            "error: snapshot restore needs the `{name}` binary (it makes the data dir), and \
             there is none {where_} or on PATH; install it there"
        )
    })
}

/// `store snapshot restore FILE --name NAME --data-dir DIR`: the store binary makes the data
/// dir (and prints why it could not, on stderr).
fn restore(file: &Path, name: &str, dir: &Path) -> Result<()> {
    let store = store_binary()?;
    let status = Command::new(&store)
        .args(["snapshot", "restore"])
        .arg(file)
        .arg(format!("--name={name}"))
        .arg("--data-dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()
        .with_context(|| format!("running {}", store.display()))?;
    if !status.success() {
        bail!(
            "error: {} snapshot restore failed ({status})",
            store.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_file_lines() {
        let m = env_file(
            "# made by up.sh\nexport ETCDCTL_API=3\nexport ETCDCTL_CACERT=\"/x/ca.crt\"\n",
        );
        assert_eq!(m["ETCDCTL_API"], "3");
        assert_eq!(m["ETCDCTL_CACERT"], "/x/ca.crt");
    }
}
