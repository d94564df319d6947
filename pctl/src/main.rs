//! `pctl`: the cluster's CLI. Everyday commands behave and print like kubectl's (it talks to the
//! apiserver through a standard kubeconfig); `certs` and `kubeconfig` set a cluster up.

mod certs;
mod cmd;
mod output;
mod resources;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Global flags, as kubectl's.
#[derive(Debug, Clone, Parser)]
pub struct Global {
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// The namespace (default: the context's, else "default").
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
}

#[derive(Debug, Parser)]
#[command(
    name = "pctl",
    version,
    about = "pctl controls the cluster: kubectl's everyday commands plus cluster setup."
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply a configuration to resources from files or stdin (client-side apply).
    Apply(cmd::apply::FileArgs),
    /// Create resources from files or stdin, or a deployment or namespace.
    Create(cmd::create::CreateArgs),
    /// Display one or many resources.
    Get(cmd::get::GetArgs),
    /// Show details of a resource, with its events.
    Describe(cmd::describe::DescribeArgs),
    /// Print the logs of a container in a pod.
    Logs(cmd::pod::LogsArgs),
    /// Run a command in a container.
    Exec(cmd::pod::ExecArgs),
    /// Delete resources by file, name or label selector.
    Delete(cmd::delete::DeleteArgs),
    /// Update the labels on a resource (`key=value`, `key-` to remove).
    Label(cmd::meta::MetaArgs),
    /// Update the annotations on a resource (`key=value`, `key-` to remove).
    Annotate(cmd::meta::MetaArgs),
    /// Set a new size for a deployment or replica set.
    Scale(cmd::scale::ScaleArgs),
    /// Mark a node unschedulable.
    Cordon(cmd::node::NodeArgs),
    /// Mark a node schedulable.
    Uncordon(cmd::node::NodeArgs),
    /// Drain a node: cordon it, then evict its pods.
    Drain(cmd::node::DrainArgs),
    /// Update the taints on a node (`key=value:Effect`, `key:Effect-` to remove).
    Taint(cmd::node::TaintArgs),
    /// Display resource (CPU/memory) usage of nodes or pods, from the Metrics API.
    Top(cmd::top::TopArgs),
    /// Manage the rollout of a deployment (restart).
    Rollout(cmd::rollout::RolloutArgs),
    /// Administer the store cluster: members, backups.
    Store(cmd::store::StoreArgs),
    /// Make a CA and every certificate the cluster's components use.
    Certs(certs::CertsArgs),
    /// Write a kubeconfig for one of the identities made by `pctl certs generate`.
    Kubeconfig(certs::KubeconfigArgs),
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Apply(a) => cmd::apply::apply(&cli.global, a).await,
        Command::Create(a) => cmd::create::create(&cli.global, a).await,
        Command::Get(a) => cmd::get::get(&cli.global, a).await,
        Command::Describe(a) => cmd::describe::describe(&cli.global, a).await,
        Command::Logs(a) => cmd::pod::logs(&cli.global, a).await,
        // Exits at once: a read of stdin (a terminal, or a pipe kept open) may still be
        // blocked, and ending the runtime would wait for it.
        Command::Exec(a) => match cmd::pod::exec(&cli.global, a).await {
            Ok(code) => {
                use std::io::Write;
                let _ = std::io::stdout().flush();
                std::process::exit(code)
            }
            Err(e) => Err(e),
        },
        Command::Delete(a) => cmd::delete::delete(&cli.global, a).await,
        Command::Label(a) => cmd::meta::update(&cli.global, a, cmd::meta::Field::Labels).await,
        Command::Annotate(a) => {
            cmd::meta::update(&cli.global, a, cmd::meta::Field::Annotations).await
        }
        Command::Scale(a) => cmd::scale::scale(&cli.global, a).await,
        Command::Cordon(a) => cmd::node::cordon(&cli.global, a, true).await,
        Command::Uncordon(a) => cmd::node::cordon(&cli.global, a, false).await,
        Command::Drain(a) => cmd::node::drain(&cli.global, a).await,
        Command::Taint(a) => cmd::node::taint(&cli.global, a).await,
        Command::Rollout(a) => cmd::rollout::rollout(&cli.global, a).await,
        Command::Top(a) => cmd::top::top(&cli.global, a).await,
        Command::Store(a) => cmd::store::store(a).await,
        Command::Certs(a) => certs::generate(a),
        Command::Kubeconfig(a) => certs::kubeconfig(a),
    };
    if let Err(e) = result {
        eprintln!("{}", output::error_text(&e));
        std::process::exit(1);
    }
}
