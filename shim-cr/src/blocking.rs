//! Blocking work (filesystem, mostly) off the proxy's runtime. The proxy
//! serves a whole pod from one thread: a spec rewrite, a copy or a removal
//! of an image set done there would stall every RPC of the pod meanwhile.

use crate::error::{Error, Result};

/// Runs `f` on tokio's blocking pool and waits for it; `what` names the
/// work should the task fail.
pub async fn run<T, F>(what: &'static str, f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|source| Error::Task { what, source })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn results_and_panics_come_back() {
        assert_eq!(run("add", || Ok(1 + 1)).await.unwrap(), 2);
        let e = run("refuse", || -> Result<()> {
            Err(Error::InvalidArgument("no".into()))
        })
        .await
        .unwrap_err();
        assert_eq!(e.code(), ttrpc::Code::INVALID_ARGUMENT);
        let e = run("explode", || -> Result<()> { panic!("boom") })
            .await
            .unwrap_err();
        assert_eq!(e.code(), ttrpc::Code::INTERNAL);
        assert!(e.to_string().starts_with("explode"), "{e}");
    }
}
