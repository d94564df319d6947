//! The audit log: one JSON line (audit.k8s.io/v1 Event, level Metadata) per mutating request.

use std::{
    fs::{File, OpenOptions},
    io::Write,
    path::Path,
};

use parking_lot::Mutex;
use serde_json::json;

use crate::{auth::UserInfo, request::ResourceRequest};

/// Where audit lines go.
pub enum Audit {
    Off,
    Stdout,
    File(Mutex<File>),
}

impl Audit {
    /// `None`: no audit log; `-`: standard output; else a file opened for appending.
    pub fn open(path: Option<&Path>) -> std::io::Result<Audit> {
        match path {
            None => Ok(Audit::Off),
            Some(p) if p.as_os_str() == "-" => Ok(Audit::Stdout),
            Some(p) => Ok(Audit::File(Mutex::new(
                OpenOptions::new().create(true).append(true).open(p)?,
            ))),
        }
    }

    /// Writes the line of one finished mutating request.
    pub fn record(&self, user: &UserInfo, verb: &str, req: &ResourceRequest, code: u16) {
        if matches!(self, Audit::Off) {
            return;
        }
        let now = jiff::Timestamp::now().to_string();
        let mut object_ref = json!({"resource": req.resource.plural, "apiGroup": req.resource.group,
            "apiVersion": req.resource.version});
        if let Some(ns) = &req.namespace {
            object_ref["namespace"] = json!(ns);
        }
        if let Some(n) = &req.name {
            object_ref["name"] = json!(n);
        }
        if let Some(s) = &req.subresource {
            object_ref["subresource"] = json!(s);
        }
        let line = json!({
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": "Metadata",
            "auditID": uuid::Uuid::new_v4().to_string(),
            "stage": "ResponseComplete",
            "verb": verb,
            "user": {"username": user.name, "groups": user.groups},
            "objectRef": object_ref,
            "responseStatus": {"code": code},
            "stageTimestamp": now,
        })
        .to_string();
        match self {
            Audit::Off => {}
            Audit::Stdout => println!("{line}"),
            Audit::File(f) => {
                let _ = writeln!(f.lock(), "{line}");
            }
        }
    }
}
