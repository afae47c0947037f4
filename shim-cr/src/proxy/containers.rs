//! The containers the proxy saw created, each with its [`State`]. Every
//! change of state goes through [`Registry::transition`], which checks it
//! against the table in `state`; an operation that holds a container in a
//! transient state does so through a [`Hold`], which leaves that state on
//! every exit path.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use crate::cr::container::Container;
use crate::error::{Error, Result};
use crate::proxy::state::State;

struct Entry {
    container: Container,
    state: State,
    pauses: ClientPauses,
}

/// What clients asked of a container's freezer, as seen by the proxy: what
/// tells a pause a client took for a checkpoint (and may never undo) from
/// one it wants kept (see `unpause`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientPauses {
    /// When a client's Pause last succeeded, unless a Resume succeeded since.
    pub paused_at: Option<Instant>,
    /// When a client last paused the task (whatever came after).
    pub last_pause: Option<Instant>,
    /// When a client last asked for a Resume (whatever the answer).
    pub last_resume: Option<Instant>,
}

#[derive(Default)]
pub struct Registry(Mutex<HashMap<String, Entry>>);

impl Registry {
    /// The map. A panic elsewhere while the lock was held cannot have left
    /// it half-changed (every change is one insert, update or remove), so a
    /// poisoned lock is used as it is.
    fn map(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a container the inner shim created, in its first state
    /// (Sandbox, Created or RestorePending). The inner shim's word wins over
    /// a stale entry of the same id.
    pub fn created(&self, container: Container, state: State) {
        if let Some(old) = self.map().insert(
            container.id.clone(),
            Entry {
                container: container.clone(),
                state,
                pauses: ClientPauses::default(),
            },
        ) {
            tracing::warn!(id = %container.id, state = %old.state, "created again; the old entry is replaced");
        }
    }

    /// The container and its state, if the proxy manages it.
    pub fn get(&self, id: &str) -> Option<(Container, State)> {
        self.map()
            .get(id)
            .map(|e| (e.container.clone(), e.state.clone()))
    }

    /// What clients asked of the container's freezer so far.
    pub fn pauses(&self, id: &str) -> Option<ClientPauses> {
        self.map().get(id).map(|e| e.pauses)
    }

    /// A Pause of the task from a client: `ok` when the inner shim paused it.
    pub fn client_paused(&self, id: &str, ok: bool) {
        if let Some(e) = self.map().get_mut(id) {
            let now = Instant::now();
            e.pauses.last_pause = Some(now);
            if ok {
                e.pauses.paused_at = Some(now);
            }
        }
    }

    /// A Resume of the task, asked by a client (`by_client`) or by the
    /// proxy itself: `ok` when the inner shim resumed it.
    pub fn resumed(&self, id: &str, by_client: bool, ok: bool) {
        if let Some(e) = self.map().get_mut(id) {
            if by_client {
                e.pauses.last_resume = Some(Instant::now());
            }
            if ok {
                e.pauses.paused_at = None;
            }
        }
    }

    /// Moves `id` to `to` if its state allows it (Deleted forgets it);
    /// returns the container and the state it left.
    pub fn transition(&self, id: &str, to: State) -> Result<(Container, State)> {
        let mut map = self.map();
        let entry = map
            .get_mut(id)
            .ok_or_else(|| Error::UnknownContainer(id.to_string()))?;
        if !entry.state.allows(&to) {
            return Err(invalid(id, &entry.state, &to));
        }
        tracing::debug!(id, from = %entry.state, to = %to, "state");
        if to == State::Deleted {
            let e = map
                .remove(id)
                .ok_or_else(|| Error::UnknownContainer(id.to_string()))?;
            return Ok((e.container, e.state));
        }
        let from = std::mem::replace(&mut entry.state, to);
        Ok((entry.container.clone(), from))
    }

    /// Moves `id` to the transient state `to` for an operation; the
    /// returned [`Hold`] moves it on to `undo` unless the operation
    /// [finishes](Hold::finish) it otherwise.
    pub fn hold(&self, id: &str, to: State, undo: State) -> Result<(Hold<'_>, Container, State)> {
        let (c, from) = self.transition(id, to)?;
        let hold = Hold {
            registry: self,
            id: id.to_string(),
            undo: Some(undo),
        };
        Ok((hold, c, from))
    }
}

/// The error for a refused transition or request.
pub fn invalid(id: &str, from: &State, to: &State) -> Error {
    Error::InvalidTransition {
        id: id.to_string(),
        from: from.name(),
        to: to.name(),
        busy: from.busy(),
    }
}

/// A container held in a transient state by an operation under way.
/// Dropped without [`Hold::finish`] (an error path, a panic), it moves the
/// container to its `undo` state; a container deleted meanwhile stays
/// forgotten.
pub struct Hold<'a> {
    registry: &'a Registry,
    id: String,
    undo: Option<State>,
}

