//! The configuration file, a subset of kube-scheduler's `KubeSchedulerConfiguration`
//! (`kubescheduler.config.k8s.io/v1`): one profile whose `plugins.filter` and
//! `plugins.score` enable and disable plugins (`"*"` disables every default) and set score
//! weights, and `percentageOfNodesToScore`.
//!
//! ```yaml
//! apiVersion: kubescheduler.config.k8s.io/v1
//! kind: KubeSchedulerConfiguration
//! percentageOfNodesToScore: 50
//! profiles:
//! - schedulerName: default-scheduler
//!   plugins:
//!     filter:
//!       disabled: [{name: NodePorts}]
//!     score:
//!       enabled: [{name: ImageLocality, weight: 5}]
//!       disabled: [{name: SelectorSpread}]
//! ```

use std::{path::Path, sync::Arc};

use serde::Deserialize;

use crate::{
    cycle::Framework,
    framework::Plugin,
    plugins::{registry, DEFAULT_FILTERS, DEFAULT_SCORES},
};

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// The file is not valid YAML of the expected shape.
    #[error("parsing the configuration: {0}")]
    Parse(#[from] serde_norway::Error),
    /// It names a plugin the scheduler does not have.
    #[error("unknown plugin {0:?}")]
    UnknownPlugin(String),
    /// It enables a plugin at an extension point the plugin does not implement.
    #[error("plugin {0:?} does not implement {1}")]
    WrongExtensionPoint(String, &'static str),
    /// More than one profile, or another unsupported setting.
    #[error("{0}")]
    Unsupported(String),
}

/// The file.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileConfig {
    pub api_version: Option<String>,
    pub kind: Option<String>,
    pub percentage_of_nodes_to_score: Option<u32>,
    #[serde(default)]
    pub profiles: Vec<Profile>,
}

/// A profile.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Profile {
    pub scheduler_name: Option<String>,
    #[serde(default)]
    pub plugins: Plugins,
}

/// Plugin sets per extension point.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plugins {
    #[serde(default)]
    pub filter: PluginSet,
    #[serde(default)]
    pub score: PluginSet,
}

/// Plugins enabled and disabled at one extension point.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSet {
    #[serde(default)]
    pub enabled: Vec<PluginRef>,
    #[serde(default)]
    pub disabled: Vec<PluginRef>,
}

/// A plugin by name (with a weight, for scores).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginRef {
    pub name: String,
    pub weight: Option<i64>,
}

impl FileConfig {
    /// Reads the file at `path`.
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        FileConfig::parse(&text)
    }

    /// Parses YAML text.
    pub fn parse(text: &str) -> Result<FileConfig, ConfigError> {
        let cfg: FileConfig = serde_norway::from_str(text)?;
        if cfg.profiles.len() > 1 {
            return Err(ConfigError::Unsupported(
                "only one profile is supported".into(),
            ));
        }
        Ok(cfg)
    }

    /// The scheduler name its profile sets, if any.
    pub fn scheduler_name(&self) -> Option<&str> {
        self.profiles
            .first()
            .and_then(|p| p.scheduler_name.as_deref())
    }

    /// The framework: the default plugins changed as the file says.
    pub fn framework(&self) -> Result<Framework, ConfigError> {
        let reg = registry();
        let build = |name: &str| -> Result<Arc<dyn Plugin>, ConfigError> {
            reg.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, f)| f())
                .ok_or_else(|| ConfigError::UnknownPlugin(name.to_string()))
        };
        let plugins = self.profiles.first().map(|p| &p.plugins);
        let empty = Plugins::default();
        let plugins = plugins.unwrap_or(&empty);

        let filters = merge(
            DEFAULT_FILTERS.iter().map(|n| (*n, 1)).collect(),
            &plugins.filter,
        )?;
        let scores = merge(DEFAULT_SCORES.to_vec(), &plugins.score)?;
        let mut fw = Framework::default();
        for (name, _) in filters {
            let p = build(&name)?;
            if p.as_filter().is_none() {
                return Err(ConfigError::WrongExtensionPoint(name, "filter"));
            }
            if p.as_pre_filter().is_some() {
                fw.pre_filters.push(p.clone());
            }
            fw.filters.push(p);
        }
        for (name, weight) in scores {
            let p = build(&name)?;
            if p.as_score().is_none() {
                return Err(ConfigError::WrongExtensionPoint(name, "score"));
            }
            if p.as_pre_score().is_some() {
                fw.pre_scores.push(p.clone());
            }
            fw.scores.push((p, weight));
        }
        if let Some(pct) = self.percentage_of_nodes_to_score {
            if pct > 100 {
                return Err(ConfigError::Unsupported(
                    "percentageOfNodesToScore must be between 0 and 100".into(),
                ));
            }
            fw.percentage_of_nodes_to_score = pct;
        }
        Ok(fw)
    }
}

