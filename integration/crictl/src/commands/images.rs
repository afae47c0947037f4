//! `crictl images [IMAGE]`: images, as a table, IDs (-q), JSON or YAML.

use k8s_cri::v1 as cri;
use serde_json::json;

use super::{Fail, Outcome};
use crate::cli::Images;
use crate::ctx::Ctx;
use crate::output::{self, Kind};

pub async fn run(c: &mut Ctx, a: Images) -> Outcome {
    let mut img = c.img().await?;
    let filter = a.args.first().map(|i| cri::ImageFilter {
        image: Some(cri::ImageSpec {
            image: i.clone(),
            ..Default::default()
        }),
    });
    let found = c
        .call(
            c.timeout,
            img.list_images(c.req(cri::ListImagesRequest { filter }, Some(c.timeout))),
        )
        .await
        .map_err(|e| format!("listing images: {e}"))?
        .images;
    if a.quiet {
        let mut seen = std::collections::HashSet::new();
        for i in &found {
            if seen.insert(i.id.clone()) {
                println!("{}", i.id);
            }
        }
        return Ok(0);
    }
    match a.output.as_str() {
        o @ ("json" | "yaml") => {
            let v = json!({"images": found.iter().map(|x| output::to_pb(x, Kind::Other)).collect::<Vec<_>>()});
            println!("{}", output::render(&v, o, None)?);
        }
        "table" => {
            let nt = a.no_trunc;
            let mut rows = vec![["IMAGE", "TAG", "IMAGE ID", "SIZE"]
                .map(String::from)
                .to_vec()];
            for i in &found {
                let tags = if i.repo_tags.is_empty() {
                    vec![("<none>".to_string(), "<none>".to_string())]
                } else {
                    i.repo_tags.iter().map(|t| split_tag(t)).collect()
                };
                for (repo, tag) in tags {
                    rows.push(vec![
                        repo,
                        tag,
                        output::trunc_id(&i.id, nt),
                        output::human_size(i.size, 3),
                    ]);
                }
            }
            print!("{}", output::table(&rows));
        }
        o => return Err(Fail::Fatal(format!("unsupported output format {o:?}"))),
    }
    Ok(0)
}

pub fn split_tag(repo_tag: &str) -> (String, String) {
    match repo_tag.rfind(':') {
        Some(i) if !repo_tag[i..].contains('/') => {
            (repo_tag[..i].to_string(), repo_tag[i + 1..].to_string())
        }
        _ => (repo_tag.to_string(), "<none>".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags() {
        assert_eq!(
            split_tag("localhost:5000/busybox:latest"),
            ("localhost:5000/busybox".into(), "latest".into())
        );
        assert_eq!(
            split_tag("localhost:5000/busybox"),
            ("localhost:5000/busybox".into(), "<none>".into())
        );
    }
}
