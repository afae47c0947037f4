//! `kata-cr-bench latency`: the proxy's cost per Task RPC next to its floor.
//! In each batch, `State` on the inner shim directly, `State` through the
//! proxy and one bare socket round trip across cores and on the same core
//! (the floor, see `floor`) take turns, in a rotating order, so that all of
//! them see the same machine. Each batch gives p50 and p99 of each path; the
//! report takes the median over batches. The process pins itself to CPU 0
//! (the floor's partners need a known place; the RPC paths are the same for
//! both).
//!
//! Usage: kata-cr-bench latency --direct ADDR --direct-version N --proxied ADDR
//!            --id ID [-n CALLS] [--batches B] [--record RAW_TSV] [--samples FILE]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use containerd_shim_protos::api::StateRequest;
use protobuf::Message;
use ttrpc::r#async::Client;

use crate::floor::Floor;
use crate::record::{self, Record};
use crate::stats;

struct Opts {
    direct: String,
    direct_version: i32,
    proxied: String,
    id: String,
    n: usize,
    batches: u32,
    record: Option<PathBuf>,
    samples: Option<PathBuf>,
}

const USAGE: &str = "usage: kata-cr-bench latency --direct ADDR --direct-version N --proxied ADDR --id ID [-n CALLS] [--batches B] [--record RAW_TSV] [--samples FILE]";

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        direct: String::new(),
        direct_version: 3,
        proxied: String::new(),
        id: String::new(),
        n: 1000,
        batches: 3,
        record: None,
        samples: None,
    };
    let mut a = args.iter();
    while let Some(flag) = a.next() {
        let v = a.next().ok_or(format!("{flag} needs a value\n{USAGE}"))?;
        let num = |what: &str| format!("{flag}: {v:?} is not {what}");
        match flag.as_str() {
            "--direct" => o.direct = v.clone(),
            "--direct-version" => o.direct_version = v.parse().map_err(|_| num("a version"))?,
            "--proxied" => o.proxied = v.clone(),
            "--id" => o.id = v.clone(),
            "-n" => o.n = v.parse().map_err(|_| num("a count"))?,
            "--batches" => o.batches = v.parse().map_err(|_| num("a count"))?,
            "--record" => o.record = Some(v.into()),
            "--samples" => o.samples = Some(v.into()),
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
    }
    if o.direct.is_empty() || o.proxied.is_empty() || o.id.is_empty() {
        return Err(format!(
            "--direct, --proxied and --id are required\n{USAGE}"
        ));
    }
    if o.n == 0 || o.batches == 0 {
        return Err("-n and --batches must be at least 1".into());
    }
    Ok(o)
}

/// One `State` call; its latency, or what went wrong.
async fn state(c: &Client, service: &str, payload: &[u8]) -> Result<Duration, String> {
    let mut req = ttrpc::Request::new();
    req.service = service.to_string();
    req.method = "State".into();
    req.payload = payload.to_vec();
    req.timeout_nano = 5_000_000_000;
    let t = Instant::now();
    c.request(req)
        .await
        .map_err(|e| format!("{service}/State: {e}"))?;
    Ok(t.elapsed())
}

/// The paths: State directly and through the proxy, the socket round trip
/// across cores (the floor) and on one core.
const N: usize = 4;
const PATHS: [&str; N] = ["direct", "proxied", "floor", "floor-same-core"];

pub fn main(args: &[String]) -> Result<(), String> {
    let o = parse(args)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    rt.block_on(run(o))
}

