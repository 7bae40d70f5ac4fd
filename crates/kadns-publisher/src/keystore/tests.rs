use std::fs::{self, Permissions};

use super::*;

fn write_key_file(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("test.key");
    fs::write(&path, text).unwrap();
    fs::set_permissions(&path, Permissions::from_mode(0o600)).unwrap();
    path
}

fn valid_text(seed: [u8; 32]) -> String {
    render(&ZoneKey::from_seed(seed))
}

#[test]
fn generated_file_is_0600_in_the_documented_format_and_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("z.key");
    let key = generate_key(&path).unwrap();
    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0], KEY_FILE_HEADER);
    assert_eq!(lines[1], format!("zone: {}", key.zone_id()));
    assert_eq!(lines[2], format!("secret: {}", hex::encode(key.seed())));
    let loaded = load_key(&path).unwrap();
    assert_eq!(loaded.seed(), key.seed());
    // Two keys are different.
    let other = generate_key(dir.path().join("other.key")).unwrap();
    assert_ne!(other.zone_id(), key.zone_id());
}

#[test]
fn generate_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("z.key");
    fs::write(&path, "precious").unwrap();
    let err = generate_key(&path).unwrap_err();
    assert!(matches!(err, KeyError::AlreadyExists { .. }), "{err:?}");
    assert!(err.to_string().contains("refusing to overwrite"));
    assert_eq!(fs::read_to_string(&path).unwrap(), "precious");
}

#[test]
fn generate_into_a_missing_directory_is_an_io_error_with_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing/z.key");
    let err = generate_key(&path).unwrap_err();
    assert!(
        matches!(&err, KeyError::Io { path: p, .. } if *p == path),
        "{err:?}"
    );
}

#[test]
fn load_reports_not_found_and_directories() {
    let dir = tempfile::tempdir().unwrap();
    let err = load_key(dir.path().join("nope.key")).unwrap_err();
    assert!(matches!(err, KeyError::NotFound { .. }), "{err:?}");
    fs::set_permissions(dir.path(), Permissions::from_mode(0o700)).unwrap();
    let err = load_key(dir.path()).unwrap_err();
    assert!(matches!(err, KeyError::NotAFile { .. }), "{err:?}");
}

#[test]
fn load_refuses_any_group_or_other_bit() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_key_file(dir.path(), &valid_text([1; 32]));
    for mode in [0o640, 0o604, 0o601, 0o610, 0o666, 0o700 | 0o004] {
        fs::set_permissions(&path, Permissions::from_mode(mode)).unwrap();
        let err = load_key(&path).unwrap_err();
        match &err {
            KeyError::PermissionsTooOpen { mode: m, .. } => assert_eq!(*m, mode),
            other => panic!("mode {mode:o}: {other:?}"),
        }
        let message = err.to_string();
        assert!(message.contains(&format!("{mode:04o}")), "{message}");
        assert!(message.contains("chmod 600"), "{message}");
    }
    for mode in [0o600, 0o400, 0o700] {
        fs::set_permissions(&path, Permissions::from_mode(mode)).unwrap();
        load_key(&path).unwrap();
    }
}

