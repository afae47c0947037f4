//! `crictl rm [-f] [-k] [-a] ID...`: removes containers (a running one only with
//! -f, stopping it first) and, unless -k, their log files and rotations; prints each
//! id removed; every failure is reported, one per line.

use k8s_cri::v1 as cri;

use super::{help, joined, Outcome};
use crate::cli::Rm;
use crate::ctx::Ctx;
use crate::logrus;

pub async fn run(c: &mut Ctx, a: Rm) -> Outcome {
    let mut rt = c.rt().await?;
    let mut ids = a.ids.clone();
    if a.all {
        ids = c
            .call(
                c.timeout,
                rt.list_containers(
                    c.req(cri::ListContainersRequest { filter: None }, Some(c.timeout)),
                ),
            )
            .await?
            .containers
            .into_iter()
            .map(|x| x.id)
            .collect();
    }
    if ids.is_empty() {
        if a.all {
            logrus::info("No containers to remove");
            return Ok(0);
        }
        return help("rm");
    }
    let mut errors = Vec::new();
    for id in ids {
        if let Err(e) = remove(c, &mut rt, &id, &a).await {
            errors.push(e);
        }
    }
    joined(errors)
}

async fn remove(c: &Ctx, rt: &mut crate::client::Runtime, id: &str, a: &Rm) -> Result<(), String> {
    let status = c
        .call(
            c.timeout,
            rt.container_status(c.req(
                cri::ContainerStatusRequest {
                    container_id: id.to_string(),
                    verbose: false,
                },
                Some(c.timeout),
            )),
        )
        .await
        .map_err(|e| format!("getting container status {id:?}: {e}"))?
        .status
        .unwrap_or_default();
    if status.state == cri::ContainerState::ContainerRunning as i32 {
        if !a.force {
            return Err(format!("container {id:?} is running, please stop it first"));
        }
        super::stop::stop_one(c, rt, id, 0)
            .await
            .map_err(|e| format!("stopping the container {id:?}: {e}"))?;
        // crictl's stop prints the id too
        println!("{id}");
    }
    c.call(
        c.timeout,
        rt.remove_container(c.req(
            cri::RemoveContainerRequest {
                container_id: id.to_string(),
            },
            Some(c.timeout),
        )),
    )
    .await
    .map_err(|e| format!("removing container {id:?}: {e}"))?;
    println!("{id}");
    if !a.keep_logs && !status.log_path.is_empty() {
        for f in log_files(&status.log_path) {
            if let Err(e) = std::fs::remove_file(&f) {
                logrus::error(&format!(
                    "removing log file {} for container {id:?} failed: {e}",
                    f.display()
                ));
            }
        }
    }
    Ok(())
}

/// The log file and its rotations (`<log>.*`), as crictl globs them.
fn log_files(log_path: &str) -> Vec<std::path::PathBuf> {
    let path = std::path::Path::new(log_path);
    let mut files = Vec::new();
    if let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) {
        let prefix = format!("{name}.");
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                if e.file_name()
                    .to_str()
                    .is_some_and(|n| n.starts_with(&prefix))
                {
                    files.push(e.path());
                }
            }
        }
    }
    files.sort();
    files.push(path.to_path_buf());
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotations_then_the_log() {
        let d = tempfile::tempdir().unwrap();
        for f in ["c.log", "c.log.1", "c.log.2.gz", "other.log"] {
            std::fs::write(d.path().join(f), "").unwrap();
        }
        let got: Vec<String> = log_files(d.path().join("c.log").to_str().unwrap())
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap().to_string())
            .collect();
        assert_eq!(got, ["c.log.1", "c.log.2.gz", "c.log"]);
    }
}
