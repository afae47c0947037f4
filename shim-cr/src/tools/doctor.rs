//! `containerd-shim-kata-cr-v2 doctor [--config PATH]`: what a host lacks to
//! run kata-cr, one line per check (`OK`, `MISSING` with the fix, `SKIP`
//! when there is nothing to check yet). Exit status 1 when anything is
//! missing.

use std::time::Duration;

use kata_cr_api::{self as api, AgentClient, CapabilitiesResponse};

use crate::config::{self, AgentMode};
use crate::cr::kata;

const CMD_TIMEOUT: Duration = Duration::from_secs(10);

/// containerd's CRI refuses to checkpoint unless the host has criu >= 3.16
/// (it checks before asking the runtime).
pub const HOST_CRIU_MIN: (u32, u32, u32) = (3, 16, 0);
/// kata-cr-agent's dumps need criu 4.1 or later.
pub const AGENT_CRIU_MIN: (u32, u32, u32) = (4, 1, 0);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    Missing,
    Skip,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub verdict: Verdict,
    pub what: String,
    pub detail: String,
    pub fix: String,
}

impl Check {
    fn ok(what: &str, detail: impl Into<String>) -> Self {
        Check {
            verdict: Verdict::Ok,
            what: what.into(),
            detail: detail.into(),
            fix: String::new(),
        }
    }
    fn missing(what: &str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Check {
            verdict: Verdict::Missing,
            what: what.into(),
            detail: detail.into(),
            fix: fix.into(),
        }
    }
    fn skip(what: &str, detail: impl Into<String>) -> Self {
        Check {
            verdict: Verdict::Skip,
            what: what.into(),
            detail: detail.into(),
            fix: String::new(),
        }
    }

    pub fn render(&self) -> String {
        let tag = match self.verdict {
            Verdict::Ok => "OK",
            Verdict::Missing => "MISSING",
            Verdict::Skip => "SKIP",
        };
        let mut s = format!("{tag:<8}{}: {}", self.what, self.detail);
        if !self.fix.is_empty() {
            s.push_str(&format!("\n        fix: {}", self.fix));
        }
        s
    }
}

/// Entry point; returns the process exit status.
pub fn run(args: &[String]) -> i32 {
    let mut config_path: Option<String> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--config" => config_path = it.next().cloned(),
            "-h" | "--help" => {
                println!("usage: containerd-shim-kata-cr-v2 doctor [--config PATH]\n\nChecks what this host needs for kata-cr and prints the fix for anything missing.");
                return 0;
            }
            other => {
                eprintln!(
                    "kata-cr doctor: unknown argument {other:?} (usage: doctor [--config PATH])"
                );
                return 2;
            }
        }
    }
    let rt = match super::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kata-cr doctor: {e}");
            return 1;
        }
    };
    let checks = rt.block_on(all(config_path.as_deref()));
    for c in &checks {
        println!("{}", c.render());
    }
    i32::from(checks.iter().any(|c| c.verdict == Verdict::Missing))
}