#[test]
fn load_reports_format_errors_with_line_and_reason() {
    let good = valid_text([0xab; 32]);
    let zone_line = good.lines().nth(1).unwrap().to_owned();
    let secret_line = good.lines().nth(2).unwrap().to_owned();
    let cases: Vec<(String, usize, &str)> = vec![
        (String::new(), 1, "header"),
        ("zone: x\n".into(), 1, "header"),
        (
            format!("# kadns zone key v2. Keep this file secret.\n{zone_line}\n{secret_line}\n"),
            1,
            "version",
        ),
        (
            format!("{KEY_FILE_HEADER}\n{zone_line}\n"),
            2,
            "no `secret:`",
        ),
        (
            format!("{KEY_FILE_HEADER}\n\n{secret_line}\n"),
            3,
            "no `zone:`",
        ),
        (
            format!("{KEY_FILE_HEADER}\n{zone_line}\n{secret_line}\n{secret_line}\n"),
            4,
            "second `secret:`",
        ),
        (
            format!("{KEY_FILE_HEADER}\n{zone_line}\n{zone_line}\n"),
            3,
            "second `zone:`",
        ),
        (
            format!("{KEY_FILE_HEADER}\n{zone_line}\nsecret: abc\n"),
            3,
            "64 lowercase hex",
        ),
        (
            format!(
                "{KEY_FILE_HEADER}\n{zone_line}\n{}\n",
                secret_line.to_uppercase().replace("SECRET", "secret")
            ),
            3,
            "64 lowercase hex",
        ),
        (
            format!("{KEY_FILE_HEADER}\n{zone_line}\n{secret_line}00\n"),
            3,
            "64 lowercase hex",
        ),
        (
            format!("{KEY_FILE_HEADER}\n{zone_line}\nnonsense\n"),
            3,
            "field: value",
        ),
        (
            format!("{KEY_FILE_HEADER}\n{zone_line}\npublic: 12\n"),
            3,
            "unknown field",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (text, line, reason) in cases {
        let path = write_key_file(dir.path(), &text);
        match load_key(&path).unwrap_err() {
            KeyError::Format {
                line: l, reason: r, ..
            } => {
                assert_eq!(l, line, "{text:?}: {r}");
                assert!(r.contains(reason), "{text:?}: {r}");
            }
            other => panic!("{text:?}: {other:?}"),
        }
    }
}

#[test]
fn comments_and_blank_lines_are_allowed_after_the_header() {
    let good = valid_text([3; 32]);
    let mut lines = good.lines();
    let text = format!(
        "{}\n\n# a note\n{}\n   \n{}\n",
        lines.next().unwrap(),
        lines.next().unwrap(),
        lines.next().unwrap()
    );
    let dir = tempfile::tempdir().unwrap();
    let key = load_key(write_key_file(dir.path(), &text)).unwrap();
    assert_eq!(key.seed(), &[3; 32]);
}

#[test]
fn bad_zone_id_and_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let secret = hex::encode([4u8; 32]);
    let path = write_key_file(
        dir.path(),
        &format!("{KEY_FILE_HEADER}\nzone: short\nsecret: {secret}\n"),
    );
    assert!(matches!(
        load_key(&path).unwrap_err(),
        KeyError::BadZoneId { line: 2, .. }
    ));

    let other = ZoneKey::from_seed([5; 32]).zone_id();
    let path = write_key_file(
        dir.path(),
        &format!("{KEY_FILE_HEADER}\nzone: {other}\nsecret: {secret}\n"),
    );
    match load_key(&path).unwrap_err() {
        KeyError::Mismatch { stated, actual, .. } => {
            assert_eq!(stated, other.to_string());
            assert_eq!(actual, ZoneKey::from_seed([4; 32]).zone_id().to_string());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn errors_never_contain_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let good = valid_text([6; 32]);
    let secret = hex::encode([6u8; 32]);
    // A secret with one bad character, and a mismatching zone: neither
    // message may echo the secret.
    let bad_secret = good.replace(&secret, &format!("{}g", &secret[..63]));
    let mismatch = good.replace(
        &ZoneKey::from_seed([6; 32]).zone_id().to_string(),
        &ZoneKey::from_seed([7; 32]).zone_id().to_string(),
    );
    for text in [bad_secret, mismatch] {
        let err = load_key(write_key_file(dir.path(), &text)).unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains(&secret[..16]), "{shown}");
    }
}

#[test]
fn oversized_and_binary_files_are_format_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_key_file(dir.path(), &"#".repeat(5000));
    assert!(matches!(
        load_key(&path).unwrap_err(),
        KeyError::Format { line: 1, .. }
    ));
    fs::write(&path, [0xff, 0xfe, 0]).unwrap();
    assert!(matches!(
        load_key(&path).unwrap_err(),
        KeyError::Format { line: 1, .. }
    ));
}
