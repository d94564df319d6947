//! Kubernetes' protobuf request bodies (`application/vnd.kubernetes.protobuf`), which kubectl's
//! typed commands send (`kubectl create namespace|deployment|configmap|secret|service|
//! serviceaccount`), decoded into the JSON shape every other request has.
//!
//! The wire format: `k8s\0`, then a `runtime.Unknown` {typeMeta(1){apiVersion(1), kind(2)},
//! raw(2)}, where `raw` is the object's message. The field numbers below are those of
//! Kubernetes' `generated.proto` (as published in the `k8s-pb` crate) for the messages these
//! commands use. A field this table does not know is refused with 415, naming it, rather than
//! silently dropped: the client can send the object as JSON instead.

use base64::Engine;
use serde_json::{json, Map, Value};

/// How one field is encoded.
#[derive(Clone, Copy)]
enum Kind {
    Str,
    Int,
    /// An int whose zero value is meaningful (a Go pointer field): kept even when 0.
    IntPtr,
    Bool,
    BoolPtr,
    Msg(&'static str),
    RepStr,
    RepMsg(&'static str),
    MapStr,
    MapBytes,
    MapQuantity,
}

use Kind::*;

/// (tag, JSON name, kind) of each known field of a message.
fn fields(msg: &str) -> Option<&'static [(u32, &'static str, Kind)]> {
    Some(match msg {
        "ObjectMeta" => &[
            (1, "name", Str),
            (2, "generateName", Str),
            (3, "namespace", Str),
            (5, "uid", Str),
            (6, "resourceVersion", Str),
            (7, "generation", Int),
            (8, "creationTimestamp", Msg("Time")),
            (9, "deletionTimestamp", Msg("Time")),
            (10, "deletionGracePeriodSeconds", IntPtr),
            (11, "labels", MapStr),
            (12, "annotations", MapStr),
            (14, "finalizers", RepStr),
        ],
        "Time" => &[(1, "seconds", Int), (2, "nanos", Int)],
        "Namespace" => &[
            (1, "metadata", Msg("ObjectMeta")),
            (2, "spec", Msg("NamespaceSpec")),
            (3, "status", Msg("NamespaceStatus")),
        ],
        "NamespaceSpec" => &[(1, "finalizers", RepStr)],
        "NamespaceStatus" => &[(1, "phase", Str)],
        "ConfigMap" => &[
            (1, "metadata", Msg("ObjectMeta")),
            (2, "data", MapStr),
            (3, "binaryData", MapBytes),
            (4, "immutable", BoolPtr),
        ],
        "Secret" => &[
            (1, "metadata", Msg("ObjectMeta")),
            (2, "data", MapBytes),
            (3, "type", Str),
            (4, "stringData", MapStr),
            (5, "immutable", BoolPtr),
        ],
        "ServiceAccount" => &[
            (1, "metadata", Msg("ObjectMeta")),
            (4, "automountServiceAccountToken", BoolPtr),
        ],
        "Deployment" => &[
            (1, "metadata", Msg("ObjectMeta")),
            (2, "spec", Msg("DeploymentSpec")),
            (3, "status", Msg("Empty")),
        ],
        "DeploymentSpec" => &[
            (1, "replicas", IntPtr),
            (2, "selector", Msg("LabelSelector")),
            (3, "template", Msg("PodTemplateSpec")),
            (4, "strategy", Msg("DeploymentStrategy")),
            (5, "minReadySeconds", Int),
            (6, "revisionHistoryLimit", IntPtr),
            (7, "paused", Bool),
            (9, "progressDeadlineSeconds", IntPtr),
        ],
        "DeploymentStrategy" => &[
            (1, "type", Str),
            (2, "rollingUpdate", Msg("RollingUpdateDeployment")),
        ],
        "RollingUpdateDeployment" => &[
            (1, "maxUnavailable", Msg("IntOrString")),
            (2, "maxSurge", Msg("IntOrString")),
        ],
        "LabelSelector" => &[
            (1, "matchLabels", MapStr),
            (2, "matchExpressions", RepMsg("LabelSelectorRequirement")),
        ],
        "LabelSelectorRequirement" => {
            &[(1, "key", Str), (2, "operator", Str), (3, "values", RepStr)]
        }
        "PodTemplateSpec" => &[
            (1, "metadata", Msg("ObjectMeta")),
            (2, "spec", Msg("PodSpec")),
        ],
        "PodSpec" => &[
            (2, "containers", RepMsg("Container")),
            (20, "initContainers", RepMsg("Container")),
            (3, "restartPolicy", Str),
            (4, "terminationGracePeriodSeconds", IntPtr),
            (5, "activeDeadlineSeconds", IntPtr),
            (6, "dnsPolicy", Str),
            (7, "nodeSelector", MapStr),
            (8, "serviceAccountName", Str),
            (9, "serviceAccount", Str),
            (10, "nodeName", Str),
            (11, "hostNetwork", Bool),
            (16, "hostname", Str),
            (17, "subdomain", Str),
            (19, "schedulerName", Str),
            (25, "priority", IntPtr),
            (30, "enableServiceLinks", BoolPtr),
            (31, "preemptionPolicy", Str),
        ],
        "Container" => &[
            (1, "name", Str),
            (2, "image", Str),
            (3, "command", RepStr),
            (4, "args", RepStr),
            (5, "workingDir", Str),
            (6, "ports", RepMsg("ContainerPort")),
            (7, "env", RepMsg("EnvVar")),
            (8, "resources", Msg("ResourceRequirements")),
            (13, "terminationMessagePath", Str),
            (14, "imagePullPolicy", Str),
            (16, "stdin", Bool),
            (17, "stdinOnce", Bool),
            (18, "tty", Bool),
            (20, "terminationMessagePolicy", Str),
        ],
        "ContainerPort" => &[
            (1, "name", Str),
            (2, "hostPort", Int),
            (3, "containerPort", Int),
            (4, "protocol", Str),
            (5, "hostIP", Str),
        ],
        "EnvVar" => &[(1, "name", Str), (2, "value", Str)],
        "ResourceRequirements" => &[(1, "limits", MapQuantity), (2, "requests", MapQuantity)],
        "Service" => &[
            (1, "metadata", Msg("ObjectMeta")),
            (2, "spec", Msg("ServiceSpec")),
            (3, "status", Msg("Empty")),
        ],
        "ServiceSpec" => &[
            (1, "ports", RepMsg("ServicePort")),
            (2, "selector", MapStr),
            (3, "clusterIP", Str),
            (4, "type", Str),
            (5, "externalIPs", RepStr),
            (7, "sessionAffinity", Str),
            (10, "externalName", Str),
            (11, "externalTrafficPolicy", Str),
            (17, "ipFamilyPolicy", Str),
            (18, "clusterIPs", RepStr),
            (19, "ipFamilies", RepStr),
            (22, "internalTrafficPolicy", Str),
        ],
        "ServicePort" => &[
            (1, "name", Str),
            (2, "protocol", Str),
            (3, "port", Int),
            (4, "targetPort", Msg("IntOrString")),
            (5, "nodePort", Int),
            (6, "appProtocol", Str),
        ],
        "IntOrString" => &[(1, "type", Int), (2, "intVal", Int), (3, "strVal", Str)],
        "Quantity" => &[(1, "string", Str)],
        // Status of a new object: ignored by the server, accepted whatever it holds.
        "Empty" => &[],
        _ => return None,
    })
}

