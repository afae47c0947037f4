//! Command line of `kata-cr-remote-hypervisor`.

use std::path::PathBuf;
use std::time::Duration;

pub const USAGE: &str = "\
usage: kata-cr-remote-hypervisor --kernel FILE --initrd FILE [options]

Serves Kata's remote hypervisor API (hypervisor.Hypervisor, ttrpc) on a unix
socket and boots, for each sandbox, a qemu TCG guest with a hybrid vsock
(vhost-device-vsock) and the sandbox's shared directory over virtio-fs
(virtiofsd, in the Kata shim's mount namespace). Each connection to the agent
socket CreateVM returns is carried to the guest's vsock port 1024.

  --listen PATH            the service's socket (default /run/peerpod/hypervisor.sock,
                           remote_hypervisor_socket in Kata's configuration-remote.toml)
  --kernel FILE            guest kernel
  --initrd FILE            guest initrd (the Kata agent as its init)
  --kernel-params STRING   guest kernel command line (default: console=ttyS0 panic=-1)
  --state-dir DIR          per-sandbox sockets and logs (default /run/kata-cr-remote-hypervisor)
  --shared-root DIR        where the Kata shim prepares each sandbox's mounts/ directory
                           (default /run/kata-containers/shared/sandboxes)
  --memory-mib N           guest memory; default: the sandbox's default_memory annotation
  --max-vcpus N            at most this many vCPUs per guest (default 1: TCG)
  --boot-timeout SECS      StartVM fails if the agent does not answer by then (default 120)
  --qemu PATH              default qemu-system-x86_64
  --vhost-device-vsock PATH
  --virtiofsd PATH         default: on PATH, then /usr/libexec/virtiofsd
";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub listen: PathBuf,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub kernel_params: String,
    pub state_dir: PathBuf,
    pub shared_root: PathBuf,
    pub memory_mib: Option<u32>,
    pub max_vcpus: u32,
    pub boot_timeout: Duration,
    pub qemu: PathBuf,
    pub vhost_device_vsock: PathBuf,
    pub virtiofsd: PathBuf,
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Mode {
    Help,
    Serve(Box<Options>),
}

pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Mode, String> {
    let mut listen = PathBuf::from("/run/peerpod/hypervisor.sock");
    let mut kernel = None;
    let mut initrd = None;
    let mut kernel_params = "console=ttyS0 panic=-1".to_string();
    let mut state_dir = PathBuf::from("/run/kata-cr-remote-hypervisor");
    let mut shared_root = PathBuf::from("/run/kata-containers/shared/sandboxes");
    let mut memory_mib = None;
    let mut max_vcpus = 1;
    let mut boot_timeout = Duration::from_secs(120);
    let mut qemu = PathBuf::from("qemu-system-x86_64");
    let mut vhost = PathBuf::from("vhost-device-vsock");
    let mut virtiofsd = None;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        if flag == "-h" || flag == "--help" {
            return Ok(Mode::Help);
        }
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        let number = |v: String| {
            v.parse::<u32>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{flag}: {v:?} is not a positive number"))
        };
        match flag.as_str() {
            "--listen" => listen = absolute(&flag, value()?)?,
            "--kernel" => kernel = Some(absolute(&flag, value()?)?),
            "--initrd" => initrd = Some(absolute(&flag, value()?)?),
            "--kernel-params" => kernel_params = value()?,
            "--state-dir" => state_dir = absolute(&flag, value()?)?,
            "--shared-root" => shared_root = absolute(&flag, value()?)?,
            "--memory-mib" => memory_mib = Some(number(value()?)?),
            "--max-vcpus" => max_vcpus = number(value()?)?,
            "--boot-timeout" => boot_timeout = Duration::from_secs(number(value()?)?.into()),
            "--qemu" => qemu = value()?.into(),
            "--vhost-device-vsock" => vhost = value()?.into(),
            "--virtiofsd" => virtiofsd = Some(value()?.into()),
            _ => return Err(format!("unknown argument {a:?}")),
        }
    }
    let kernel = kernel.ok_or("--kernel is required")?;
    let initrd = initrd.ok_or("--initrd is required")?;
    Ok(Mode::Serve(Box::new(Options {
        listen,
        kernel,
        initrd,
        kernel_params,
        state_dir,
        shared_root,
        memory_mib,
        max_vcpus,
        boot_timeout,
        qemu,
        vhost_device_vsock: vhost,
        // Debian installs virtiofsd outside PATH.
        virtiofsd: virtiofsd.unwrap_or_else(|| {
            if find_on_path("virtiofsd").is_none()
                && std::path::Path::new("/usr/libexec/virtiofsd").exists()
            {
                "/usr/libexec/virtiofsd".into()
            } else {
                "virtiofsd".into()
            }
        }),
    })))
}

fn absolute(flag: &str, v: String) -> Result<PathBuf, String> {
    let p = PathBuf::from(&v);
    if p.is_absolute() {
        Ok(p)
    } else {
        Err(format!("{flag}: {v:?} is not an absolute path"))
    }
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn defaults_follow_kata_remote_configuration() {
        let Mode::Serve(o) = parse(args("--kernel /k --initrd /i")).unwrap() else {
            panic!("not serve");
        };
        assert_eq!(o.listen, PathBuf::from("/run/peerpod/hypervisor.sock"));
        assert_eq!(
            o.shared_root,
            PathBuf::from("/run/kata-containers/shared/sandboxes")
        );
        assert_eq!(o.memory_mib, None);
        assert_eq!(o.max_vcpus, 1);
        assert_eq!(o.boot_timeout, Duration::from_secs(120));
    }

    #[test]
    fn values_inline_or_separate() {
        let Mode::Serve(o) = parse(args(
            "--kernel=/k --initrd /i --memory-mib=512 --boot-timeout 30 --listen /s.sock",
        ))
        .unwrap() else {
            panic!("not serve");
        };
        assert_eq!(o.memory_mib, Some(512));
        assert_eq!(o.boot_timeout, Duration::from_secs(30));
        assert_eq!(o.listen, PathBuf::from("/s.sock"));
        let Mode::Serve(o) = parse(vec![
            "--kernel".into(),
            "/k".into(),
            "--initrd".into(),
            "/i".into(),
            "--kernel-params".into(),
            "console=ttyS0 quiet".into(),
        ])
        .unwrap() else {
            panic!("not serve");
        };
        assert_eq!(o.kernel_params, "console=ttyS0 quiet");
    }

    #[test]
    fn bad_command_lines_say_what_is_wrong() {
        for (line, why) in [
            ("--initrd /i", "--kernel is required"),
            ("--kernel /k", "--initrd is required"),
            ("--kernel k --initrd /i", "not an absolute path"),
            (
                "--kernel /k --initrd /i --memory-mib 0",
                "not a positive number",
            ),
            (
                "--kernel /k --initrd /i --memory-mib lots",
                "not a positive number",
            ),
            ("--kernel /k --initrd /i --frobnicate", "unknown argument"),
            ("--kernel /k --initrd", "needs a value"),
        ] {
            let e = parse(args(line)).unwrap_err();
            assert!(e.contains(why), "{line}: {e}");
        }
        assert_eq!(parse(args("--help")).unwrap(), Mode::Help);
    }
}
