//! `projected`: several sources in one directory: `configMap` and `secret` keys,
//! `downwardAPI` items, each with its items and modes, `defaultMode` (0644) for the rest; on a
//! tmpfs, since it may hold secrets. `serviceAccountToken` and `clusterTrustBundle` sources
//! are refused: this cluster's apiserver issues no service account tokens and serves no trust
//! bundles. Written atomically and mounted read-only.

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Volume, VolumeProjection};

use super::{
    atomic_writer::{self, Payload},
    config_map, downward_api, empty_dir, mode, secret, Mounted, SetUp, VolumeError, VolumeType,
};

/// The type's directory in the pod's volumes.
pub const DIR: &str = "projected";

/// The mode of files without one (0644).
pub const DEFAULT_MODE: u32 = 0o644;

/// The `projected` volume type.
pub struct Projected;

/// The files of one source.
async fn source(
    s: &SetUp<'_>,
    p: &VolumeProjection,
    default_mode: u32,
) -> Result<Payload, VolumeError> {
    if let Some(c) = &p.config_map {
        let cm = config_map::fetch(s, &c.name).await?;
        let optional = c.optional == Some(true);
        return config_map::payload(
            &c.name,
            cm.as_ref(),
            c.items.as_deref(),
            optional,
            default_mode,
        );
    }
    if let Some(c) = &p.secret {
        let secret = secret::fetch(s, &c.name).await?;
        let optional = c.optional == Some(true);
        return secret::payload(
            &c.name,
            secret.as_ref(),
            c.items.as_deref(),
            optional,
            default_mode,
        );
    }
    if let Some(d) = &p.downward_api {
        let items = d.items.as_deref().unwrap_or_default();
        return downward_api::payload(s.pod, items, default_mode, s.node);
    }
    if p.service_account_token.is_some() {
        return Err(VolumeError::Unsupported {
            what: "the serviceAccountToken projection".into(),
            note: " (the apiserver issues no service account tokens)",
        });
    }
    if p.cluster_trust_bundle.is_some() {
        return Err(VolumeError::Unsupported {
            what: "the clusterTrustBundle projection".into(),
            note: "",
        });
    }
    Err(VolumeError::Invalid(
        "a projected volume source has no source set".into(),
    ))
}

/// The files of all `sources` in order (a later source's path replaces an earlier one's).
pub async fn payload(
    s: &SetUp<'_>,
    sources: &[VolumeProjection],
    default_mode: u32,
) -> Result<Payload, VolumeError> {
    let mut out = Payload::new();
    for p in sources {
        out.extend(source(s, p, default_mode).await?);
    }
    Ok(out)
}

#[async_trait]
impl VolumeType for Projected {
    fn handles(&self, v: &Volume) -> bool {
        v.projected.is_some()
    }

    async fn set_up(&self, s: &SetUp<'_>, v: &Volume) -> Result<Mounted, VolumeError> {
        let src = v.projected.clone().unwrap_or_default();
        let files = payload(
            s,
            src.sources.as_deref().unwrap_or_default(),
            mode(src.default_mode, DEFAULT_MODE),
        )
        .await?;
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
