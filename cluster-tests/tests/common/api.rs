//! Helpers for the suites that drive the apiserver: starting an API cluster, running kubectl
//! and checking what it printed, and curl from threads that do not hold the cluster.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use cluster_tests::{ApiCluster, ApiConfig, Identity};
use serde_json::Value;

use super::{stderr, stdout};

/// One store member and one apiserver.
pub async fn api() -> ApiCluster {
    start_api(ApiConfig::new()).await
}

/// Starts an API cluster or fails the test with the reason (which includes the logs).
pub async fn start_api(cfg: ApiConfig) -> ApiCluster {
    match ApiCluster::start(cfg).await {
        Ok(c) => c,
        Err(e) => panic!("API cluster did not start: {e:#}"),
    }
}

/// Runs kubectl as admin and returns its stdout, failing the test on a non-zero exit.
#[track_caller]
pub fn kubectl_ok(c: &ApiCluster, args: &[&str]) -> String {
    let out = c.kubectl(Identity::Admin, args);
    assert!(
        out.status.success(),
        "kubectl {args:?} failed:\nstdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// [`kubectl_ok`] with `input` on kubectl's stdin.
#[track_caller]
pub fn kubectl_ok_stdin(c: &ApiCluster, args: &[&str], input: &str) -> String {
    let out = c.kubectl_stdin(Identity::Admin, args, input);
    assert!(
        out.status.success(),
        "kubectl {args:?} failed:\nstdout: {}\nstderr: {}\nstdin:\n{input}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// `kubectl apply -f -` of `manifest` as admin; fails the test if it is refused.
#[track_caller]
pub fn kubectl_apply(c: &ApiCluster, manifest: &str) -> String {
    kubectl_ok_stdin(c, &["apply", "-f", "-"], manifest)
}

/// `kubectl <args> -o json` as admin, parsed.
#[track_caller]
pub fn kubectl_json(c: &ApiCluster, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    let text = kubectl_ok(c, &all);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("kubectl {all:?} printed {e}: {text}"))
}

/// The cells of one line of a kubectl table: columns are at least two spaces apart (kubectl's
/// tabwriter pads with three), while a header such as `NOMINATED NODE` holds one.
pub fn cells(line: &str) -> Vec<&str> {
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

/// The column names of a kubectl table (its first line); fails the test on empty output.
#[track_caller]
pub fn header(table: &str) -> Vec<&str> {
    let first = table.lines().next();
    cells(first.unwrap_or_else(|| panic!("a table was expected, got no output")))
}

/// The cells of the row of `table` whose first cell is `name`; fails the test if there is none.
#[track_caller]
pub fn row<'t>(table: &'t str, name: &str) -> Vec<&'t str> {
    table
        .lines()
        .skip(1)
        .map(cells)
        .find(|r| r.first() == Some(&name))
        .unwrap_or_else(|| panic!("no row {name:?} in\n{table}"))
}

/// The cell under `column` in the row of `name`.
#[track_caller]
pub fn cell<'t>(table: &'t str, name: &str, column: &str) -> &'t str {
    let at = header(table)
        .iter()
        .position(|h| *h == column)
        .unwrap_or_else(|| panic!("no column {column:?} in\n{table}"));
    row(table, name)
        .get(at)
        .copied()
        .unwrap_or_else(|| panic!("row {name:?} has no {column:?} cell in\n{table}"))
}

/// The lines of `-o name` output, which must not be empty unless `expected` is.
#[track_caller]
pub fn assert_names(text: &str, expected: &[&str]) {
    let got: Vec<&str> = text.lines().collect();
    assert_eq!(got, expected, "kubectl printed:\n{text}");
}

/// curl against one apiserver as one identity, for threads that do not hold the cluster.
#[derive(Debug, Clone)]
pub struct Curl {
    url: String,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Curl {
    /// curl to apiserver `i` with the client certificate of `id` (which must have one).
    pub fn new(c: &ApiCluster, i: usize, id: Identity) -> Curl {
        let (cert, key) = c
            .client_cert(id)
            .unwrap_or_else(|| panic!("{id:?} has no client certificate"));
        Curl {
            url: c.url(i),
            ca: c.ca(),
            cert,
            key,
        }
    }

    fn command(&self, path: &str) -> Command {
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "--cacert"])
            .arg(&self.ca)
            .arg("--cert")
            .arg(&self.cert)
            .arg("--key")
            .arg(&self.key)
            .arg(format!("{}{path}", self.url));
        cmd
    }

    /// A request with an optional JSON body: (HTTP status, body). The status is 0 when curl
    /// got no answer within 15 s.
    pub fn request(&self, method: &str, path: &str, json: Option<&str>) -> (u16, String) {
        let mut cmd = self.command(path);
        cmd.args(["-X", method, "-w", "\n%{http_code}", "--max-time", "15"]);
        if let Some(body) = json {
            cmd.args(["-H", "Content-Type: application/json", "--data-binary"])
                .arg(body);
        }
        let out = cmd.output().expect("running curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    /// Starts a streaming GET of `path` (a watch) that writes the body to `out`.
    pub fn stream_to(&self, path: &str, out: &Path) -> Child {
        let file = std::fs::File::create(out)
            .unwrap_or_else(|e| panic!("creating {}: {e}", out.display()));
        self.command(path)
            .arg("-N")
            .stdout(file)
            .stderr(Stdio::null())
            .spawn()
            .expect("running curl")
    }
}

/// The `type` of every event of a watch response body (one JSON object a line).
#[track_caller]
pub fn event_types(body: &str) -> Vec<String> {
    body.lines()
        .map(|l| {
            let ev: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("watch line {l:?} is not JSON: {e}"));
            ev["type"]
                .as_str()
                .unwrap_or_else(|| panic!("watch event without a type: {l}"))
                .to_string()
        })
        .collect()
}
