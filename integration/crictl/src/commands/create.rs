//! `crictl create POD container-config pod-config`: creates the container, prints
//! its id. As crictl, it pulls the image only when asked (`--with-pull`, or
//! `pull-image-on-create: true` in the config file without `--no-pull`), and passes
//! `image.image` to the runtime untouched: a checkpoint archive's path reaches
//! containerd as written, and containerd says what is wrong with it.

use k8s_cri::v1 as cri;

use super::{help, Fail, Outcome};
use crate::cli::Create;
use crate::config;
use crate::ctx::Ctx;

pub async fn run(c: &mut Ctx, a: Create) -> Outcome {
    if a.args.len() != 3 {
        return help("create");
    }
    if a.no_pull && a.with_pull {
        return Err(Fail::Fatal(
            "conflict: no-pull and with-pull are both set".into(),
        ));
    }
    let with_pull = (!a.no_pull && c.pull_image_on_create) || a.with_pull;
    if let Some(t) = a.cancel_timeout.filter(|t| !t.is_zero()) {
        c.timeout = t;
    }
    let mut rt = c.rt().await?;
    let id = create(c, &mut rt, &a, with_pull)
        .await
        .map_err(|e| format!("creating container: {e}"))?;
    println!("{id}");
    Ok(0)
}

async fn create(
    c: &mut Ctx,
    rt: &mut crate::client::Runtime,
    a: &Create,
    with_pull: bool,
) -> Result<String, String> {
    let (pod, ctr_path, pod_path) = (&a.args[0], &a.args[1], &a.args[2]);
    let mut config = config::container_config(ctr_path)?;
    let sandbox = config::pod_config(pod_path)?;
    let spec = config.image.get_or_insert_with(Default::default);
    if spec.user_specified_image.is_empty() {
        spec.user_specified_image = spec.image.clone();
    }
    if with_pull {
        let spec = spec.clone();
        let mut images = vec![spec.image.clone()];
        images.extend(
            config
                .mounts
                .iter()
                .filter_map(|m| m.image.as_ref().map(|i| i.image.clone()))
                .filter(|i| !i.is_empty()),
        );
        let auth = super::pull::auth(&a.auth)?;
        for image in images {
            crate::logrus::info(&format!("Pulling container image: {image}"));
            super::pull::pull(
                c,
                cri::ImageSpec {
                    image,
                    annotations: spec.annotations.clone(),
                    ..Default::default()
                },
                auth.clone(),
                Some(sandbox.clone()),
                a.pull_timeout,
            )
            .await?;
        }
    }
    let r = c
        .call(
            c.timeout,
            rt.create_container(c.req(
                cri::CreateContainerRequest {
                    pod_sandbox_id: pod.clone(),
                    config: Some(config),
                    sandbox_config: Some(sandbox),
                },
                Some(c.timeout),
            )),
        )
        .await?;
    Ok(r.container_id)
}
