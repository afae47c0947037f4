//! `crictl ps`: containers, as a table, IDs (-q), JSON or YAML.

use serde_json::json;

use super::{list, Fail, Outcome};
use crate::cli::Ps;
use crate::ctx::Ctx;
use crate::output::{self, Kind};

pub async fn run(c: &mut Ctx, a: Ps) -> Outcome {
    let found = list::containers(c, &a.filter, a.state.as_deref(), a.all, a.id.as_deref())
        .await
        .map_err(|e| format!("list containers: {e}"))?;
    if a.quiet {
        for ct in &found {
            println!("{}", ct.id);
        }
        return Ok(0);
    }
    match a.output.as_str() {
        o @ ("json" | "yaml") => {
            let v = json!({"containers": found.iter().map(|x| output::to_pb(x, Kind::Container)).collect::<Vec<_>>()});
            println!("{}", output::render(&v, o, None)?);
        }
        "table" => {
            let nt = a.no_trunc;
            let mut rows = vec![[
                "CONTAINER",
                "IMAGE",
                "CREATED",
                "STATE",
                "NAME",
                "ATTEMPT",
                "POD ID",
                "POD",
                "NAMESPACE",
            ]
            .map(String::from)
            .to_vec()];
            for ct in &found {
                let md = ct.metadata.clone().unwrap_or_default();
                let img = ct
                    .image
                    .as_ref()
                    .map(|i| i.image.clone())
                    .unwrap_or_default();
                let img = if img.starts_with("sha256:") {
                    output::trunc_id(&img, nt)
                } else {
                    img
                };
                let label = |k: &str| {
                    ct.labels
                        .get(k)
                        .cloned()
                        .unwrap_or_else(|| "unknown".into())
                };
                rows.push(vec![
                    output::trunc_id(&ct.id, nt),
                    img,
                    output::ago(ct.created_at),
                    list::container_state_name(ct.state).into(),
                    md.name,
                    md.attempt.to_string(),
                    output::trunc_id(&ct.pod_sandbox_id, nt),
                    label("io.kubernetes.pod.name"),
                    label("io.kubernetes.pod.namespace"),
                ]);
            }
            print!("{}", output::table(&rows));
        }
        o => return Err(Fail::Fatal(format!("unsupported output format {o:?}"))),
    }
    Ok(0)
}
