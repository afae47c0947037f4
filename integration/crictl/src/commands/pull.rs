//! `crictl pull [--creds U[:P]|--auth A|-u U] [--pod-config F] [-a K=V] IMAGE`:
//! prints `Image is up to date for REF`. Also the pull behind `create --with-pull`.

use std::io::BufRead;
use std::time::Duration;

use k8s_cri::v1 as cri;

use super::{help, Fail, Outcome};
use crate::cli::{Pull, PullAuth};
use crate::config;
use crate::ctx::Ctx;

pub async fn run(c: &mut Ctx, a: Pull) -> Outcome {
    let Some(image) = a.args.first().filter(|i| !i.is_empty()).cloned() else {
        return Err(Fail::Fatal("image name cannot be empty".into()));
    };
    if a.args.len() > 1 {
        return help("pull");
    }
    let auth = auth(&a.auth)?;
    let sandbox = a
        .pod_config
        .as_deref()
        .map(config::pod_config)
        .transpose()
        .map_err(|e| format!("load podSandboxConfig: {e}"))?;
    let annotations = super::labels(&a.annotation)?;
    let r = pull(
        c,
        cri::ImageSpec {
            image,
            annotations,
            ..Default::default()
        },
        auth,
        sandbox,
        a.pull_timeout,
    )
    .await
    .map_err(|e| format!("pulling image: {e}"))?;
    println!("Image is up to date for {r}");
    Ok(0)
}

/// PullImage, without a deadline unless `timeout` (crictl's --pull-timeout) is set;
/// the image reference.
pub async fn pull(
    c: &mut Ctx,
    image: cri::ImageSpec,
    auth: Option<cri::AuthConfig>,
    sandbox: Option<cri::PodSandboxConfig>,
    timeout: Option<Duration>,
) -> Result<String, String> {
    let mut img = c.img().await?;
    let timeout = timeout.filter(|t| !t.is_zero());
    let req = c.req(
        cri::PullImageRequest {
            image: Some(image),
            auth,
            sandbox_config: sandbox,
        },
        timeout,
    );
    let r = match timeout {
        Some(t) => c.call(t, img.pull_image(req)).await?,
        None => c.call_unbounded(img.pull_image(req)).await?,
    };
    Ok(r.image_ref)
}

/// The registry credentials of the flags, checked as crictl checks them.
pub fn auth(a: &PullAuth) -> Result<Option<cri::AuthConfig>, String> {
    if let Some(u) = a.username.as_deref().filter(|u| !u.is_empty()) {
        print!("Enter Password:");
        let mut pw = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut pw)
            .map_err(|e| e.to_string())?;
        println!();
        return Ok(Some(cri::AuthConfig {
            username: u.into(),
            password: pw.trim_end_matches(['\n', '\r']).into(),
            ..Default::default()
        }));
    }
    let creds = a.creds.as_deref().filter(|s| !s.is_empty());
    let token = a.auth.as_deref().filter(|s| !s.is_empty());
    match (creds, token) {
        (Some(_), Some(_)) => Err("both `--creds` and `--auth` are specified".into()),
        (Some(creds), None) => {
            let (user, pass) = match creds.split_once(':') {
                None => (creds, ""),
                Some(("", _)) => return Err("username can't be empty".into()),
                Some((u, p)) => (u, p),
            };
            Ok(Some(cri::AuthConfig {
                username: user.into(),
                password: pass.into(),
                ..Default::default()
            }))
        }
        (None, Some(token)) => Ok(Some(cri::AuthConfig {
            auth: token.into(),
            ..Default::default()
        })),
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(c: Option<&str>, a: Option<&str>) -> Result<Option<cri::AuthConfig>, String> {
        auth(&PullAuth {
            creds: c.map(Into::into),
            auth: a.map(Into::into),
            username: None,
        })
    }

    #[test]
    fn credentials() {
        let a = creds(Some("u:p:q"), None).unwrap().unwrap();
        assert_eq!((a.username.as_str(), a.password.as_str()), ("u", "p:q"));
        let a = creds(Some("u"), None).unwrap().unwrap();
        assert_eq!((a.username.as_str(), a.password.as_str()), ("u", ""));
        assert_eq!(
            creds(Some(":p"), None).unwrap_err(),
            "username can't be empty"
        );
        assert!(creds(Some("u"), Some("x")).unwrap_err().contains("both"));
        assert_eq!(creds(None, Some("dTpw")).unwrap().unwrap().auth, "dTpw");
        assert!(creds(None, None).unwrap().is_none());
    }
}
