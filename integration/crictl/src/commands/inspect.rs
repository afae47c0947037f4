//! `crictl inspect ID...` and `crictl inspectp ID...`: the status (and, unless -q,
//! the runtime's verbose info) as JSON (default), YAML or a go-template; several IDs
//! print as one array.

use k8s_cri::v1 as cri;

use super::{help, Outcome};
use crate::cli::Inspect;
use crate::ctx::Ctx;
use crate::output;

pub async fn containers(c: &mut Ctx, a: Inspect) -> Outcome {
    if a.ids.is_empty() {
        crate::logrus::error("No IDs provided or nothing found per filter");
        return help("inspect");
    }
    let mut rt = c.rt().await?;
    let mut docs = Vec::new();
    for id in &a.ids {
        let r = c
            .call(
                c.timeout,
                rt.container_status(c.req(
                    cri::ContainerStatusRequest {
                        container_id: id.clone(),
                        verbose: !a.quiet,
                    },
                    Some(c.timeout),
                )),
            )
            .await
            .map_err(|e| format!("get the status of containers: get container status: {e}"))?;
        let status = r.status.unwrap_or_default();
        docs.push(output::status_info(
            output::container_status_json(&status),
            None,
            &r.info,
        ));
    }
    print(&a, docs)
}

pub async fn pods(c: &mut Ctx, a: Inspect) -> Outcome {
    if a.ids.is_empty() {
        crate::logrus::error("No IDs provided or nothing found per filter");
        return help("inspectp");
    }
    let mut rt = c.rt().await?;
    let mut docs = Vec::new();
    for id in &a.ids {
        let r = c
            .call(
                c.timeout,
                rt.pod_sandbox_status(c.req(
                    cri::PodSandboxStatusRequest {
                        pod_sandbox_id: id.clone(),
                        verbose: !a.quiet,
                    },
                    Some(c.timeout),
                )),
            )
            .await
            .map_err(|e| format!("get the status of pod sandboxes: get pod sandbox status: {e}"))?;
        let status = r.status.unwrap_or_default();
        docs.push(output::status_info(
            output::pod_status_json(&status),
            None,
            &r.info,
        ));
    }
    print(&a, docs)
}

fn print(a: &Inspect, docs: Vec<serde_json::Value>) -> Outcome {
    let format = a
        .output
        .as_deref()
        .filter(|o| !o.is_empty())
        .unwrap_or("json");
    let out = output::render(&output::one_or_many(docs), format, a.template.as_deref())?;
    println!("{out}");
    Ok(0)
}
