//! `crictl info`: the runtime's status and verbose info (JSON by default).

use k8s_cri::v1 as cri;
use serde_json::Value;

use super::Outcome;
use crate::cli::Info;
use crate::ctx::Ctx;
use crate::output::{self, Kind};

pub async fn run(c: &mut Ctx, a: Info) -> Outcome {
    let mut rt = c.rt().await?;
    let r = c
        .call(
            c.timeout,
            rt.status(c.req(cri::StatusRequest { verbose: !a.quiet }, Some(c.timeout))),
        )
        .await
        .map_err(|e| format!("getting status of runtime: {e}"))?;
    let status = output::to_pb(&r.status.unwrap_or_default(), Kind::Other);
    let handlers = (!r.runtime_handlers.is_empty()).then(|| {
        (
            "runtimeHandlers",
            Value::Array(
                r.runtime_handlers
                    .iter()
                    .map(|h| output::to_pb(h, Kind::Other))
                    .collect(),
            ),
        )
    });
    let doc = output::status_info(status, handlers, &r.info);
    let format = a
        .output
        .as_deref()
        .filter(|o| !o.is_empty())
        .unwrap_or("json");
    println!("{}", output::render(&doc, format, a.template.as_deref())?);
    Ok(0)
}
