//! `crictl rmp [-f] [-a] ID...`: removes pods; a ready pod only with -f (stopped
//! first), as crictl; prints `Removed sandbox ID` for each; every failure is
//! reported, one per line.

use k8s_cri::v1 as cri;

use super::{help, joined, Outcome};
use crate::cli::Rmp;
use crate::ctx::Ctx;
use crate::logrus;

pub async fn run(c: &mut Ctx, a: Rmp) -> Outcome {
    let mut rt = c.rt().await?;
    let mut ids = a.ids.clone();
    if a.all {
        ids = c
            .call(
                c.timeout,
                rt.list_pod_sandbox(
                    c.req(cri::ListPodSandboxRequest { filter: None }, Some(c.timeout)),
                ),
            )
            .await?
            .items
            .into_iter()
            .map(|p| p.id)
            .collect();
    }
    if ids.is_empty() {
        if a.all {
            logrus::info("No pods to remove");
            return Ok(0);
        }
        return help("rmp");
    }
    let mut errors = Vec::new();
    for id in ids {
        if let Err(e) = remove(c, &mut rt, &id, a.force).await {
            errors.push(e);
        }
    }
    joined(errors)
}

async fn remove(
    c: &Ctx,
    rt: &mut crate::client::Runtime,
    id: &str,
    force: bool,
) -> Result<(), String> {
    let status = c
        .call(
            c.timeout,
            rt.pod_sandbox_status(c.req(
                cri::PodSandboxStatusRequest {
                    pod_sandbox_id: id.to_string(),
                    verbose: false,
                },
                Some(c.timeout),
            )),
        )
        .await
        .map_err(|e| format!("getting sandbox status of pod {id:?}: {e}"))?
        .status
        .unwrap_or_default();
    if status.state == cri::PodSandboxState::SandboxReady as i32 {
        if !force {
            return Err(format!(
                "pod sandbox {id:?} is running, please stop it first"
            ));
        }
        super::stopp::stop_pod(c, rt, id)
            .await
            .map_err(|e| format!("stopping the pod sandbox {id:?} failed: {e}"))?;
        println!("Stopped sandbox {id}");
    }
    c.call(
        c.timeout,
        rt.remove_pod_sandbox(c.req(
            cri::RemovePodSandboxRequest {
                pod_sandbox_id: id.to_string(),
            },
            Some(c.timeout),
        )),
    )
    .await
    .map_err(|e| format!("removing the pod sandbox {id:?}: {e}"))?;
    println!("Removed sandbox {id}");
    Ok(())
}
