//! `crictl version`: the runtime's version, as crictl prints it.

use k8s_cri::v1 as cri;

use super::Outcome;
use crate::ctx::Ctx;

pub async fn run(c: &mut Ctx) -> Outcome {
    let mut rt = c.rt().await?;
    let r = c
        .call(
            c.timeout,
            rt.version(c.req(
                cri::VersionRequest {
                    version: "v1".into(),
                },
                Some(c.timeout),
            )),
        )
        .await
        .map_err(|e| format!("getting the runtime version: {e}"))?;
    // Go's Println("Version: ", v): two spaces
    println!("Version:  {}", r.version);
    println!("RuntimeName:  {}", r.runtime_name);
    println!("RuntimeVersion:  {}", r.runtime_version);
    println!("RuntimeApiVersion:  {}", r.runtime_api_version);
    Ok(0)
}
