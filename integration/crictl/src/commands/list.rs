//! The container listing behind `ps`, `exec`'s and `inspect`'s filters and
//! `stop --all`, as crictl's ListContainers: running containers unless --all or
//! --state (no state filter with --latest/--last), then name, namespace and image
//! filters, newest first, cut to --latest/--last.

use k8s_cri::v1 as cri;

use crate::cli::ContainerFilter;
use crate::ctx::Ctx;

pub async fn containers(
    c: &mut Ctx,
    f: &ContainerFilter,
    state_flag: Option<&str>,
    all: bool,
    id: Option<&str>,
) -> Result<Vec<cri::Container>, String> {
    let mut filter = cri::ContainerFilter {
        id: id.unwrap_or_default().to_string(),
        pod_sandbox_id: f.pod.clone().unwrap_or_default(),
        label_selector: super::labels(&f.label)?,
        state: None,
    };
    let state_flag = state_flag.unwrap_or("");
    if !all && state_flag.is_empty() {
        filter.state = Some(state(cri::ContainerState::ContainerRunning));
    }
    if !state_flag.is_empty() {
        filter.state = Some(state(match state_flag.to_ascii_lowercase().as_str() {
            "created" => cri::ContainerState::ContainerCreated,
            "running" => cri::ContainerState::ContainerRunning,
            "exited" => cri::ContainerState::ContainerExited,
            "unknown" => cri::ContainerState::ContainerUnknown,
            _ => return Err("--state should be one of created, running, exited or unknown".into()),
        }));
    }
    if f.latest || f.last.unwrap_or(0) > 0 {
        filter.state = None;
    }
    let mut rt = c.rt().await?;
    let listed = c
        .call(
            c.timeout,
            rt.list_containers(c.req(
                cri::ListContainersRequest {
                    filter: Some(filter),
                },
                Some(c.timeout),
            )),
        )
        .await
        .map_err(|e| format!("call list containers RPC: {e}"))?
        .containers;
    let name = super::regex("name", f.name.as_deref())?;
    let image = f.image.as_deref().unwrap_or("");
    let mut list: Vec<cri::Container> = listed
        .into_iter()
        .filter(|ct| {
            image.is_empty()
                || ct.image.as_ref().is_some_and(|i| i.image.contains(image))
                || ct.image_ref.contains(image)
        })
        .filter(|ct| {
            ct.metadata
                .as_ref()
                .is_some_and(|m| name.as_ref().is_none_or(|re| re.is_match(&m.name)))
        })
        .collect();
    list.sort_by_key(|x| std::cmp::Reverse(x.created_at));
    let mut n = list.len();
    if f.latest {
        n = 1;
    }
    if let Some(last) = f.last.filter(|n| *n > 0) {
        n = last;
    }
    list.truncate(n);
    Ok(list)
}

fn state(s: cri::ContainerState) -> cri::ContainerStateValue {
    cri::ContainerStateValue { state: s as i32 }
}

pub fn container_state_name(s: i32) -> &'static str {
    match cri::ContainerState::try_from(s) {
        Ok(cri::ContainerState::ContainerCreated) => "Created",
        Ok(cri::ContainerState::ContainerRunning) => "Running",
        Ok(cri::ContainerState::ContainerExited) => "Exited",
        _ => "Unknown",
    }
}