/// Why a protobuf body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    #[error("the protobuf body is truncated or malformed")]
    Malformed,
    #[error("the protobuf body lacks Kubernetes' k8s\\0 prefix")]
    NoMagic,
    #[error(
        "protobuf bodies of kind {0} are not decoded by this server; send it as application/json"
    )]
    UnknownKind(String),
    #[error(
        "protobuf field {tag} of {msg} is not decoded by this server; send the object as \
        application/json"
    )]
    UnknownField { msg: &'static str, tag: u32 },
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, ProtoError> {
        let mut v = 0u64;
        for i in 0..10 {
            let (&b, rest) = self.buf.split_first().ok_or(ProtoError::Malformed)?;
            self.buf = rest;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(ProtoError::Malformed)
    }

    fn bytes(&mut self) -> Result<&'a [u8], ProtoError> {
        let n = usize::try_from(self.varint()?).map_err(|_| ProtoError::Malformed)?;
        if n > self.buf.len() {
            return Err(ProtoError::Malformed);
        }
        let (b, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(b)
    }

    /// (tag, wire type), or None at the end.
    fn key(&mut self) -> Result<Option<(u32, u8)>, ProtoError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let k = self.varint()?;
        Ok(Some(((k >> 3) as u32, (k & 7) as u8)))
    }

    fn skip(&mut self, wire: u8) -> Result<(), ProtoError> {
        match wire {
            0 => self.varint().map(|_| ()),
            1 => self.advance(8),
            2 => self.bytes().map(|_| ()),
            5 => self.advance(4),
            _ => Err(ProtoError::Malformed),
        }
    }

    fn advance(&mut self, n: usize) -> Result<(), ProtoError> {
        if n > self.buf.len() {
            return Err(ProtoError::Malformed);
        }
        self.buf = &self.buf[n..];
        Ok(())
    }
}

fn text(b: &[u8]) -> Result<String, ProtoError> {
    String::from_utf8(b.to_vec()).map_err(|_| ProtoError::Malformed)
}

