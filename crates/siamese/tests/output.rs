//! Output files: only regular files are replaced, symbolic links are written through to regular
//! targets only, a failed write leaves the old file, and two outputs of one command never share a
//! file.

use std::os::unix::fs::{symlink, FileTypeExt};
use std::path::Path;

use siamese::output::{check_distinct, output_target, write_atomic};

fn one_line_naming(err: &siamese::Error, path: &Path, why: &str) {
    let msg = err.to_string();
    assert_eq!(msg.lines().count(), 1, "{msg}");
    assert!(
        msg.contains(&path.display().to_string()) && msg.contains(why),
        "{msg}"
    );
}

#[test]
fn regular_files_are_replaced_whole_and_new_folders_made() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a/b/out.txt");
    write_atomic(&file, b"first").unwrap();
    write_atomic(&file, b"second").unwrap();
    assert_eq!(std::fs::read(&file).unwrap(), b"second");
    // No temporary file is left beside it.
    let names: Vec<_> = std::fs::read_dir(file.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

#[test]
fn devices_fifos_and_folders_are_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    // /dev/null and /dev/full are character devices; writing there must not turn them into
    // plain files (as root a rename over them would succeed).
    for device in ["/dev/null", "/dev/full"] {
        let path = Path::new(device);
        if !path.exists() {
            continue;
        }
        let err = write_atomic(path, b"x").unwrap_err();
        one_line_naming(&err, path, "character device");
        assert!(std::fs::metadata(path)
            .unwrap()
            .file_type()
            .is_char_device());
    }
    let folder = dir.path().join("folder");
    std::fs::create_dir(&folder).unwrap();
    one_line_naming(
        &write_atomic(&folder, b"x").unwrap_err(),
        &folder,
        "a directory",
    );
    assert!(folder.is_dir());

    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    one_line_naming(&write_atomic(&fifo, b"x").unwrap_err(), &fifo, "a FIFO");
    assert!(std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_fifo());
}

#[test]
fn symbolic_links_are_written_through_to_regular_targets_only() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target.txt");
    std::fs::write(&target, b"old").unwrap();
    let link = dir.path().join("link.txt");
    symlink("target.txt", &link).unwrap();
    write_atomic(&link, b"new").unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), b"new");
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    // A link of a link ends at the same file.
    let link2 = dir.path().join("link2.txt");
    symlink(&link, &link2).unwrap();
    assert_eq!(output_target(&link2).unwrap(), target);

    // A link to a device or a folder is refused; a link to a new file in an existing folder is
    // fine; a link into a missing folder and a loop are refused.
    let to_null = dir.path().join("null-link");
    symlink("/dev/null", &to_null).unwrap();
    one_line_naming(
        &write_atomic(&to_null, b"x").unwrap_err(),
        &to_null,
        "not to a regular file",
    );
    let fresh = dir.path().join("fresh-link");
    symlink("fresh.txt", &fresh).unwrap();
    write_atomic(&fresh, b"made").unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("fresh.txt")).unwrap(),
        b"made"
    );
    let nowhere = dir.path().join("nowhere-link");
    symlink("no/such/folder/file.txt", &nowhere).unwrap();
    one_line_naming(
        &write_atomic(&nowhere, b"x").unwrap_err(),
        &nowhere,
        "does not exist",
    );
    let (a, b) = (dir.path().join("loop-a"), dir.path().join("loop-b"));
    symlink(&b, &a).unwrap();
    symlink(&a, &b).unwrap();
    one_line_naming(&write_atomic(&a, b"x").unwrap_err(), &a, "loop");
}

#[test]
fn two_outputs_cannot_share_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x.csv");
    let same = dir.path().join("sub/../x.csv");
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let err = check_distinct(&[("--out", &x), ("--test-out", &same)]).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("--test-out") && msg.contains("--out") && msg.lines().count() == 1,
        "{msg}"
    );
    let link = dir.path().join("link.csv");
    std::fs::write(&x, b"").unwrap();
    symlink(&x, &link).unwrap();
    assert!(check_distinct(&[("--out", &x), ("labels", &link)]).is_err());
    assert!(check_distinct(&[("--out", &x), ("labels", &dir.path().join("y.csv"))]).is_ok());
}
