//! Property tests ("fuzz targets") for what kata-cr-agent parses from
//! untrusted input: criu image files, the messages in them, whole image sets
//! judged against a container, image directory names and the agent's
//! records.
//!
//! Every target is a `proptest!` function named `fuzz_*`: `make unit` (part
//! of `make test`) runs each with proptest's default 256 cases, `make fuzz`
//! with `FUZZ_CASES` (default 20000). Failures proptest finds are kept in
//! `proptest-regressions/fuzz_criu_images.txt` and replayed first on every
//! run; the seed corpus is the real image sets of `tests/corpus/criu`.
//! Other crates add targets the same way (`<crate>/tests/fuzz_*.rs`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use agent_ext::agent::criu_image::{encode_image, fields, magic, EntryReader, RawMessage};
use agent_ext::agent::criu_messages::{self as msgs, Core, Creds, MntEntry, NsIds, PstreeEntry};
use agent_ext::agent::grants::mounts_of;
use agent_ext::agent::image_claims::{self, MemSource};
use agent_ext::agent::images;
use agent_ext::agent::limits::Limits;
use agent_ext::agent::restore_checks::{self, Grants};
use agent_ext::agent::{tcp, workdir};
use proptest::prelude::*;

/// The image sets of `tests/corpus/criu`: name, files, init mountinfo.
fn corpus() -> Vec<(String, MemSource, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/criu");
    let mut out = Vec::new();
    let mut sets: Vec<_> = std::fs::read_dir(&root).unwrap().flatten().collect();
    sets.sort_by_key(|e| e.file_name());
    for set in sets {
        let mut src = MemSource::default();
        let mut mountinfo = String::new();
        for f in std::fs::read_dir(set.path()).unwrap().flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            let data = std::fs::read(f.path()).unwrap();
            if name == "init.mountinfo" {
                mountinfo = String::from_utf8(data).unwrap();
            } else {
                src.0.insert(name, data);
            }
        }
        out.push((
            set.file_name().to_string_lossy().into_owned(),
            src,
            mountinfo,
        ));
    }
    out
}

/// The grants of a corpus set's container (see restore_checks' unit tests).
fn grants(name: &str, mountinfo: &str) -> Grants {
    let mounts = mounts_of(mountinfo);
    let mut external = BTreeMap::new();
    external.insert("rootfs".to_string(), PathBuf::from("/new/rootfs"));
    for m in &mounts {
        // (Kata binds the sandbox's shm at every container's /dev/shm.)
        if m.mountpoint.starts_with("/etc/")
            || m.mountpoint == "/dev/.kata-cr-init"
            || (m.mountpoint == "/dev/shm" && !name.starts_with("ctr"))
            || m.fstype == "cgroup"
        {
            external.insert(m.mountpoint.clone(), PathBuf::from("/new/source"));
        }
    }
    Grants {
        caps: 0xa804_25fb,
        uids: vec![0],
        gids: vec![0],
        no_new_privs: name.ends_with("ctr"),
        seccomp_filter: false,
        lsm_label: None,
        loginuid: Some(u32::MAX),
        // A Kata guest's containers share its network namespace.
        own_netns: name != "cri-host-net" && !name.starts_with("kata"),
        mounts,
        external,
    }
}

const MAGICS: [u32; 8] = [
    magic::INVENTORY,
    magic::PSTREE,
    magic::CORE,
    magic::IDS,
    magic::MNTS,
    magic::PIDNS,
    magic::NETNS,
    magic::FILES,
];

/// What can happen to one file of an image set on its way from a registry.
#[derive(Debug, Clone)]
enum Mutation {
    Flip {
        at: usize,
        xor: u8,
    },
    Truncate {
        at: usize,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
    /// Replace one entry's payload with arbitrary bytes (a well-formed file
    /// carrying a hostile message).
    Entry {
        index: usize,
        bytes: Vec<u8>,
    },
    /// Duplicate a file's entries.
    Twice,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..).prop_map(|(at, xor)| Mutation::Flip { at, xor }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 1..16)
        )
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(|(index, bytes)| Mutation::Entry { index, bytes }),
        Just(Mutation::Twice),
    ]
}

fn magic_of(name: &str) -> Option<u32> {
    let m = match name.split(['-', '.']).next()? {
        "inventory" => magic::INVENTORY,
        "pstree" => magic::PSTREE,
        "core" => magic::CORE,
        "ids" => magic::IDS,
        "mountpoints" => magic::MNTS,
        "pidns" => magic::PIDNS,
        "netns" => magic::NETNS,
        "files" => magic::FILES,
        _ => return None,
    };
    Some(m)
}

fn apply(data: &[u8], name: &str, m: &Mutation) -> Vec<u8> {
    let mut d = data.to_vec();
    match m {
        Mutation::Flip { at, xor } if !d.is_empty() => {
            let i = at % d.len();
            d[i] ^= xor;
        }
        Mutation::Truncate { at } => d.truncate(at % (d.len() + 1)),
        Mutation::Insert { at, bytes } => {
            let i = at % (d.len() + 1);
            d.splice(i..i, bytes.iter().copied());
        }
        Mutation::Entry { .. } | Mutation::Twice if magic_of(name).is_some() => {
            let mg = magic_of(name).unwrap_or_default();
            let mut entries = Vec::new();
            let mut r = EntryReader::new(data, mg, name, 1 << 20).unwrap();
            while let Some(e) = r.next_entry().unwrap() {
                entries.push(e.to_vec());
            }
            match m {
                Mutation::Entry { index, bytes } if !entries.is_empty() => {
                    let i = index % entries.len();
                    entries[i] = bytes.clone();
                }
                Mutation::Twice => entries.extend(entries.clone()),
                _ => {}
            }
            d = encode_image(mg, entries.iter().map(Vec::as_slice));
        }
        _ => {}
    }
    d
}

