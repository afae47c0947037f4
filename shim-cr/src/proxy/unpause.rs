//! A checkpoint that did not complete never leaves the workload frozen,
//! whoever froze it: kata-cr, criu, or the client that paused the task for
//! the checkpoint and can no longer resume it.
//!
//! containerd's client (ctr, CRI) pauses the task, checkpoints it and
//! resumes it, the resume deferred in the client with the checkpoint's
//! context. When that context has expired (a client deadline such as
//! crictl's default 2 s) the resume is never sent; when the client or
//! containerd dies, nobody sends it; runc's task stays PAUSED there. And
//! when kata-cr-agent is lost mid-dump, its guard freezes the cgroup again
//! as the engine left it, possibly after the client's resume has found it
//! thawed (by criu) and failed.
//!
//! So the proxy records each client's Pause and Resume (`containers`), and
//! after a checkpoint the client paused for (a Pause at most
//! [`Timing::paused_for_checkpoint_within`] before it), or one that failed,
//! or whose caller is gone, it watches the task: it gives a live caller
//! [`Timing::resume_grace`] to resume, then resumes the task through the
//! inner shim whenever it finds it paused, for [`Timing::settle`] after a
//! failed or abandoned checkpoint (the agent's guard may freeze late). A
//! task the client had paused on purpose before (earlier than the window)
//! is left paused, as are tasks a client pauses again meanwhile.

use std::time::{Duration, Instant};

use containerd_shim_protos::api::{ResumeRequest, StateRequest, StateResponse, Status};
use protobuf::Message;
use ttrpc::Request;

use crate::proxy::containers::{ClientPauses, Registry};
use crate::proxy::forward::{Inner, TASK_V3};
use crate::proxy::state::State;

/// The time bounds of the watch.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// A client's Pause at most this long before the Checkpoint was taken
    /// for it (containerd's client sends them back to back).
    pub paused_for_checkpoint_within: Duration,
    /// How long a caller that got the answer has to send its Resume.
    pub resume_grace: Duration,
    /// How long after a failed or abandoned checkpoint the task is watched.
    pub settle: Duration,
    /// How often the task's state is asked meanwhile.
    pub every: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            paused_for_checkpoint_within: Duration::from_secs(3),
            resume_grace: Duration::from_secs(5),
            settle: Duration::from_secs(10),
            every: Duration::from_millis(200),
        }
    }
}

/// What a client's pauses say about a checkpoint starting at `started`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub started: Instant,
    /// A client paused the task for this checkpoint.
    pub paused_for_it: bool,
    /// A client paused the task on purpose before: it stays paused.
    pub keep_paused: bool,
}

pub fn plan(p: &ClientPauses, started: Instant, t: &Timing) -> Plan {
    let (paused_for_it, keep_paused) = match p.paused_at {
        Some(at) if started.saturating_duration_since(at) <= t.paused_for_checkpoint_within => {
            (true, false)
        }
        Some(_) => (false, true),
        None => (false, false),
    };
    Plan {
        started,
        paused_for_it,
        keep_paused,
    }
}

/// What the proxy does once the checkpoint ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    Nothing,
    Watch {
        /// Give the caller [`Timing::resume_grace`] to resume first.
        wait_for_client: bool,
        /// Keep watching for [`Timing::settle`].
        settle: bool,
    },
}

pub fn after(plan: &Plan, failed: bool, caller_gone: bool) -> After {
    if plan.keep_paused || !(failed || caller_gone || plan.paused_for_it) {
        return After::Nothing;
    }
    After::Watch {
        wait_for_client: plan.paused_for_it && !caller_gone,
        settle: failed || caller_gone,
    }
}

/// Watches container `id` after a checkpoint that ended at `ended` (see the
/// module documentation).
pub async fn watch(
    inner: &Inner,
    containers: &Registry,
    id: &str,
    plan: Plan,
    ended: Instant,
    how: After,
    t: Timing,
) {
    let After::Watch {
        wait_for_client,
        settle,
    } = how
    else {
        return;
    };
    let asked_resume = || {
        containers
            .pauses(id)
            .and_then(|p| p.last_resume)
            .is_some_and(|at| at >= plan.started)
    };
    if wait_for_client {
        let until = ended + t.resume_grace;
        while Instant::now() < until && !asked_resume() {
            if interrupted(containers, id, plan.started) {
                return;
            }
            tokio::time::sleep(t.every).await;
        }
        if asked_resume() && !settle {
            return;
        }
    }
    let until = Instant::now() + if settle { t.settle } else { Duration::ZERO };
    loop {
        if interrupted(containers, id, plan.started) {
            return;
        }
        match status(inner, id).await {
            Some(Status::PAUSED | Status::PAUSING) => {
                let ok = resume(inner, id).await;
                containers.resumed(id, false, ok);
                if ok {
                    tracing::warn!(
                        id,
                        "checkpoint: the task was left paused and nobody resumed it; resumed by kata-cr"
                    );
                }
            }
            Some(_) => {}
            None => return,
        }
        if Instant::now() >= until {
            return;
        }
        tokio::time::sleep(t.every).await;
    }
}