async fn all(config_path: Option<&str>) -> Vec<Check> {
    let cfg = match super::load_config(config_path) {
        Ok(c) => c,
        Err(e) => {
            return vec![Check::missing(
                "kata-cr config",
                e.to_string(),
                "fix the file (every key is documented in configs/kata-cr.toml)",
            )]
        }
    };
    let mut out = vec![Check::ok(
        "kata-cr config",
        if cfg.source.is_empty() {
            format!(
                "built-in defaults ({} does not exist)",
                config::DEFAULT_PATH
            )
        } else {
            cfg.source.clone()
        },
    )];
    out.push(match cfg.inner_binary_path() {
        Ok(p) => Check::ok("inner shim", p.display().to_string()),
        Err(e) => Check::missing(
            "inner shim",
            e.to_string(),
            "install Kata Containers (containerd-shim-kata-v2 on PATH) or set inner.binary",
        ),
    });
    out.push(match cfg.init_binary_path() {
        Ok(p) => Check::ok("kata-cr-init", p.display().to_string()),
        Err(e) => Check::missing(
            "kata-cr-init",
            e.to_string(),
            "make install (places it beside containerd-shim-kata-cr-v2) or set init.binary",
        ),
    });
    out.push(host_criu(command_output("criu", &["--version"]).await));
    out.push(containerd(
        command_output("containerd", &["--version"]).await,
    ));
    match cfg.agent.mode {
        AgentMode::Host => {
            let addr = format!("unix://{}", cfg.agent.socket.trim_start_matches("unix://"));
            let what = "kata-cr-agent (host mode)";
            out.extend(match api::connect(&addr).await {
                Ok(client) => agent(what, &addr, &client).await,
                Err(e) => vec![Check::missing(
                    what,
                    e.to_string(),
                    format!("start it: kata-cr-agent --listen {addr}"),
                )],
            });
        }
        AgentMode::Kata => out.extend(
            kata_sandboxes(
                &kata::Roots::default(),
                &kata::RemoteHybridVsock(cfg.agent.remote_hybrid_vsock.clone()),
            )
            .await,
        ),
    }
    out
}

/// The output of `cmd args`, or why there is none.
async fn command_output(cmd: &str, args: &[&str]) -> Result<String, String> {
    let run = tokio::process::Command::new(cmd)
        .args(args)
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(CMD_TIMEOUT, run).await {
        Err(_) => Err(format!("`{cmd}` did not answer within {CMD_TIMEOUT:?}")),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(format!("{cmd} not found on PATH"))
        }
        Ok(Err(e)) => Err(format!("running {cmd}: {e}")),
        Ok(Ok(o)) => {
            let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
            s.push_str(&String::from_utf8_lossy(&o.stderr));
            if o.status.success() {
                Ok(s)
            } else {
                Err(format!(
                    "{cmd} {}: {} {}",
                    args.join(" "),
                    o.status,
                    s.trim()
                ))
            }
        }
    }
}

/// The first `x.y[.z]` in `text` (a leading `v` allowed; distro suffixes
/// such as `~ds1` ignored).
pub fn find_version(text: &str) -> Option<(u32, u32, u32)> {
    text.split(|c: char| c.is_whitespace() || c == ',')
        .map(|w| w.trim_start_matches('v'))
        .find_map(|w| {
            let digits = w.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 || w.as_bytes().get(digits) != Some(&b'.') {
                return None;
            }
            let mut nums = w.split(|c: char| !c.is_ascii_digit());
            let major: u32 = nums.next()?.parse().ok()?;
            let minor: u32 = nums.next()?.parse().ok()?;
            let patch: u32 = nums.next().and_then(|p| p.parse().ok()).unwrap_or(0);
            Some((major, minor, patch))
        })
}

fn fmt_version(v: (u32, u32, u32)) -> String {
    format!("{}.{}.{}", v.0, v.1, v.2)
}

pub fn host_criu(out: Result<String, String>) -> Check {
    let what = "host criu (containerd's CRI checkpoint gate)";
    let fix = "install criu >= 3.16 on the host (Debian trixie/sid: apt-get install criu); containerd's CRI refuses to checkpoint without it, even though kata-cr runs criu in the guest";
    match out {
        Err(e) => Check::missing(what, e, fix),
        Ok(text) => match find_version(&text) {
            Some(v) if v >= HOST_CRIU_MIN => Check::ok(what, format!("criu {}", fmt_version(v))),
            Some(v) => Check::missing(
                what,
                format!("criu {} is older than 3.16", fmt_version(v)),
                fix,
            ),
            None => Check::missing(
                what,
                format!("cannot read a version in {:?}", text.trim()),
                fix,
            ),
        },
    }
}

