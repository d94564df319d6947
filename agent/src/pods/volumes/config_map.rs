//! `configMap`: the ConfigMap's keys (`data` and `binaryData`) as files, or only the listed
//! `items` at their paths; modes from the item, else `defaultMode` (0644). A missing ConfigMap
//! (or key) fails the mount unless the volume is `optional`; an optional missing ConfigMap is
//! an empty directory. Written atomically and mounted read-only.

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{ConfigMap, KeyToPath, Volume};

use super::{
    atomic_writer::{self, Payload},
    empty_dir, key_payload, mode, Mounted, SetUp, VolumeError, VolumeType,
};
use crate::pods::objects;

/// The type's directory in the pod's volumes.
pub const DIR: &str = "config-map";

/// The mode of files without one (0644).
pub const DEFAULT_MODE: u32 = 0o644;

/// The `configMap` volume type.
pub struct ConfigMapVolume;

/// Reads ConfigMap `name` of the pod's namespace.
pub async fn fetch(s: &SetUp<'_>, name: &str) -> Result<Option<ConfigMap>, VolumeError> {
    s.objects
        .config_map(s.namespace(), name)
        .await
        .map_err(|source| VolumeError::Fetch {
            kind: "configmap",
            name: name.to_string(),
            source,
        })
}

/// The files of ConfigMap `name` (`cm`: the object, None if it does not exist).
pub fn payload(
    name: &str,
    cm: Option<&ConfigMap>,
    items: Option<&[KeyToPath]>,
    optional: bool,
    default_mode: u32,
) -> Result<Payload, VolumeError> {
    match cm {
        Some(cm) => key_payload(
            &objects::config_map_data(cm),
            items,
            default_mode,
            optional,
            VolumeError::MissingConfigMapKey,
        ),
        None if optional => Ok(Payload::new()),
        None => Err(VolumeError::ConfigMapNotFound(name.to_string())),
    }
}

#[async_trait]
impl VolumeType for ConfigMapVolume {
    fn handles(&self, v: &Volume) -> bool {
        v.config_map.is_some()
    }

    async fn set_up(&self, s: &SetUp<'_>, v: &Volume) -> Result<Mounted, VolumeError> {
        let src = v.config_map.clone().unwrap_or_default();
        let cm = fetch(s, &src.name).await?;
        let files = payload(
            &src.name,
            cm.as_ref(),
            src.items.as_deref(),
            src.optional == Some(true),
            mode(src.default_mode, DEFAULT_MODE),
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
    use k8s_openapi::ByteString;

    fn cm() -> ConfigMap {
        ConfigMap {
            data: Some(
                [
                    ("a".to_string(), "1".to_string()),
                    ("b".to_string(), "2".to_string()),
                ]
                .into(),
            ),
            binary_data: Some([("bin".to_string(), ByteString(vec![0, 1, 2]))].into()),
            ..Default::default()
        }
    }

    fn item(key: &str, path: &str, mode: Option<i32>) -> KeyToPath {
        KeyToPath {
            key: key.into(),
            path: path.into(),
            mode,
        }
    }

    #[test]
    fn all_keys_or_items_with_modes() {
        let all = payload("c", Some(&cm()), None, false, 0o644).unwrap();
        assert_eq!(all.keys().collect::<Vec<_>>(), ["a", "b", "bin"]);
        assert_eq!(all["bin"].data, [0, 1, 2]);
        assert!(all.values().all(|f| f.mode == 0o644));
        let items = [
            item("a", "dir/first", Some(0o400)),
            item("b", "second", None),
        ];
        let some = payload("c", Some(&cm()), Some(&items), false, 0o600).unwrap();
        assert_eq!(some.keys().collect::<Vec<_>>(), ["dir/first", "second"]);
        assert_eq!(some["dir/first"].mode, 0o400);
        assert_eq!(some["second"].mode, 0o600);
        // defaultMode as the API gives it: decimal 420 is 0644.
        assert_eq!(mode(Some(420), 0), 0o644);
    }

    #[test]
    fn missing_objects_and_keys() {
        let e = payload("cfg", None, None, false, 0o644).unwrap_err();
        assert_eq!(e.to_string(), "configmap \"cfg\" not found");
        assert!(payload("cfg", None, None, true, 0o644).unwrap().is_empty());
        let items = [item("nope", "x", None), item("a", "y", None)];
        let e = payload("cfg", Some(&cm()), Some(&items), false, 0o644).unwrap_err();
        assert_eq!(
            e.to_string(),
            "configmap references non-existent config key: nope"
        );
        let some = payload("cfg", Some(&cm()), Some(&items), true, 0o644).unwrap();
        assert_eq!(some.keys().collect::<Vec<_>>(), ["y"]);
    }
}
