//! `crictl logs [-f] [--tail N] [-t] ID`: the container's CRI log file, stdout lines
//! on stdout and stderr lines on stderr; -f follows it until the container ends.

use std::io::Write;
use std::time::Duration;

use k8s_cri::v1 as cri;

use super::{help, Fail, Outcome};
use crate::cli::Logs;
use crate::ctx::Ctx;

pub async fn run(c: &mut Ctx, a: Logs) -> Outcome {
    let Some(id) = a.ids.first().cloned() else {
        return Err(Fail::Fatal("ID cannot be empty".into()));
    };
    if a.ids.len() > 1 {
        return help("logs");
    }
    let mut rt = c.rt().await?;
    let st = status(c, &mut rt, &id).await?.status.unwrap_or_default();
    if st.log_path.is_empty() {
        return Err(Fail::Fatal("the container has not set log path".into()));
    }
    let data = std::fs::read(&st.log_path)
        .map_err(|e| format!("failed to open log file {:?}: {e}", st.log_path))?;
    let text = String::from_utf8_lossy(&data);
    // Only complete lines: a trailing fragment is read again when following.
    let complete = text.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let lines: Vec<&str> = text[..complete].lines().collect();
    let tail = if a.tail < 0 {
        lines.len()
    } else {
        a.tail as usize
    };
    for l in &lines[lines.len().saturating_sub(tail)..] {
        emit(l, a.timestamps);
    }
    let _ = std::io::stdout().flush();
    if !a.follow {
        return Ok(0);
    }
    let mut offset = complete as u64;
    let mut polls = 0u32;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let Ok(data) = std::fs::read(&st.log_path) else {
            break;
        };
        if (data.len() as u64) < offset {
            offset = 0; // rotated or truncated
        }
        let new = &data[offset as usize..];
        if let Some(end) = new.iter().rposition(|&b| b == b'\n') {
            for l in String::from_utf8_lossy(&new[..=end]).lines() {
                emit(l, a.timestamps);
            }
            let _ = std::io::stdout().flush();
            offset += end as u64 + 1;
            continue;
        }
        polls += 1;
        if polls.is_multiple_of(5) {
            let state = status(c, &mut rt, &id)
                .await
                .ok()
                .and_then(|r| r.status)
                .map(|s| s.state);
            if state != Some(cri::ContainerState::ContainerRunning as i32)
                && state != Some(cri::ContainerState::ContainerCreated as i32)
            {
                break;
            }
        }
    }
    Ok(0)
}

async fn status(
    c: &Ctx,
    rt: &mut crate::client::Runtime,
    id: &str,
) -> Result<cri::ContainerStatusResponse, String> {
    let req = c.req(
        cri::ContainerStatusRequest {
            container_id: id.to_string(),
            verbose: false,
        },
        Some(c.timeout),
    );
    c.call(c.timeout, rt.container_status(req)).await
}

/// One CRI log line: `<RFC3339Nano> <stdout|stderr> <P|F> <message>`.
fn parse_line(line: &str) -> Option<(&str, bool, bool, &str)> {
    let mut it = line.splitn(4, ' ');
    let ts = it.next()?;
    let stream = it.next()?;
    let tag = it.next()?;
    let msg = it.next().unwrap_or("");
    Some((
        ts,
        stream == "stderr",
        tag.split(':').any(|t| t == "P"),
        msg,
    ))
}

fn emit(line: &str, timestamps: bool) {
    match parse_line(line) {
        Some((ts, is_err, partial, msg)) => {
            let text = match (timestamps, partial) {
                (true, true) => format!("{ts} {msg}"),
                (true, false) => format!("{ts} {msg}\n"),
                (false, true) => msg.to_string(),
                (false, false) => format!("{msg}\n"),
            };
            if is_err {
                let _ = std::io::stdout().flush();
                eprint!("{text}");
            } else {
                print!("{text}");
            }
        }
        None => println!("{line}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines() {
        assert_eq!(
            parse_line("2024-01-01T00:00:00.000000000Z stdout F hello world"),
            Some((
                "2024-01-01T00:00:00.000000000Z",
                false,
                false,
                "hello world"
            ))
        );
        assert_eq!(
            parse_line("2024-01-01T00:00:00Z stderr P part"),
            Some(("2024-01-01T00:00:00Z", true, true, "part"))
        );
        assert_eq!(parse_line("t stdout F").unwrap().3, "");
    }
}
