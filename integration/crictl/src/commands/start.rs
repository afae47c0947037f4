//! `crictl start ID...`: prints each id once started.

use k8s_cri::v1 as cri;

use super::{Fail, Outcome};
use crate::cli::Ids;
use crate::ctx::Ctx;

pub async fn run(c: &mut Ctx, a: Ids) -> Outcome {
    if a.ids.is_empty() {
        return Err(Fail::Fatal("ID cannot be empty".into()));
    }
    let mut rt = c.rt().await?;
    for id in a.ids {
        c.call(
            c.timeout,
            rt.start_container(c.req(
                cri::StartContainerRequest {
                    container_id: id.clone(),
                },
                Some(c.timeout),
            )),
        )
        .await
        .map_err(|e| format!("starting the container {id:?}: {e}"))?;
        println!("{id}");
    }
    Ok(0)
}
