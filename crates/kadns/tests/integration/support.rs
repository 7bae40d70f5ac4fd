//! Running the built `kadns` binary.

use std::path::Path;
use std::process::{Command, Output};

/// The path of the `kadns` binary cargo built for these tests.
pub(crate) const KADNS: &str = env!("CARGO_BIN_EXE_kadns");

/// The result of one run: exit status and both output streams as text.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) success: bool,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// Runs `kadns ARGS…` to completion.
pub(crate) fn kadns<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(KADNS)
        .args(args)
        .env_remove("KADNS_LOG")
        .output()
        .expect("the kadns binary runs");
    Run {
        success: status.success(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

impl Run {
    /// Asserts failure with exactly one error line on stderr containing every fragment.
    pub(crate) fn assert_error(&self, fragments: &[&str]) {
        assert!(!self.success, "expected failure, got success: {self:?}");
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| l.starts_with("kadns: error:"))
            .collect();
        assert_eq!(lines.len(), 1, "expected one error line: {self:?}");
        for fragment in fragments {
            assert!(
                self.stderr.contains(fragment),
                "stderr lacks {fragment:?}: {self:?}"
            );
        }
    }
}

/// The fixture zone with every record type the signer handles.
pub(crate) fn all_types_zone() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/all-types.zone"
    ))
}

/// Generates a key in `dir`, returning its path and zone id.
pub(crate) fn new_key(dir: &Path) -> (std::path::PathBuf, String) {
    let path = dir.join("zone.key");
    let run = kadns(
        ["key", "generate", "--out"]
            .iter()
            .map(|s| s.as_ref())
            .chain([path.as_os_str()]),
    );
    assert!(run.success, "{run:?}");
    (path, run.stdout.trim().to_string())
}

/// Runs `kadns ARGS…` as a child process without blocking the async runtime
/// (the in-process DHT nodes of a test keep running meanwhile). The child is
/// killed if it has not exited within `deadline`, which is then an error, or
/// if the returned future is dropped.
pub(crate) async fn kadns_async<I, S>(
    args: I,
    deadline: std::time::Duration,
) -> Result<Run, Box<dyn std::error::Error + Send + Sync>>
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let child = tokio::process::Command::new(KADNS)
        .args(args)
        .env_remove("KADNS_LOG")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let Output {
        status,
        stdout,
        stderr,
    } = tokio::time::timeout(deadline, child)
        .await
        .map_err(|_| format!("kadns did not exit within {deadline:?}"))??;
    Ok(Run {
        success: status.success(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    })
}
