//! `hollow-nodes`: many agents in one process on the fake runtime, as Kubernetes' kubemark
//! runs hollow kubelets, so that one machine can host thousands of nodes for scale tests.
//!
//! Each hollow node is the real agent ([`agent::run_node`]): it registers its Node, renews its
//! Lease, watches the pods bound to it, runs them through the agent's pod logic on its own
//! in-memory runtime, and reports their status and events. What the nodes share is the
//! process: the API connections (each carries many nodes' watches over HTTP/2), the
//! description of the machine, and no pressure signals. Flags after `--` go to every agent,
//! e.g. `-- --max-pods 30 --fake-start-latency 200ms`.

use std::{path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser};
use k8s_openapi::api::core::v1::Node;
use kube::{api::ListParams, Api};
use tracing::Instrument;

use agent::{config::Flags, machine, runtime::fake::FakeRuntime};

/// jemalloc instead of glibc's malloc: the agents' runtime lists copy records many thousand
/// times a second, and glibc's free-chunk consolidation was a fifth of this process's CPU at
/// rest (1,000 nodes, perf).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Most nodes that share one API client. Each client multiplexes its requests on one HTTP/2
/// connection (`client::multiplexed`); a connection's requests queue in one line once its
/// streams are all in use (the apiserver allows 1,000 per connection), and while pods are
/// created in bulk each node has tens of event and status writes in flight: ten nodes keep a
/// node's lease renewal or re-watch from waiting behind hundreds of others' writes.
const NODES_PER_CONNECTION: usize = 10;

#[derive(Debug, Parser)]
#[command(
    name = "hollow-nodes",
    version,
    about = "Runs many agents on the fake runtime in one process (hollow nodes, as kubemark's)."
)]
struct Args {
    /// How many nodes to run.
    #[arg(long, env = "HOLLOW_NODES", default_value_t = 100)]
    nodes: usize,
    /// Node i is named PREFIX-i.
    #[arg(long, env = "HOLLOW_NAME_PREFIX", default_value = "hollow")]
    name_prefix: String,
    /// Index of the first node (to split a fleet over several processes).
    #[arg(long, env = "HOLLOW_FIRST", default_value_t = 0)]
    first: usize,
    /// Kubeconfig the nodes use (one identity for all, e.g. the admin's).
    #[arg(long, env = "HOLLOW_KUBECONFIG")]
    kubeconfig: PathBuf,
    /// API connections the nodes share (0: one per 10 nodes).
    #[arg(long, env = "HOLLOW_CONNECTIONS", default_value_t = 0)]
    connections: usize,
    /// Nodes started per second, so registration comes as a ramp rather than one burst.
    #[arg(long, env = "HOLLOW_START_RATE", default_value_t = 200.0)]
    start_rate: f64,
    /// Each node's root dir is ROOT/NAME.
    #[arg(long, env = "HOLLOW_ROOT_DIR", default_value = "/tmp/hollow-nodes")]
    root_dir: PathBuf,
    /// Flags for every agent (after `--`), as the agent binary takes them.
    #[arg(last = true)]
    agent_flags: Vec<String>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    match run(Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hollow-nodes: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The flags of node `name`: the agent's defaults, the fake runtime, this node's name and
/// root dir, then what the user gave (which may override the defaults but not the name).
fn node_flags(args: &Args, name: &str) -> anyhow::Result<Flags> {
    let mut argv: Vec<String> = vec![
        "agent".into(),
        "--runtime=fake".into(),
        format!("--kubeconfig={}", args.kubeconfig.display()),
        format!("--root-dir={}", args.root_dir.join(name).display()),
    ];
    argv.extend(args.agent_flags.iter().cloned());
    argv.push(format!("--hostname-override={name}"));
    // A flag given twice takes its last value, so the node's name stays its own.
    let matches = Flags::command()
        .args_override_self(true)
        .try_get_matches_from(&argv)
        .map_err(|e| anyhow::anyhow!("the agent flags: {e}"))?;
    Flags::from_arg_matches(&matches).map_err(|e| anyhow::anyhow!("the agent flags: {e}"))
}

async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.nodes > 0, "--nodes must be at least 1");
    anyhow::ensure!(
        args.start_rate > 0.0,
        "--start-rate must be more than 0 nodes per second"
    );
    // Refuse bad agent flags before anything starts.
    node_flags(&args, &format!("{}-{}", args.name_prefix, args.first))?;
    std::fs::create_dir_all(&args.root_dir)
        .with_context(|| format!("creating {}", args.root_dir.display()))?;
    let connections = match args.connections {
        0 => args.nodes.div_ceil(NODES_PER_CONNECTION),
        n => n,
    };
    let mut clients = Vec::with_capacity(connections);
    for _ in 0..connections {
        let (c, _) = client::from_kubeconfig(Some(&args.kubeconfig), None)
            .await
            .context("loading the kubeconfig")?;
        clients.push(c);
    }
    let machine = machine::read_machine(&args.root_dir);
    eprintln!(
        "hollow-nodes: starting {} nodes ({}-{}..{}) over {} API connections, {}/s",
        args.nodes,
        args.name_prefix,
        args.first,
        args.first + args.nodes - 1,
        connections,
        args.start_rate
    );
    let names: Vec<String> = (args.first..args.first + args.nodes)
        .map(|i| format!("{}-{i}", args.name_prefix))
        .collect();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / args.start_rate));
    for (i, name) in names.iter().enumerate() {
        tick.tick().await;
        let flags = Arc::new(node_flags(&args, name)?);
        let runtime = Arc::new(FakeRuntime::new(agent::fake_config(&flags, None)));
        let setup = agent::Setup {
            flags,
            client: clients[i % clients.len()].clone(),
            runtime,
            machine: machine.clone(),
            pressure: machine::PressureSource::Hollow,
            serve_api: false,
        };
        let span = tracing::info_span!("node", name = %name);
        let name = name.clone();
        tokio::spawn(
            async move {
                if let Err(e) = agent::run_node(setup).await {
                    eprintln!("hollow-nodes: node {name} stopped: {e:#}");
                }
            }
            .instrument(span),
        );
        if (i + 1) % 500 == 0 {
            eprintln!("hollow-nodes: {} of {} started", i + 1, args.nodes);
        }
    }
    report_ready(&clients[0], &names).await;
    // The nodes run until the process is stopped.
    std::future::pending::<()>().await;
    Ok(())
}

