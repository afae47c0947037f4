//! What the proxy remembers about each container it saw created: the
//! container itself and its checkpoint/restore state.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::cr::container::Container;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracked {
    pub container: Container,
    /// Whether kata-cr-init is its PID 1 (not for CRI sandboxes).
    pub wrapped: bool,
    /// Created from a checkpoint, not restored yet: the staged image dir.
    pub restore_pending: Option<String>,
}

#[derive(Default)]
pub struct Registry(Mutex<HashMap<String, Tracked>>);

impl Registry {
    pub fn insert(&self, t: Tracked) {
        self.0
            .lock()
            .expect("registry lock")
            .insert(t.container.id.clone(), t);
    }

    pub fn get(&self, id: &str) -> Option<Tracked> {
        self.0.lock().expect("registry lock").get(id).cloned()
    }

    /// Takes the pending restore of `id`, if any: a Start restores once.
    pub fn take_restore(&self, id: &str) -> Option<(Container, String)> {
        let mut map = self.0.lock().expect("registry lock");
        let t = map.get_mut(id)?;
        let dir = t.restore_pending.take()?;
        Some((t.container.clone(), dir))
    }

    pub fn remove(&self, id: &str) {
        self.0.lock().expect("registry lock").remove(id);
    }
}
