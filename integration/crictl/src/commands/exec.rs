//! `crictl exec [-s] [-i] [-t] [--timeout N] ID CMD [ARG...]`, or with filter flags
//! (`--name`, `--pod`, ...) `crictl exec FLAGS CMD [ARG...]` in every matching
//! container, as crictl 1.36:
//!
//! - without -s, the CRI Exec call and its streaming session ([`crate::stream`],
//!   over SPDY unless `--transport websocket`):
//!   stdout and stderr as they come, stdin forwarded with -i (its end closes the
//!   command's stdin), a terminal with -it (stdin must be one);
//! - with -s, ExecSync: once the command ends, its stdout then its stderr, each
//!   followed by a newline, on stdout;
//! - a command that exits non-zero fails crictl (exit status 1) with an error naming
//!   the code: `command terminated with exit code N` (streaming),
//!   `command 'CMD' exited with N: STDERR` (-s; stdout is then not printed).

use k8s_cri::v1 as cri;

use super::{help, list, Outcome};
use crate::cli::Exec;
use crate::ctx::Ctx;
use crate::logrus;

pub async fn run(c: &mut Ctx, a: Exec) -> Outcome {
    if a.args.is_empty() {
        return help("exec");
    }
    let mut rt = c.rt().await?;
    if a.ignore_errors && !a.quiet {
        logrus::warn("The `--ignore-errors` option has been set all errors returned by the command will be ignored.");
    }
    let filtered = a.filter.is_set() || a.state.is_some();
    let (ids, cmd) = if filtered {
        let found = list::containers(c, &a.filter, a.state.as_deref(), false, None)
            .await
            .map_err(|e| format!("listing containers: {e}"))?;
        if found.is_empty() {
            logrus::error("No containers found per filter flags");
            return help("exec");
        }
        (found.into_iter().map(|x| x.id).collect(), a.args.clone())
    } else if a.args.len() < 2 {
        return help("exec");
    } else {
        (vec![a.args[0].clone()], a.args[1..].to_vec())
    };
    let show_ids = filtered && !a.quiet && !a.parallel;
    let mut errors = Vec::new();
    for id in ids {
        if show_ids {
            println!("{id}:");
        }
        let r = if a.sync {
            exec_sync(c, &mut rt, &id, &cmd, a.timeout)
                .await
                .map_err(|e| format!("execing command in container {id} synchronously: {e}"))
        } else {
            exec_stream(c, &mut rt, &id, &cmd, &a)
                .await
                .map_err(|e| format!("execing command in container {id}: {e}"))
        };
        if let Err(e) = r {
            errors.push(e);
        }
    }
    if a.ignore_errors {
        return Ok(0);
    }
    super::joined(errors)
}

async fn exec_sync(
    c: &Ctx,
    rt: &mut crate::client::Runtime,
    id: &str,
    cmd: &[String],
    timeout: i64,
) -> Result<(), String> {
    let req = cri::ExecSyncRequest {
        container_id: id.to_string(),
        cmd: cmd.to_vec(),
        timeout,
    };
    // No deadline without --timeout; with it, the command's time plus the time
    // limit, so that the runtime can report the command's own timeout.
    let r = if timeout > 0 {
        let d = c.timeout + std::time::Duration::from_secs(timeout as u64);
        c.call(d, rt.exec_sync(c.req(req, Some(d)))).await
    } else {
        c.call_unbounded(rt.exec_sync(c.req(req, None))).await
    }
    .map_err(|e| {
        if e.contains("code = DeadlineExceeded") {
            format!(
                "command timed out: {:?} timed out after {timeout}s",
                cmd.join(" ")
            )
        } else {
            e
        }
    })?;
    if r.exit_code != 0 {
        return Err(format!(
            "command '{}' exited with {}: {}",
            cmd.join(" "),
            r.exit_code,
            String::from_utf8_lossy(&r.stderr)
        ));
    }
    // Go's fmt.Println of each: both on stdout, each followed by a newline.
    let mut out = r.stdout;
    out.push(b'\n');
    out.extend_from_slice(&r.stderr);
    out.push(b'\n');
    use std::io::Write;
    let mut so = std::io::stdout();
    so.write_all(&out).map_err(|e| e.to_string())?;
    so.flush().map_err(|e| e.to_string())
}

async fn exec_stream(
    c: &Ctx,
    rt: &mut crate::client::Runtime,
    id: &str,
    cmd: &[String],
    a: &Exec,
) -> Result<(), String> {
    let r = c
        .call(
            c.timeout,
            rt.exec(c.req(
                cri::ExecRequest {
                    container_id: id.to_string(),
                    cmd: cmd.to_vec(),
                    tty: a.tty,
                    stdin: a.interactive,
                    stdout: true,
                    stderr: !a.tty,
                },
                Some(c.timeout),
            )),
        )
        .await?;
    if r.url.is_empty() {
        return Err("URL is not set".into());
    }
    if a.tty {
        if !a.interactive {
            return Err("tty=true must be specified with interactive=true".into());
        }
        if !crate::tty::stdin_is_terminal() {
            return Err("input is not a terminal".into());
        }
    }
    let session = crate::stream::Session {
        stdin: a.interactive,
        tty: a.tty,
    };
    crate::stream::exec(&r.url, &a.transport, session).await
}
