//! `crictl checkpoint --export=FILE ID...`: prints each id once checkpointed. The
//! path goes to the runtime as written (containerd writes it in its own working
//! directory when relative), and the call gets crictl's deadline: the time limit,
//! which is also the request's timeout (crictl's client raises a smaller one to it).

use k8s_cri::v1 as cri;

use super::{Fail, Outcome};
use crate::cli::Checkpoint;
use crate::ctx::Ctx;

pub async fn run(c: &mut Ctx, a: Checkpoint) -> Outcome {
    if a.ids.is_empty() {
        return Err(Fail::Fatal("ID cannot be empty".into()));
    }
    let Some(export) = a.export.filter(|e| !e.is_empty()) else {
        return Err(Fail::Fatal(
            "cannot checkpoint a container without specifying the checkpoint destination. Use --export=/path/to/checkpoint.tar".into(),
        ));
    };
    let mut rt = c.rt().await?;
    for id in a.ids {
        c.call(
            c.timeout,
            rt.checkpoint_container(c.req(
                cri::CheckpointContainerRequest {
                    container_id: id.clone(),
                    location: export.clone(),
                    timeout: c.timeout.as_secs() as i64,
                },
                Some(c.timeout),
            )),
        )
        .await
        .map_err(|e| format!("checkpointing the container {id:?} failed: {e}"))?;
        println!("{id}");
    }
    Ok(0)
}
