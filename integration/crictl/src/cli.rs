//! crictl's command line, with clap: the global options and one `Args` struct per
//! command, then [`normalize`] for the conventions of crictl's parser (urfave/cli v2
//! on Go's `flag` package) that clap lacks.
//!
//! Positional arguments are optional to clap: where crictl answers a missing one with
//! the command's help and exit status 0, the command does the same
//! ([`crate::commands::help`]).

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "crictl",
    about = "client for CRI (kata-cr's crictl: crictl 1.36's syntax and behaviour for its commands)",
    disable_version_flag = true
)]
pub struct Cli {
    /// Endpoint of the CRI container runtime service.
    #[arg(short = 'r', long, env = "CONTAINER_RUNTIME_ENDPOINT")]
    pub runtime_endpoint: Option<String>,
    /// Endpoint of the CRI image manager service (default: the runtime endpoint).
    #[arg(short = 'i', long, env = "IMAGE_SERVICE_ENDPOINT")]
    pub image_endpoint: Option<String>,
    /// Timeout of connecting to the server and of each call (e.g. 2s, 20s); default 2s.
    #[arg(short = 't', long, value_parser = crate::duration::parse)]
    pub timeout: Option<std::time::Duration>,
    /// Location of the client config file.
    #[arg(short = 'c', long, env = "CRI_CONFIG_FILE")]
    pub config: Option<String>,
    /// Enable debug mode (a few debug lines on stderr).
    #[arg(short = 'D', long)]
    pub debug: bool,
    /// Print the version.
    #[arg(short = 'v', long)]
    pub version: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a new pod
    Runp(Runp),
    /// Create a new container
    Create(Create),
    /// Start one or more created containers
    Start(Ids),
    /// Stop one or more running containers
    Stop(Stop),
    /// Remove one or more containers
    Rm(Rm),
    /// Stop one or more running pods
    Stopp(Ids),
    /// Remove one or more pods
    Rmp(Rmp),
    /// List containers
    Ps(Ps),
    /// List pods
    Pods(Pods),
    /// Display the status of one or more containers
    Inspect(Inspect),
    /// Display the status of one or more pods
    Inspectp(Inspect),
    /// Run a command in a running container
    Exec(Exec),
    /// Checkpoint one or more running containers
    Checkpoint(Checkpoint),
    /// Pull an image from a registry
    Pull(Pull),
    /// List images
    #[command(visible_aliases = ["image", "img"])]
    Images(Images),
    /// Remove one or more images
    Rmi(Rmi),
    /// Fetch the logs of a container
    Logs(Logs),
    /// List container(s) resource usage statistics
    Stats(Stats),
    /// Display runtime version information
    Version,
    /// Display information of the container runtime
    Info(Info),
}

#[derive(Args, Debug)]
pub struct Ids {
    pub ids: Vec<String>,
}

