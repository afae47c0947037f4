//! `crictl rmi ID...`: removes images; prints `Deleted: TAG` for each of an image's
//! tags (its digests when it has none); every failure is reported, one per line.
//! (`--all` and `--prune` are accepted; this crictl removes only named images.)

use k8s_cri::v1 as cri;

use super::{help, joined, Fail, Outcome};
use crate::cli::Rmi;
use crate::ctx::Ctx;
use crate::logrus;

pub async fn run(c: &mut Ctx, a: Rmi) -> Outcome {
    if a.all || a.prune {
        return Err(Fail::Fatal(
            "rmi --all/--prune: not supported by this crictl".into(),
        ));
    }
    if a.ids.is_empty() {
        return help("rmi");
    }
    let mut img = c.img().await?;
    let mut errors = Vec::new();
    for id in &a.ids {
        if let Err(e) = remove(c, &mut img, id).await {
            errors.push(e);
        }
    }
    joined(errors)
}

async fn remove(c: &Ctx, img: &mut crate::client::Images, id: &str) -> Result<(), String> {
    let spec = || cri::ImageSpec {
        image: id.to_string(),
        ..Default::default()
    };
    let status = c
        .call(
            c.timeout,
            img.image_status(c.req(
                cri::ImageStatusRequest {
                    image: Some(spec()),
                    verbose: false,
                },
                Some(c.timeout),
            )),
        )
        .await
        .map_err(|e| format!("image status request for {id:?} failed: {e}"))?;
    let Some(image) = status.image else {
        return Err(format!("no such image {id}"));
    };
    if image.repo_tags.len() > 1
        && !id.starts_with("sha256:")
        && (id.contains(':') || id.contains('/'))
    {
        logrus::warn(&format!(
            "Image {id:?} has multiple tags. Removing this image will delete all of the following tags:"
        ));
        for t in &image.repo_tags {
            logrus::warn(&format!("  {t}"));
        }
    }
    c.call(
        c.timeout,
        img.remove_image(c.req(
            cri::RemoveImageRequest {
                image: Some(spec()),
            },
            Some(c.timeout),
        )),
    )
    .await
    .map_err(|e| format!("error of removing image {id:?}: {e}"))?;
    let names = if image.repo_tags.is_empty() {
        &image.repo_digests
    } else {
        &image.repo_tags
    };
    for n in names {
        println!("Deleted: {n}");
    }
    Ok(())
}
