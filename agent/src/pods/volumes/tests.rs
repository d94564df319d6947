//! Setting up whole pods' volumes against an in-memory object source.

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Mutex,
};

use super::*;
use k8s_openapi::{
    api::core::v1::{
        ConfigMap, ConfigMapProjection, ConfigMapVolumeSource, DownwardAPIProjection,
        DownwardAPIVolumeFile, EmptyDirVolumeSource, HostPathVolumeSource, NFSVolumeSource,
        ObjectFieldSelector, PodSpec, Secret, SecretProjection, ServiceAccountTokenProjection,
        VolumeMount, VolumeProjection,
    },
    ByteString,
};
use kube::api::ObjectMeta;

/// ConfigMaps and Secrets of namespace `default`, counting the reads.
#[derive(Default)]
struct Fake {
    config_maps: Mutex<HashMap<String, ConfigMap>>,
    secrets: HashMap<String, Secret>,
    reads: AtomicUsize,
}

#[async_trait]
impl Objects for Fake {
    async fn config_map(&self, ns: &str, name: &str) -> Result<Option<ConfigMap>, kube::Error> {
        assert_eq!(ns, "default");
        self.reads.fetch_add(1, Ordering::SeqCst);
        Ok(self.config_maps.lock().unwrap().get(name).cloned())
    }
    async fn secret(&self, ns: &str, name: &str) -> Result<Option<Secret>, kube::Error> {
        assert_eq!(ns, "default");
        self.reads.fetch_add(1, Ordering::SeqCst);
        Ok(self.secrets.get(name).cloned())
    }
}

fn config_map(data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..Default::default()
    }
}

fn pod(volumes: Vec<Volume>) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("p".into()),
            namespace: Some("default".into()),
            uid: Some("u1".into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            volumes: Some(volumes),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn cm_volume(name: &str, cm: &str) -> Volume {
    Volume {
        name: name.into(),
        config_map: Some(ConfigMapVolumeSource {
            name: cm.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn setup<'a>(pod: &'a Pod, root: &'a Path, objects: &'a Fake) -> SetUp<'a> {
    SetUp {
        pod,
        root,
        objects,
        node: (2, 1 << 30),
    }
}

#[tokio::test]
async fn empty_dir_host_path_and_sub_path() {
    let root = tempfile::tempdir().unwrap();
    let host = root.path().join("made");
    let p = pod(vec![
        Volume {
            name: "scratch".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        },
        Volume {
            name: "h".into(),
            host_path: Some(HostPathVolumeSource {
                path: host.display().to_string(),
                type_: Some("DirectoryOrCreate".into()),
            }),
            ..Default::default()
        },
    ]);
    let objects = Fake::default();
    let v = prepare(&setup(&p, root.path(), &objects)).await.unwrap();
    assert!(v["scratch"].path.is_dir());
    assert!(host.is_dir());
    let c = Container {
        volume_mounts: Some(vec![
            VolumeMount {
                name: "scratch".into(),
                mount_path: "/data".into(),
                sub_path: Some("sub".into()),
                read_only: Some(true),
                ..Default::default()
            },
            VolumeMount {
                name: "h".into(),
                mount_path: "/host".into(),
                ..Default::default()
            },
        ]),
        ..Default::default()
    };
    let m = mounts(&c, &v).unwrap();
    assert!(m[0].host_path.ends_with("empty-dir/scratch/sub") && m[0].readonly);
    assert!(v["scratch"].path.join("sub").is_dir());
    assert_eq!(m[1].container_path, "/host");
    assert!(!m[1].readonly);
    cleanup(root.path(), "u1");
    assert!(!pod_dir(root.path(), "u1").exists());
}

#[tokio::test]
async fn config_maps_are_files_mounted_read_only() {
    let root = tempfile::tempdir().unwrap();
    let objects = Fake::default();
    objects
        .config_maps
        .lock()
        .unwrap()
        .insert("cfg".into(), config_map(&[("greeting", "hello")]));
    let p = pod(vec![cm_volume("c", "cfg")]);
    let v = prepare(&setup(&p, root.path(), &objects)).await.unwrap();
    let dir = &v["c"].path;
    assert!(dir.ends_with("pods/u1/volumes/config-map/c"));
    assert_eq!(
        std::fs::read_to_string(dir.join("greeting")).unwrap(),
        "hello"
    );
    let c = Container {
        volume_mounts: Some(vec![VolumeMount {
            name: "c".into(),
            mount_path: "/etc/cfg".into(),
            ..Default::default()
        }]),
        ..Default::default()
    };
    assert!(mounts(&c, &v).unwrap()[0].readonly);
}

#[tokio::test]
async fn failures_name_the_volume_as_the_kubelet() {
    let root = tempfile::tempdir().unwrap();
    let objects = Fake::default();
    let p = pod(vec![cm_volume("config", "missing")]);
    let e = prepare(&setup(&p, root.path(), &objects))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "MountVolume.SetUp failed for volume \"config\" : configmap \"missing\" not found"
    );
    let nfs = pod(vec![Volume {
        name: "n".into(),
        nfs: Some(NFSVolumeSource::default()),
        ..Default::default()
    }]);
    let e = prepare(&setup(&nfs, root.path(), &objects))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "MountVolume.SetUp failed for volume \"n\" : volume type nfs is not supported by this agent"
    );
}

#[tokio::test]
async fn projected_sources_in_one_payload() {
    let root = tempfile::tempdir().unwrap();
    let mut objects = Fake::default();
    objects
        .config_maps
        .lock()
        .unwrap()
        .insert("cfg".into(), config_map(&[("a", "1")]));
    objects.secrets.insert(
        "s".into(),
        Secret {
            data: Some([("token".to_string(), ByteString(b"t0k".to_vec()))].into()),
            ..Default::default()
        },
    );
    let p = pod(vec![]);
    let sources = vec![
        VolumeProjection {
            config_map: Some(ConfigMapProjection {
                name: "cfg".into(),
                ..Default::default()
            }),
            ..Default::default()
        },
        VolumeProjection {
            secret: Some(SecretProjection {
                name: "s".into(),
                ..Default::default()
            }),
            ..Default::default()
        },
        VolumeProjection {
            downward_api: Some(DownwardAPIProjection {
                items: Some(vec![DownwardAPIVolumeFile {
                    path: "name".into(),
                    field_ref: Some(ObjectFieldSelector {
                        field_path: "metadata.name".into(),
                        api_version: None,
                    }),
                    ..Default::default()
                }]),
            }),
            ..Default::default()
        },
    ];
    let s = setup(&p, root.path(), &objects);
    let files = projected::payload(&s, &sources, 0o440).await.unwrap();
    assert_eq!(files.keys().collect::<Vec<_>>(), ["a", "name", "token"]);
    assert_eq!(files["token"].data, b"t0k");
    assert!(files.values().all(|f| f.mode == 0o440));
    let token = [VolumeProjection {
        service_account_token: Some(ServiceAccountTokenProjection {
            path: "token".into(),
            ..Default::default()
        }),
        ..Default::default()
    }];
    let e = projected::payload(&s, &token, 0o644).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "the serviceAccountToken projection is not supported by this agent \
         (the apiserver issues no service account tokens)"
    );
}