async fn run(o: Opts) -> Result<(), String> {
    let direct = Client::connect(&o.direct)
        .await
        .map_err(|e| format!("connect {}: {e}", o.direct))?;
    let proxied = Client::connect(&o.proxied)
        .await
        .map_err(|e| format!("connect {}: {e}", o.proxied))?;
    let cross = std::thread::available_parallelism().map_or(1, |n| n.get()) > 1;
    crate::floor::pin_to(0).map_err(|e| format!("pin to CPU 0: {e}"))?;
    let mut far = Floor::start(if cross { 1 } else { 0 })
        .map_err(|e| format!("start the echo partner: {e}"))?;
    let mut near = Floor::start(0).map_err(|e| format!("start the echo partner: {e}"))?;
    let svc = if o.direct_version >= 3 {
        "containerd.task.v3.Task"
    } else {
        "containerd.task.v2.Task"
    };
    let mut r = StateRequest::new();
    r.id = o.id.clone();
    let payload = r
        .write_to_bytes()
        .map_err(|e| format!("encode StateRequest: {e}"))?;

    let mut one = async |path: usize| -> Result<Duration, String> {
        match path {
            0 => state(&direct, svc, &payload).await,
            1 => state(&proxied, svc, &payload).await,
            2 => far
                .round_trip()
                .map_err(|e| format!("socket round trip: {e}")),
            _ => near
                .round_trip()
                .map_err(|e| format!("socket round trip: {e}")),
        }
    };
    // Warm every path up (connections, caches, the inner shim's goroutines).
    for i in 0..200 {
        one(i % N).await?;
    }
    let mut all: [Vec<f64>; N] = Default::default();
    for batch in 1..=o.batches {
        let mut us: [Vec<f64>; N] = Default::default();
        for i in 0..o.n {
            for k in 0..N {
                let path = (i + k) % N;
                us[path].push(one(path).await?.as_secs_f64() * 1e6);
            }
        }
        let mut line = format!("rpc batch {batch} (x{}):", o.n);
        let mut q = [[0.0; 2]; N];
        for (p, name) in PATHS.iter().enumerate() {
            let s = stats::sorted(&us[p]);
            q[p] = [
                stats::quantile(&s, 0.5).unwrap_or(0.0),
                stats::quantile(&s, 0.99).unwrap_or(0.0),
            ];
            line += &format!(" {name} p50 {:.1} p99 {:.1} us;", q[p][0], q[p][1]);
            if let Some(file) = &o.record {
                for (metric, v) in [("rpc.p50.us", q[p][0]), ("rpc.p99.us", q[p][1])] {
                    record::append(
                        file,
                        &Record {
                            metric: metric.into(),
                            runtime: name.to_string(),
                            param: "State".into(),
                            rep: batch,
                            value: v,
                        },
                    )
                    .map_err(|e| format!("{}: {e}", file.display()))?;
                }
            }
            all[p].extend_from_slice(&us[p]);
        }
        println!(
            "{line} added p50 {:.1} us ({:.2}x the floor), p99 {:.1} us ({:.2}x)",
            q[1][0] - q[0][0],
            (q[1][0] - q[0][0]) / q[2][0],
            q[1][1] - q[0][1],
            (q[1][1] - q[0][1]) / q[2][1]
        );
    }
    if let Some(file) = &o.samples {
        let mut text = String::new();
        for (p, name) in PATHS.iter().enumerate() {
            for v in &all[p] {
                text += &format!("{name}\t{v:.2}\n");
            }
        }
        std::fs::write(file, text).map_err(|e| format!("{}: {e}", file.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn flags_parse_and_required_ones_are_checked() {
        let o = parse(&args(
            "--direct unix:///a --proxied unix:///b --id c -n 10 --batches 2 --record /r",
        ))
        .unwrap();
        assert_eq!((o.n, o.batches, o.direct_version), (10, 2, 3));
        assert_eq!(o.record.as_deref(), Some(std::path::Path::new("/r")));
        assert!(parse(&args("--direct unix:///a --id c")).is_err());
        assert!(parse(&args("--direct unix:///a --proxied unix:///b --id c -n 0")).is_err());
        assert!(parse(&args(
            "--direct unix:///a --proxied unix:///b --id c --bogus 1"
        ))
        .is_err());
        assert!(parse(&args("--direct")).is_err());
    }
}
