//! Running the `pctl` binary against an API cluster, as admin, for the pctl suites.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use cluster_tests::{apiserver_binary, output_or_panic, ApiCluster, Identity::Admin};

use super::{stderr, stdout};

/// The pctl binary, beside the apiserver's (build it with `cargo build --workspace --bins`).
pub fn pctl_bin() -> PathBuf {
    apiserver_binary().with_file_name("pctl")
}

/// pctl as admin, with the admin kubeconfig.
pub fn pctl_command(c: &ApiCluster, args: &[&str]) -> Command {
    let mut cmd = Command::new(pctl_bin());
    cmd.arg(format!("--kubeconfig={}", c.kubeconfig(Admin).display()))
        .args(args);
    cmd
}

pub fn pctl(c: &ApiCluster, args: &[&str]) -> Output {
    // Built with `cargo build --workspace --bins`; killed (failing the test) if it hangs.
    output_or_panic(pctl_command(c, args).stdin(Stdio::null()), None)
}

/// pctl with `input` on its stdin.
pub fn pctl_stdin(c: &ApiCluster, args: &[&str], input: &str) -> Output {
    output_or_panic(&mut pctl_command(c, args), Some(input.as_bytes().to_vec()))
}

/// Runs pctl as admin and returns stdout, failing the test on a non-zero exit.
#[track_caller]
pub fn ok(c: &ApiCluster, args: &[&str]) -> String {
    let out = pctl(c, args);
    assert!(
        out.status.success(),
        "pctl {args:?} failed:\nstdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}
