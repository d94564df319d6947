//! The README's first command, as a newcomer runs it: `scripts/up.sh` starts the whole system
//! on this machine (store, apiserver, containerd, scheduler, controller-manager, agent), and
//! then the walk-through works: the node is Ready, a pod runs, kubectl writes through the
//! apiserver. The store listens only on mutual TLS: etcdctl without a client certificate, with
//! one from another CA, or over plain HTTP is refused, while the operator's files from
//! `.run/store.env` (etcdctl and `pctl store`) are let in. `scripts/down.sh` stops everything.
//!
//! It uses this checkout's `.run/` and the fixed ports of up.sh, so it refuses to run while a
//! cluster started by up.sh from this checkout is running (stop it with scripts/down.sh).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use cluster_tests::{component_binary, workspace_root, ETCDCTL_BIN, KUBECTL_BIN};

fn run(program: &Path, args: &[&str], envs: &[(&str, String)]) -> Output {
    Command::new(program)
        .args(args)
        .envs(envs.iter().map(|(k, v)| (*k, v.clone())))
        .current_dir(workspace_root())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", program.display()))
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs scripts/down.sh when dropped, so a failed check leaves nothing running.
struct Down;

impl Drop for Down {
    fn drop(&mut self) {
        let out = run(&workspace_root().join("scripts/down.sh"), &[], &[]);
        eprintln!("scripts/down.sh: {}", text(&out));
    }
}

fn running(run_dir: &Path, name: &str) -> bool {
    std::fs::read_to_string(run_dir.join(format!("{name}.pid")))
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok())
        .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists())
}

