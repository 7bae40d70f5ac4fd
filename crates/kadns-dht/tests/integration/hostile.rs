//! Done-when 2: hostile puts are refused by every honest node and reported as
//! stored nowhere; hostile answers to gets change nothing.

use std::collections::HashSet;
use std::time::Duration;

use kadns_dht::{Node, PeerId};
use kadns_record::MAX_BUNDLE_LEN;
use kadns_tests::hostile::ReplayingStorage;
use libp2p::identity::Keypair;
use rand::{RngExt, SeedableRng};
use tracing_test::traced_test;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[traced_test]
async fn hostile_puts_are_refused_and_hostile_answers_ignored() -> TestResult {
    tokio::time::timeout(Duration::from_secs(120), async {
        let owner = zone(2);
        let genuine = bundle(&owner, "mail", 5, now() + 3600, 5);
        let key = genuine.dht_key();
        let stale = bundle(&owner, "mail", 3, now() + 3600, 3);
        let mut forged = genuine.as_bytes().to_vec();
        let sig_start = forged.len() - 64;
        forged[sig_start] ^= 0x01;

        // Five honest servers, one honest client, one hostile publisher.
        // Every get asks every peer (quorum above the network size).
        let mut nodes = spawn_net(6, |_| with_quorum(test_config(), 20)).await?;
        let seed = first_addr(&nodes[0]).await?;
        let mut client_config = with_quorum(test_config(), 20);
        client_config.mode = kadns_dht::Mode::Client;
        client_config.bootstrap = vec![seed.clone()];
        let client = Node::spawn(client_config).await?;

        // The genuine record is stored first.
        let report = nodes[1].handle().put(genuine.clone()).await?;
        assert_eq!(report.replicas(), 6, "{report:?}");
        let honest: HashSet<PeerId> = nodes.iter().map(Node::peer_id).collect();

        // The hostile node is nodes[5]: it sends bad records to everyone else.
        let hostile = nodes.pop().ok_or("six nodes")?;
        let honest: HashSet<PeerId> = honest
            .into_iter()
            .filter(|p| *p != hostile.peer_id())
            .collect();
        let other_key = zone(99);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let random: Vec<u8> = (0..200).map(|_| rng.random()).collect();
        let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
            ("forged signature", forged.clone(), &["bad_signature"]),
            (
                "signed by another key",
                bundle(&other_key, "mail", 9, now() + 3600, 9).into_bytes(),
                &["wrong_key"],
            ),
            ("lower sequence", stale.as_bytes().to_vec(), &["older"]),
            (
                "equal sequence, other content",
                bundle(&owner, "mail", 5, now() + 3600, 6).into_bytes(),
                &["conflict"],
            ),
            (
                "expired",
                bundle(&owner, "mail", 7, now() - 10, 7).into_bytes(),
                &["expired"],
            ),
            ("oversized", vec![1u8; MAX_BUNDLE_LEN + 1], &["too_large"]),
            (
                "random bytes",
                random,
                &["malformed", "unsupported_version"],
            ),
        ];
        for (what, bytes, reasons) in cases {
            let report = hostile.handle().put_unvalidated(key, bytes).await?;
            assert!(report.stored_on.is_empty(), "{what}: {report:?}");
            assert_eq!(report.replicas(), 0, "{what}");
            let refusers: HashSet<PeerId> = report.refused.iter().map(|(p, _)| *p).collect();
            assert_eq!(
                refusers, honest,
                "{what}: every honest node refuses: {report:?}"
            );
            for (peer, reason) in &report.refused {
                assert!(
                    reasons.contains(&reason.as_str()),
                    "{what}: {peer} said {reason}"
                );
            }
        }
        // The refusals were counted on an honest node.
        let m = nodes[0].handle();
        for reason in [
            "bad_signature",
            "wrong_key",
            "older",
            "conflict",
            "expired",
            "too_large",
        ] {
            assert!(
                m.metrics().refusals_for(reason) >= 1,
                "{reason} not counted"
            );
        }
        hostile.shutdown().await;

        // Two lying servers join: one answers every get with the forged
        // bundle, the other with the stale one.
        for answer in [forged.clone(), stale.as_bytes().to_vec()] {
            let mut c = with_quorum(test_config(), 20);
            c.bootstrap = vec![seed.clone()];
            let liar = Node::spawn_with(
                c,
                Box::new(ReplayingStorage::for_every_key(answer)),
                Keypair::generate_ed25519(),
            )
            .await?;
            nodes.push(liar);
        }
        settle(&nodes, 6).await?;
        let liars: Vec<PeerId> = nodes[5..].iter().map(Node::peer_id).collect();

        let mut saw_invalid = false;
        let mut liar_answered = false;
        for h in nodes[..5].iter().map(Node::handle).chain([client.handle()]) {
            let outcome = h.get(key).await?;
            let best = outcome.best.as_ref().ok_or("record not found")?;
            assert_eq!(
                best.as_bytes(),
                genuine.as_bytes(),
                "get returned the wrong bundle"
            );
            assert_eq!(best.sequence(), 5);
            saw_invalid |= outcome.invalid_answers > 0;
            liar_answered |= outcome.answered_by.iter().any(|p| liars.contains(p));
        }
        assert!(saw_invalid, "the forging node was never asked");
        assert!(liar_answered, "the stale node was never asked");
        client.shutdown().await;
        shutdown_all(nodes).await;
        Ok(())
    })
    .await?
}

#[tokio::test]
#[traced_test]
async fn bootstrap_names_are_refused() -> TestResult {
    let mut c = test_config();
    c.bootstrap = vec![
        "/dns4/example.org/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"
            .parse()?,
    ];
    match Node::spawn(c).await {
        Err(kadns_dht::Error::BadAddress { .. }) => Ok(()),
        other => Err(format!("expected BadAddress, got {other:?}").into()),
    }
}
