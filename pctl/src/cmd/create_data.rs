//! `create configmap` and `create secret generic`: the object's data from `--from-literal`,
//! `--from-file` (files, `key=file`, directories) and `--from-env-file`, with kubectl's checks
//! and messages.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use clap::Args;
use serde_json::{json, Map, Value};

/// Where a configmap's or secret's data comes from.
#[derive(Debug, Clone, Args)]
pub struct Sources {
    /// `key=value` pairs.
    #[arg(long)]
    pub from_literal: Vec<String>,
    /// Files (key: the file name), `key=file`, or directories (each regular file).
    #[arg(long)]
    pub from_file: Vec<String>,
    /// Files of `KEY=VALUE` lines.
    #[arg(long)]
    pub from_env_file: Vec<String>,
}

/// Keys and their bytes, in the order kubectl checks them.
type Data = BTreeMap<String, Vec<u8>>;

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 253
        && k != "."
        && k != ".."
        && !k.starts_with("..")
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn insert(data: &mut Data, key: &str, value: Vec<u8>, kind: &str, name: &str) -> Result<()> {
    if !valid_key(key) {
        bail!(
            "error: \"{key}\" is not a valid key name for a {kind}: a valid config key must \
             consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or \
             'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
        );
    }
    if data.contains_key(key) {
        bail!(
            "error: cannot add key \"{key}\", another key by that name already exists in \
             {}: {name}",
            if kind == "ConfigMap" {
                "Data for ConfigMap"
            } else {
                "data"
            }
        );
    }
    data.insert(key.to_string(), value);
    Ok(())
}

/// Reads every source into keys and values; `kind` (ConfigMap or Secret) and `name` are for
/// the messages.
pub fn read(src: &Sources, kind: &str, name: &str) -> Result<Data> {
    if !src.from_env_file.is_empty() && (!src.from_file.is_empty() || !src.from_literal.is_empty())
    {
        bail!("error: from-env-file cannot be combined with from-file or from-literal");
    }
    let mut data = Data::new();
    for f in &src.from_file {
        let (key, path) = match f.split_once('=') {
            Some((k, p)) if !k.is_empty() => (Some(k.to_string()), p.to_string()),
            Some(_) => bail!("error: key name for file path {f} missing"),
            None => (None, f.clone()),
        };
        let p = Path::new(&path);
        if p.is_dir() {
            if key.is_some() {
                bail!("error: cannot give a key name for a directory path");
            }
            let mut entries: Vec<_> = std::fs::read_dir(p)
                .with_context(|| format!("reading {path}"))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|e| e.is_file())
                .collect();
            entries.sort();
            for e in entries {
                let k = e
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let bytes =
                    std::fs::read(&e).with_context(|| format!("reading {}", e.display()))?;
                insert(&mut data, &k, bytes, kind, name)?;
            }
        } else {
            let bytes = std::fs::read(p).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => {
                    anyhow!("error: error reading {path}: no such file or directory")
                }
                _ => anyhow!("error: error reading {path}: {e}"),
            })?;
            let k = key.unwrap_or_else(|| {
                p.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            });
            insert(&mut data, &k, bytes, kind, name)?;
        }
    }
    for l in &src.from_literal {
        let (k, v) = l
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| anyhow!("error: invalid literal source {l}, expected key=value"))?;
        insert(&mut data, k, v.as_bytes().to_vec(), kind, name)?;
    }
    for f in &src.from_env_file {
        let text = std::fs::read_to_string(f)
            .map_err(|_| anyhow!("error: error reading {f}: no such file or directory"))?;
        for (k, v) in env_lines(&text, f)? {
            insert(&mut data, &k, v.into_bytes(), kind, name)?;
        }
    }
    Ok(data)
}

/// The `KEY=VALUE` pairs of an env file: blank lines and `#` comments skipped, leading space
/// trimmed, a bare `KEY` taking its value from the environment (skipped when unset).
pub fn env_lines(text: &str, file: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = match line.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (line.to_string(), None),
        };
        let env_name = !k.is_empty()
            && !k.starts_with(|c: char| c.is_ascii_digit())
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !env_name {
            bail!(
                "error: \"{k}\" is not a valid key name: a valid environment variable name must \
                 consist of alphabetic characters, digits, '_', '-', or '.', and must not start \
                 with a digit (line {} of {file})",
                i + 1
            );
        }
        match v.or_else(|| std::env::var(&k).ok()) {
            Some(v) => out.push((k, v)),
            None => continue,
        }
    }
    Ok(out)
}

/// The ConfigMap `create configmap` makes: UTF-8 values in data, others in binaryData.
pub fn configmap(name: &str, data: Data) -> Value {
    let (mut text, mut binary) = (Map::new(), Map::new());
    for (k, v) in data {
        match String::from_utf8(v) {
            Ok(s) => text.insert(k, Value::String(s)),
            Err(e) => binary.insert(
                k,
                Value::String(base64::engine::general_purpose::STANDARD.encode(e.into_bytes())),
            ),
        };
    }
    let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}});
    if !text.is_empty() {
        cm["data"] = Value::Object(text);
    }
    if !binary.is_empty() {
        cm["binaryData"] = Value::Object(binary);
    }
    cm
}

/// The Secret `create secret generic` makes (type Opaque unless given).
pub fn secret(name: &str, data: Data, kind: Option<&str>) -> Value {
    let encoded: Map<String, Value> = data
        .into_iter()
        .map(|(k, v)| {
            (
                k,
                Value::String(base64::engine::general_purpose::STANDARD.encode(v)),
            )
        })
        .collect();
    let mut s = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}});
    if !encoded.is_empty() {
        s["data"] = Value::Object(encoded);
    }
    if let Some(t) = kind {
        s["type"] = Value::from(t);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(literal: &[&str]) -> Sources {
        Sources {
            from_literal: literal.iter().map(|s| s.to_string()).collect(),
            from_file: Vec::new(),
            from_env_file: Vec::new(),
        }
    }

    #[test]
    fn literals_and_env_files() {
        let d = read(&sources(&["a=1", "b=x=y"]), "ConfigMap", "c").unwrap();
        assert_eq!(
            configmap("c", d),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                "data": {"a": "1", "b": "x=y"}})
        );
        assert!(read(&sources(&["a"]), "ConfigMap", "c").is_err());
        assert!(read(&sources(&["a=1", "a=2"]), "ConfigMap", "c").is_err());
        assert!(read(&sources(&["a b=1"]), "ConfigMap", "c").is_err());
        let env = env_lines("# c\n\n  A=1\nB= two \n", "f").unwrap();
        assert_eq!(
            env,
            vec![("A".into(), "1".into()), ("B".into(), " two ".into())]
        );
        assert!(env_lines("1A=x", "f").is_err());
        let s = secret(
            "s",
            read(&sources(&["k=v"]), "Secret", "s").unwrap(),
            Some("Opaque"),
        );
        assert_eq!(s["data"]["k"], "dg==");
        assert_eq!(s["type"], "Opaque");
    }
}
