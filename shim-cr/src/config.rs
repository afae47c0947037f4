//! kata-cr's own configuration file (TOML). Every setting is documented in
//! `configs/kata-cr.toml`, which is also what `make install` places.
//!
//! Where it comes from, first match wins:
//! 1. `$KATA_CR_CONFIG`;
//! 2. the runtime options' `ConfigPath` (containerd `options = { ConfigPath = ... }`);
//! 3. `/etc/kata-cr/config.toml`, if it exists;
//! 4. the built-in defaults.
//!
//! A path named by 1 or 2 must exist; a file that does not parse is an error
//! that names it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub const DEFAULT_PATH: &str = "/etc/kata-cr/config.toml";
pub const ENV_PATH: &str = "KATA_CR_CONFIG";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the configuration was read from ("" for built-in defaults).
    #[serde(skip)]
    pub source: String,
    #[serde(default)]
    pub inner: Inner,
    #[serde(default)]
    pub init: Init,
    #[serde(default)]
    pub agent: Agent,
    #[serde(default)]
    pub criu: Criu,
}

/// What checkpoints ask of criu when the request does not, the role runc's
/// `/etc/criu/runc.conf` plays for runc: each setting is OR-ed with the
/// request's `CheckpointOptions` (CRI sends none; ctr sends all false). The
/// defaults are runc's: a container holding an established TCP connection, a
/// connection to a unix socket outside it or a file lock fails its
/// checkpoint, naming the option, unless asked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Criu {
    /// criu --tcp-established: dump established TCP connections.
    #[serde(default)]
    pub tcp_established: bool,
    /// criu --ext-unix-sk: dump connections to unix sockets outside the container.
    #[serde(default)]
    pub ext_unix_sk: bool,
    /// criu --file-locks: dump file locks.
    #[serde(default)]
    pub file_locks: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Init {
    /// kata-cr-init on the host, bind-mounted read-only into every container.
    /// Empty: `kata-cr-init` beside containerd-shim-kata-cr-v2.
    #[serde(default)]
    pub binary: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentMode {
    /// kata-cr-agent inside the Kata guest, reached through the Kata shim.
    Kata,
    /// kata-cr-agent on this host, on a unix socket (runc as inner shim).
    Host,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agent {
    #[serde(default = "default_agent_mode")]
    pub mode: AgentMode,
    /// Host mode: the agent's unix socket.
    #[serde(default = "default_agent_socket")]
    pub socket: String,
    /// Upper bound for one checkpoint or restore, in seconds.
    #[serde(default = "default_agent_timeout")]
    pub timeout_secs: u64,
    /// Kata mode, for sandboxes whose agent URL is not a vsock (Kata's
    /// remote hypervisor: `remote://`): the sandbox's hybrid-vsock socket,
    /// `{sandbox}` standing for the sandbox id. Empty: unset.
    #[serde(default)]
    pub remote_hybrid_vsock: String,
}

fn default_agent_mode() -> AgentMode {
    AgentMode::Kata
}
fn default_agent_socket() -> String {
    "/run/kata-cr/agent.sock".into()
}
fn default_agent_timeout() -> u64 {
    300
}

impl Default for Agent {
    fn default() -> Self {
        Agent {
            mode: default_agent_mode(),
            socket: default_agent_socket(),
            timeout_secs: default_agent_timeout(),
            remote_hybrid_vsock: String::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inner {
    /// The shim kata-cr fronts: a name looked up on PATH, or an absolute path.
    #[serde(default = "default_inner_binary")]
    pub binary: String,
    /// Handed to the inner shim as the runtime options' ConfigPath in place of
    /// kata-cr's own (Kata's configuration.toml). Empty: no ConfigPath.
    #[serde(default)]
    pub config_path: String,
}

fn default_inner_binary() -> String {
    "containerd-shim-kata-v2".into()
}

impl Default for Inner {
    fn default() -> Self {
        Inner {
            binary: default_inner_binary(),
            config_path: String::new(),
        }
    }
}

impl Config {
    pub fn parse(text: &str, source: &str) -> Result<Self> {
        let mut c: Config = toml::from_str(text).map_err(|e| Error::Config {
            path: source.to_string(),
            reason: e.to_string(),
        })?;
        c.source = source.to_string();
        if c.inner.binary.trim().is_empty() {
            return Err(Error::Config {
                path: source.to_string(),
                reason: "inner.binary is empty".into(),
            });
        }
        let remote = c.agent.remote_hybrid_vsock.trim();
        if !remote.is_empty() && !remote.starts_with('/') {
            return Err(Error::Config {
                path: source.to_string(),
                reason: format!(
                    "agent.remote_hybrid_vsock {remote:?} is not an absolute path (a unix socket, {{sandbox}} standing for the sandbox id)"
                ),
            });
        }
        Ok(c)
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Resolve as documented above. `options_path` is the runtime options'
    /// ConfigPath, if containerd sent one.
    pub fn resolve(env_path: Option<&str>, options_path: Option<&str>) -> Result<Self> {
        if let Some(p) = env_path.filter(|p| !p.is_empty()) {
            return Self::load(Path::new(p));
        }
        if let Some(p) = options_path.filter(|p| !p.is_empty()) {
            return Self::load(Path::new(p));
        }
        if Path::new(DEFAULT_PATH).exists() {
            return Self::load(Path::new(DEFAULT_PATH));
        }
        Ok(Config::default())
    }

    /// The inner shim's binary as an absolute path, found like containerd
    /// finds shims: PATH, then beside our own executable.
    pub fn inner_binary_path(&self) -> Result<PathBuf> {
        let name = &self.inner.binary;
        let missing = |reason: String| Error::InnerShim {
            binary: name.clone(),
            reason,
        };
        if name.contains('/') {
            let p = PathBuf::from(name);
            return if is_executable(&p) {
                Ok(p)
            } else {
                Err(missing(format!(
                    "not an executable file (configured in {})",
                    self.source_name()
                )))
            };
        }
        let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect())
            .unwrap_or_default();
        if let Some(dir) = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(Path::to_path_buf))
        {
            dirs.push(dir);
        }
        dirs.into_iter()
            .map(|d| d.join(name))
            .find(|p| is_executable(p))
            .ok_or_else(|| {
                missing(format!(
                    "not found on PATH or beside kata-cr (configured in {})",
                    self.source_name()
                ))
            })
    }

    /// The host path of kata-cr-init.
    pub fn init_binary_path(&self) -> Result<PathBuf> {
        let p = if self.init.binary.is_empty() {
            std::env::current_exe()
                .map_err(|e| Error::io("locate own executable", e))?
                .with_file_name("kata-cr-init")
        } else {
            PathBuf::from(&self.init.binary)
        };
        if is_executable(&p) {
            Ok(p)
        } else {
            Err(Error::InitMissing {
                path: p,
                configured_in: self.source_name().to_string(),
            })
        }
    }

    fn source_name(&self) -> &str {
        if self.source.is_empty() {
            "built-in defaults"
        } else {
            &self.source
        }
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_front_the_kata_shim() {
        let c = Config::parse("", "/x.toml").unwrap();
        assert_eq!(c.inner.binary, "containerd-shim-kata-v2");
        assert_eq!(c.source, "/x.toml");
    }

    #[test]
    fn agent_and_init_settings() {
        let c = Config::parse(
            "[agent]\nmode = \"host\"\nsocket = \"/s\"\n[init]\nbinary = \"/bin/true\"\n",
            "/c.toml",
        )
        .unwrap();
        assert_eq!(c.agent.mode, AgentMode::Host);
        assert_eq!(c.agent.socket, "/s");
        assert_eq!(c.agent.timeout_secs, 300);
        assert_eq!(c.init_binary_path().unwrap(), PathBuf::from("/bin/true"));
        let d = Config::parse("", "/c.toml").unwrap();
        assert_eq!(d.agent.mode, AgentMode::Kata);
        assert_eq!(
            d.criu,
            Criu::default(),
            "runc's defaults: nothing beyond the request"
        );
        let c = Config::parse("[criu]\ntcp_established = true\n", "/c.toml").unwrap();
        assert!(c.criu.tcp_established && !c.criu.file_locks && !c.criu.ext_unix_sk);
        let e = Config::parse("[criu]\ntcp_establish = true\n", "/c.toml").unwrap_err();
        assert!(e.to_string().contains("tcp_establish"), "{e}");
        assert_eq!(d.agent.remote_hybrid_vsock, "", "unset by default");
        let c = Config::parse(
            "[agent]\nremote_hybrid_vsock = \"/run/rh/{sandbox}/vm.vsock\"\n",
            "/c.toml",
        )
        .unwrap();
        assert_eq!(c.agent.remote_hybrid_vsock, "/run/rh/{sandbox}/vm.vsock");
        let e =
            Config::parse("[agent]\nremote_hybrid_vsock = \"vm.vsock\"\n", "/c.toml").unwrap_err();
        assert!(e.to_string().contains("not an absolute path"), "{e}");
        let e = Config::parse("[agent]\nmode = \"vm\"\n", "/c.toml").unwrap_err();
        assert!(e.to_string().contains("/c.toml"));
        let e = Config::parse("[init]\nbinary = \"/nonexistent/init\"\n", "/c.toml")
            .unwrap()
            .init_binary_path()
            .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/init"));
    }

    #[test]
    fn the_documented_configs_parse() {
        for (name, text) in [
            (
                "configs/kata-cr.toml",
                include_str!("../../configs/kata-cr.toml"),
            ),
            (
                "integration/bed/kata/kata-cr.toml",
                include_str!("../../integration/bed/kata/kata-cr.toml"),
            ),
        ] {
            Config::parse(text, name).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn bad_files_are_named() {
        let e = Config::parse("[inner]\nbinnary = 1\n", "/etc/kata-cr/bad.toml").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("/etc/kata-cr/bad.toml"), "{msg}");
        assert!(msg.contains("binnary"), "{msg}");
        let e = Config::parse("[inner]\nbinary = \"\"\n", "/c.toml").unwrap_err();
        assert!(e.to_string().contains("inner.binary"));
    }

    #[test]
    fn explicit_missing_path_is_an_error_naming_it() {
        let e = Config::resolve(Some("/nonexistent/kata-cr.toml"), None).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/kata-cr.toml"));
        let e = Config::resolve(None, Some("/nonexistent/opt.toml")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/opt.toml"));
    }

    #[test]
    fn env_wins_over_options() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[inner]\nbinary = \"/bin/true\"\n").unwrap();
        let c = Config::resolve(p.to_str(), Some("/nonexistent")).unwrap();
        assert_eq!(c.inner.binary, "/bin/true");
        assert_eq!(c.inner_binary_path().unwrap(), PathBuf::from("/bin/true"));
    }

    #[test]
    fn missing_inner_binary_is_named() {
        let c =
            Config::parse("[inner]\nbinary = \"containerd-shim-nope-v9\"\n", "/c.toml").unwrap();
        let e = c.inner_binary_path().unwrap_err().to_string();
        assert!(
            e.contains("containerd-shim-nope-v9") && e.contains("/c.toml"),
            "{e}"
        );
    }
}
