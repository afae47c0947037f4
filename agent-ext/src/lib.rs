//! Guest-side programs of kata-cr.
//!
//! Each program keeps its logic in a library module here and has a thin
//! binary under `src/bin/`:
//! - [`init`]: `kata-cr-init`, PID 1 of every kata-cr container.

pub mod init;
