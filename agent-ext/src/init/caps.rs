//! Giving back what restore mode borrowed: capabilities beyond the
//! original spec's, and `setns` when the original seccomp profile forbade
//! it.

use libc::c_int;
use nix::errno::Errno;

/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const CAP_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// The effective, permitted and inheritable sets of the calling thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sets {
    /// Effective.
    pub effective: u64,
    /// Permitted.
    pub permitted: u64,
    /// Inheritable.
    pub inheritable: u64,
}

/// Reads the calling thread's sets.
pub fn get() -> Result<Sets, Errno> {
    let mut header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: the kernel writes two CapData for version 3. nix has no
    // capability calls.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    Errno::result(rc)?;
    let join = |lo: u32, hi: u32| u64::from(lo) | (u64::from(hi) << 32);
    Ok(Sets {
        effective: join(data[0].effective, data[1].effective),
        permitted: join(data[0].permitted, data[1].permitted),
        inheritable: join(data[0].inheritable, data[1].inheritable),
    })
}

fn set(sets: Sets) -> Result<(), Errno> {
    let mut header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let split = |v: u64| (v as u32, (v >> 32) as u32);
    let (e0, e1) = split(sets.effective);
    let (p0, p1) = split(sets.permitted);
    let (i0, i1) = split(sets.inheritable);
    let data = [
        CapData {
            effective: e0,
            permitted: p0,
            inheritable: i0,
        },
        CapData {
            effective: e1,
            permitted: p1,
            inheritable: i1,
        },
    ];
    // SAFETY: the kernel reads two CapData for version 3 (nix has no capset).
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    Errno::result(rc).map(|_| ())
}

/// Whether `cap` is in the bounding set; `None` past the kernel's last
/// capability.
fn in_bounding(cap: c_int) -> Option<bool> {
    // SAFETY: plain prctl taking integers (nix wraps no PR_CAPBSET_*).
    match unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap, 0, 0, 0) } {
        rc if rc < 0 => None,
        rc => Some(rc == 1),
    }
}

/// All five capability sets of a process, as masks (bit n = capability n).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Full {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
}

/// Sets the process's capabilities to `want`, each set cut to what the
/// process holds (see [`super::exec::target`]); checks the result.
/// Bounding first (needs `CAP_SETPCAP`, which capset may then drop), then
/// ambient lowered, capset, ambient raised.
pub fn set_exactly(want: Full) -> Result<(), (&'static str, Errno)> {
    let now = get().map_err(|e| ("capget", e))?;
    let t = super::exec::target(want, now);
    for cap in 0..64 {
        let bit = 1u64 << cap;
        let Some(bounded) = in_bounding(cap) else {
            break;
        };
        if bounded && t.bounding & bit == 0 {
            // SAFETY: plain prctl taking integers (nix wraps no PR_CAPBSET_*).
            if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) } != 0 {
                return Err((
                    "drop from the bounding set (needs CAP_SETPCAP)",
                    Errno::last(),
                ));
            }
        }
    }
    // SAFETY: plain prctl taking integers (nix wraps no PR_CAP_AMBIENT).
    if unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    } != 0
    {
        return Err(("clear the ambient set", Errno::last()));
    }
    set(Sets {
        effective: t.effective,
        permitted: t.permitted,
        inheritable: t.inheritable,
    })
    .map_err(|e| ("capset", e))?;
    for cap in 0..64 {
        if t.ambient & (1u64 << cap) != 0 {
            // SAFETY: as above.
            let rc =
                unsafe { libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_RAISE, cap, 0, 0) };
            if rc != 0 {
                return Err(("raise an ambient capability", Errno::last()));
            }
        }
    }
    let after = get().map_err(|e| ("capget", e))?;
    if after.effective != t.effective
        || after.permitted != t.permitted
        || after.inheritable != t.inheritable
    {
        return Err((
            "capabilities differ from the asked ones after capset",
            Errno::EPERM,
        ));
    }
    Ok(())
}

/// Cuts every capability set of the process (bounding, ambient, then
/// effective, permitted and inheritable) down to `keep`, and checks the
/// result. Bounding and ambient go first: dropping from the bounding set
/// needs `CAP_SETPCAP` in the effective set.
pub fn keep_only(keep: u64) -> Result<(), (&'static str, Errno)> {
    for cap in 0..64 {
        let bit = 1u64 << cap;
        let Some(bounded) = in_bounding(cap) else {
            break;
        };
        if keep & bit != 0 {
            continue;
        }
        if bounded {
            // SAFETY: plain prctl taking integers (nix wraps no PR_CAPBSET_*).
            if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) } != 0 {
                return Err((
                    "drop from the bounding set (needs CAP_SETPCAP)",
                    Errno::last(),
                ));
            }
        }
        // SAFETY: plain prctl taking integers (nix wraps no PR_CAP_AMBIENT).
        let ambient =
            unsafe { libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_IS_SET, cap, 0, 0) };
        if ambient == 1 {
            // SAFETY: as above.
            let rc =
                unsafe { libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_LOWER, cap, 0, 0) };
            if rc != 0 {
                return Err(("lower an ambient capability", Errno::last()));
            }
        }
    }
    let now = get().map_err(|e| ("capget", e))?;
    set(Sets {
        effective: now.effective & keep,
        permitted: now.permitted & keep,
        inheritable: now.inheritable & keep,
    })
    .map_err(|e| ("capset", e))?;
    let after = get().map_err(|e| ("capget", e))?;
    if (after.effective | after.permitted | after.inheritable) & !keep != 0 {
        return Err(("capabilities left after capset", Errno::EPERM));
    }
    Ok(())
}

