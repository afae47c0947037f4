//! `crictl stop [-t SECS] [-a] ID...`: prints each id once stopped.

use k8s_cri::v1 as cri;

use super::{list, Fail, Outcome};
use crate::cli::Stop;
use crate::ctx::Ctx;

pub async fn run(c: &mut Ctx, a: Stop) -> Outcome {
    let mut rt = c.rt().await?;
    if a.all && !a.ids.is_empty() {
        return Err(Fail::Exit(
            "cannot specify CONTAINER-ID(s) when using --all".into(),
            1,
        ));
    }
    let ids = if a.all {
        let filter = crate::cli::ContainerFilter::default();
        let running = list::containers(c, &filter, Some("running"), false, None)
            .await
            .map_err(|e| format!("listing containers: {e}"))?;
        if running.is_empty() {
            println!("No running containers found.");
            return Ok(0);
        }
        running.into_iter().map(|x| x.id).collect()
    } else if a.ids.is_empty() {
        return Err(Fail::Exit(
            "you must specify at least one CONTAINER-ID or use --all".into(),
            1,
        ));
    } else {
        a.ids
    };
    for id in ids {
        stop_one(c, &mut rt, &id, a.timeout)
            .await
            .map_err(|e| format!("stopping the container {id:?}: {e}"))?;
        println!("{id}");
    }
    Ok(0)
}

/// StopContainer with crictl's deadline: the time limit plus the grace period.
pub async fn stop_one(
    c: &Ctx,
    rt: &mut crate::client::Runtime,
    id: &str,
    timeout: i64,
) -> Result<(), String> {
    let deadline = c.timeout + std::time::Duration::from_secs(timeout.max(0) as u64);
    c.call(
        deadline,
        rt.stop_container(c.req(
            cri::StopContainerRequest {
                container_id: id.to_string(),
                timeout,
            },
            Some(deadline),
        )),
    )
    .await
    .map(|_| ())
}
