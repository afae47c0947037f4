#!/usr/bin/env python3
"""bundle.py DIR ID SCRIPT: writes DIR/config.json, the OCI spec of a test
container as containerd would hand it to Kata (runc's defaults: pid, ipc,
uts and mount namespaces, the VM's network, runc's default capabilities),
running `sh -c SCRIPT` on the rootfs at DIR/rootfs. The proxy's own rewrite
(`containerd-shim-kata-cr-v2 rewrite-bundle`) then makes kata-cr-init its
PID 1, as it does before the Kata shim sees a bundle."""
import json
import sys

d, cid, script = sys.argv[1:4]
caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
spec = {
    "ociVersion": "1.2.0",
    "process": {
        "terminal": False,
        "user": {"uid": 0, "gid": 0},
        "args": ["sh", "-c", script],
        "env": ["PATH=/bin:/usr/bin:/sbin:/usr/sbin"],
        "cwd": "/",
        "capabilities": {k: caps for k in ("bounding", "effective", "permitted")},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": True,
    },
    "root": {"path": "rootfs", "readonly": False},
    "hostname": cid,
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
    ],
    "linux": {
        "namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount")],
        "cgroupsPath": "/kata-cr-vm/" + cid,
        "maskedPaths": ["/proc/kcore", "/proc/keys", "/sys/firmware"],
        "readonlyPaths": ["/proc/sys", "/proc/sysrq-trigger"],
    },
}
with open(f"{d}/config.json", "w") as f:
    json.dump(spec, f, indent=1)
