//! Running the `pctl` binary against an API cluster, as admin, for the pctl suites.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use cluster_tests::{apiserver_binary, ApiCluster, Identity::Admin};

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
    pctl_command(c, args)
        .output()
        .expect("running pctl (build it with `cargo build --workspace --bins`)")
}

/// pctl with `input` on its stdin.
pub fn pctl_stdin(c: &ApiCluster, args: &[&str], input: &str) -> Output {
    let mut child = pctl_command(c, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running pctl");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(input.as_bytes())
        .expect("writing pctl's stdin");
    child.wait_with_output().expect("waiting for pctl")
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
