//! `crictl pods`: pods, as a table, IDs (-q), JSON or YAML; newest first.

use k8s_cri::v1 as cri;
use serde_json::json;

use super::{Fail, Outcome};
use crate::cli::Pods;
use crate::ctx::Ctx;
use crate::output::{self, Kind};

pub async fn run(c: &mut Ctx, a: Pods) -> Outcome {
    let found = list(c, &a)
        .await
        .map_err(|e| format!("list pod sandboxes: {e}"))?;
    if a.quiet {
        for x in &found {
            println!("{}", x.id);
        }
        return Ok(0);
    }
    match a.output.as_str() {
        o @ ("json" | "yaml") => {
            let v = json!({"items": found.iter().map(|x| output::to_pb(x, Kind::Pod)).collect::<Vec<_>>()});
            println!("{}", output::render(&v, o, None)?);
        }
        "table" => {
            let nt = a.no_trunc;
            let mut rows = vec![[
                "POD ID",
                "CREATED",
                "STATE",
                "NAME",
                "NAMESPACE",
                "ATTEMPT",
                "RUNTIME",
            ]
            .map(String::from)
            .to_vec()];
            for x in &found {
                let md = x.metadata.clone().unwrap_or_default();
                let state = if x.state == cri::PodSandboxState::SandboxReady as i32 {
                    "Ready"
                } else {
                    "NotReady"
                };
                rows.push(vec![
                    output::trunc_id(&x.id, nt),
                    output::ago(x.created_at),
                    state.into(),
                    md.name,
                    md.namespace,
                    md.attempt.to_string(),
                    if x.runtime_handler.is_empty() {
                        "(default)".into()
                    } else {
                        x.runtime_handler.clone()
                    },
                ]);
            }
            print!("{}", output::table(&rows));
        }
        o => return Err(Fail::Fatal(format!("unsupported output format {o:?}"))),
    }
    Ok(0)
}

async fn list(c: &mut Ctx, a: &Pods) -> Result<Vec<cri::PodSandbox>, String> {
    let state = match a.state.as_deref().map(|s| s.to_ascii_lowercase()) {
        None => None,
        Some(s) => Some(match s.trim_start_matches("sandbox_") {
            "ready" => cri::PodSandboxState::SandboxReady,
            "notready" => cri::PodSandboxState::SandboxNotready,
            _ => return Err(format!("--state should be ready or notready, not {s:?}")),
        }),
    };
    let filter = cri::PodSandboxFilter {
        id: a.id.clone().unwrap_or_default(),
        state: state.map(|s| cri::PodSandboxStateValue { state: s as i32 }),
        label_selector: super::labels(&a.label)?,
    };
    let mut rt = c.rt().await?;
    let listed = c
        .call(
            c.timeout,
            rt.list_pod_sandbox(c.req(
                cri::ListPodSandboxRequest {
                    filter: Some(filter),
                },
                Some(c.timeout),
            )),
        )
        .await
        .map_err(|e| format!("call list sandboxes RPC: {e}"))?
        .items;
    let name = super::regex("name", a.name.as_deref())?;
    let ns = super::regex("namespace", a.namespace.as_deref())?;
    let mut found: Vec<_> = listed
        .into_iter()
        .filter(|x| {
            let md = x.metadata.clone().unwrap_or_default();
            name.as_ref().is_none_or(|re| re.is_match(&md.name))
                && ns.as_ref().is_none_or(|re| re.is_match(&md.namespace))
        })
        .collect();
    found.sort_by_key(|x| std::cmp::Reverse(x.created_at));
    let mut n = found.len();
    if a.latest {
        n = 1;
    }
    if let Some(last) = a.last.filter(|n| *n > 0) {
        n = last;
    }
    found.truncate(n);
    Ok(found)
}