/// A map entry {key(1): string, value(2)}.
fn entry(b: &[u8]) -> Result<(String, Option<&[u8]>), ProtoError> {
    let mut r = Reader { buf: b };
    let (mut k, mut v) = (String::new(), None);
    while let Some((tag, wire)) = r.key()? {
        match (tag, wire) {
            (1, 2) => k = text(r.bytes()?)?,
            (2, 2) => v = Some(r.bytes()?),
            (_, w) => r.skip(w)?,
        }
    }
    Ok((k, v))
}

fn message(name: &'static str, b: &[u8]) -> Result<Value, ProtoError> {
    let table = fields(name).ok_or(ProtoError::UnknownKind(name.to_string()))?;
    let mut out = Map::new();
    let mut r = Reader { buf: b };
    while let Some((tag, wire)) = r.key()? {
        let Some(&(_, json_name, kind)) = table.iter().find(|(t, _, _)| *t == tag) else {
            // Go writes every non-pointer field, set or not: an unknown field holding its zero
            // value (0, "", an empty message) says nothing and is skipped; anything else would
            // be lost, so it is refused.
            let empty = match wire {
                0 => r.varint()? == 0,
                2 => r.bytes()?.is_empty(),
                w => {
                    r.skip(w)?;
                    false
                }
            };
            if name == "Empty" || empty {
                continue;
            }
            return Err(ProtoError::UnknownField { msg: name, tag });
        };
        let key = json_name.to_string();
        match kind {
            Str => {
                let s = text(r.bytes()?)?;
                out.insert(key, json!(s));
            }
            Int | IntPtr => {
                let v = r.varint()? as i64;
                out.insert(key, json!(v));
            }
            Bool | BoolPtr => {
                let v = r.varint()? != 0;
                out.insert(key, json!(v));
            }
            Msg(m) => {
                let v = message(m, r.bytes()?)?;
                out.insert(key, special(m, v));
            }
            RepStr => {
                let s = text(r.bytes()?)?;
                push(&mut out, key, json!(s));
            }
            RepMsg(m) => {
                let v = message(m, r.bytes()?)?;
                push(&mut out, key, special(m, v));
            }
            MapStr | MapBytes | MapQuantity => {
                let (k, v) = entry(r.bytes()?)?;
                let v = match (kind, v) {
                    (MapStr, Some(b)) => json!(text(b)?),
                    (MapBytes, Some(b)) => {
                        json!(base64::engine::general_purpose::STANDARD.encode(b))
                    }
                    (MapQuantity, Some(b)) => special("Quantity", message("Quantity", b)?),
                    (_, None) => json!(""),
                    _ => return Err(ProtoError::Malformed),
                };
                let map = out.entry(key).or_insert_with(|| json!({}));
                if let Some(m) = map.as_object_mut() {
                    m.insert(k, v);
                }
            }
        }
    }
    // Non-pointer Go fields are always on the wire; their zero values mean "unset".
    out.retain(|k, v| {
        let kind = table
            .iter()
            .find(|(_, n, _)| n == k)
            .map(|(_, _, kind)| *kind);
        !matches!((kind, &*v), (Some(Str), Value::String(s)) if s.is_empty())
            && !matches!((kind, &*v), (Some(Int), Value::Number(n)) if n.as_i64() == Some(0))
            && !matches!((kind, &*v), (Some(Bool), Value::Bool(false)))
            && !v.is_null()
    });
    Ok(Value::Object(out))
}

fn push(out: &mut Map<String, Value>, key: String, v: Value) {
    if let Value::Array(a) = out.entry(key).or_insert_with(|| json!([])) {
        a.push(v);
    }
}

/// Types whose JSON form is not an object.
fn special(name: &str, v: Value) -> Value {
    match name {
        "Time" => {
            let secs = v["seconds"].as_i64().unwrap_or(0);
            if secs == 0 {
                return Value::Null;
            }
            jiff::Timestamp::from_second(secs)
                .map(|t| json!(t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()))
                .unwrap_or(Value::Null)
        }
        "Quantity" => v.get("string").cloned().unwrap_or(json!("0")),
        "IntOrString" => match v["type"].as_i64().unwrap_or(0) {
            1 => v.get("strVal").cloned().unwrap_or(json!("")),
            _ => v.get("intVal").cloned().unwrap_or(json!(0)),
        },
        _ => v,
    }
}

