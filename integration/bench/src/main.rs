//! kata-cr-bench: measures what the proxy adds to one Task RPC. It calls
//! `State` on the inner shim directly and through the proxy, interleaved so
//! both see the same machine, and prints p50/p99 of each and the difference.
//!
//! Usage: kata-cr-bench rpc --direct ADDR --direct-version N --proxied ADDR --id ID [-n COUNT]
//!        kata-cr-bench hog MIB   (a workload: holds MIB MiB of touched,
//!                                 incompressible memory, then sleeps)
//!        kata-cr-bench latency|report ...   (see `commands`)

use std::time::{Duration, Instant};

use containerd_shim_protos::api::StateRequest;
use protobuf::Message;
use ttrpc::r#async::Client;

mod commands;
mod floor;
mod latency;
mod record;
mod report;
mod stats;

struct Opts {
    direct: String,
    direct_version: i32,
    proxied: String,
    id: String,
    n: usize,
}

fn parse() -> Result<Opts, String> {
    let mut a = std::env::args().skip(1);
    if a.next().as_deref() != Some("rpc") {
        return Err("usage: kata-cr-bench rpc --direct ADDR --direct-version N --proxied ADDR --id ID [-n COUNT]".into());
    }
    let mut o = Opts {
        direct: String::new(),
        direct_version: 3,
        proxied: String::new(),
        id: String::new(),
        n: 2000,
    };
    while let Some(flag) = a.next() {
        let v = a.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--direct" => o.direct = v,
            "--direct-version" => {
                o.direct_version = v.parse().map_err(|e| format!("{flag}: {e}"))?
            }
            "--proxied" => o.proxied = v,
            "--id" => o.id = v,
            "-n" => o.n = v.parse().map_err(|e| format!("{flag}: {e}"))?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if o.direct.is_empty() || o.proxied.is_empty() || o.id.is_empty() {
        return Err("--direct, --proxied and --id are required".into());
    }
    Ok(o)
}

async fn state(c: &Client, service: &str, payload: &[u8]) -> Duration {
    let mut req = ttrpc::Request::new();
    req.service = service.to_string();
    req.method = "State".into();
    req.payload = payload.to_vec();
    req.timeout_nano = 5_000_000_000;
    let t = Instant::now();
    c.request(req).await.expect("State answered");
    t.elapsed()
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

/// Holds `mib` MiB of memory that criu must copy page by page (no zero pages,
/// no repeats), then sleeps until killed.
fn hog(mib: usize) -> ! {
    let mut buf = vec![0u8; mib << 20];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for chunk in buf.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
    println!("hog: holding {mib} MiB");
    // The benchmark waits for this file before it measures.
    let _ = std::fs::write("/tmp/hog-ready", format!("{mib}\n"));
    loop {
        std::thread::sleep(Duration::from_secs(3600));
        std::hint::black_box(&buf);
    }
}

fn main() {
    if let Some(code) = commands::dispatch() {
        std::process::exit(code);
    }
    let mut a = std::env::args().skip(1);
    if a.next().as_deref() == Some("hog") {
        match a.next().and_then(|v| v.parse().ok()) {
            Some(mib) => hog(mib),
            None => {
                eprintln!("usage: kata-cr-bench hog MIB");
                std::process::exit(2);
            }
        }
    }
    rpc_main();
}

#[tokio::main(flavor = "current_thread")]
async fn rpc_main() {
    let o = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("kata-cr-bench: {e}");
            std::process::exit(2);
        }
    };
    let direct = Client::connect(&o.direct).await.expect("connect direct");
    let proxied = Client::connect(&o.proxied).await.expect("connect proxied");
    let svc = if o.direct_version >= 3 {
        "containerd.task.v3.Task"
    } else {
        "containerd.task.v2.Task"
    };
    let mut r = StateRequest::new();
    r.id = o.id.clone();
    let payload = r.write_to_bytes().expect("encode");
    // Warm both paths up.
    for _ in 0..50 {
        state(&direct, svc, &payload).await;
        state(&proxied, svc, &payload).await;
    }
    let (mut d, mut p) = (Vec::with_capacity(o.n), Vec::with_capacity(o.n));
    for _ in 0..o.n {
        d.push(state(&direct, svc, &payload).await);
        p.push(state(&proxied, svc, &payload).await);
    }
    d.sort();
    p.sort();
    let (d50, d99, p50, p99) = (pct(&d, 0.5), pct(&d, 0.99), pct(&p, 0.5), pct(&p, 0.99));
    println!("rpc State x{}: direct p50 {d50:.1} us p99 {d99:.1} us; proxied p50 {p50:.1} us p99 {p99:.1} us", o.n);
    println!(
        "rpc added latency: p50 {:.1} us (target < 100 us), p99 {:.1} us",
        p50 - d50,
        p99 - d99
    );
}
