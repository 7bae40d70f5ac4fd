//! Running the real `kdig` (Debian's knot-dnsutils) over DNS over TLS and
//! DNS over HTTPS. Its output has the same section headers as dig's, so the
//! [`dig`](crate::dig) parsers read it too.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use crate::TestResult;

/// True if `kdig` is installed. Tests that need it print a notice and pass
/// vacuously without it; CI installs it, so there they always run.
pub fn available() -> bool {
    Command::new("kdig")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// How `kdig` reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encrypted {
    /// DNS over TLS (`+tls`).
    Tls,
    /// DNS over HTTPS with POST (`+https`), HTTP/2.
    HttpsPost,
    /// DNS over HTTPS with GET (`+https +https-get`), HTTP/2.
    HttpsGet,
}

/// Runs `kdig @server -p port +tls|+https +tls-ca=CA +tls-hostname=NAME
/// ARGS…`, bounded (`+time=5 +retry=0`), and returns its standard output.
/// The server's certificate must chain to `ca` and carry `hostname`.
pub fn kdig(
    server: SocketAddr,
    how: Encrypted,
    ca: &Path,
    hostname: &str,
    args: &[&str],
) -> TestResult<String> {
    let transport: &[&str] = match how {
        Encrypted::Tls => &["+tls"],
        Encrypted::HttpsPost => &["+https"],
        Encrypted::HttpsGet => &["+https", "+https-get"],
    };
    let output = Command::new("kdig")
        .arg(format!("@{}", server.ip()))
        .arg("-p")
        .arg(server.port().to_string())
        .args(["+time=5", "+retry=0"])
        .args(transport)
        .arg(format!("+tls-ca={}", ca.display()))
        .arg(format!("+tls-hostname={hostname}"))
        .args(args)
        .output()?;
    let stdout = String::from_utf8(output.stdout)?;
    if !output.status.success() {
        return Err(format!(
            "kdig {how:?} {args:?} failed: {}{stdout}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(stdout)
}

/// The status word of kdig's header line (`;; ->>HEADER<<- opcode: QUERY;
/// status: NOERROR; id: 1`): `NOERROR`, `NXDOMAIN`, …
pub fn status(output: &str) -> Option<String> {
    output
        .lines()
        .filter(|l| l.starts_with(";; ->>HEADER<<-"))
        .find_map(|l| l.split("status: ").nth(1))
        .map(|rest| rest.split(';').next().unwrap_or("").trim().to_owned())
}

/// The flags of kdig's `;; Flags:` line, e.g. `["qr", "rd", "ra", "ad"]`.
pub fn flags(output: &str) -> Vec<String> {
    output
        .lines()
        .find_map(|l| l.strip_prefix(";; Flags: "))
        .map(|rest| {
            rest.split(';')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}