/// Audit architecture, `setns` number, its x32 alias, the compat
/// architecture and its `setns` number.
#[cfg(target_arch = "x86_64")]
const SETNS: (u32, u32, u32, u32, u32) = (0xC000_003E, 308, 308 | 0x4000_0000, 0x4000_0003, 346);
#[cfg(target_arch = "aarch64")]
const SETNS: (u32, u32, u32, u32, u32) = (0xC000_00B7, 268, 268, 0x4000_0028, 375);

/// The BPF program: `setns` (native, x32 and compat numbers) fails with
/// `EPERM`, everything else is allowed.
fn deny_setns_program() -> Vec<libc::sock_filter> {
    let (arch, nr, nr_x32, compat, nr_compat) = SETNS;
    let ld = |k: u32| libc::sock_filter {
        code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let jeq = |k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    };
    let ret = |k: u32| libc::sock_filter {
        code: (libc::BPF_RET | libc::BPF_K) as u16,
        jt: 0,
        jf: 0,
        k,
    };
    // seccomp_data: nr at offset 0, arch at offset 4.
    vec![
        /* 0 */ ld(4),
        /* 1 */ jeq(arch, 0, 4), // native: 2, else 6
        /* 2 */ ld(0),
        /* 3 */ jeq(nr, 6, 0), // -> 10
        /* 4 */ jeq(nr_x32, 5, 0), // -> 10
        /* 5 */ ret(libc::SECCOMP_RET_ALLOW),
        /* 6 */ jeq(compat, 0, 2), // compat: 7, else 9
        /* 7 */ ld(0),
        /* 8 */ jeq(nr_compat, 1, 0), // -> 10
        /* 9 */ ret(libc::SECCOMP_RET_ALLOW),
        /* 10 */ ret(libc::SECCOMP_RET_ERRNO | libc::EPERM as u32),
    ]
}

/// Installs a seccomp filter that fails `setns` with `EPERM`. Needs
/// `CAP_SYS_ADMIN` or `no_new_privs`.
pub fn deny_setns() -> Result<(), Errno> {
    let program = deny_setns_program();
    let prog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: the kernel copies the program during the call (nix has no
    // seccomp calls).
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &prog as *const libc::sock_fprog,
            0,
            0,
        )
    };
    Errno::result(rc).map(|_| ())
}

#[cfg(test)]
mod tests {
    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::{fork, ForkResult};

    use super::*;

    /// Runs `f` in a forked child; its return value is the exit code.
    fn in_child(f: impl FnOnce() -> i32) -> i32 {
        // SAFETY: the child only makes syscalls and exits.
        match unsafe { fork() }.unwrap() {
            ForkResult::Child => {
                let code = f();
                // SAFETY: ends the forked child.
                unsafe { libc::_exit(code) }
            }
            ForkResult::Parent { child } => match waitpid(child, None).unwrap() {
                WaitStatus::Exited(_, code) => code,
                other => panic!("{other:?}"),
            },
        }
    }

    #[test]
    fn the_filter_fails_setns_with_eperm_and_nothing_else() {
        let code = in_child(|| {
            // Lets a non-root test install a filter.
            if nix::sys::prctl::set_no_new_privs().is_err() {
                return 10;
            }
            // Before: an invalid fd is EBADF.
            // SAFETY: plain syscall on an invalid fd.
            if unsafe { libc::setns(-1, 0) } == 0 || Errno::last() != Errno::EBADF {
                return 11;
            }
            if deny_setns().is_err() {
                return 12;
            }
            // SAFETY: as above.
            if unsafe { libc::setns(-1, 0) } == 0 || Errno::last() != Errno::EPERM {
                return 13;
            }
            if nix::unistd::getpid().as_raw() <= 0 {
                return 14;
            }
            0
        });
        assert_eq!(code, 0);
    }

    #[test]
    #[ignore = "needs root: run as root with --include-ignored"]
    fn keep_only_cuts_every_set() {
        // Keep CAP_CHOWN (0) and CAP_KILL (5).
        let keep = (1 << 0) | (1 << 5);
        let code = in_child(move || {
            if keep_only(keep).is_err() {
                return 10;
            }
            let Ok(s) = get() else { return 11 };
            if s.effective != keep || s.permitted != keep || s.inheritable & !keep != 0 {
                return 12;
            }
            // CAP_SYS_ADMIN (21) gone, CAP_KILL kept.
            if in_bounding(21) != Some(false) || in_bounding(5) != Some(true) {
                return 13;
            }
            0
        });
        assert_eq!(code, 0);
    }

    #[test]
    #[ignore = "needs root: run as root with --include-ignored"]
    fn set_exactly_sets_each_set_and_never_raises() {
        // As an exec of a restored container: bounding {CHOWN, KILL, SETPCAP
        // lent}, asked: effective {CHOWN}, permitted {CHOWN, KILL}, and
        // SYS_ADMIN (21), which the process will not hold any more.
        let code = in_child(|| {
            let lent = (1 << 0) | (1 << 5) | (1 << 8);
            if keep_only(lent).is_err() {
                return 10;
            }
            let want = Full {
                bounding: (1 << 0) | (1 << 5),
                effective: (1 << 0) | (1 << 21),
                permitted: (1 << 0) | (1 << 5) | (1 << 21),
                inheritable: 0,
                ambient: 0,
            };
            if set_exactly(want).is_err() {
                return 11;
            }
            let Ok(s) = get() else { return 12 };
            if s.effective != 1 || s.permitted != (1 << 0) | (1 << 5) || s.inheritable != 0 {
                return 13;
            }
            // SETPCAP left the bounding set, CHOWN and KILL stayed.
            if in_bounding(8) != Some(false) || in_bounding(5) != Some(true) {
                return 14;
            }
            0
        });
        assert_eq!(code, 0);
    }
}
