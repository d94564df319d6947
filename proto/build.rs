fn main() -> Result<(), Box<dyn std::error::Error>> {
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_protos(
            &["etcd/kv.proto", "etcd/rpc.proto", "peer.proto"],
            &["etcd", "."],
        )?;
    // The CRI subset: clients for the agent, servers for tests; serde so that the agent's
    // in-memory (fake) runtime can keep its state in a file across restarts.
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .message_attribute(
            ".runtime.v1",
            "#[derive(serde::Serialize, serde::Deserialize)] #[serde(default)]",
        )
        .enum_attribute(
            ".runtime.v1",
            "#[derive(serde::Serialize, serde::Deserialize)]",
        )
        .compile_protos(&["cri/api.proto"], &["cri"])?;
    // gRPC's health checking protocol: the agent's `grpc` probes (client), tests (server).
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_protos(&["grpc/health.proto"], &["grpc"])?;
    Ok(())
}
