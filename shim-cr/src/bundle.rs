//! The files kata-cr reads and writes in a container's OCI bundle: the
//! runtime spec `config.json` (read for the pod grouping, rewritten to make
//! kata-cr-init PID 1) and small state files, always replaced whole so that
//! a reader never sees half a file.

use std::path::Path;

use serde_json::Value;

use crate::error::{Error, IoContext, Result};

/// The bundle's `config.json`, as JSON: every field kata-cr does not know
/// survives a rewrite.
pub fn read_spec(bundle: &Path) -> Result<Value> {
    let path = bundle.join("config.json");
    let data = std::fs::read(&path).ctx(|| format!("read {}", path.display()))?;
    serde_json::from_slice(&data)
        .map_err(|e| Error::InvalidArgument(format!("parse {}: {e}", path.display())))
}

/// Replaces the bundle's `config.json`.
pub fn write_spec(bundle: &Path, spec: &Value) -> Result<()> {
    let data = serde_json::to_vec(spec).map_err(|source| Error::Json {
        context: "serialise config.json".into(),
        source,
    })?;
    write_atomic(&bundle.join("config.json"), &data)
}

/// Writes via a temporary file and a rename, so a reader never sees half a
/// file.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, data).ctx(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).ctx(|| format!("rename {} to {}", tmp.display(), path.display()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn spec_round_trips_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let spec = json!({"ociVersion": "1.2.0", "x-vendor": {"keep": true}});
        write_spec(dir.path(), &spec).unwrap();
        assert_eq!(read_spec(dir.path()).unwrap(), spec);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["config.json"]);
    }

    #[test]
    fn unreadable_specs_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_spec(dir.path()).unwrap_err();
        assert!(e.to_string().contains("config.json"), "{e}");
        std::fs::write(dir.path().join("config.json"), b"{").unwrap();
        let e = read_spec(dir.path()).unwrap_err();
        assert_eq!(e.code(), ttrpc::Code::INVALID_ARGUMENT);
    }
}
