//! `crictl stopp ID...`: prints `Stopped sandbox ID` for each.

use k8s_cri::v1 as cri;

use super::{help, Outcome};
use crate::cli::Ids;
use crate::ctx::Ctx;

pub async fn run(c: &mut Ctx, a: Ids) -> Outcome {
    if a.ids.is_empty() {
        return help("stopp");
    }
    let mut rt = c.rt().await?;
    for id in a.ids {
        stop_pod(c, &mut rt, &id)
            .await
            .map_err(|e| format!("stopping the pod sandbox {id:?}: {e}"))?;
        println!("Stopped sandbox {id}");
    }
    Ok(0)
}

pub async fn stop_pod(c: &Ctx, rt: &mut crate::client::Runtime, id: &str) -> Result<(), String> {
    c.call(
        c.timeout,
        rt.stop_pod_sandbox(c.req(
            cri::StopPodSandboxRequest {
                pod_sandbox_id: id.to_string(),
            },
            Some(c.timeout),
        )),
    )
    .await
    .map(|_| ())
}
