//! `diff -f`: what `apply -f` would change, as kubectl shows it: the live and the merged
//! objects (from a server dry run, the last-applied annotation left as it is) as YAML in two
//! directories, compared by `diff -u -N` (or
//! `$KUBECTL_EXTERNAL_DIFF`); exit 1 when they differ, 0 when they do not.

use std::process::Command;

use anyhow::{bail, Context, Result};
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use serde_json::Value;

use super::apply::{read_manifests, FileArgs, Planned};
use crate::{output, resources, Global};

/// The file kubectl names an object's YAML: `apps.v1.Deployment.default.web`.
pub fn file_name(obj: &Value, default_ns: &str) -> String {
    let av = obj["apiVersion"].as_str().unwrap_or("").replace('/', ".");
    let ns = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or(default_ns);
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    format!("{av}.{}.{ns}.{name}", obj["kind"].as_str().unwrap_or(""))
}

/// An object as diff shows it: without managedFields (kubectl leaves them out too).
fn shown(mut v: Value) -> Result<String> {
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
    }
    output::yaml(&v)
}

pub async fn diff(g: &Global, a: FileArgs) -> Result<i32> {
    let conn = resources::connect(g).await?;
    let base = std::env::temp_dir().join(format!("pctl-diff-{}", std::process::id()));
    let (live_dir, merged_dir) = (base.join("LIVE"), base.join("MERGED"));
    for d in [&live_dir, &merged_dir] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let dry_patch = PatchParams {
        dry_run: true,
        ..PatchParams::default()
    };
    let dry_post = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    for obj in read_manifests(&a.files)? {
        let file = file_name(&obj, &conn.namespace);
        let p = Planned::new(&conn, obj)?;
        let (live, merged) = match p.api.get_opt(&p.name).await? {
            Some(live) => {
                let merged = p
                    .api
                    .patch(
                        &p.name,
                        &dry_patch,
                        &Patch::Merge(&p.patch_keeping_annotation(&live)),
                    )
                    .await?;
                (
                    shown(serde_json::to_value(&live)?)?,
                    shown(serde_json::to_value(&merged)?)?,
                )
            }
            None => {
                let d: DynamicObject = serde_json::from_value(p.manifest.clone())?;
                let created = p.api.create(&dry_post, &d).await?;
                (String::new(), shown(serde_json::to_value(&created)?)?)
            }
        };
        if !live.is_empty() {
            std::fs::write(live_dir.join(&file), live)?;
        }
        std::fs::write(merged_dir.join(&file), merged)?;
    }
    let program = std::env::var("KUBECTL_EXTERNAL_DIFF").unwrap_or_else(|_| "diff -u -N".into());
    let mut words = program.split(' ').filter(|w| !w.is_empty());
    let out = Command::new(words.next().unwrap_or("diff"))
        .args(words)
        .arg(&live_dir)
        .arg(&merged_dir)
        .output()
        .with_context(|| format!("running {program:?}"))?;
    let _ = std::fs::remove_dir_all(&base);
    out!("{}", String::from_utf8_lossy(&out.stdout));
    match out.status.code() {
        Some(0) => Ok(0),
        Some(1) => Ok(1),
        _ => bail!(
            "error: failed to run {program:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn files_are_named_as_kubectl_names_them() {
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}});
        assert_eq!(file_name(&d, "default"), "apps.v1.Deployment.default.web");
        let c = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "x"}});
        assert_eq!(file_name(&c, "default"), "v1.ConfigMap.x.c");
    }
}
