//! gRPC channel to the CRI endpoint (unix socket or tcp).

use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use std::time::Duration;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};
use tower::service_fn;

/// crictl raises gRPC's 4 MiB default to 16 MiB.
const MAX_MSG: usize = 16 * 1024 * 1024;

pub type Runtime = RuntimeServiceClient<Channel>;
pub type Images = ImageServiceClient<Channel>;

/// Connects to `unix:///path`, `/path`, `unix:path`, or `tcp://host:port`.
pub async fn connect(endpoint: &str, timeout: Duration) -> Result<Channel, String> {
    let fail = |e: &dyn std::fmt::Display| format!("connect endpoint {endpoint:?}: {e}");
    if let Some(addr) = endpoint.strip_prefix("tcp://") {
        return Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| fail(&e))?
            .connect_timeout(timeout)
            .connect()
            .await
            .map_err(|e| fail(&e));
    }
    let path = endpoint
        .strip_prefix("unix://")
        .or_else(|| endpoint.strip_prefix("unix:"))
        .unwrap_or(endpoint)
        .to_string();
    if path.is_empty() || !path.starts_with('/') {
        return Err(fail(
            &"only unix:// socket paths and tcp:// addresses are supported",
        ));
    }
    // The URI is required by tonic but unused: the connector ignores it.
    let ep = Endpoint::from_static("http://[::]:50051").connect_timeout(timeout);
    let p = path.clone();
    let connecting = ep.connect_with_connector(service_fn(move |_: Uri| {
        let p = p.clone();
        async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(p).await?)) }
    }));
    match tokio::time::timeout(timeout, connecting).await {
        Ok(r) => r.map_err(|e| {
            use std::error::Error;
            let mut msg = e.to_string();
            let mut src = e.source();
            while let Some(s) = src {
                let s_text = s.to_string();
                if !msg.contains(&s_text) {
                    msg = format!("{msg}: {s_text}");
                }
                src = s.source();
            }
            fail(&msg)
        }),
        Err(_) => Err(fail(&"context deadline exceeded")),
    }
}

pub fn runtime(ch: Channel) -> Runtime {
    RuntimeServiceClient::new(ch)
        .max_decoding_message_size(MAX_MSG)
        .max_encoding_message_size(MAX_MSG)
}

pub fn images(ch: Channel) -> Images {
    ImageServiceClient::new(ch)
        .max_decoding_message_size(MAX_MSG)
        .max_encoding_message_size(MAX_MSG)
}