impl Hold<'_> {
    /// Ends the operation in state `to`.
    pub fn finish(mut self, to: State) {
        self.undo = None;
        self.leave(to);
    }

    fn leave(&self, to: State) {
        if let Err(e) = self.registry.transition(&self.id, to) {
            tracing::debug!(id = %self.id, error = %e, "state left as it is");
        }
    }
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        if let Some(undo) = self.undo.take() {
            self.leave(undo);
        }
    }
}

#[cfg(test)]
mod tests {
    use ttrpc::Code;

    use super::*;

    fn container(id: &str) -> Container {
        Container {
            id: id.into(),
            bundle: format!("/b/{id}").into(),
            upperdir: None,
            exec_guard: None,
            checkpoint: None,
        }
    }

    fn state(r: &Registry, id: &str) -> Option<State> {
        r.get(id).map(|(_, s)| s)
    }

    #[test]
    fn transitions_follow_the_table_and_name_both_states() {
        let r = Registry::default();
        r.created(container("c1"), State::Created);
        let e = r.transition("c1", State::Checkpointing).unwrap_err();
        assert_eq!(e.code(), Code::FAILED_PRECONDITION);
        let m = e.to_string();
        assert!(
            m.contains("c1") && m.contains("created") && m.contains("checkpointing"),
            "{m}"
        );
        let (_, from) = r.transition("c1", State::Running).unwrap();
        assert_eq!(from, State::Created);
        let e = r.transition("ghost", State::Running).unwrap_err();
        assert_eq!(e.code(), Code::NOT_FOUND);
        r.transition("c1", State::Deleted).unwrap();
        assert_eq!(state(&r, "c1"), None, "Delete forgets the container");
    }

    #[test]
    fn a_second_checkpoint_is_refused_as_busy() {
        let r = Registry::default();
        r.created(container("c1"), State::Running);
        let (hold, _, _) = r.hold("c1", State::Checkpointing, State::Running).unwrap();
        let e = r
            .hold("c1", State::Checkpointing, State::Running)
            .err()
            .unwrap();
        assert_eq!(e.code(), Code::ABORTED);
        drop(hold);
        assert_eq!(state(&r, "c1"), Some(State::Running), "undone on drop");
        r.hold("c1", State::Checkpointing, State::Running).unwrap();
    }

    #[test]
    fn a_hold_finishes_or_undoes_and_survives_a_delete() {
        let r = Registry::default();
        let pending = State::RestorePending {
            image_dir: "restore-1".into(),
        };
        r.created(container("c1"), pending.clone());
        let (hold, c, from) = r
            .hold("c1", State::Restoring, State::RestoreFailed)
            .unwrap();
        assert_eq!((c.id.as_str(), from), ("c1", pending.clone()));
        hold.finish(State::Running);
        assert_eq!(state(&r, "c1"), Some(State::Running));

        r.created(container("c2"), pending);
        let (hold, _, _) = r
            .hold("c2", State::Restoring, State::RestoreFailed)
            .unwrap();
        drop(hold);
        assert_eq!(state(&r, "c2"), Some(State::RestoreFailed));

        r.created(container("c3"), State::Running);
        let (hold, _, _) = r.hold("c3", State::Checkpointing, State::Running).unwrap();
        r.transition("c3", State::Deleted).unwrap();
        drop(hold);
        assert_eq!(state(&r, "c3"), None, "a deleted container stays forgotten");
    }

    #[test]
    fn a_poisoned_lock_still_answers() {
        let r = std::sync::Arc::new(Registry::default());
        r.created(container("c1"), State::Created);
        let r2 = r.clone();
        let _ = std::thread::spawn(move || {
            let _g = r2.map();
            panic!("poison the lock");
        })
        .join();
        assert_eq!(state(&r, "c1"), Some(State::Created));
    }
}
