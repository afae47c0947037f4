//! kata-cr-bench: measures what the proxy adds to one Task RPC. It calls
//! `State` on the inner shim directly and through the proxy, interleaved so
//! both see the same machine, and prints p50/p99 of each and the difference.
//! Its `hog` subcommand is a workload for the checkpoint benchmarks; the
//! benchmark report's own subcommands (`latency`, `echo`, `report`) are
//! dispatched first (see `commands`).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use containerd_shim_protos::api::StateRequest;
use protobuf::Message;
use ttrpc::r#async::Client;

mod commands;
mod floor;
mod latency;
mod record;
mod report;
mod stats;

#[derive(Parser)]
#[command(
    name = "kata-cr-bench",
    about = "kata-cr's proxy benchmark and its workloads"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Latency of `State` on the inner shim directly and through the proxy.
    Rpc(RpcOpts),
    /// A workload: holds MIB MiB of touched, incompressible memory, then sleeps.
    Hog {
        /// MiB to hold.
        mib: usize,
    },
}

#[derive(clap::Args)]
struct RpcOpts {
    /// The inner shim's ttrpc address (unix://...).
    #[arg(long)]
    direct: String,
    /// The inner shim's task API version (2 or 3).
    #[arg(long, default_value_t = 3)]
    direct_version: i32,
    /// The proxy's ttrpc address.
    #[arg(long)]
    proxied: String,
    /// The container (task) id to ask the state of.
    #[arg(long)]
    id: String,
    /// Calls per path.
    #[arg(short = 'n', default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    n: u64,
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

fn main() -> ExitCode {
    if let Some(code) = commands::dispatch() {
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    match Cli::parse().command {
        Command::Hog { mib } => hog(mib),
        Command::Rpc(o) => {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("kata-cr-bench: tokio runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(rpc(o)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("kata-cr-bench: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

async fn rpc(o: RpcOpts) -> Result<(), String> {
    let direct = Client::connect(&o.direct)
        .await
        .map_err(|e| format!("connect {}: {e}", o.direct))?;
    let proxied = Client::connect(&o.proxied)
        .await
        .map_err(|e| format!("connect {}: {e}", o.proxied))?;
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
    // Warm both paths up.
    for _ in 0..50 {
        state(&direct, svc, &payload).await?;
        state(&proxied, svc, &payload).await?;
    }
    let (mut d, mut p) = (Vec::new(), Vec::new());
    for _ in 0..o.n {
        d.push(state(&direct, svc, &payload).await?);
        p.push(state(&proxied, svc, &payload).await?);
    }
    d.sort();
    p.sort();
    let (d50, d99, p50, p99) = (pct(&d, 0.5), pct(&d, 0.99), pct(&p, 0.5), pct(&p, 0.99));
    println!(
        "rpc State x{}: direct p50 {d50:.1} us p99 {d99:.1} us; proxied p50 {p50:.1} us p99 {p99:.1} us",
        o.n
    );
    println!(
        "rpc added latency: p50 {:.1} us (target < 100 us), p99 {:.1} us",
        p50 - d50,
        p99 - d99
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments() {
        let cli = Cli::try_parse_from([
            "kata-cr-bench",
            "rpc",
            "--direct",
            "unix:///a",
            "--direct-version",
            "2",
            "--proxied",
            "unix:///b",
            "--id",
            "c1",
            "-n",
            "5",
        ])
        .unwrap();
        let Command::Rpc(o) = cli.command else {
            panic!("not rpc")
        };
        assert_eq!((o.direct_version, o.n, o.id.as_str()), (2, 5, "c1"));
        assert!(Cli::try_parse_from([
            "kata-cr-bench",
            "rpc",
            "--direct",
            "a",
            "--proxied",
            "b",
            "--id",
            "c",
            "-n",
            "0"
        ])
        .is_err());
        assert!(Cli::try_parse_from(["kata-cr-bench", "rpc", "--direct", "a"]).is_err());
        assert!(matches!(
            Cli::try_parse_from(["kata-cr-bench", "hog", "256"])
                .unwrap()
                .command,
            Command::Hog { mib: 256 }
        ));
    }
}
