//! kata-cr-task: the Task API calls of containerd that the end-to-end suites
//! need and that neither ctr (2.1 has no `tasks update`, and its `tasks
//! checkpoint` always sends `open_tcp: false`) nor CRI can make, as
//! containerd's Go client makes them:
//!
//! - `update ID --memory-limit BYTES`: `Tasks.Update` with a runtime-spec
//!   `LinuxResources` (what `ctr t update --memory-limit` did; CRI's
//!   UpdateContainerResources ends in the same RPC);
//! - `checkpoint ID --image-path DIR [--open-tcp] [--exit]`: `Tasks.Checkpoint`
//!   with runc's `CheckpointOptions`; containerd hands them to the shim and
//!   the image set lands in DIR.
//!
//! Exit status 0 when containerd accepted the call; 1 with its gRPC status
//! (code and message) on stderr otherwise; 2 for a usage error.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use containerd_client::services::v1::tasks_client::TasksClient;
use containerd_client::services::v1::{CheckpointTaskRequest, UpdateTaskRequest};
use containerd_client::tonic::Request;
use prost_types::Any;

#[derive(Parser)]
#[command(
    name = "kata-cr-task",
    about = "containerd Task API calls ctr cannot make"
)]
struct Cli {
    /// containerd's socket.
    #[arg(
        long,
        env = "CONTAINERD_ADDRESS",
        default_value = "/run/containerd/containerd.sock"
    )]
    address: String,
    /// containerd namespace.
    #[arg(
        long,
        short = 'n',
        env = "CONTAINERD_NAMESPACE",
        default_value = "default"
    )]
    namespace: String,
    #[command(subcommand)]
    call: Call,
}

#[derive(Subcommand)]
enum Call {
    /// Tasks.Update: set the task's memory limit.
    Update {
        /// Container (task) id.
        id: String,
        /// New memory limit in bytes.
        #[arg(long)]
        memory_limit: i64,
    },
    /// Tasks.Checkpoint with runc's CheckpointOptions.
    Checkpoint {
        /// Container (task) id.
        id: String,
        /// Where the image set goes (CheckpointOptions.image_path).
        #[arg(long)]
        image_path: String,
        /// Dump established TCP connections (CheckpointOptions.open_tcp).
        #[arg(long)]
        open_tcp: bool,
        /// Stop the task after the dump (CheckpointOptions.exit).
        #[arg(long)]
        exit: bool,
    },
}

/// runc's checkpoint options (`containerd.runc.v1.CheckpointOptions`,
/// containerd's `api/types/runc/options/oci.proto`), as the Go client packs
/// them into `CheckpointTaskRequest.options`.
#[derive(Clone, PartialEq, prost::Message)]
struct CheckpointOptions {
    #[prost(bool, tag = "1")]
    exit: bool,
    #[prost(bool, tag = "2")]
    open_tcp: bool,
    #[prost(bool, tag = "3")]
    external_unix_sockets: bool,
    #[prost(bool, tag = "4")]
    terminal: bool,
    #[prost(bool, tag = "5")]
    file_locks: bool,
    #[prost(string, repeated, tag = "6")]
    empty_namespaces: Vec<String>,
    #[prost(string, tag = "7")]
    cgroups_mode: String,
    #[prost(string, tag = "8")]
    image_path: String,
    #[prost(string, tag = "9")]
    work_path: String,
}

/// The type URL containerd's typeurl registry gives runc's options.
const CHECKPOINT_OPTIONS_URL: &str = "containerd.runc.v1.CheckpointOptions";
/// The type URL of a runtime-spec `LinuxResources`, which typeurl encodes as JSON.
const LINUX_RESOURCES_URL: &str =
    "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources";

/// `Tasks.Update`'s resources for a memory limit.
fn memory_resources(limit: i64) -> Any {
    Any {
        type_url: LINUX_RESOURCES_URL.into(),
        value: serde_json::json!({"memory": {"limit": limit}})
            .to_string()
            .into_bytes(),
    }
}

fn checkpoint_options(image_path: &str, open_tcp: bool, exit: bool) -> Any {
    let opts = CheckpointOptions {
        exit,
        open_tcp,
        image_path: image_path.into(),
        ..Default::default()
    };
    Any {
        type_url: CHECKPOINT_OPTIONS_URL.into(),
        value: prost::Message::encode_to_vec(&opts),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kata-cr-task: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(call(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kata-cr-task: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn call(cli: Cli) -> Result<(), String> {
    let channel = containerd_client::connect(&cli.address)
        .await
        .map_err(|e| format!("connect {}: {e}", cli.address))?;
    let mut tasks = TasksClient::new(channel);
    let ns = cli
        .namespace
        .parse()
        .map_err(|e| format!("namespace {:?}: {e}", cli.namespace))?;
    let status = |what: String| {
        move |s: containerd_client::tonic::Status| {
            format!("{what}: {:?}: {}", s.code(), s.message())
        }
    };
    match cli.call {
        Call::Update { id, memory_limit } => {
            let mut req = Request::new(UpdateTaskRequest {
                container_id: id.clone(),
                resources: Some(memory_resources(memory_limit)),
                ..Default::default()
            });
            req.metadata_mut().insert("containerd-namespace", ns);
            tasks
                .update(req)
                .await
                .map_err(status(format!("Tasks.Update of {id}")))?;
        }
        Call::Checkpoint {
            id,
            image_path,
            open_tcp,
            exit,
        } => {
            let mut req = Request::new(CheckpointTaskRequest {
                container_id: id.clone(),
                options: Some(checkpoint_options(&image_path, open_tcp, exit)),
                ..Default::default()
            });
            req.metadata_mut().insert("containerd-namespace", ns);
            tasks
                .checkpoint(req)
                .await
                .map_err(status(format!("Tasks.Checkpoint of {id}")))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_options_encode_as_runc_reads_them() {
        // exit (1) true, open_tcp (2) true, image_path (8) "/d": the bytes
        // the Go client sends for the same options.
        let any = checkpoint_options("/d", true, true);
        assert_eq!(any.type_url, "containerd.runc.v1.CheckpointOptions");
        assert_eq!(any.value, b"\x08\x01\x10\x01\x42\x02/d");
        let any = checkpoint_options("/d", false, false);
        assert_eq!(any.value, b"\x42\x02/d");
    }

    #[test]
    fn memory_limit_is_a_json_linux_resources() {
        let any = memory_resources(67108864);
        assert_eq!(
            any.type_url,
            "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources"
        );
        assert_eq!(any.value, br#"{"memory":{"limit":67108864}}"#);
    }

    #[test]
    fn arguments() {
        let cli = Cli::try_parse_from([
            "kata-cr-task",
            "--namespace",
            "k8s.io",
            "checkpoint",
            "c1",
            "--image-path",
            "/x",
            "--open-tcp",
        ])
        .unwrap();
        assert_eq!(cli.namespace, "k8s.io");
        assert!(matches!(
            cli.call,
            Call::Checkpoint { ref id, ref image_path, open_tcp: true, exit: false }
                if id == "c1" && image_path == "/x"
        ));
        assert!(Cli::try_parse_from(["kata-cr-task", "update", "c1"]).is_err());
    }
}