#[derive(Args, Debug)]
pub struct Runp {
    /// Runtime handler to use.
    #[arg(short = 'r', long)]
    pub runtime: Option<String>,
    /// Time to wait for the request to complete before cancelling it.
    #[arg(short = 'T', long, value_parser = crate::duration::parse)]
    pub cancel_timeout: Option<std::time::Duration>,
    pub args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PullAuth {
    /// Use USERNAME[:PASSWORD] for accessing the registry.
    #[arg(long, env = "CRICTL_CREDS")]
    pub creds: Option<String>,
    /// Use AUTH_STRING (base64 USERNAME[:PASSWORD]) for accessing the registry.
    #[arg(long, env = "CRICTL_AUTH")]
    pub auth: Option<String>,
    /// Use USERNAME for accessing the registry; the password is read from stdin.
    #[arg(short = 'u', long)]
    pub username: Option<String>,
}

#[derive(Args, Debug)]
pub struct Create {
    /// Do not pull the image (overrides pull-image-on-create in the config file).
    #[arg(long)]
    pub no_pull: bool,
    /// Pull the image on container creation.
    #[arg(long)]
    pub with_pull: bool,
    #[command(flatten)]
    pub auth: PullAuth,
    /// Time to wait for the create request to complete before cancelling it.
    #[arg(short = 'T', long, value_parser = crate::duration::parse)]
    pub cancel_timeout: Option<std::time::Duration>,
    /// Maximum time for pulling the image (0s: no limit).
    #[arg(long = "pull-timeout", visible_alias = "pt", env = "CRICTL_PULL_TIMEOUT", value_parser = crate::duration::parse)]
    pub pull_timeout: Option<std::time::Duration>,
    /// POD container-config.[json|yaml] pod-config.[json|yaml]
    pub args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct Stop {
    /// Seconds to wait to kill the container after a graceful stop is requested.
    #[arg(short = 't', long, default_value_t = 0)]
    pub timeout: i64,
    /// Stop all running containers.
    #[arg(short = 'a', long)]
    pub all: bool,
    pub ids: Vec<String>,
}

#[derive(Args, Debug)]
pub struct Rm {
    /// Force removal of the container, disregarding if running.
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Preserve the container log file and its rotations.
    #[arg(short = 'k', long)]
    pub keep_logs: bool,
    /// Remove all containers.
    #[arg(short = 'a', long)]
    pub all: bool,
    pub ids: Vec<String>,
}

#[derive(Args, Debug)]
pub struct Rmp {
    /// Force removal of the pod sandbox, disregarding if running.
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Remove all pods.
    #[arg(short = 'a', long)]
    pub all: bool,
    pub ids: Vec<String>,
}

/// The container filters of `ps`, `exec` and `inspect`.
#[derive(Args, Debug, Default)]
pub struct ContainerFilter {
    /// Filter by container name regular expression pattern.
    #[arg(long)]
    pub name: Option<String>,
    /// Filter by pod id.
    #[arg(short = 'p', long)]
    pub pod: Option<String>,
    /// Filter by container image.
    #[arg(long)]
    pub image: Option<String>,
    /// Filter by key=value label.
    #[arg(long)]
    pub label: Vec<String>,
    /// Show the most recently created container (includes all states).
    #[arg(short = 'l', long)]
    pub latest: bool,
    /// Show last n recently created containers (includes all states); 0: unlimited.
    #[arg(short = 'n', long)]
    pub last: Option<usize>,
}

impl ContainerFilter {
    /// Whether any filter flag was given (crictl: `c.IsSet(...)`).
    pub fn is_set(&self) -> bool {
        self.name.is_some()
            || self.pod.is_some()
            || self.image.is_some()
            || !self.label.is_empty()
            || self.latest
            || self.last.is_some()
    }
}

#[derive(Args, Debug)]
pub struct Ps {
    #[command(flatten)]
    pub filter: ContainerFilter,
    /// Filter by container state.
    #[arg(short = 's', long)]
    pub state: Option<String>,
    /// Show all containers.
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Filter by container id.
    #[arg(long)]
    pub id: Option<String>,
    /// Only display container IDs.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Output format, one of: json|yaml|table.
    #[arg(short = 'o', long, default_value = "table")]
    pub output: String,
    /// Show output without truncating the ID.
    #[arg(long)]
    pub no_trunc: bool,
    /// Show verbose information for containers (accepted).
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// Resolve the image name (accepted).
    #[arg(short = 'r', long)]
    pub resolve_image_name: bool,
}

#[derive(Args, Debug)]
pub struct Pods {
    /// Filter by pod name regular expression pattern.
    #[arg(long)]
    pub name: Option<String>,
    /// Filter by pod namespace regular expression pattern.
    #[arg(long)]
    pub namespace: Option<String>,
    /// Filter by pod state.
    #[arg(short = 's', long)]
    pub state: Option<String>,
    /// Filter by key=value label.
    #[arg(long)]
    pub label: Vec<String>,
    /// Filter by pod id.
    #[arg(long)]
    pub id: Option<String>,
    /// Only display pod IDs.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Output format, one of: json|yaml|table.
    #[arg(short = 'o', long, default_value = "table")]
    pub output: String,
    /// Show output without truncating the ID.
    #[arg(long)]
    pub no_trunc: bool,
    /// Show the most recently created pod.
    #[arg(short = 'l', long)]
    pub latest: bool,
    /// Show last n recently created pods; 0: unlimited.
    #[arg(short = 'n', long)]
    pub last: Option<usize>,
    /// Show verbose information for pods (accepted).
    #[arg(short = 'v', long)]
    pub verbose: bool,
}

#[derive(Args, Debug)]
pub struct Inspect {
    /// Output format, one of: json|yaml|go-template|table.
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// Do not show verbose information.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// The template string, used with -o go-template.
    #[arg(long)]
    pub template: Option<String>,
    pub ids: Vec<String>,
}

#[derive(Args, Debug)]
pub struct Exec {
    /// Run the command synchronously (ExecSync).
    #[arg(short = 's', long)]
    pub sync: bool,
    /// Timeout in seconds.
    #[arg(long, default_value_t = 0)]
    pub timeout: i64,
    /// Allocate a pseudo-TTY.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Keep STDIN open.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Transport protocol to use, one of: spdy|websocket.
    #[arg(short = 'r', long, default_value = "spdy")]
    pub transport: String,
    #[command(flatten)]
    pub filter: ContainerFilter,
    /// Exec command for all containers matching this container state filter.
    #[arg(long)]
    pub state: Option<String>,
    /// Do not print the container ID if multiple containers are selected.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Ignore errors during command execution.
    #[arg(short = 'e', long)]
    pub ignore_errors: bool,
    /// Run the command in parallel if multiple containers are selected.
    #[arg(short = 'x', long)]
    pub parallel: bool,
    /// [CONTAINER-ID] COMMAND [ARG...]
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct Checkpoint {
    /// Name of the tar archive (/path/to/checkpoint.tar) the checkpoint is exported to.
    #[arg(short = 'e', long)]
    pub export: Option<String>,
    pub ids: Vec<String>,
}

#[derive(Args, Debug)]
pub struct Pull {
    #[command(flatten)]
    pub auth: PullAuth,
    /// Use a pod-config.[json|yaml] for the pull.
    #[arg(long)]
    pub pod_config: Option<String>,
    /// key=value annotation to be set on the pulled image.
    #[arg(short = 'a', long)]
    pub annotation: Vec<String>,
    /// Maximum time for pulling the image (0s: no limit).
    #[arg(long = "pull-timeout", visible_alias = "pt", env = "CRICTL_PULL_TIMEOUT", value_parser = crate::duration::parse)]
    pub pull_timeout: Option<std::time::Duration>,
    pub args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct Images {
    /// Only show image IDs.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Output format, one of: json|yaml|table.
    #[arg(short = 'o', long, default_value = "table")]
    pub output: String,
    /// Show output without truncating the ID.
    #[arg(long)]
    pub no_trunc: bool,
    /// Show digests (accepted).
    #[arg(long)]
    pub digests: bool,
    /// Show verbose info for images (accepted).
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// Show whether the image is pinned (accepted).
    #[arg(long)]
    pub pinned: bool,
    pub args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct Rmi {
    /// Remove all images.
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Remove all unused images.
    #[arg(short = 'q', long)]
    pub prune: bool,
    pub ids: Vec<String>,
}

#[derive(Args, Debug)]
pub struct Logs {
    /// Follow log output.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Number of lines to show from the end of the logs (-1: all).
    #[arg(long, default_value_t = -1)]
    pub tail: i64,
    /// Show timestamps.
    #[arg(short = 't', long)]
    pub timestamps: bool,
    /// Print the logs of the previous instance (accepted).
    #[arg(short = 'p', long)]
    pub previous: bool,
    /// Show logs since a timestamp (accepted).
    #[arg(long)]
    pub since: Option<String>,
    /// Maximum bytes of logs to return (accepted).
    #[arg(long)]
    pub limit_bytes: Option<i64>,
    pub ids: Vec<String>,
}

#[derive(Args, Debug)]
pub struct Stats {
    /// Show all containers (default shows just running).
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Filter by container id.
    #[arg(long)]
    pub id: Option<String>,
    /// Filter by pod id.
    #[arg(short = 'p', long)]
    pub pod: Option<String>,
    /// Filter by key=value label.
    #[arg(long)]
    pub label: Vec<String>,
    /// Output format, one of: json|yaml|table.
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// Sample duration for CPU usage in seconds.
    #[arg(short = 's', long, default_value_t = 1)]
    pub seconds: u64,
    pub ids: Vec<String>,
}

#[derive(Args, Debug)]
pub struct Info {
    /// Output format, one of: json|yaml|go-template.
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// The template string, used with -o go-template.
    #[arg(long)]
    pub template: Option<String>,
    /// Do not show verbose information (accepted).
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// Rewrites `argv` (without the program name) into clap's conventions, following Go's
/// `flag` package as crictl's parser does:
///
/// - a long name with one dash (`-timeout 5`, `-export=f`, `-pt 1m`) is the long
///   option (`--timeout`); a single dash followed by letters that name no long option
///   stays a cluster of short options (`-it`, `-aq`);
/// - a boolean option with a value (`--force=false`, `-q=true`) is dropped when false
///   and kept bare when true.
///
/// The names are looked up in `cmd` (the top-level command first, then the
/// subcommand named by the first argument that is not an option).
pub fn normalize(argv: &[String], cmd: &clap::Command) -> Vec<String> {
    let mut out = Vec::with_capacity(argv.len());
    let mut level = cmd;
    let mut i = 0;
    while i < argv.len() {
        let a = &argv[i];
        i += 1;
        if a == "--" {
            out.extend(argv[i - 1..].iter().cloned());
            break;
        }
        let Some(body) = a.strip_prefix('-').filter(|b| !b.is_empty()) else {
            // A positional: the subcommand, or an argument of it.
            if std::ptr::eq(level, cmd) {
                if let Some(sub) = cmd.find_subcommand(a) {
                    level = sub;
                }
            } else if takes_trailing(level) {
                // exec: everything after the first positional is the command's.
                out.push(a.clone());
                out.extend(argv[i..].iter().cloned());
                break;
            }
            out.push(a.clone());
            continue;
        };
        let body = body.strip_prefix('-').unwrap_or(body);
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        let long = level.get_arguments().find(|arg| {
            arg.get_long() == Some(name)
                || arg.get_all_aliases().is_some_and(|al| al.contains(&name))
        });
        // `-k=true`: a short boolean with a value, as Go reads it
        let mut chars = name.chars();
        let short = match (chars.next(), chars.next(), value) {
            (Some(ch), None, Some(_)) => level
                .get_arguments()
                .find(|arg| arg.get_short() == Some(ch))
                .filter(|arg| matches!(arg.get_action(), clap::ArgAction::SetTrue)),
            _ => None,
        };
        let (long, name) = match (long, short) {
            (Some(l), _) => (Some(l), name.to_string()),
            (None, Some(s)) => (Some(s), s.get_long().unwrap_or(name).to_string()),
            (None, None) => (None, name.to_string()),
        };
        let Some(arg) = long else {
            out.push(a.clone());
            continue;
        };
        let flag = matches!(
            arg.get_action(),
            clap::ArgAction::SetTrue | clap::ArgAction::SetFalse
        );
        match (flag, value) {
            (true, Some(v)) => {
                if v.eq_ignore_ascii_case("true") || v == "1" || v == "t" {
                    out.push(format!("--{name}"));
                } else if !(v.eq_ignore_ascii_case("false") || v == "0" || v == "f") {
                    out.push(a.clone()); // let clap report it
                }
            }
            (_, Some(v)) => out.push(format!("--{name}={v}")),
            (_, None) => out.push(format!("--{name}")),
        }
    }
    out
}

fn takes_trailing(cmd: &clap::Command) -> bool {
    cmd.get_arguments().any(|a| a.is_trailing_var_arg_set())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Cli {
        let argv: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let argv = normalize(&argv, &Cli::command());
        Cli::try_parse_from(std::iter::once("crictl".to_string()).chain(argv)).unwrap()
    }

    #[test]
    fn go_flag_forms() {
        let cli = parse(&[
            "-timeout",
            "5s",
            "-r=unix:///x.sock",
            "stop",
            "-t",
            "3",
            "a",
            "b",
        ]);
        assert_eq!(cli.timeout, Some(std::time::Duration::from_secs(5)));
        assert_eq!(cli.runtime_endpoint.as_deref(), Some("unix:///x.sock"));
        let Some(Command::Stop(s)) = cli.command else {
            panic!()
        };
        assert_eq!(
            (s.timeout, s.ids),
            (3, vec!["a".to_string(), "b".to_string()])
        );
        let cli = parse(&["checkpoint", "-export=/t.tar", "c1"]);
        let Some(Command::Checkpoint(c)) = cli.command else {
            panic!()
        };
        assert_eq!(c.export.as_deref(), Some("/t.tar"));
        let cli = parse(&["rm", "--force=false", "-k=true", "c1"]);
        let Some(Command::Rm(r)) = cli.command else {
            panic!()
        };
        assert!(!r.force && r.keep_logs);
        let cli = parse(&["create", "-pt", "1m", "p", "c.json", "p.json"]);
        let Some(Command::Create(c)) = cli.command else {
            panic!()
        };
        assert_eq!(c.pull_timeout, Some(std::time::Duration::from_secs(60)));
    }

    #[test]
    fn short_clusters() {
        let cli = parse(&["ps", "-aq"]);
        let Some(Command::Ps(p)) = cli.command else {
            panic!()
        };
        assert!(p.all && p.quiet);
        let cli = parse(&["exec", "-it", "c1", "sh"]);
        let Some(Command::Exec(e)) = cli.command else {
            panic!()
        };
        assert!(e.interactive && e.tty);
    }

    #[test]
    fn exec_stops_at_the_container() {
        let cli = parse(&["exec", "-s", "c1", "ls", "-la", "--", "-t", "--timeout=3"]);
        let Some(Command::Exec(e)) = cli.command else {
            panic!()
        };
        assert!(e.sync && !e.tty);
        assert_eq!(e.timeout, 0);
        assert_eq!(e.args, ["c1", "ls", "-la", "--", "-t", "--timeout=3"]);
        // the global -i is the image endpoint; exec's is --interactive
        let cli = parse(&["-i", "unix:///img.sock", "exec", "-i", "c1", "cat"]);
        assert_eq!(cli.image_endpoint.as_deref(), Some("unix:///img.sock"));
        let Some(Command::Exec(e)) = cli.command else {
            panic!()
        };
        assert!(e.interactive);
    }

    #[test]
    fn aliases() {
        assert!(matches!(parse(&["img"]).command, Some(Command::Images(_))));
        assert!(matches!(parse(&["image", "-q"]).command, Some(Command::Images(i)) if i.quiet));
    }
}
