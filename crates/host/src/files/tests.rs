use super::*;
use std::os::unix::fs::PermissionsExt;

#[test]
fn private_files_and_dirs_are_fresh_unguessable_and_private() {
    let tmp = tempfile::tempdir().unwrap();
    let (_f1, a) = private_file(tmp.path(), ".shm").unwrap();
    let (_f2, b) = private_file(tmp.path(), ".shm").unwrap();
    assert_ne!(a, b);
    let name = a.file_name().unwrap().to_str().unwrap();
    assert!(
        name.starts_with(&run_prefix()) && name.ends_with(".shm"),
        "{name}"
    );
    assert!(name.len() >= run_prefix().len() + 12 + 4, "{name}");
    assert_eq!(fs::metadata(&a).unwrap().mode() & 0o777, 0o600);
    let d = private_dir(tmp.path()).unwrap();
    assert_eq!(fs::metadata(&d).unwrap().mode() & 0o777, 0o700);
}

#[test]
fn a_fifo_or_an_oversized_file_is_refused_without_blocking() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("fifo");
    nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o600)).unwrap();
    let err = read_regular(&fifo, 100).unwrap_err();
    assert!(err.to_string().contains("a FIFO"), "{err}");
    let big = tmp.path().join("big");
    fs::write(&big, vec![b'x'; 101]).unwrap();
    assert!(matches!(
        read_regular(&big, 100),
        Err(FileError::TooLarge { limit: 100, .. })
    ));
    fs::write(&big, b"ok").unwrap();
    assert_eq!(read_regular(&big, 100).unwrap(), b"ok");
    let err = read_regular(Path::new("/dev/zero"), 100).unwrap_err();
    assert!(err.to_string().contains("character device"), "{err}");
}

#[test]
fn trusted_files_must_not_be_links_nor_writable_by_others() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("journal.json");
    assert!(read_trusted(&f, 100).unwrap().is_none());
    fs::write(&f, b"{}").unwrap();
    fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(read_trusted(&f, 100).unwrap().unwrap(), b"{}");
    fs::set_permissions(&f, fs::Permissions::from_mode(0o666)).unwrap();
    let err = read_trusted(&f, 100).unwrap_err();
    assert!(
        err.to_string().contains("writable by group or others"),
        "{err}"
    );
    let link = tmp.path().join("link.json");
    std::os::unix::fs::symlink(&f, &link).unwrap();
    let err = read_trusted(&link, 100).unwrap_err();
    assert!(err.to_string().contains("symbolic link"), "{err}");
    // A world-writable directory without the sticky bit lets anyone
    // swap the file: refused even though the file itself is fine.
    let open_dir = tmp.path().join("open");
    fs::create_dir(&open_dir).unwrap();
    fs::set_permissions(&open_dir, fs::Permissions::from_mode(0o777)).unwrap();
    let inside = open_dir.join("j.json");
    fs::write(&inside, b"{}").unwrap();
    fs::set_permissions(&inside, fs::Permissions::from_mode(0o600)).unwrap();
    let err = read_trusted(&inside, 100).unwrap_err();
    assert!(err.to_string().contains("not sticky"), "{err}");
    fs::set_permissions(&open_dir, fs::Permissions::from_mode(0o1777)).unwrap();
    assert!(read_trusted(&inside, 100).is_ok());
}

#[test]
fn private_dirs_are_made_0700_and_a_planted_link_or_open_dir_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("run/vmbench");
    ensure_private_dir(&d).unwrap();
    assert_eq!(fs::metadata(&d).unwrap().mode() & 0o7777, 0o700);
    ensure_private_dir(&d).unwrap();
    fs::set_permissions(&d, fs::Permissions::from_mode(0o777)).unwrap();
    assert!(ensure_private_dir(&d).is_err());
    let link = tmp.path().join("elsewhere");
    std::os::unix::fs::symlink(tmp.path(), &link).unwrap();
    let err = ensure_private_dir(&link).unwrap_err();
    assert!(err.to_string().contains("symbolic link"), "{err}");
}

#[test]
fn output_files_replace_a_planted_link_instead_of_writing_through_it() {
    let tmp = tempfile::tempdir().unwrap();
    let victim = tmp.path().join("victim");
    fs::write(&victim, b"precious").unwrap();
    let out = tmp.path().join("out");
    let dir = OutputDir::create(&out).unwrap();
    std::os::unix::fs::symlink(&victim, out.join("report.md")).unwrap();
    dir.write("report.md", b"# report").unwrap();
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    assert_eq!(fs::read(out.join("report.md")).unwrap(), b"# report");
    assert!(
        !out.join("report.md")
            .symlink_metadata()
            .unwrap()
            .file_type()
            .is_symlink()
    );
    // A subdirectory replaced by a link is refused, not followed.
    std::os::unix::fs::symlink(tmp.path(), out.join("plots")).unwrap();
    let err = dir.subdir("plots").unwrap_err();
    assert!(
        err.to_string().contains("not a directory vmbench made"),
        "{err}"
    );
    // The top directory itself given as a link is refused.
    let link = tmp.path().join("out-link");
    std::os::unix::fs::symlink(&out, &link).unwrap();
    assert!(OutputDir::open(&link).is_err());
    // Reading refuses links too.
    let err = dir.read("report.md", 100).map(|_| ()).and_then(|()| {
        std::os::unix::fs::symlink(&victim, out.join("x")).unwrap();
        dir.read("x", 100).map(|_| ())
    });
    assert!(err.unwrap_err().to_string().contains("symbolic link"));
    let names: Vec<_> = dir.entries().unwrap();
    assert!(
        names.contains(&("plots".into(), EntryKind::Other)),
        "{names:?}"
    );
    assert!(
        names.contains(&("report.md".into(), EntryKind::File)),
        "{names:?}"
    );
}

#[test]
fn stale_entries_of_dead_processes_are_swept_and_live_ones_kept() {
    let tmp = tempfile::tempdir().unwrap();
    // A pid that cannot be running (above pid_max's ceiling).
    let dead = tmp.path().join("vmbench-4194305-abc.shm");
    fs::write(&dead, b"").unwrap();
    let dead_dir = tmp.path().join("vmbench-4194306-xyz");
    fs::create_dir_all(dead_dir.join("inner")).unwrap();
    let mine = tmp.path().join(format!("{}live", run_prefix()));
    fs::write(&mine, b"").unwrap();
    let init = tmp.path().join("vmbench-1-running");
    fs::write(&init, b"").unwrap();
    let other = tmp.path().join("not-ours");
    fs::write(&other, b"").unwrap();
    let mut removed = sweep_stale(tmp.path());
    removed.sort();
    assert_eq!(removed, vec![dead.clone(), dead_dir.clone()]);
    assert!(mine.exists() && init.exists() && other.exists());
}
