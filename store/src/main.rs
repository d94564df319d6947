//! `store`: runs one member of the store cluster, or restores a backup.

use clap::Parser;
use store::config::{Cli, SnapshotOp, Sub};

/// jemalloc instead of glibc's malloc for the store's own allocations (the record cache,
/// watch events, gRPC and Raft buffers), which glibc's per-thread arenas return to the system
/// poorly. tikv-jemallocator's symbols are prefixed, so RocksDB's C++ allocations (memtables,
/// block cache) stay with glibc; `store_memory_bytes` on /metrics shows those.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Sub::Snapshot {
            op: SnapshotOp::Restore(args),
        }) => {
            let dir = args
                .data_dir
                .unwrap_or_else(|| format!("{}.store", args.name).into());
            store::bootstrap::restore(&args.file, &dir).map(|_| {
                println!("restored snapshot into {}", dir.display());
            })
        }
        None => match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(store::bootstrap::run(cli.server)),
            Err(e) => Err(e.into()),
        },
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("store: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
