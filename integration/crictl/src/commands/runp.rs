//! `crictl runp [--runtime R] pod-config.[json|yaml]`: prints the pod id.

use k8s_cri::v1 as cri;

use super::{help, Outcome};
use crate::cli::Runp;
use crate::config;
use crate::ctx::Ctx;

pub async fn run(c: &mut Ctx, a: Runp) -> Outcome {
    if a.args.len() != 1 || a.args[0].is_empty() {
        return help("runp");
    }
    if let Some(t) = a.cancel_timeout.filter(|t| !t.is_zero()) {
        c.timeout = t;
    }
    let mut rt = c.rt().await?;
    let config =
        config::pod_config(&a.args[0]).map_err(|e| format!("load podSandboxConfig: {e}"))?;
    // twice the time limit, as crictl's client gives sandbox operations
    let deadline = c.timeout * 2;
    let r = c
        .call(
            deadline,
            rt.run_pod_sandbox(c.req(
                cri::RunPodSandboxRequest {
                    config: Some(config),
                    runtime_handler: a.runtime.unwrap_or_default(),
                },
                Some(deadline),
            )),
        )
        .await
        .map_err(|e| format!("run pod sandbox: {e}"))?;
    println!("{}", r.pod_sandbox_id);
    Ok(0)
}