/// Applies a plugin set to defaults: disabled ones go (`*`: all), enabled ones already present
/// get the new weight in place, others are appended (weight 1 unless given).
fn merge(defaults: Vec<(&str, i64)>, set: &PluginSet) -> Result<Vec<(String, i64)>, ConfigError> {
    let known: Vec<&str> = registry().iter().map(|(n, _)| *n).collect();
    for r in set.enabled.iter().chain(&set.disabled) {
        if r.name != "*" && !known.contains(&r.name.as_str()) {
            return Err(ConfigError::UnknownPlugin(r.name.clone()));
        }
    }
    let disabled = |n: &str| set.disabled.iter().any(|d| d.name == "*" || d.name == n);
    let mut out: Vec<(String, i64)> = defaults
        .into_iter()
        .filter(|(n, _)| !disabled(n))
        .map(|(n, w)| (n.to_string(), w))
        .collect();
    for e in &set.enabled {
        match out.iter_mut().find(|(n, _)| *n == e.name) {
            Some(existing) => existing.1 = e.weight.unwrap_or(existing.1),
            None => out.push((e.name.clone(), e.weight.unwrap_or(1))),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(fw: &Framework) -> (Vec<&str>, Vec<(&str, i64)>) {
        (
            fw.filters.iter().map(|p| p.name()).collect(),
            fw.scores.iter().map(|(p, w)| (p.name(), *w)).collect(),
        )
    }

    #[test]
    fn defaults() {
        let fw = FileConfig::default().framework().unwrap();
        let (f, s) = names(&fw);
        assert_eq!(f, DEFAULT_FILTERS);
        assert_eq!(s, DEFAULT_SCORES);
    }

    #[test]
    fn enable_disable_weights() {
        let cfg = FileConfig::parse(
            "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n\
             percentageOfNodesToScore: 30\nprofiles:\n- schedulerName: mine\n  plugins:\n    \
             filter:\n      disabled: [{name: NodePorts}]\n    score:\n      disabled: [{name: '*'}]\n      \
             enabled: [{name: ImageLocality, weight: 5}, {name: NodeAffinity}]\n",
        )
        .unwrap();
        assert_eq!(cfg.scheduler_name(), Some("mine"));
        let fw = cfg.framework().unwrap();
        let (f, s) = names(&fw);
        assert!(!f.contains(&"NodePorts"));
        assert_eq!(f.len(), DEFAULT_FILTERS.len() - 1);
        assert_eq!(s, vec![("ImageLocality", 5), ("NodeAffinity", 1)]);
        assert_eq!(fw.percentage_of_nodes_to_score, 30);
    }

    #[test]
    fn errors() {
        let bad = [
            "profiles:\n- plugins:\n    filter:\n      enabled: [{name: Nope}]\n",
            "profiles:\n- plugins:\n    filter:\n      enabled: [{name: ImageLocality}]\n",
            "profiles:\n- plugins:\n    score:\n      enabled: [{name: NodePorts}]\n",
            "profiles: [{}, {}]\n",
            "bogusField: 1\n",
            "percentageOfNodesToScore: 101\n",
        ];
        for text in bad {
            let r = FileConfig::parse(text).and_then(|c| c.framework());
            assert!(r.is_err(), "{text}");
        }
    }
}
