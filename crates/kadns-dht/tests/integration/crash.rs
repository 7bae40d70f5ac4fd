//! Done-when 5: `kill -9` right after a node acknowledged a put; after a
//! restart the record is there.

use std::process::Stdio;
use std::time::Duration;

use kadns_dht::{Node, PeerId};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tracing_test::traced_test;

use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_kadns-dht-node");

fn start(
    dir: &std::path::Path,
    bootstrap: &str,
) -> std::io::Result<(Child, Lines<BufReader<ChildStdout>>)> {
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir)
        .arg("--bootstrap")
        .arg(bootstrap)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| std::io::Error::other("no stdout"))?;
    Ok((child, BufReader::new(stdout).lines()))
}

async fn line_starting(
    lines: &mut Lines<BufReader<ChildStdout>>,
    prefix: &str,
) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    while let Some(line) = lines.next_line().await? {
        if let Some(rest) = line.strip_prefix(prefix) {
            return Ok(rest.to_owned());
        }
    }
    Err(format!("the node exited before printing {prefix:?}").into())
}

fn peer_of(addr: &str) -> Result<PeerId, Box<dyn std::error::Error + Send + Sync>> {
    Ok(addr.rsplit('/').next().ok_or("no peer id")?.parse()?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[traced_test]
async fn acknowledged_record_survives_kill_9() -> TestResult {
    tokio::time::timeout(Duration::from_secs(90), async {
        let dir = tempfile::tempdir()?;
        let n1 = Node::spawn(test_config()).await?;
        let seed = first_addr(&n1).await?.to_string();

        let (mut child, mut lines) = start(dir.path(), &seed)?;
        let p = peer_of(&line_starting(&mut lines, "p2p ").await?)?;
        let h = n1.handle();
        wait_for("the child to join", Duration::from_secs(30), || {
            let h = h.clone();
            async move { h.peers().await.is_ok_and(|peers| peers.contains(&p)) }
        })
        .await?;

        let signed = bundle(&zone(5), "crash", 1, now() + 3600, 5);
        let key = signed.dht_key();
        let report = h.put(signed).await?;
        assert!(report.stored_on.contains(&p), "{report:?}");
        let ack = line_starting(&mut lines, "ack ").await?;
        assert_eq!(ack, format!("{key} 1"));
        // SIGKILL, right after the acknowledgement.
        child.start_kill()?;
        child.wait().await?;

        let out = Command::new(BIN)
            .arg("--data-dir")
            .arg(dir.path())
            .arg("--check")
            .arg(key.to_string())
            .output()
            .await?;
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "present 1");

        // Restarted, the node serves it again under the same peer id.
        let (mut child, mut lines) = start(dir.path(), &seed)?;
        assert_eq!(peer_of(&line_starting(&mut lines, "p2p ").await?)?, p);
        wait_for(
            "the restarted child to answer",
            Duration::from_secs(30),
            || {
                let h = h.clone();
                async move { h.get(key).await.is_ok_and(|o| o.answered_by.contains(&p)) }
            },
        )
        .await?;
        child.start_kill()?;
        child.wait().await?;
        n1.shutdown().await;
        Ok(())
    })
    .await?
}
