//! `tcpSocket` probes: a TCP connection to the port (on the pod's IP unless `host` is set)
//! succeeds when it is accepted within the timeout.

use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::TCPSocketAction;
use tokio::net::TcpStream;

use super::{Handler, Outcome, Target};

pub struct TcpSocket {
    action: TCPSocketAction,
}

impl TcpSocket {
    pub fn new(a: &TCPSocketAction) -> TcpSocket {
        TcpSocket { action: a.clone() }
    }
}

/// A dial error as Go prints it (`dial tcp 10.0.0.5:81: connect: connection refused`).
pub fn dial_error(addr: &str, e: &std::io::Error) -> String {
    let what = match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connect: connection refused".to_string(),
        std::io::ErrorKind::TimedOut => "i/o timeout".to_string(),
        _ => e.to_string(),
    };
    format!("dial tcp {addr}: {what}")
}

/// `host:port`, with IPv6 hosts in brackets.
pub fn join(host: &str, port: i32) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[async_trait]
impl Handler for TcpSocket {
    async fn check(&self, t: &Target, timeout: Duration) -> Outcome {
        let port = match t.port(&self.action.port) {
            Ok(p) => p,
            Err(msg) => return Outcome::Failure(msg),
        };
        let addr = join(&t.host(self.action.host.as_ref()), port);
        match tokio::time::timeout(timeout, TcpStream::connect(&addr)).await {
            Ok(Ok(_)) => Outcome::Success,
            Ok(Err(e)) => Outcome::Failure(dial_error(&addr, &e)),
            Err(_) => Outcome::Failure(format!("dial tcp {addr}: i/o timeout")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn open_and_closed_ports() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap().port() as i32;
        drop(tokio::spawn(async move {
            loop {
                let _ = listener.accept().await;
            }
        }));
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port() as i32
        };
        let t = Target {
            runtime: std::sync::Arc::new(
                crate::runtime::fake::FakeRuntime::new(Default::default()),
            ),
            container_id: "c".into(),
            pod_ip: "127.0.0.1".into(),
            ports: vec![],
        };
        let probe = |port| TcpSocket {
            action: TCPSocketAction {
                host: None,
                port: k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(port),
            },
        };
        assert_eq!(
            probe(open).check(&t, Duration::from_secs(1)).await,
            Outcome::Success
        );
        assert_eq!(
            probe(closed).check(&t, Duration::from_secs(1)).await,
            Outcome::Failure(format!(
                "dial tcp 127.0.0.1:{closed}: connect: connection refused"
            ))
        );
        assert_eq!(join("fd00::1", 80), "[fd00::1]:80");
    }
}
