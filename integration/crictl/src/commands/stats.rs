//! `crictl stats [ID]`: one table of resource usage (CPU % over a --seconds
//! sample), or JSON/YAML of one sample. (No --watch.)

use std::collections::HashMap;
use std::time::Duration;

use k8s_cri::v1 as cri;
use serde_json::json;

use super::Outcome;
use crate::cli::Stats;
use crate::ctx::Ctx;
use crate::output::{self, Kind};

async fn sample(
    c: &mut Ctx,
    filter: &cri::ContainerStatsFilter,
) -> Result<Vec<cri::ContainerStats>, String> {
    let mut rt = c.rt().await?;
    let r = c
        .call(
            c.timeout,
            rt.list_container_stats(c.req(
                cri::ListContainerStatsRequest {
                    filter: Some(filter.clone()),
                },
                Some(c.timeout),
            )),
        )
        .await
        .map_err(|e| format!("get container stats: {e}"))?;
    Ok(r.stats)
}

pub async fn run(c: &mut Ctx, a: Stats) -> Outcome {
    let filter = cri::ContainerStatsFilter {
        id: a
            .id
            .clone()
            .or_else(|| a.ids.first().cloned())
            .unwrap_or_default(),
        pod_sandbox_id: a.pod.clone().unwrap_or_default(),
        label_selector: super::labels(&a.label)?,
    };
    let first = sample(c, &filter).await?;
    if let Some(o @ ("json" | "yaml")) = a.output.as_deref() {
        let v = json!({"stats": first.iter().map(|x| output::to_pb(x, Kind::Other)).collect::<Vec<_>>()});
        println!("{}", output::render(&v, o, None)?);
        return Ok(0);
    }
    tokio::time::sleep(Duration::from_secs(a.seconds)).await;
    let second = sample(c, &filter).await?;
    let key = |s: &cri::ContainerStats| {
        s.attributes
            .as_ref()
            .map(|a| a.id.clone())
            .unwrap_or_default()
    };
    let old: HashMap<String, &cri::ContainerStats> = first.iter().map(|s| (key(s), s)).collect();
    let mut rows = vec![[
        "CONTAINER",
        "NAME",
        "CPU %",
        "MEM",
        "DISK",
        "INODES",
        "SWAP",
    ]
    .map(String::from)
    .to_vec()];
    let cpu_of = |s: &cri::ContainerStats| {
        let c = s.cpu.unwrap_or_default();
        (
            c.usage_core_nano_seconds.map(|v| v.value).unwrap_or(0),
            c.timestamp,
        )
    };
    for s in &second {
        let (cpu, ts) = cpu_of(s);
        let mem = s
            .memory
            .as_ref()
            .and_then(|m| m.working_set_bytes.as_ref())
            .map(|v| v.value)
            .unwrap_or(0);
        let fs = s.writable_layer.clone().unwrap_or_default();
        let disk = fs.used_bytes.map(|v| v.value).unwrap_or(0);
        let inodes = fs.inodes_used.map(|v| v.value).unwrap_or(0);
        let swap = s
            .swap
            .as_ref()
            .and_then(|w| w.swap_usage_bytes.as_ref())
            .map(|v| v.value)
            .unwrap_or(0);
        if !a.all && cpu == 0 && mem == 0 {
            continue;
        }
        let Some(prev) = old.get(&key(s)) else {
            continue;
        };
        let (pcpu, pts) = cpu_of(prev);
        let perc = if cpu != 0 && ts != pts {
            cpu.saturating_sub(pcpu) as f64 / (ts - pts) as f64 * 100.0
        } else {
            0.0
        };
        let attrs = s.attributes.clone().unwrap_or_default();
        rows.push(vec![
            output::trunc_id(&attrs.id, false),
            attrs.metadata.map(|m| m.name).unwrap_or_default(),
            format!("{perc:.2}"),
            output::human_size(mem, 4),
            output::human_size(disk, 4),
            inodes.to_string(),
            output::human_size(swap, 4),
        ]);
    }
    print!("{}", output::table(&rows));
    Ok(0)
}
