//! `exec` probes: the command runs in the container through the runtime (CRI ExecSync);
//! exit code 0 succeeds, anything else fails with the command's output.

use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::ExecAction;

use super::{Handler, Outcome, Target};
use crate::runtime::RuntimeError;

pub struct Exec {
    command: Vec<String>,
}

impl Exec {
    pub fn new(e: &ExecAction) -> Exec {
        Exec {
            command: e.command.clone().unwrap_or_default(),
        }
    }
}

/// The text a failed exec probe reports: its output, or the exit code when it printed none.
pub fn failure_text(code: i32, stdout: &[u8], stderr: &[u8]) -> String {
    let mut out = String::from_utf8_lossy(stdout).into_owned();
    out.push_str(&String::from_utf8_lossy(stderr));
    let out = out.trim_end();
    if out.is_empty() {
        format!("command exited with {code}")
    } else {
        out.to_string()
    }
}

#[async_trait]
impl Handler for Exec {
    async fn check(&self, t: &Target, timeout: Duration) -> Outcome {
        match t
            .runtime
            .exec_sync(&t.container_id, self.command.clone(), timeout)
            .await
        {
            Ok(r) if r.exit_code == 0 => Outcome::Success,
            Ok(r) => Outcome::Failure(failure_text(r.exit_code, &r.stdout, &r.stderr)),
            Err(RuntimeError::Timeout(_)) => {
                Outcome::Failure(format!("command {:?} timed out", self.command.join(" ")))
            }
            Err(e) => Outcome::Failure(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_or_exit_code() {
        assert_eq!(
            failure_text(1, b"", b"cat: /tmp/healthy: No such file\n"),
            "cat: /tmp/healthy: No such file"
        );
        assert_eq!(failure_text(2, b"", b""), "command exited with 2");
    }
}