#[tokio::test]
async fn refreshes_once_per_period_on_label_changes_and_after_failures() {
    let root = tempfile::tempdir().unwrap();
    let objects = Fake::default();
    let mut p = pod(vec![cm_volume("c", "cfg")]);
    let mut r = Refresh::default();
    let period = Duration::from_secs(3600);

    // Missing: a failure, and no volumes yet. Syncs during the back-off read nothing; the
    // next failure doubles it.
    let first = r.refresh(&setup(&p, root.path(), &objects), period).await;
    assert!(first.volumes.is_none() && first.failed.is_some());
    assert_eq!(first.retry, Some(Duration::from_secs(1)));
    let during = r.refresh(&setup(&p, root.path(), &objects), period).await;
    assert!(during.volumes.is_none() && during.failed.is_none());
    assert!(during.retry.is_some_and(|d| d <= Duration::from_secs(1)));
    assert_eq!(objects.reads.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(1050)).await;
    let second = r.refresh(&setup(&p, root.path(), &objects), period).await;
    assert!(second.failed.is_some());
    assert_eq!(second.retry, Some(Duration::from_secs(2)));
    tokio::time::sleep(Duration::from_millis(2050)).await;

    // Created: the next refresh sets it up; within the period nothing is read again.
    objects
        .config_maps
        .lock()
        .unwrap()
        .insert("cfg".into(), config_map(&[("k", "v1")]));
    let ok = r.refresh(&setup(&p, root.path(), &objects), period).await;
    assert!(ok.failed.is_none() && ok.retry.is_none());
    let dir = ok.volumes.unwrap()["c"].path.clone();
    let reads = objects.reads.load(Ordering::SeqCst);
    objects
        .config_maps
        .lock()
        .unwrap()
        .insert("cfg".into(), config_map(&[("k", "v2")]));
    r.refresh(&setup(&p, root.path(), &objects), period).await;
    assert_eq!(objects.reads.load(Ordering::SeqCst), reads);
    assert_eq!(std::fs::read_to_string(dir.join("k")).unwrap(), "v1");

    // A label change refreshes at once (the downward API shows labels).
    p.metadata.labels = Some([("a".to_string(), "b".to_string())].into());
    r.refresh(&setup(&p, root.path(), &objects), period).await;
    assert_eq!(std::fs::read_to_string(dir.join("k")).unwrap(), "v2");

    // A period of zero re-reads every time; a failure then keeps the last good volumes.
    objects.config_maps.lock().unwrap().clear();
    let kept = r
        .refresh(&setup(&p, root.path(), &objects), Duration::ZERO)
        .await;
    assert!(kept.failed.is_some() && kept.volumes.is_some());
    assert_eq!(std::fs::read_to_string(dir.join("k")).unwrap(), "v2");
}
