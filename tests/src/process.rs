//! Running `kadns` processes: start, read the address lines they print, stop.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::TestResult;

/// How long a process may take to print its addresses.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `kadns` process. Its standard output is read line by line in
/// the background; standard error is kept for failure messages. Killed when
/// dropped, so a failing test leaves nothing behind.
#[derive(Debug)]
pub struct KadnsProcess {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
    stderr: Arc<Mutex<String>>,
    /// `p2p` addresses, each ending in `/p2p/<peer id>`.
    pub p2p: Vec<String>,
    /// `dns udp` addresses.
    pub dns_udp: Vec<SocketAddr>,
    /// `dns tcp` addresses.
    pub dns_tcp: Vec<SocketAddr>,
}

impl KadnsProcess {
    /// Starts `bin ARGS…` and waits for its last address line (`dns tcp …`).
    pub fn serve<I, S>(bin: &Path, args: I) -> TestResult<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Self::serve_with_env(bin, args, &[])
    }

    /// Like [`KadnsProcess::serve`], with extra environment variables (for
    /// example `KADNS_LOG`, to read what the process logs on standard error).
    pub fn serve_with_env<I, S>(bin: &Path, args: I, env: &[(&str, &str)]) -> TestResult<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut process = Self::spawn_with_env(bin, args, env)?;
        process.wait_for(|l| l.starts_with("dns tcp "), START_TIMEOUT)?;
        for line in &process.seen {
            if let Some(addr) = line.strip_prefix("p2p ") {
                process.p2p.push(addr.to_owned());
            } else if let Some(addr) = line.strip_prefix("dns udp ") {
                process.dns_udp.push(addr.parse()?);
            } else if let Some(addr) = line.strip_prefix("dns tcp ") {
                process.dns_tcp.push(addr.parse()?);
            }
        }
        Ok(process)
    }

    /// Starts `bin ARGS…` without waiting for anything.
    pub fn spawn<I, S>(bin: &Path, args: I) -> TestResult<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Self::spawn_with_env(bin, args, &[])
    }

    /// Like [`KadnsProcess::spawn`], with extra environment variables.
    pub fn spawn_with_env<I, S>(bin: &Path, args: I, env: &[(&str, &str)]) -> TestResult<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut child = Command::new(bin)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let (send, lines) = channel();
        let stdout = child.stdout.take().ok_or("no stdout")?;
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    return;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().ok_or("no stderr")?;
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    return;
                }
                if let Ok(mut text) = sink.lock() {
                    text.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }
        });
        Ok(Self {
            child,
            lines,
            seen: Vec::new(),
            stderr,
            p2p: Vec::new(),
            dns_udp: Vec::new(),
            dns_tcp: Vec::new(),
        })
    }

    /// Waits until a line of standard output matches, and returns it.
    pub fn wait_for(
        &mut self,
        matches: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> TestResult<String> {
        if let Some(line) = self.seen.iter().find(|l| matches(l)) {
            return Ok(line.clone());
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if matches(&line) {
                        return Ok(line);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "no matching line within {timeout:?}; stdout {:?}; stderr {}",
                        self.seen,
                        self.stderr()
                    )
                    .into());
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait()?;
                    return Err(format!(
                        "process exited ({status}) first; stdout {:?}; stderr {}",
                        self.seen,
                        self.stderr()
                    )
                    .into());
                }
            }
        }
    }

    /// Every line of standard output read so far (and any ready now).
    pub fn stdout_lines(&mut self) -> &[String] {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        &self.seen
    }

    /// Standard error so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Waits until standard error contains `needle`, and returns all of it.
    pub fn wait_for_stderr(&self, needle: &str, timeout: Duration) -> TestResult<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.stderr();
            if text.contains(needle) {
                return Ok(text);
            }
            if Instant::now() >= deadline {
                return Err(
                    format!("stderr lacks {needle:?} after {timeout:?}; stderr {text}").into(),
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The exit status if the process has ended, `None` while it runs.
    pub fn exited(&mut self) -> TestResult<Option<ExitStatus>> {
        Ok(self.child.try_wait()?)
    }

    /// The first `p2p` address.
    pub fn p2p_addr(&self) -> &str {
        self.p2p.first().map(String::as_str).unwrap_or_default()
    }

    /// Sends SIGTERM and waits (at most 30 s) for the exit status.
    pub fn terminate(&mut self) -> TestResult<ExitStatus> {
        self.signal("TERM")?;
        self.wait(Duration::from_secs(30))
    }

    /// Sends SIGINT (Ctrl-C) and waits (at most 30 s) for the exit status.
    pub fn interrupt(&mut self) -> TestResult<ExitStatus> {
        self.signal("INT")?;
        self.wait(Duration::from_secs(30))
    }

    /// `kill -9`: no chance to flush or clean up.
    pub fn kill9(&mut self) -> TestResult<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn signal(&self, name: &str) -> TestResult<()> {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()?;
        if !status.success() {
            return Err(format!("kill -{name} failed").into());
        }
        Ok(())
    }

    fn wait(&mut self, timeout: Duration) -> TestResult<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                self.child.kill()?;
                return Err(format!(
                    "process did not exit within {timeout:?}; stderr {}",
                    self.stderr()
                )
                .into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for KadnsProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
