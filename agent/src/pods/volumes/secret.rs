//! `secret`: the Secret's keys as files (the bytes as stored), or only the listed `items`;
//! modes from the item, else `defaultMode` (0644). On a tmpfs, as the kubelet keeps secrets
//! off the disk. A missing Secret (or key) fails the mount unless the volume is `optional`.
//! Written atomically and mounted read-only.

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{KeyToPath, Secret, Volume};

use super::{
    atomic_writer::{self, Payload},
    empty_dir, key_payload, mode, Mounted, SetUp, VolumeError, VolumeType,
};
use crate::pods::objects;

/// The type's directory in the pod's volumes.
pub const DIR: &str = "secret";

/// The mode of files without one (0644).
pub const DEFAULT_MODE: u32 = 0o644;

/// The `secret` volume type.
pub struct SecretVolume;

/// Reads Secret `name` of the pod's namespace.
pub async fn fetch(s: &SetUp<'_>, name: &str) -> Result<Option<Secret>, VolumeError> {
    s.objects
        .secret(s.namespace(), name)
        .await
        .map_err(|source| VolumeError::Fetch {
            kind: "secret",
            name: name.to_string(),
            source,
        })
}

/// The files of Secret `name` (`secret`: the object, None if it does not exist).
pub fn payload(
    name: &str,
    secret: Option<&Secret>,
    items: Option<&[KeyToPath]>,
    optional: bool,
    default_mode: u32,
) -> Result<Payload, VolumeError> {
    match secret {
        Some(s) => key_payload(
            &objects::secret_data(s),
            items,
            default_mode,
            optional,
            VolumeError::MissingSecretKey,
        ),
        None if optional => Ok(Payload::new()),
        None => Err(VolumeError::SecretNotFound(name.to_string())),
    }
}

#[async_trait]
impl VolumeType for SecretVolume {
    fn handles(&self, v: &Volume) -> bool {
        v.secret.is_some()
    }

    async fn set_up(&self, s: &SetUp<'_>, v: &Volume) -> Result<Mounted, VolumeError> {
        let src = v.secret.clone().unwrap_or_default();
        let name = src.secret_name.clone().unwrap_or_default();
        let secret = fetch(s, &name).await?;
        let files = payload(
            &name,
            secret.as_ref(),
            src.items.as_deref(),
            src.optional == Some(true),
            mode(src.default_mode, DEFAULT_MODE),
        )?;
        let dir = s.dir(DIR, &v.name);
        empty_dir::make_dir(&dir, 0o755)?;
        empty_dir::mount_tmpfs(&dir, None)?;
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

    #[test]
    fn bytes_as_stored_and_missing_keys() {
        let s = Secret {
            data: Some([("key".to_string(), ByteString(vec![0xff, 0, b'\n']))].into()),
            ..Default::default()
        };
        let p = payload("s", Some(&s), None, false, 0o644).unwrap();
        assert_eq!(p["key"].data, [0xff, 0, b'\n']);
        let items = [KeyToPath {
            key: "other".into(),
            path: "x".into(),
            mode: None,
        }];
        let e = payload("s", Some(&s), Some(&items), false, 0o644).unwrap_err();
        assert_eq!(e.to_string(), "references non-existent secret key: other");
        let e = payload("s", None, None, false, 0o644).unwrap_err();
        assert_eq!(e.to_string(), "secret \"s\" not found");
    }
}
