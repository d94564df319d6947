//! `grpc` probes: gRPC's standard health check (`grpc.health.v1.Health/Check`, plain HTTP/2
//! without TLS, as the kubelet) on the pod's IP and port; SERVING succeeds.

use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::GRPCAction;
use proto::health::{
    health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
};
use tonic::transport::Endpoint;

use super::{tcp, Handler, Outcome, Target};

pub struct Grpc {
    port: i32,
    service: String,
}

impl Grpc {
    pub fn new(g: &GRPCAction) -> Grpc {
        Grpc {
            port: g.port,
            service: g.service.clone().unwrap_or_default(),
        }
    }
}

fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs())
}

#[async_trait]
impl Handler for Grpc {
    async fn check(&self, t: &Target, timeout: Duration) -> Outcome {
        let addr = tcp::join(&t.pod_ip, self.port);
        let endpoint = match Endpoint::from_shared(format!("http://{addr}")) {
            Ok(e) => e.connect_timeout(timeout).timeout(timeout),
            Err(e) => return Outcome::Failure(format!("invalid address {addr:?}: {e}")),
        };
        let channel = match tokio::time::timeout(timeout, endpoint.connect()).await {
            Ok(Ok(c)) => c,
            _ => {
                return Outcome::Failure(format!(
                    "timeout: failed to connect service {addr:?} within {}",
                    secs(timeout)
                ))
            }
        };
        let request = HealthCheckRequest {
            service: self.service.clone(),
        };
        match HealthClient::new(channel).check(request).await {
            Ok(r) => match r.into_inner().status() {
                ServingStatus::Serving => Outcome::Success,
                other => Outcome::Failure(format!(
                    "service unhealthy (responded with {:?})",
                    other.as_str_name()
                )),
            },
            Err(s) if s.code() == tonic::Code::Unimplemented => Outcome::Failure(format!(
                "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): {}",
                s.message()
            )),
            Err(s) if s.code() == tonic::Code::DeadlineExceeded || s.code() == tonic::Code::Cancelled => {
                Outcome::Failure(format!(
                    "timeout: health rpc did not complete within {}",
                    secs(timeout)
                ))
            }
            Err(s) => Outcome::Failure(format!(
                "rpc error: code = {:?} desc = {}",
                s.code(),
                s.message()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::health::{
        health_server::{Health, HealthServer},
        HealthCheckResponse,
    };
    use tonic::{Request, Response, Status};

    struct Fixed;

    #[tonic::async_trait]
    impl Health for Fixed {
        async fn check(
            &self,
            req: Request<HealthCheckRequest>,
        ) -> Result<Response<HealthCheckResponse>, Status> {
            let status = if req.into_inner().service == "down" {
                ServingStatus::NotServing
            } else {
                ServingStatus::Serving
            };
            Ok(Response::new(HealthCheckResponse {
                status: status as i32,
            }))
        }
    }

    #[tokio::test]
    async fn serving_not_serving_and_closed() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port() as i32;
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(HealthServer::new(Fixed))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(l)),
        );
        let t = Target {
            runtime: std::sync::Arc::new(
                crate::runtime::fake::FakeRuntime::new(Default::default()),
            ),
            container_id: "c".into(),
            pod_ip: "127.0.0.1".into(),
            ports: vec![],
        };
        let probe = |port, service: &str| Grpc {
            port,
            service: service.into(),
        };
        let d = Duration::from_secs(2);
        assert_eq!(probe(port, "").check(&t, d).await, Outcome::Success);
        assert_eq!(
            probe(port, "down").check(&t, d).await,
            Outcome::Failure("service unhealthy (responded with \"NOT_SERVING\")".into())
        );
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port() as i32;
        assert_eq!(
            probe(closed, "").check(&t, d).await,
            Outcome::Failure(format!(
                "timeout: failed to connect service \"127.0.0.1:{closed}\" within 2s"
            ))
        );
    }
}
