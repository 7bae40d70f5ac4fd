//! `--allow` replaces the loopback default.

use std::time::Duration;

use kadns_record::hickory_proto::op::ResponseCode;
use kadns_record::hickory_proto::rr::RData;
use kadns_record::hickory_proto::rr::rdata::A;
use kadns_tests::TestResult;
use kadns_tests::upstream::TestUpstream;
use tokio::time::timeout;

use super::{TEST_BOUND, ask_from, ede_code};
use crate::e2e_support::{serve, serve_args};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_replaces_the_loopback_default() -> TestResult {
    let _serial = crate::serial().await;
    timeout(TEST_BOUND, allow()).await?
}

async fn allow() -> TestResult {
    let upstream =
        TestUpstream::start(&[("allowed.example.", RData::A(A::new(198, 51, 100, 10)))]).await?;
    let dir = tempfile::tempdir()?;
    let mut args = serve_args(&dir.path().join("stub"), "127.0.0.1:0");
    args.extend([
        "--upstream".into(),
        upstream.addr().to_string(),
        "--allow".into(),
        "127.0.0.2/32".into(),
    ]);
    let mut node = serve(args).await?;
    let server = node.dns_udp[0];
    let wait = Duration::from_secs(5);
    let (refused, _) = ask_from("127.0.0.1", server, "allowed.example.", wait, 2).await?;
    assert_eq!(
        refused.metadata.response_code,
        ResponseCode::Refused,
        "{refused:?}"
    );
    assert_eq!(
        ede_code(&refused),
        Some(18),
        "EDE 18 Prohibited: {refused:?}"
    );
    assert!(refused.answers.is_empty());
    let (answered, _) = ask_from("127.0.0.2", server, "allowed.example.", wait, 2).await?;
    assert_eq!(answered.metadata.response_code, ResponseCode::NoError);
    assert_eq!(answered.answers.len(), 1, "{answered:?}");
    node.terminate()?;
    Ok(())
}
