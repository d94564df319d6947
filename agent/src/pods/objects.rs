//! The ConfigMaps and Secrets a pod refers to (in its environment and its volumes), read one
//! by one with `get`: the node may read only what its pods reference, so it neither lists nor
//! watches them. [`Objects`] is the source; the API client is the real one.

use std::collections::BTreeMap;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;

/// Where ConfigMaps and Secrets are read from (`None`: the object does not exist).
#[async_trait]
pub trait Objects: Send + Sync {
    /// The ConfigMap `name` of namespace `ns`.
    async fn config_map(&self, ns: &str, name: &str) -> Result<Option<ConfigMap>, kube::Error>;
    /// The Secret `name` of namespace `ns`.
    async fn secret(&self, ns: &str, name: &str) -> Result<Option<Secret>, kube::Error>;
}

#[async_trait]
impl Objects for kube::Client {
    async fn config_map(&self, ns: &str, name: &str) -> Result<Option<ConfigMap>, kube::Error> {
        Api::<ConfigMap>::namespaced(self.clone(), ns)
            .get_opt(name)
            .await
    }

    async fn secret(&self, ns: &str, name: &str) -> Result<Option<Secret>, kube::Error> {
        Api::<Secret>::namespaced(self.clone(), ns)
            .get_opt(name)
            .await
    }
}

/// A ConfigMap's keys: `data` as UTF-8 bytes and `binaryData` as is.
pub fn config_map_data(cm: &ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let mut out: BTreeMap<String, Vec<u8>> = cm
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
        .collect();
    for (k, v) in cm.binary_data.iter().flatten() {
        out.insert(k.clone(), v.0.clone());
    }
    out
}

/// A Secret's keys: `data` (the decoded bytes), with `stringData` entries on top, as the API
/// merges them on write.
pub fn secret_data(s: &Secret) -> BTreeMap<String, Vec<u8>> {
    let mut out: BTreeMap<String, Vec<u8>> = s
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    for (k, v) in s.string_data.iter().flatten() {
        out.insert(k.clone(), v.clone().into_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    #[test]
    fn data_of_config_maps_and_secrets() {
        let cm = ConfigMap {
            data: Some([("a".to_string(), "x".to_string())].into()),
            binary_data: Some([("b".to_string(), ByteString(vec![0, 255]))].into()),
            ..Default::default()
        };
        let d = config_map_data(&cm);
        assert_eq!(d["a"], b"x");
        assert_eq!(d["b"], [0, 255]);
        let s = Secret {
            data: Some(
                [
                    ("k".to_string(), ByteString(vec![1, 2])),
                    ("o".to_string(), ByteString(b"old".to_vec())),
                ]
                .into(),
            ),
            string_data: Some([("o".to_string(), "new".to_string())].into()),
            ..Default::default()
        };
        let d = secret_data(&s);
        assert_eq!(d["k"], [1, 2]);
        assert_eq!(d["o"], b"new");
    }
}