/// An independent reading of what restore_checks promises: whatever it lets
/// through has no external key the container does not map, no mount from a
/// device, every thread's capabilities within the container's.
fn promise_kept(src: &MemSource, g: &Grants) -> Result<(), String> {
    for (name, data) in &src.0 {
        if name.starts_with("mountpoints-") {
            let mut r = EntryReader::new(data.as_slice(), magic::MNTS, name, 1 << 20)
                .map_err(|e| e.to_string())?;
            let mut all = Vec::new();
            while let Some(e) = r.next_entry().map_err(|e| e.to_string())? {
                all.push(MntEntry::decode(e).map_err(|_| "undecodable mount passed")?);
            }
            let root_dev = all.iter().find(|m| m.mountpoint == "/").map(|m| m.root_dev);
            for m in &all {
                if let Some(k) = &m.ext_key {
                    if !g.external.contains_key(k) {
                        return Err(format!("key {k:?} passed"));
                    }
                } else if m.mountpoint != "/" {
                    if m.root_dev_major() != 0 {
                        return Err(format!("device mount {m:?} passed"));
                    }
                    // criu would bind the rootfs there
                    if Some(m.root_dev) == root_dev {
                        return Err(format!("mount on the root's device {m:?} passed"));
                    }
                }
            }
        }
        if name.starts_with("core-") {
            let mut r = EntryReader::new(data.as_slice(), magic::CORE, name, 1 << 20)
                .map_err(|e| e.to_string())?;
            if let Some(e) = r.next_entry().map_err(|e| e.to_string())? {
                let c = Core::decode(e).map_err(|_| "undecodable core passed")?;
                let Some(cr) = c.creds else {
                    continue;
                };
                for set in [cr.cap_bnd, cr.cap_prm, cr.cap_eff, cr.cap_inh, cr.cap_amb] {
                    if set & !g.caps != 0 {
                        return Err(format!("{name}: capabilities {set:x} passed"));
                    }
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn fuzz_entry_reader_takes_any_bytes(data in proptest::collection::vec(any::<u8>(), 0..512), which in 0usize..MAGICS.len()) {
        // With or without a valid header in front.
        for input in [data.clone(), {
            let mut d = encode_image(MAGICS[which], []);
            d.extend_from_slice(&data);
            d
        }] {
            if let Ok(mut r) = EntryReader::new(input.as_slice(), MAGICS[which], "fuzz.img", 4096) {
                let mut n = 0;
                while let Ok(Some(e)) = r.next_entry() {
                    prop_assert!(e.len() <= 4096);
                    n += 1;
                    prop_assert!(n <= input.len() / 4 + 1);
                }
            }
        }
    }

    #[test]
    fn fuzz_messages_take_any_bytes(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = fields(&data).count();
        if let Ok(m) = RawMessage::parse(&data) {
            prop_assert_eq!(RawMessage::parse(&m.encode()).ok(), Some(m.clone()));
        }
        let _ = MntEntry::decode(&data);
        let _ = Creds::decode(&data);
        let _ = Core::decode(&data);
        let _ = NsIds::decode(&data);
        let _ = PstreeEntry::decode(&data);
        let _ = msgs::inventory_root_ids(&data);
        let _ = msgs::ext_key(&data, msgs::PIDNS_EXT_KEY);
    }

    #[test]
    fn fuzz_image_sets_from_the_corpus(set in 0usize..3, file in any::<usize>(), m in mutation(), m2 in mutation()) {
        let sets = corpus();
        let (name, mut src, mountinfo) = sets[set % sets.len()].clone();
        let g = grants(&name, &mountinfo);
        let names: Vec<String> = src.0.keys().cloned().collect();
        for (i, mu) in [m, m2].iter().enumerate() {
            let f = names[(file.wrapping_add(i * 7)) % names.len()].clone();
            let data = apply(&src.0[&f], &f, mu);
            src.0.insert(f, data);
        }
        let verdict = image_claims::read(&src, &Limits::default())
            .and_then(|c| restore_checks::check("fuzz", &c, &g));
        if verdict.is_ok() {
            if let Err(broken) = promise_kept(&src, &g) {
                prop_assert!(false, "{name}: passed but {broken}");
            }
        }
        let _ = tcp::connections(&src, &Limits::default());
    }

    #[test]
    fn fuzz_names_and_records(name in "\\PC{0,40}", hex in "[0-9a-f]{32}", rest in "\\PC{0,80}") {
        if images::validate_name(&name).is_ok() {
            prop_assert!(!name.contains('/') && !name.starts_with('.') && !name.contains(".."));
        }
        if images::is_private_name(&name) {
            prop_assert!(name.len() == 41 && !name.contains('/'));
        }
        let private = format!(".kata-cr-{hex}");
        prop_assert!(images::is_private_name(&private));
        prop_assert!(images::validate_dir_name(&private).is_ok());
        if let Some(r) = workdir::parse_record(&rest) {
            prop_assert!(r.rootfs.is_absolute() && images::is_private_name(&r.name));
        }
    }
}

#[test]
fn the_corpus_itself_passes() {
    for (name, src, mountinfo) in corpus() {
        let claims = image_claims::read(&src, &Limits::default()).unwrap();
        restore_checks::check(&name, &claims, &grants(&name, &mountinfo))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        promise_kept(&src, &grants(&name, &mountinfo)).unwrap();
    }
}
