//! `downwardAPI`: the pod's own fields as files. `fieldRef` metadata.name, namespace, uid,
//! `labels['k']`, `annotations['k']`, and the whole `labels` / `annotations` as the kubelet
//! writes them (`key="value"` lines, sorted, values quoted as Go's %q); `resourceFieldRef` a
//! container's limit or request over its divisor (rounded up; a missing limit is the node's
//! allocatable). Rewritten when the pod's labels or annotations change; mounted read-only.

use std::collections::BTreeMap;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{DownwardAPIVolumeFile, Pod, Volume};

use super::{
    atomic_writer::{self, FileData, Payload},
    empty_dir, mode, Mounted, SetUp, VolumeError, VolumeType,
};
use crate::pods::env::{self, EnvError};

/// The type's directory in the pod's volumes.
pub const DIR: &str = "downward-api";

/// The mode of files without one (0644).
pub const DEFAULT_MODE: u32 = 0o644;

/// The `downwardAPI` volume type.
pub struct DownwardApi;

/// Go's `strconv.Quote`: double quotes, with `\"`, `\\`, the C escapes and `\x..`/`\u....`
/// for other control characters.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Labels or annotations as the kubelet writes them: `key="value"` lines in key order, no
/// newline after the last.
pub fn format_map(m: &BTreeMap<String, String>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn item_value(pod: &Pod, it: &DownwardAPIVolumeFile, node: (u64, u64)) -> Result<String, EnvError> {
    if let Some(f) = &it.field_ref {
        let meta = &pod.metadata;
        return match f.field_path.as_str() {
            "metadata.labels" => Ok(format_map(&meta.labels.clone().unwrap_or_default())),
            "metadata.annotations" => Ok(format_map(&meta.annotations.clone().unwrap_or_default())),
            path => env::field_value(pod, path, "", ""),
        };
    }
    if let Some(r) = &it.resource_field_ref {
        let name = r.container_name.as_deref().unwrap_or_default();
        let spec = pod.spec.as_ref();
        let c = spec
            .into_iter()
            .flat_map(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
            })
            .find(|c| c.name == name)
            .ok_or_else(|| EnvError(format!("container {name:?} not found")))?;
        let divisor = r.divisor.as_ref().map(|d| d.0.as_str());
        return env::resource_value(c, &r.resource, divisor, node.0, node.1);
    }
    Err(EnvError(
        "neither fieldRef nor resourceFieldRef is set".into(),
    ))
}

/// The files of downward API `items` for `pod`.
pub fn payload(
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    default_mode: u32,
    node: (u64, u64),
) -> Result<Payload, VolumeError> {
    let mut out = Payload::new();
    for it in items {
        let value = item_value(pod, it, node).map_err(|source| VolumeError::DownwardApi {
            path: it.path.clone(),
            source,
        })?;
        out.insert(
            it.path.clone(),
            FileData {
                data: value.into_bytes(),
                mode: mode(it.mode, default_mode),
            },
        );
    }
    Ok(out)
}

#[async_trait]
impl VolumeType for DownwardApi {
    fn handles(&self, v: &Volume) -> bool {
        v.downward_api.is_some()
    }

    async fn set_up(&self, s: &SetUp<'_>, v: &Volume) -> Result<Mounted, VolumeError> {
        let src = v.downward_api.clone().unwrap_or_default();
        let files = payload(
            s.pod,
            src.items.as_deref().unwrap_or_default(),
            mode(src.default_mode, DEFAULT_MODE),
            s.node,
        )?;
        let dir = s.dir(DIR, &v.name);
        empty_dir::make_dir(&dir, 0o755)?;
        atomic_writer::write(&dir, &files)?;
        Ok(Mounted {
            path: dir,
            read_only: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::{
        api::core::v1::{
            Container, ObjectFieldSelector, PodSpec, ResourceFieldSelector, ResourceRequirements,
        },
        apimachinery::pkg::api::resource::Quantity,
    };
    use kube::api::ObjectMeta;

    fn field(path: &str, field: &str) -> DownwardAPIVolumeFile {
        DownwardAPIVolumeFile {
            path: path.into(),
            field_ref: Some(ObjectFieldSelector {
                field_path: field.into(),
                api_version: None,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn labels_annotations_fields_and_resources() {
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                namespace: Some("ns".into()),
                uid: Some("u-1".into()),
                labels: Some(
                    [
                        ("tier".to_string(), "web".to_string()),
                        ("app".to_string(), "shop".to_string()),
                    ]
                    .into(),
                ),
                annotations: Some([("note".to_string(), "say \"hi\"\n".to_string())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "app".into(),
                    resources: Some(ResourceRequirements {
                        limits: Some([("memory".to_string(), Quantity("64Mi".into()))].into()),
                        requests: Some([("cpu".to_string(), Quantity("250m".into()))].into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let resource = |path: &str, res: &str, divisor: Option<&str>| DownwardAPIVolumeFile {
            path: path.into(),
            resource_field_ref: Some(ResourceFieldSelector {
                container_name: Some("app".into()),
                resource: res.into(),
                divisor: divisor.map(|d| Quantity(d.into())),
            }),
            mode: Some(0o600),
            ..Default::default()
        };
        let items = [
            field("labels", "metadata.labels"),
            field("annotations", "metadata.annotations"),
            field("name", "metadata.name"),
            field("ns", "metadata.namespace"),
            field("uid", "metadata.uid"),
            field("tier", "metadata.labels['tier']"),
            resource("mem", "limits.memory", Some("1Mi")),
            resource("cpu", "requests.cpu", Some("1m")),
            resource("cpus", "limits.cpu", None),
        ];
        let p = payload(&pod, &items, 0o644, (4, 1 << 30)).unwrap();
        let text = |k: &str| String::from_utf8(p[k].data.clone()).unwrap();
        assert_eq!(text("labels"), "app=\"shop\"\ntier=\"web\"");
        assert_eq!(text("annotations"), "note=\"say \\\"hi\\\"\\n\"");
        assert_eq!(text("name"), "p");
        assert_eq!(text("ns"), "ns");
        assert_eq!(text("uid"), "u-1");
        assert_eq!(text("tier"), "web");
        assert_eq!(text("mem"), "64");
        assert_eq!(text("cpu"), "250");
        assert_eq!(text("cpus"), "4");
        assert_eq!(p["labels"].mode, 0o644);
        assert_eq!(p["mem"].mode, 0o600);

        let bad = [resource("x", "limits.memory", None)].map(|mut it| {
            it.resource_field_ref.as_mut().unwrap().container_name = Some("nope".into());
            it
        });
        let e = payload(&pod, &bad, 0o644, (1, 1)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "downwardAPI item \"x\": container \"nope\" not found"
        );
    }

    #[test]
    fn quoting_as_go() {
        assert_eq!(go_quote("a\tb\\c\u{1}é"), "\"a\\tb\\\\c\\x01é\"");
        assert_eq!(format_map(&BTreeMap::new()), "");
    }
}