/// Decodes a protobuf request body into (apiVersion, kind, object).
pub fn decode(body: &[u8]) -> Result<(String, String, Value), ProtoError> {
    let rest = body.strip_prefix(b"k8s\0").ok_or(ProtoError::NoMagic)?;
    let mut r = Reader { buf: rest };
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    while let Some((tag, wire)) = r.key()? {
        match (tag, wire) {
            (1, 2) => {
                let mut tm = Reader { buf: r.bytes()? };
                while let Some((t, w)) = tm.key()? {
                    match (t, w) {
                        (1, 2) => api_version = text(tm.bytes()?)?,
                        (2, 2) => kind = text(tm.bytes()?)?,
                        (_, w) => tm.skip(w)?,
                    }
                }
            }
            (2, 2) => raw = r.bytes()?,
            (_, w) => r.skip(w)?,
        }
    }
    let name: &'static str = match kind.as_str() {
        "Namespace" => "Namespace",
        "ConfigMap" => "ConfigMap",
        "Secret" => "Secret",
        "ServiceAccount" => "ServiceAccount",
        "Deployment" => "Deployment",
        "Service" => "Service",
        other => return Err(ProtoError::UnknownKind(other.to_string())),
    };
    let mut obj = message(name, raw)?;
    if let Some(m) = obj.as_object_mut() {
        m.remove("status");
        m.insert("apiVersion".into(), json!(api_version));
        m.insert("kind".into(), json!(kind));
    }
    Ok((api_version, kind, obj))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(tag: u32, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![(tag << 3 | 2) as u8, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }

    fn varint_field(tag: u32, v: u8) -> Vec<u8> {
        vec![(tag << 3) as u8, v]
    }

    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let tm = [field(1, api_version.as_bytes()), field(2, kind.as_bytes())].concat();
        [b"k8s\0".to_vec(), field(1, &tm), field(2, raw)].concat()
    }

    #[test]
    fn namespace_and_deployment() {
        // ObjectMeta{name: "team", generateName: ""}, as Go always writes non-pointer strings.
        let meta = [field(1, b"team"), field(2, b"")].concat();
        let ns = envelope(
            "v1",
            "Namespace",
            &[field(1, &meta), field(2, b""), field(3, b"")].concat(),
        );
        let (_, kind, obj) = decode(&ns).unwrap();
        assert_eq!(kind, "Namespace");
        assert_eq!(
            obj,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"},
                "spec": {}})
        );

        let labels = field(11, &[field(1, b"app"), field(2, b"web")].concat());
        let meta = [field(1, b"web"), labels.clone()].concat();
        let container = [
            field(1, b"busybox"),
            field(2, b"busybox:1.36"),
            field(8, b""),
        ]
        .concat();
        let podspec = field(2, &container);
        let template = [field(1, &labels_meta(&labels)), field(2, &podspec)].concat();
        let selector = field(1, &[field(1, b"app"), field(2, b"web")].concat());
        let spec = [
            varint_field(1, 0),
            field(2, &selector),
            field(3, &template),
            field(4, b""),
        ]
        .concat();
        let d = envelope(
            "apps/v1",
            "Deployment",
            &[field(1, &meta), field(2, &spec)].concat(),
        );
        let (_, _, obj) = decode(&d).unwrap();
        assert_eq!(obj["spec"]["replicas"], 0, "a pointer field keeps its zero");
        assert_eq!(obj["spec"]["selector"]["matchLabels"]["app"], "web");
        assert_eq!(
            obj["spec"]["template"]["spec"]["containers"][0],
            json!({"name": "busybox", "image": "busybox:1.36", "resources": {}})
        );
        assert_eq!(obj["spec"]["strategy"], json!({}));
        assert_eq!(obj["metadata"]["labels"]["app"], "web");
    }

    fn labels_meta(labels: &[u8]) -> Vec<u8> {
        labels.to_vec()
    }

    #[test]
    fn secret_quantities_and_unknown_fields() {
        let meta = field(1, &field(1, b"s"));
        let data = field(2, &[field(1, b"k"), field(2, b"\x00\x01")].concat());
        let (_, _, obj) = decode(&envelope(
            "v1",
            "Secret",
            &[meta.clone(), data, field(3, b"Opaque")].concat(),
        ))
        .unwrap();
        assert_eq!(obj["data"]["k"], "AAE=");
        assert_eq!(obj["type"], "Opaque");
        let skipped = envelope("v1", "ConfigMap", &[meta.clone(), field(9, b"")].concat());
        assert!(
            decode(&skipped).is_ok(),
            "an unknown field at its zero value is unset"
        );
        let unknown = envelope("v1", "ConfigMap", &[meta, field(9, b"x")].concat());
        assert!(matches!(
            decode(&unknown),
            Err(ProtoError::UnknownField {
                msg: "ConfigMap",
                tag: 9
            })
        ));
        assert!(matches!(
            decode(&envelope("v1", "Pod", b"")),
            Err(ProtoError::UnknownKind(_))
        ));
        assert!(decode(b"not protobuf").is_err());
    }
}
