//! The state of each container the proxy manages, and every transition
//! between states: the one table that says what a container may become and
//! which requests its state refuses.
//!
//! ```text
//!              Create                Create (checkpoint)
//!                |                          |
//!                v                          v
//!   Sandbox   Created              RestorePending
//!                | Start ok                 | Start
//!                v                          v
//!             Running <------ ok ------ Restoring ---- failed ---> RestoreFailed
//!              |   ^
//!   Checkpoint |   | done or undone
//!              v   |
//!           Checkpointing ---- done, --exit ---> EndedByCheckpoint
//!
//!   Delete (inner ok): any state -> Deleted (forgotten)
//! ```
//!
//! Checkpointing and Restoring are held by an operation that runs to its
//! end in a task of its own whatever its caller does, and always leaves
//! them (see `containers::Hold`).

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// A pod sandbox (pause): left to the inner shim.
    Sandbox,
    /// Created with kata-cr-init as PID 1, not started.
    Created,
    /// Created from a checkpoint whose image set is staged in the rootfs
    /// as `image_dir`: Start restores it.
    RestorePending { image_dir: String },
    /// Start is restoring the workload.
    Restoring,
    /// Started or restored.
    Running,
    /// A checkpoint is under way.
    Checkpointing,
    /// The restore failed and the task was killed: only Delete is left.
    RestoreFailed,
    /// A checkpoint that asked to stop the task (`--exit`) was taken: the
    /// agent ended the workload, the init exits with its status and the
    /// inner shim reports the task stopped. Nothing is left to resume.
    EndedByCheckpoint,
    /// Deleted by the inner shim: the proxy forgets the container.
    Deleted,
}

/// What Start of a container's task does, by the container's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartPlan {
    /// Forward; the container becomes Running when the inner shim started it.
    ThenRunning,
    /// Forward, then restore the workload from this staged image set.
    Restore { image_dir: String },
    /// Forward and leave the state alone: the inner shim answers.
    Forward,
}

impl State {
    /// Whether a container in this state may become `to`.
    pub fn allows(&self, to: &State) -> bool {
        use State::*;
        matches!(
            (self, to),
            (Created, Running)
                | (RestorePending { .. }, Restoring)
                | (Restoring, Running | RestoreFailed)
                | (Running, Checkpointing)
                | (Checkpointing, Running | EndedByCheckpoint)
                | (_, Deleted)
        )
    }

    /// Whether the state belongs to an operation under way (a refused
    /// request may succeed once it is over).
    pub fn busy(&self) -> bool {
        matches!(self, State::Restoring | State::Checkpointing)
    }

    /// What a Start does. Refused (`Err` with the state it would need to
    /// become) while restoring and after a failed restore: the inner shim
    /// would start an init that waits for a restore nobody performs.
    pub fn start_plan(&self) -> Result<StartPlan, State> {
        match self {
            State::Created => Ok(StartPlan::ThenRunning),
            State::RestorePending { image_dir } => Ok(StartPlan::Restore {
                image_dir: image_dir.clone(),
            }),
            State::Restoring | State::RestoreFailed => Err(State::Running),
            State::Sandbox
            | State::Running
            | State::Checkpointing
            | State::EndedByCheckpoint
            | State::Deleted => Ok(StartPlan::Forward),
        }
    }

    /// Whether an exec is let through: not while the init waits for its
    /// workload, when an exec'd process could pose as the restored one.
    pub fn allows_exec(&self) -> bool {
        *self != State::Restoring
    }

    /// Whether a Resume reaches the inner shim. After a checkpoint with
    /// `--exit` the engine still resumes the task it paused for the dump
    /// (containerd's client does so whatever the checkpoint's options).
    /// runc's shim refuses that for a stopped container and the task stays
    /// STOPPED. Kata's shim, when the container was its own sandbox (a ctr
    /// container), has stopped and deleted the sandbox on the init's exit;
    /// its Resume then finds no container and sets the task's status to
    /// UNKNOWN, over the STOPPED it had recorded, for good. kata-cr refuses
    /// the Resume itself, as runc's shim does.
    pub fn allows_resume(&self) -> bool {
        *self != State::EndedByCheckpoint
    }

    pub fn name(&self) -> &'static str {
        match self {
            State::Sandbox => "sandbox",
            State::Created => "created",
            State::RestorePending { .. } => "restore-pending",
            State::Restoring => "restoring",
            State::Running => "running",
            State::Checkpointing => "checkpointing",
            State::RestoreFailed => "restore-failed",
            State::EndedByCheckpoint => "ended-by-checkpoint",
            State::Deleted => "deleted",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<State> {
        vec![
            State::Sandbox,
            State::Created,
            State::RestorePending {
                image_dir: "restore-1".into(),
            },
            State::Restoring,
            State::Running,
            State::Checkpointing,
            State::RestoreFailed,
            State::EndedByCheckpoint,
            State::Deleted,
        ]
    }

    #[test]
    fn the_transition_table() {
        let allowed: Vec<(&str, &str)> = all()
            .iter()
            .flat_map(|from| {
                all()
                    .into_iter()
                    .filter(|to| from.allows(to) && *to != State::Deleted)
                    .map(move |to| (from.name(), to.name()))
            })
            .collect();
        assert_eq!(
            allowed,
            [
                ("created", "running"),
                ("restore-pending", "restoring"),
                ("restoring", "running"),
                ("restoring", "restore-failed"),
                ("running", "checkpointing"),
                ("checkpointing", "running"),
                ("checkpointing", "ended-by-checkpoint"),
            ]
        );
        assert!(all().iter().all(|s| s.allows(&State::Deleted)));
    }

    #[test]
    fn start_after_a_failed_restore_is_refused() {
        assert_eq!(State::RestoreFailed.start_plan(), Err(State::Running));
        assert_eq!(State::Restoring.start_plan(), Err(State::Running));
        assert_eq!(State::Created.start_plan(), Ok(StartPlan::ThenRunning));
        assert_eq!(State::Running.start_plan(), Ok(StartPlan::Forward));
        let pending = State::RestorePending {
            image_dir: "r".into(),
        };
        assert_eq!(
            pending.start_plan(),
            Ok(StartPlan::Restore {
                image_dir: "r".into()
            })
        );
    }

    #[test]
    fn exec_waits_for_the_restore_only() {
        for s in all() {
            assert_eq!(s.allows_exec(), s != State::Restoring, "{s}");
        }
        assert!(State::Checkpointing.busy() && State::Restoring.busy());
        assert!(!State::Running.busy());
    }

    #[test]
    fn nothing_is_resumed_after_a_checkpoint_that_ended_the_task() {
        for s in all() {
            assert_eq!(s.allows_resume(), s != State::EndedByCheckpoint, "{s}");
        }
        assert!(!State::EndedByCheckpoint.busy());
    }
}