pub fn containerd(out: Result<String, String>) -> Check {
    let what = "containerd (CRI checkpoint/restore)";
    let fix = "use containerd 2.1.9+, 2.2.5+ or 2.3.2+ (not 2.4+) for CRI restore; ctr checkpoint/restore works with any version";
    let text = match out {
        Ok(t) => t,
        Err(e) => return Check::missing(what, e, fix),
    };
    let Some(v) = find_version(&text) else {
        return Check::missing(
            what,
            format!("cannot read a version in {:?}", text.trim()),
            fix,
        );
    };
    let s = format!("containerd {}", fmt_version(v));
    let problem = match v {
        (0..=1, _, _) | (2, 0, _) => Some("has no CRI restore (create from a checkpoint archive)"),
        (2, 1, 0..=8) => Some("predates CRI restore of non-runc checkpoints (2.1.9)"),
        (2, 2, 0..=4) => Some("crashes on CRI restore (nil map; fixed in 2.2.5)"),
        (2, 3, 0..=1) => Some("predates the CRI restore fix (2.3.2)"),
        (2, 1..=3, _) => None,
        _ => Some("removed create-from-checkpoint (2.4+)"),
    };
    match problem {
        None => Check::ok(what, s),
        Some(p) => Check::missing(what, format!("{s} {p}"), fix),
    }
}

/// What an agent says about itself and its criu.
pub fn capabilities(what: &str, at: &str, caps: &CapabilitiesResponse) -> Vec<Check> {
    let mut out = vec![Check::ok(
        what,
        format!(
            "reachable at {at} (kata-cr-agent {}, API {})",
            caps.agent_version, caps.api_version
        ),
    )];
    let criu_what = format!("{what}: criu");
    let fix = "put criu >= 4.1 and its libraries in the guest image (make guest-image)";
    out.push(match find_version(&caps.criu_version) {
        Some(v) if v >= AGENT_CRIU_MIN => Check::ok(&criu_what, format!("criu {}", fmt_version(v))),
        Some(v) => Check::missing(
            &criu_what,
            format!("criu {} is older than 4.1", fmt_version(v)),
            fix,
        ),
        None => Check::missing(&criu_what, "criu cannot be run beside the agent", fix),
    });
    let first_error = caps
        .criu_check_output
        .lines()
        .find(|l| l.contains("rror") || l.contains("fail"))
        .unwrap_or_else(|| caps.criu_check_output.lines().next().unwrap_or_default());
    out.push(if caps.criu_check_ok {
        Check::ok(&format!("{what}: kernel (criu check)"), "passes")
    } else {
        Check::missing(
            &format!("{what}: kernel (criu check)"),
            format!("criu check fails: {}", first_error.trim()),
            "build the guest kernel with guest-overlay/kernel/kata-cr.conf (Kata: tools/packaging/kernel/configs/fragments)",
        )
    });
    out
}

async fn agent(what: &str, at: &str, client: &AgentClient) -> Vec<Check> {
    let req = api::CapabilitiesRequest::new();
    match client
        .capabilities(api::context_with_timeout(Duration::from_secs(30)), &req)
        .await
    {
        Ok(caps) => capabilities(what, at, &caps),
        Err(e) => vec![Check::missing(
            what,
            format!("connected to {at}, but Capabilities failed: {e}"),
            "run the kata-cr-agent of this release",
        )],
    }
}

