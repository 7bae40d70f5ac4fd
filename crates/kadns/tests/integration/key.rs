//! `kadns key generate` and `kadns key show`.

use std::os::unix::fs::PermissionsExt;

use crate::support::{kadns, new_key};

#[test]
fn generate_writes_0600_and_show_prints_the_same_id() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (path, zone_id) = new_key(dir.path());
    assert_eq!(zone_id.len(), 52, "zone id: {zone_id}");
    assert!(zone_id.parse::<kadns_record::ZoneId>().is_ok());
    let mode = std::fs::metadata(&path)
        .expect("key file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let show = kadns(["key".as_ref(), "show".as_ref(), path.as_os_str()]);
    assert!(show.success, "{show:?}");
    assert_eq!(show.stdout.trim(), zone_id);
    // The secret never reaches the terminal.
    let secret_line = std::fs::read_to_string(&path)
        .expect("key")
        .lines()
        .find(|l| l.starts_with("secret:"))
        .map(str::to_owned);
    let secret = secret_line
        .expect("secret line")
        .trim_start_matches("secret:")
        .trim()
        .to_string();
    assert!(!show.stdout.contains(&secret) && !show.stderr.contains(&secret));
}

#[test]
fn generate_never_overwrites() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (path, _) = new_key(dir.path());
    let before = std::fs::read(&path).expect("key");
    let again = kadns([
        "key".as_ref(),
        "generate".as_ref(),
        "--out".as_ref(),
        path.as_os_str(),
    ]);
    again.assert_error(&["already exists"]);
    assert_eq!(std::fs::read(&path).expect("key"), before);
}

#[test]
fn show_refuses_bad_key_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("nope.key");
    kadns(["key".as_ref(), "show".as_ref(), missing.as_os_str()]).assert_error(&["nope.key"]);

    let (path, _) = new_key(dir.path());
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    kadns(["key".as_ref(), "show".as_ref(), path.as_os_str()]).assert_error(&["chmod 600"]);

    let garbage = dir.path().join("garbage.key");
    std::fs::write(
        &garbage,
        "# kadns zone key v1. Keep this file secret.\nzone: abc\nsecret: xyz\n",
    )
    .expect("write");
    std::fs::set_permissions(&garbage, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    kadns(["key".as_ref(), "show".as_ref(), garbage.as_os_str()])
        .assert_error(&["garbage.key:3", "secret"]);
}

#[test]
fn every_command_has_help() {
    for args in [
        &["--help"][..],
        &["key", "--help"],
        &["key", "generate", "--help"],
        &["key", "show", "--help"],
        &["zone", "--help"],
        &["zone", "sign", "--help"],
        &["zone", "verify", "--help"],
        &["zone", "show", "--help"],
    ] {
        let run = kadns(args);
        assert!(
            run.success && run.stdout.contains("Usage:"),
            "{args:?}: {run:?}"
        );
    }
}