/// Whether the watch must stop: the container is gone or busy again, or a
/// client paused it after the checkpoint began (its wish now).
fn interrupted(containers: &Registry, id: &str, started: Instant) -> bool {
    match (containers.get(id), containers.pauses(id)) {
        (Some((_, State::Running)), Some(p)) => p.last_pause.is_some_and(|at| at > started),
        _ => true,
    }
}

/// How long the proxy's own State and Resume may take.
const CALL_TIMEOUT_NANOS: i64 = 10_000_000_000;

fn request(method: &str, payload: Vec<u8>) -> Request {
    let mut r = Request::new();
    r.service = TASK_V3.to_string();
    r.method = method.into();
    r.timeout_nano = CALL_TIMEOUT_NANOS;
    r.payload = payload;
    r
}

fn ok(resp: &ttrpc::Response) -> bool {
    resp.status
        .as_ref()
        .is_none_or(|s| s.code() == ttrpc::Code::OK)
}

/// The task's status as the inner shim reports it (None: no answer).
async fn status(inner: &Inner, id: &str) -> Option<Status> {
    let req = StateRequest {
        id: id.to_string(),
        ..Default::default()
    };
    let resp = inner
        .forward(request("State", req.write_to_bytes().ok()?))
        .await;
    if !ok(&resp) {
        tracing::debug!(id, status = ?resp.status, "state after a checkpoint");
        return None;
    }
    StateResponse::parse_from_bytes(&resp.payload)
        .ok()?
        .status
        .enum_value()
        .ok()
}

async fn resume(inner: &Inner, id: &str) -> bool {
    let req = ResumeRequest {
        id: id.to_string(),
        ..Default::default()
    };
    let Ok(payload) = req.write_to_bytes() else {
        return false;
    };
    let resp = inner.forward(request("Resume", payload)).await;
    if !ok(&resp) {
        tracing::warn!(id, status = ?resp.status, "resume after a checkpoint");
    }
    ok(&resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pauses(paused_ago: Option<u64>) -> (ClientPauses, Instant) {
        let now = Instant::now() + Duration::from_secs(100);
        let at = paused_ago.map(|s| now - Duration::from_secs(s));
        (
            ClientPauses {
                paused_at: at,
                last_pause: at,
                last_resume: None,
            },
            now,
        )
    }

    #[test]
    fn a_pause_just_before_is_for_the_checkpoint_an_older_one_is_kept() {
        let t = Timing::default();
        let (p, now) = pauses(Some(0));
        let pl = plan(&p, now, &t);
        assert!(pl.paused_for_it && !pl.keep_paused);
        let (p, now) = pauses(Some(60));
        let pl = plan(&p, now, &t);
        assert!(!pl.paused_for_it && pl.keep_paused);
        let (p, now) = pauses(None);
        let pl = plan(&p, now, &t);
        assert!(!pl.paused_for_it && !pl.keep_paused);
    }

    #[test]
    fn what_happens_after_each_outcome() {
        let t = Timing::default();
        let (p, now) = pauses(Some(0));
        let for_it = plan(&p, now, &t);
        let watch = |wait_for_client, settle| After::Watch {
            wait_for_client,
            settle,
        };
        // ctr and CRI: the caller resumes; the proxy checks it did
        assert_eq!(after(&for_it, false, false), watch(true, false));
        // the agent lost mid-dump: the guard may freeze after the resume
        assert_eq!(after(&for_it, true, false), watch(true, true));
        // a deadline, a containerd restart: nobody will resume
        assert_eq!(after(&for_it, false, true), watch(false, true));
        assert_eq!(after(&for_it, true, true), watch(false, true));

        let (p, now) = pauses(None);
        let running = plan(&p, now, &t);
        assert_eq!(after(&running, false, false), After::Nothing);
        assert_eq!(after(&running, true, false), watch(false, true));

        let (p, now) = pauses(Some(60));
        let kept = plan(&p, now, &t);
        for (failed, gone) in [(false, false), (true, false), (false, true), (true, true)] {
            assert_eq!(after(&kept, failed, gone), After::Nothing);
        }
    }
}
