//! `pctl`: the cluster's CLI. Everyday commands behave and print like kubectl's (it talks to the
//! apiserver through a standard kubeconfig); `certs` and `kubeconfig` set a cluster up.

#[macro_use]
mod output;
mod certs;
mod cmd;
mod jsonpath;
mod resources;
mod yaml;

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
    /// Show what `apply -f` would change (exit 1 when something would).
    Diff(cmd::apply::FileArgs),
    /// Document a kind or one of its fields, from the server's OpenAPI schemas.
    Explain(cmd::explain::ExplainArgs),
    /// Edit a resource in $KUBE_EDITOR or $EDITOR.
    Edit(cmd::edit::EditArgs),
    /// Update fields of a resource with a strategic, merge or JSON patch.
    Patch(cmd::patch::PatchArgs),
    /// Set specific features on objects (image).
    Set(cmd::set::SetArgs),
    /// Wait for a condition on one or many resources.
    Wait(cmd::wait::WaitArgs),
    /// Print pctl's version and the server's.
    Version(cmd::version::VersionArgs),
    /// Print the resources the server supports.
    ApiResources(cmd::api_resources::ApiResourcesArgs),
    /// Print the API versions the server supports, as "group/version".
    ApiVersions,
    /// Display the address of the control plane.
    ClusterInfo,
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
                output::flush_stdout();
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
        Command::Diff(a) => match cmd::diff::diff(&cli.global, a).await {
            Ok(code) => {
                output::flush_stdout();
                std::process::exit(code)
            }
            Err(e) => Err(e),
        },
        Command::Explain(a) => cmd::explain::explain(&cli.global, a).await,
        Command::Edit(a) => cmd::edit::edit(&cli.global, a).await,
        Command::Patch(a) => cmd::patch::patch(&cli.global, a).await,
        Command::Set(a) => cmd::set::set(&cli.global, a).await,
        Command::Wait(a) => cmd::wait::wait(&cli.global, a).await,
        Command::Version(a) => cmd::version::version(&cli.global, a).await,
        Command::ApiResources(a) => cmd::api_resources::api_resources(&cli.global, a).await,
        Command::ApiVersions => cmd::api_resources::api_versions(&cli.global).await,
        Command::ClusterInfo => cmd::cluster_info::cluster_info(&cli.global).await,
        Command::Store(a) => cmd::store::store(a).await,
        Command::Certs(a) => certs::generate(a),
        Command::Kubeconfig(a) => certs::kubeconfig(a),
    };
    if let Err(e) = result {
        // The reader of the output went away (`pctl logs p | head -1`): end quietly.
        if output::is_broken_pipe(&e) {
            std::process::exit(0);
        }
        if e.downcast_ref::<output::Reported>().is_none() {
            errln!("{}", output::error_text(&e));
        }
        std::process::exit(1);
    }
}