#[test]
fn up_sh_starts_the_system_with_the_store_on_mutual_tls() {
    let root = workspace_root();
    let run_dir = root.join(".run");
    for name in ["store", "apiserver", "agent"] {
        assert!(
            !running(&run_dir, name),
            "a cluster started by scripts/up.sh is running in this checkout ({name}); \
             stop it with scripts/down.sh before running this test"
        );
    }
    // Built already by the test command; everything else as the README's first command.
    let up = run(
        &root.join("scripts/up.sh"),
        &[],
        &[("UP_NO_BUILD", "1".into())],
    );
    let _down = Down;
    assert!(up.status.success(), "scripts/up.sh failed: {}", text(&up));
    let pki: PathBuf = run_dir.join("pki");
    let p = |f: &str| pki.join(f).display().to_string();
    let etcdctl = |args: &[&str]| {
        let mut all = vec![
            "--endpoints=https://127.0.0.1:2379",
            "--dial-timeout=3s",
            "--command-timeout=5s",
        ];
        all.extend_from_slice(args);
        run(Path::new(ETCDCTL_BIN), &all, &[("ETCDCTL_API", "3".into())])
    };
    let ca = format!("--cacert={}", p("ca.crt"));

    // Refused: no client certificate, another CA's certificate, plain HTTP.
    let anonymous = etcdctl(&[&ca, "get", "/registry/", "--prefix", "--keys-only"]);
    assert!(
        !anonymous.status.success(),
        "no client certificate: {}",
        text(&anonymous)
    );
    assert!(anonymous.stdout.is_empty(), "{}", text(&anonymous));
    let other = tempfile::tempdir().expect("tempdir");
    let gen = run(
        &component_binary("pctl"),
        &[
            "certs",
            "generate",
            "--dir",
            &other.path().display().to_string(),
        ],
        &[],
    );
    assert!(gen.status.success(), "{}", text(&gen));
    let foreign = etcdctl(&[
        &ca,
        &format!("--cert={}", other.path().join("admin.crt").display()),
        &format!("--key={}", other.path().join("admin.key").display()),
        "get",
        "/registry/",
        "--prefix",
        "--keys-only",
    ]);
    assert!(
        !foreign.status.success(),
        "another CA's certificate: {}",
        text(&foreign)
    );
    assert!(foreign.stdout.is_empty(), "{}", text(&foreign));
    let plain = run(
        Path::new(ETCDCTL_BIN),
        &[
            "--endpoints=http://127.0.0.1:2379",
            "--dial-timeout=3s",
            "--command-timeout=5s",
            "get",
            "x",
        ],
        &[("ETCDCTL_API", "3".into())],
    );
    assert!(!plain.status.success(), "plain HTTP: {}", text(&plain));

    // A write through the apiserver works, and the operator sees it with .run/store.env.
    let kubeconfig = run_dir.join("admin.kubeconfig").display().to_string();
    let kubectl = |args: &[&str]| {
        run(
            Path::new(KUBECTL_BIN),
            args,
            &[("KUBECONFIG", kubeconfig.clone())],
        )
    };
    // .run/ keeps the store's data between runs: names of this run only.
    let name = format!(
        "up-check-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    );
    let created = kubectl(&["create", "configmap", &name, "--from-literal=k=v"]);
    assert!(created.status.success(), "{}", text(&created));
    let env_file = run_dir.join("store.env").display().to_string();
    let operator = run(
        Path::new("bash"),
        &[
            "-c",
            &format!(
                ". {env_file} && {ETCDCTL_BIN} get /registry/configmaps/default/{name} --keys-only"
            ),
        ],
        &[],
    );
    assert!(
        operator.status.success(),
        "etcdctl with .run/store.env: {}",
        text(&operator)
    );
    assert!(
        String::from_utf8_lossy(&operator.stdout)
            .contains(&format!("/registry/configmaps/default/{name}")),
        "{}",
        text(&operator)
    );
    let members = run(&component_binary("pctl"), &["store", "member", "list"], &[]);
    assert!(
        members.status.success(),
        "pctl store member list: {}",
        text(&members)
    );

    // The walk-through: the node is Ready and a pod runs on it.
    let deadline = Instant::now() + Duration::from_secs(120);
    let pod = kubectl(&[
        "run",
        &name,
        "--image=localhost/busybox:1.36",
        "--",
        "sh",
        "-c",
        "echo hello from up.sh; exec sleep 600",
    ]);
    assert!(pod.status.success(), "{}", text(&pod));
    loop {
        let out = kubectl(&["get", "pod", &name, "-o", "jsonpath={.status.phase}"]);
        if String::from_utf8_lossy(&out.stdout) == "Running" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the pod did not run: {}\n{}",
            text(&out),
            text(&kubectl(&["describe", "pod", &name]))
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // Logs, exec and top through the agent's API, with kubectl and with pctl.
    let pctl = |args: &[&str]| {
        run(
            &component_binary("pctl"),
            args,
            &[("KUBECONFIG", kubeconfig.clone())],
        )
    };
    let logs = pctl(&["logs", &name]);
    assert_eq!(
        String::from_utf8_lossy(&logs.stdout),
        "hello from up.sh\n",
        "pctl logs: {}",
        text(&logs)
    );
    let exec = pctl(&["exec", &name, "--", "sh", "-c", "echo $((6 * 7)); exit 3"]);
    assert_eq!(
        (
            String::from_utf8_lossy(&exec.stdout).as_ref(),
            exec.status.code()
        ),
        ("42\n", Some(3)),
        "pctl exec: {}",
        text(&exec)
    );
    let logs = kubectl(&["logs", &name]);
    assert_eq!(
        String::from_utf8_lossy(&logs.stdout),
        "hello from up.sh\n",
        "{}",
        text(&logs)
    );
    let exec = kubectl(&["exec", &name, "--", "sh", "-c", "echo $((6 * 7))"]);
    assert_eq!(
        String::from_utf8_lossy(&exec.stdout),
        "42\n",
        "{}",
        text(&exec)
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let top = kubectl(&["top", "nodes"]);
        if top.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "kubectl top nodes: {}",
            text(&top)
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    let deleted = kubectl(&["delete", "pod", &name, "--wait=true"]);
    assert!(deleted.status.success(), "{}", text(&deleted));
    let _ = kubectl(&["delete", "configmap", &name]);
}
