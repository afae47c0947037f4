use hyper_util::rt::TokioIo;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;
use std::time::Instant;
use tokio::net::UnixStream;
use tonic::transport::{Endpoint, Uri};
use tower::service_fn;

fn pod(name: &str) -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata { name: name.into(), uid: format!("uid-{name}"), namespace: "default".into(), attempt: 0 }),
        log_directory: format!("/tmp/pods/{name}"),
        linux: Some(LinuxPodSandboxConfig {
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(NamespaceOption { network: NamespaceMode::Node as i32, ..Default::default() }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ch = Endpoint::try_from("http://[::]")?
        .connect_with_connector(service_fn(|_: Uri| async {
            Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect("/run/containerd/containerd.sock").await?))
        }))
        .await?;
    let mut c = RuntimeServiceClient::new(ch);
    let v = c.version(VersionRequest { version: "v1".into() }).await?.into_inner();
    println!("CRI version: {} {}", v.runtime_name, v.runtime_version);
    let mut cycles = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(3u32);
    let image_ref = "localhost:5000/busybox:latest".to_string();
    let mut image = image_ref.clone();
    let mut gen = 0;
    loop {
        gen += 1;
        let name = format!("p{gen}");
        let cfg = pod(&name);
        let sb = c.run_pod_sandbox(RunPodSandboxRequest { config: Some(cfg.clone()), runtime_handler: "runc".into() }).await?.into_inner().pod_sandbox_id;
        println!("pod {name}: {sb}");
        let ccfg = ContainerConfig {
            metadata: Some(ContainerMetadata { name: "counter".into(), attempt: 0 }),
            image: Some(ImageSpec { image: image.clone(), ..Default::default() }),
            command: vec!["sh".into(), "-c".into(), "i=0; while true; do i=$((i+1)); echo $i > /tmp/c; sleep 1; done".into()],
            log_path: "counter.log".into(),
            ..Default::default()
        };
        let cid = c.create_container(CreateContainerRequest { pod_sandbox_id: sb.clone(), config: Some(ccfg), sandbox_config: Some(cfg) }).await?.into_inner().container_id;
        c.start_container(StartContainerRequest { container_id: cid.clone() }).await?;
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        let out = c.exec_sync(ExecSyncRequest { container_id: cid.clone(), cmd: vec!["cat".into(), "/tmp/c".into()], timeout: 5 }).await?.into_inner();
        println!("cycle {gen}: counter = {}", String::from_utf8_lossy(&out.stdout).trim());
        if cycles == 0 { break; }
        cycles -= 1;
        let tar = format!("/tmp/ck{gen}.tar");
        let t = Instant::now();
        c.checkpoint_container(CheckpointContainerRequest { container_id: cid.clone(), location: tar.clone(), timeout: 30 }).await?;
        println!("checkpoint -> {tar} in {:?}", t.elapsed());
        c.stop_pod_sandbox(StopPodSandboxRequest { pod_sandbox_id: sb.clone() }).await?;
        c.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: sb.clone() }).await?;
        image = tar;
    }
    println!("CRI probe ok (image ref {image_ref})");
    Ok(())
}
