use std::io::Write as _;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

use super::super::tar_reader::tests::Tar;
use super::*;

fn limits() -> Limits {
    Limits {
        file: 1 << 20,
        total: 2 << 20,
        files: 100,
        metadata: 1 << 20,
    }
}

/// A rootfs with an image file, a directory, and a host directory beside it.
fn setup() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let (root, host) = (t.path().join("rootfs"), t.path().join("host"));
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(root.join("bin/zcat"), b"image").unwrap();
    std::fs::write(host.join("secret"), b"host").unwrap();
    (t, root, host)
}

fn gz(tar: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(tar).unwrap();
    e.finish().unwrap()
}

fn apply_to(root: &Path, tar: &[u8]) -> Result<Applied> {
    apply(root, &gz(tar)[..], &limits(), "rootfs-diff.tar")
}

fn host_untouched(host: &Path) {
    let names: Vec<_> = std::fs::read_dir(host)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec!["secret"], "the host directory was written");
    assert_eq!(std::fs::read(host.join("secret")).unwrap(), b"host");
}

#[test]
fn applies_files_dirs_links_and_whiteouts_like_containerd() {
    let (_t, root, _) = setup();
    let tar = Tar::default()
        .dir("tmp/", 0o1777)
        .file("tmp/echo", 0o644, b"1\n2\n")
        .file("etc/kata-cr-marker", 0o4755, b"kept\n")
        .symlink("tmp/l", "/etc/passwd")
        .hardlink("tmp/h", "tmp/echo")
        .file("bin/.wh.zcat", 0o644, b"")
        .node("tmp/f", b'6')
        .end();
    let a = apply_to(&root, &tar).unwrap();
    assert_eq!((a.entries, a.bytes, a.removals), (6, 9, 1));
    assert_eq!(std::fs::read(root.join("tmp/echo")).unwrap(), b"1\n2\n");
    let m = std::fs::metadata(root.join("etc/kata-cr-marker")).unwrap();
    assert_eq!(
        m.permissions().mode() & 0o7777,
        0o4755,
        "set-id kept as containerd keeps it"
    );
    assert_eq!(
        std::fs::metadata(root.join("tmp"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o1777
    );
    assert_eq!(
        std::fs::read_link(root.join("tmp/l")).unwrap(),
        Path::new("/etc/passwd")
    );
    assert_eq!(
        std::fs::metadata(root.join("tmp/h")).unwrap().ino(),
        std::fs::metadata(root.join("tmp/echo")).unwrap().ino()
    );
    assert!(!root.join("bin/zcat").exists(), "whiteout applied");
    assert!(std::fs::symlink_metadata(root.join("tmp/f"))
        .unwrap()
        .file_type()
        .is_fifo_like());
}

trait FifoLike {
    fn is_fifo_like(&self) -> bool;
}
impl FifoLike for std::fs::FileType {
    fn is_fifo_like(&self) -> bool {
        std::os::unix::fs::FileTypeExt::is_fifo(self)
    }
}

#[test]
fn opaque_directories_keep_only_what_the_archive_brought() {
    let (_t, root, _) = setup();
    std::fs::write(root.join("etc/old"), b"o").unwrap();
    let tar = Tar::default()
        .file("etc/new", 0o644, b"n")
        .file("etc/.wh..wh..opq", 0o644, b"")
        .end();
    apply_to(&root, &tar).unwrap();
    let mut names: Vec<_> = std::fs::read_dir(root.join("etc"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, vec!["new"]);
}

#[test]
fn dot_dot_and_absolute_names_are_refused() {
    for name in ["../x", "tmp/../../x", "/abs", "/etc/passwd"] {
        let (_t, root, host) = setup();
        let tar = Tar::default().file(name, 0o644, b"evil").end();
        let e = apply_to(&root, &tar).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{name}: {e}");
        assert!(e.to_string().contains(name), "{name}: {e}");
        host_untouched(&host);
    }
}

#[test]
fn a_file_through_a_symlink_the_archive_planted_is_refused() {
    let (_t, root, host) = setup();
    let tar = Tar::default()
        .symlink("escape", host.to_str().unwrap())
        .file("escape/secret", 0o644, b"evil")
        .end();
    let e = apply_to(&root, &tar).unwrap_err();
    assert!(e.to_string().contains("symlink"), "{e}");
    host_untouched(&host);
    // Also a relative one that climbs out, and a whiteout through one.
    let tar = Tar::default()
        .symlink("up", "../host")
        .file("up/.wh.secret", 0o644, b"")
        .end();
    let e = apply_to(&root, &tar).unwrap_err();
    assert!(e.to_string().contains("symlink"), "{e}");
    host_untouched(&host);
}

#[test]
fn a_symlink_the_container_planted_is_never_followed() {
    let (_t, root, host) = setup();
    // The container made /var a link to the host directory (as seen from
    // wherever the rootfs is written), and the file the diff replaces a link.
    symlink(&host, root.join("var")).unwrap();
    symlink(host.join("secret"), root.join("etc/motd")).unwrap();
    let e = apply_to(
        &root,
        &Tar::default().file("var/secret", 0o644, b"evil").end(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("symlink"), "{e}");
    // Replaced, not written through.
    apply_to(&root, &Tar::default().file("etc/motd", 0o644, b"new").end()).unwrap();
    assert_eq!(std::fs::read(root.join("etc/motd")).unwrap(), b"new");
    assert!(!std::fs::symlink_metadata(root.join("etc/motd"))
        .unwrap()
        .file_type()
        .is_symlink());
    // A whiteout of a directory that is a link removes the link only.
    apply_to(&root, &Tar::default().file(".wh.var", 0o644, b"").end()).unwrap();
    assert!(root.join("var").symlink_metadata().is_err());
    host_untouched(&host);
}

#[test]
fn hard_links_out_of_the_rootfs_are_refused() {
    let (_t, root, host) = setup();
    for target in ["../host/secret", "/etc/shadow"] {
        let tar = Tar::default().hardlink("tmp-h", target).end();
        let e = apply_to(&root, &tar).unwrap_err();
        assert!(
            e.to_string().contains("outside the rootfs"),
            "{target}: {e}"
        );
    }
    // Through a planted symlink to a directory outside.
    symlink(&host, root.join("out")).unwrap();
    let e = apply_to(&root, &Tar::default().hardlink("h", "out/secret").end()).unwrap_err();
    assert!(e.to_string().contains("symlink"), "{e}");
    assert!(!root.join("h").exists());
    assert_eq!(std::fs::metadata(host.join("secret")).unwrap().nlink(), 1);
}

#[test]
fn device_nodes_are_refused() {
    for flag in [b'3', b'4'] {
        let (_t, root, _) = setup();
        let e = apply_to(&root, &Tar::default().node("dev-sda", flag).end()).unwrap_err();
        assert!(e.to_string().contains("device node"), "{e}");
        assert!(root.join("dev-sda").symlink_metadata().is_err());
    }
}

#[test]
fn oversized_entries_and_too_many_entries_are_refused_before_writing() {
    let (_t, root, _) = setup();
    // Claims 1 TiB and carries nothing: refused on the header, not after
    // trying to read (or write) it.
    let mut t = Tar::default();
    t.header("big", b'0', 0o644, 1 << 40, "");
    let e = apply_to(&root, &t.end()).unwrap_err();
    assert!(e.to_string().contains("--max-image-file-bytes"), "{e}");
    assert!(!root.join("big").exists());
    // Each under the cap, together over it.
    let chunk = vec![0u8; 1 << 20];
    let tar = Tar::default()
        .file("a", 0o644, &chunk)
        .file("b", 0o644, &chunk)
        .file("c", 0o644, &chunk)
        .end();
    let e = apply_to(&root, &tar).unwrap_err();
    assert!(e.to_string().contains("--max-image-set-bytes"), "{e}");
    assert!(!root.join("c").exists());
    let mut tar = Tar::default();
    for i in 0..101 {
        tar = tar.file(&format!("f{i}"), 0o644, b"");
    }
    let e = apply_to(&root, &tar.end()).unwrap_err();
    assert!(e.to_string().contains("--max-image-files"), "{e}");
}

#[test]
fn kata_crs_own_image_directory_is_out_of_reach() {
    let (_t, root, _) = setup();
    let name = format!(
        "{}{}/inventory.img",
        kata_cr_api::PRIVATE_IMAGE_DIR_PREFIX,
        "0".repeat(32)
    );
    let e = apply_to(&root, &Tar::default().file(&name, 0o644, b"x").end()).unwrap_err();
    assert!(e.to_string().contains("image directory"), "{e}");
}

#[test]
fn a_plain_tar_is_read_and_zstd_is_named() {
    let (_t, root, _) = setup();
    let tar = Tar::default().file("p", 0o644, b"plain").end();
    apply(&root, &tar[..], &limits(), "d").unwrap();
    assert_eq!(std::fs::read(root.join("p")).unwrap(), b"plain");
    let e = apply(&root, &[0x28, 0xb5, 0x2f, 0xfd, 0, 0][..], &limits(), "d").unwrap_err();
    assert!(e.to_string().contains("zstd"), "{e}");
}