/// Says how many of `names` are Ready every few seconds, until all are.
async fn report_ready(client: &kube::Client, names: &[String]) {
    let want: std::collections::HashSet<&str> = names.iter().map(String::as_str).collect();
    let nodes: Api<Node> = Api::all(client.clone());
    loop {
        let ready = match nodes.list(&ListParams::default()).await {
            Ok(list) => list
                .items
                .iter()
                .filter(|n| n.metadata.name.as_deref().is_some_and(|m| want.contains(m)))
                .filter(|n| is_ready(n))
                .count(),
            Err(e) => {
                eprintln!("hollow-nodes: listing nodes: {e}");
                0
            }
        };
        eprintln!("hollow-nodes: {ready} of {} nodes Ready", names.len());
        if ready == names.len() {
            return;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
}

fn is_ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Args {
        let mut argv = vec!["hollow-nodes", "--kubeconfig", "k", "--root-dir", "/r"];
        argv.extend_from_slice(extra);
        Args::try_parse_from(argv).unwrap()
    }

    #[test]
    fn each_node_gets_its_name_root_and_the_fake_runtime() {
        let a = args(&["--", "--max-pods", "30"]);
        let f = node_flags(&a, "hollow-7").unwrap();
        assert_eq!(f.node_name(), "hollow-7");
        assert_eq!(f.root_dir, PathBuf::from("/r/hollow-7"));
        assert_eq!(f.max_pods, 30);
        assert!(matches!(f.runtime, agent::config::RuntimeKind::Fake));
    }

    #[test]
    fn the_name_cannot_be_overridden_and_bad_flags_are_named() {
        let a = args(&["--", "--hostname-override", "other"]);
        assert_eq!(node_flags(&a, "hollow-1").unwrap().node_name(), "hollow-1");
        let a = args(&["--", "--max-pods", "many"]);
        let err = node_flags(&a, "hollow-1").unwrap_err().to_string();
        assert!(err.contains("--max-pods"), "{err}");
    }
}
