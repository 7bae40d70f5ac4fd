//! Running the real `dig`.

use std::net::SocketAddr;
use std::process::Command;

use crate::TestResult;

/// True if `dig` is installed. Tests that need it print a notice and pass
/// vacuously without it; CI installs it, so there they always run.
pub fn available() -> bool {
    Command::new("dig")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs `dig @server -p port ARGS…` with a bounded time and retry count and
/// returns its standard output.
pub fn dig(server: SocketAddr, args: &[&str]) -> TestResult<String> {
    let output = Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .arg("-p")
        .arg(server.port().to_string())
        .args(["+time=5", "+tries=1"])
        .args(args)
        .output()?;
    if !output.status.success() {
        return Err(format!(
            "dig {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(String::from_utf8(output.stdout)?)
}

/// The flags of dig's `;; flags:` header line, e.g. `["qr", "rd", "ra", "ad"]`.
pub fn flags(output: &str) -> Vec<String> {
    output
        .lines()
        .find_map(|l| l.strip_prefix(";; flags: "))
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

/// The status word of dig's header (`NOERROR`, `NXDOMAIN`, …).
pub fn status(output: &str) -> Option<String> {
    output
        .lines()
        .find_map(|l| l.split("status: ").nth(1))
        .map(|rest| rest.split(',').next().unwrap_or("").trim().to_owned())
}

/// dig's output for several queries in one run (`dig @S a A b MX …`), split
/// into one piece per response received, in the order of the queries.
/// A query that got no response (a timeout) has no piece.
pub fn responses(output: &str) -> Vec<&str> {
    output.split(";; Got answer:").skip(1).collect()
}

/// The question of a response as dig prints it: `(name, type)`, e.g.
/// `("WwW.example.kad.", "A")`.
pub fn question(output: &str) -> Option<(String, String)> {
    let line = section(output, ";; QUESTION SECTION:").into_iter().next()?;
    let mut words = line.trim_start_matches(';').split_whitespace();
    let name = words.next()?.to_owned();
    let rtype = words.nth(1)?.to_owned();
    Some((name, rtype))
}

/// The lines of the ANSWER section.
pub fn answer_lines(output: &str) -> Vec<String> {
    section(output, ";; ANSWER SECTION:")
}

/// The lines of the AUTHORITY section.
pub fn authority_lines(output: &str) -> Vec<String> {
    section(output, ";; AUTHORITY SECTION:")
}

fn section(output: &str, header: &str) -> Vec<String> {
    output
        .lines()
        .skip_while(|l| *l != header)
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}