/// Sandbox ids with a Kata management socket under `roots`.
pub fn running_sandboxes(roots: &kata::Roots) -> Vec<String> {
    let mut ids: Vec<String> = roots
        .0
        .iter()
        .filter_map(|r| std::fs::read_dir(r).ok())
        .flatten()
        .flatten()
        .filter(|e| e.path().join(kata::mgmt::SOCKET_NAME).exists())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

async fn kata_sandboxes(roots: &kata::Roots, remote: &kata::RemoteHybridVsock) -> Vec<Check> {
    let ids = running_sandboxes(roots);
    if ids.is_empty() {
        let looked: Vec<String> = roots.0.iter().map(|r| r.display().to_string()).collect();
        return vec![Check::skip(
            "kata-cr-agent (kata mode)",
            format!(
                "no running Kata sandbox (none under {}); start a pod with the kata-cr runtime and run doctor again",
                looked.join(", ")
            ),
        )];
    }
    let mut out = Vec::new();
    for sid in ids {
        let what = format!("kata-cr-agent in sandbox {sid}");
        let t = Duration::from_secs(5);
        match kata::connect(roots, remote, &sid, api::VSOCK_PORT, t).await {
            Ok(client) => out.extend(
                agent(
                    &what,
                    &format!("guest vsock port {}", api::VSOCK_PORT),
                    &client,
                )
                .await,
            ),
            Err(e) => {
                let fix = if e.to_string().contains("remote_hybrid_vsock") {
                    "Kata's remote hypervisor: set [agent] remote_hybrid_vsock in kata-cr's configuration (configs/kata-cr.toml) to the sandboxes' hybrid vsock"
                } else {
                    "use a guest image built with make guest-image (kata-cr-agent.service, wanted by kata-containers.target, listens on vsock port 1029)"
                };
                out.push(Check::missing(&what, e.to_string(), fix))
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_found_in_tool_output() {
        assert_eq!(find_version("Version: 4.2.1\n"), Some((4, 2, 1)));
        assert_eq!(find_version("Version: 3.16\n"), Some((3, 16, 0)));
        assert_eq!(
            find_version("containerd github.com/containerd/containerd/v2 v2.1.9 3f2a1b\n"),
            Some((2, 1, 9))
        );
        assert_eq!(
            find_version("containerd containerd.io 1.7.24 88bf19b2\n"),
            Some((1, 7, 24))
        );
        assert_eq!(
            find_version("containerd 1.6.20~ds1 1.6.20~ds1-1+b1"),
            Some((1, 6, 20))
        );
        assert_eq!(find_version("no version here"), None);
    }

    #[test]
    fn host_criu_gate() {
        assert_eq!(
            host_criu(Ok("Version: 4.2.1\n".into())).verdict,
            Verdict::Ok
        );
        assert_eq!(
            host_criu(Ok("Version: 3.16.1\n".into())).verdict,
            Verdict::Ok
        );
        let old = host_criu(Ok("Version: 3.15\n".into()));
        assert_eq!(old.verdict, Verdict::Missing);
        assert!(old.detail.contains("3.15.0"), "{old:?}");
        let none = host_criu(Err("criu not found on PATH".into()));
        assert_eq!(none.verdict, Verdict::Missing);
        assert!(none.fix.contains("apt-get install criu"), "{none:?}");
    }

    #[test]
    fn containerd_versions_for_cri_restore() {
        let v = |s: &str| {
            containerd(Ok(format!(
                "containerd github.com/containerd/containerd/v2 v{s} x"
            )))
            .verdict
        };
        for ok in ["2.1.9", "2.1.12", "2.2.5", "2.2.9", "2.3.2", "2.3.10"] {
            assert_eq!(v(ok), Verdict::Ok, "{ok}");
        }
        for bad in [
            "1.6.20", "1.7.24", "2.0.5", "2.1.8", "2.2.0", "2.2.4", "2.3.0", "2.3.1", "2.4.0",
            "3.0.0",
        ] {
            assert_eq!(v(bad), Verdict::Missing, "{bad}");
        }
        let c = containerd(Ok("containerd x v2.2.3 y".into()));
        assert!(c.detail.contains("nil map"), "{c:?}");
        assert_eq!(
            containerd(Err("containerd not found on PATH".into())).verdict,
            Verdict::Missing
        );
    }

    #[test]
    fn agent_capabilities_verdicts() {
        let mut caps = CapabilitiesResponse::new();
        caps.api_version = 1;
        caps.agent_version = "0.1.0".into();
        caps.criu_version = "4.2.1".into();
        caps.criu_check_ok = true;
        let c = capabilities("agent", "here", &caps);
        assert!(c.iter().all(|c| c.verdict == Verdict::Ok), "{c:?}");
        caps.criu_version = "3.17.1".into();
        caps.criu_check_ok = false;
        caps.criu_check_output =
            "Looks good.\nError (criu/cr-check.c:1): UNIX_DIAG is not supported\n".into();
        let c = capabilities("agent", "here", &caps);
        assert_eq!(c[1].verdict, Verdict::Missing);
        assert_eq!(c[2].verdict, Verdict::Missing);
        assert!(c[2].detail.contains("UNIX_DIAG"), "{:?}", c[2]);
        assert!(c[2].fix.contains("kata-cr.conf"), "{:?}", c[2]);
    }

    #[test]
    fn sandboxes_are_found_by_their_management_socket() {
        let d = tempfile::tempdir().unwrap();
        let go = d.path().join("vc/sbs");
        let rs = d.path().join("kata");
        for (root, sid, sock) in [(&go, "a", true), (&rs, "b", true), (&rs, "c", false)] {
            std::fs::create_dir_all(root.join(sid)).unwrap();
            if sock {
                std::fs::write(root.join(sid).join(kata::mgmt::SOCKET_NAME), "").unwrap();
            }
        }
        let roots = kata::Roots(vec![go, rs, d.path().join("missing")]);
        assert_eq!(running_sandboxes(&roots), vec!["a", "b"]);
    }

    #[tokio::test]
    async fn no_sandbox_is_a_skip_not_a_failure() {
        let d = tempfile::tempdir().unwrap();
        let c = kata_sandboxes(
            &kata::Roots(vec![d.path().to_path_buf()]),
            &kata::RemoteHybridVsock::default(),
        )
        .await;
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].verdict, Verdict::Skip);
    }

    #[tokio::test]
    async fn unreachable_guest_agent_is_missing_with_the_fix() {
        let d = tempfile::tempdir().unwrap();
        kata::mgmt::tests::serve(
            d.path(),
            "sb",
            kata::mgmt::tests::ok("hvsock:///nonexistent/clh.sock:1024"),
        );
        let c = kata_sandboxes(
            &kata::Roots(vec![d.path().to_path_buf()]),
            &kata::RemoteHybridVsock::default(),
        )
        .await;
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].verdict, Verdict::Missing);
        assert!(c[0].what.contains("sandbox sb"), "{:?}", c[0]);
        assert!(c[0].fix.contains("make guest-image"), "{:?}", c[0]);
    }

    #[tokio::test]
    async fn a_remote_hypervisor_without_the_setting_says_which_to_set() {
        let d = tempfile::tempdir().unwrap();
        kata::mgmt::tests::serve(
            d.path(),
            "sb",
            kata::mgmt::tests::ok("remote:///run/peerpod/sb/agent.sock"),
        );
        let roots = kata::Roots(vec![d.path().to_path_buf()]);
        let c = kata_sandboxes(&roots, &kata::RemoteHybridVsock::default()).await;
        assert_eq!(c[0].verdict, Verdict::Missing);
        assert!(c[0].fix.contains("remote_hybrid_vsock"), "{:?}", c[0]);
        // with the setting, the hybrid vsock it names is tried
        let remote = kata::RemoteHybridVsock(format!("{}/{{sandbox}}.vsock", d.path().display()));
        let c = kata_sandboxes(&roots, &remote).await;
        assert_eq!(c[0].verdict, Verdict::Missing);
        assert!(
            c[0].detail
                .contains(&format!("{}/sb.vsock", d.path().display())),
            "{:?}",
            c[0]
        );
    }

    #[test]
    fn rendering() {
        let m = Check::missing("host criu", "not found", "apt-get install criu");
        assert_eq!(
            m.render(),
            "MISSING host criu: not found\n        fix: apt-get install criu"
        );
        assert_eq!(Check::ok("x", "y").render(), "OK      x: y");
    }
}
