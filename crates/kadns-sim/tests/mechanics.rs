//! The simulator's mechanics at small N: the delay layer adds exactly what
//! it says (byte pipes and native connections), a dead node answers
//! nothing, and a liar's forged bundle is never returned by the production
//! lookup.

use std::sync::Arc;
use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt};
use kadns_sim::link::{LinkConfig, Network, address};
use kadns_sim::names::{Names, Verdict};
use kadns_sim::storage::LieKind;
use kadns_sim::world::{World, sim_config};
use libp2p::core::muxing::StreamMuxerExt;
use libp2p::core::transport::{DialOpts, ListenerId, Transport, TransportEvent};
use libp2p::core::{Endpoint, transport::PortUse};
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use tokio::time::Instant;

const DEADLINE: Duration = Duration::from_secs(30);

fn dial_opts() -> DialOpts {
    DialOpts {
        role: Endpoint::Dialer,
        port_use: PortUse::New,
    }
}

fn within(got: Duration, ms: u64, what: &str) {
    let want = Duration::from_millis(ms);
    assert!(
        got >= want && got <= want + Duration::from_millis(20),
        "{what}: {got:?}, want {want:?}"
    );
}

/// The dial costs one RTT (the SYN exchange), a write arrives one one-way
/// delay later, and a request/response costs one RTT: never less, and not
/// more than timer granularity plus scheduling slack (20 ms).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_layer_adds_what_it_says() {
    let net = Network::new(LinkConfig::fixed(Duration::from_millis(80)));
    let (a, b) = (net.add_host(), net.add_host());
    let mut listener = net.raw_transport(b);
    listener
        .listen_on(ListenerId::next(), address(b))
        .expect("listen");
    let mut dialer = net.raw_transport(a);
    let start = Instant::now();
    let dial = dialer.dial(address(b), dial_opts()).expect("dial");
    let server = tokio::spawn(async move {
        loop {
            match futures::future::poll_fn(|cx| std::pin::Pin::new(&mut listener).poll(cx)).await {
                TransportEvent::Incoming { upgrade, .. } => {
                    let mut link = upgrade.await.expect("incoming");
                    let mut buf = [0u8; 4];
                    link.read_exact(&mut buf).await.expect("read");
                    let got = Instant::now();
                    link.write_all(&buf).await.expect("echo");
                    return got;
                }
                _ => continue,
            }
        }
    });
    let mut link = dial.await.expect("connected");
    within(start.elapsed(), 80, "dial = 1 RTT");
    let sent = Instant::now();
    link.write_all(b"ping").await.expect("write");
    let mut buf = [0u8; 4];
    link.read_exact(&mut buf).await.expect("read echo");
    assert_eq!(&buf, b"ping");
    within(sent.elapsed(), 80, "round trip = 1 RTT");
    let arrived = server.await.expect("server");
    within(arrived - sent, 40, "one way = RTT/2");
}

/// The native stack (the default): a dial costs two RTTs (SYN, then the
/// handshake), the listener's side appears half an RTT later, opening a
/// substream costs nothing, a write arrives one one-way delay later and a
/// request/response on a new substream costs one RTT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_link_adds_what_it_says() {
    let net = Network::new(LinkConfig::fixed(Duration::from_millis(80)));
    let (a, b) = (net.add_host(), net.add_host());
    let (ka, kb) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    let (ida, idb) = (ka.public().to_peer_id(), kb.public().to_peer_id());
    let mut listener = net.transport(b, &kb).expect("transport b");
    listener
        .listen_on(ListenerId::next(), address(b))
        .expect("listen");
    let mut dialer = net.transport(a, &ka).expect("transport a");
    let start = Instant::now();
    let server = tokio::spawn(async move {
        loop {
            match futures::future::poll_fn(|cx| std::pin::Pin::new(&mut listener).poll(cx)).await {
                TransportEvent::Incoming { upgrade, .. } => {
                    let (peer, mut muxer) = upgrade.await.expect("incoming");
                    let accepted = Instant::now();
                    let mut s = futures::future::poll_fn(|cx| muxer.poll_inbound_unpin(cx))
                        .await
                        .expect("inbound substream");
                    let mut buf = [0u8; 4];
                    s.read_exact(&mut buf).await.expect("read");
                    let got = Instant::now();
                    s.write_all(&buf).await.expect("echo");
                    s.close().await.expect("close");
                    return (peer, accepted, got, muxer);
                }
                _ => continue,
            }
        }
    });
    let dial = dialer
        .dial(address(b).with(Protocol::P2p(idb)), dial_opts())
        .expect("dial");
    let (peer, mut muxer) = dial.await.expect("connected");
    assert_eq!(peer, idb);
    within(start.elapsed(), 160, "dial = 2 RTT");
    let sent = Instant::now();
    let mut s = futures::future::poll_fn(|cx| muxer.poll_outbound_unpin(cx))
        .await
        .expect("outbound substream");
    s.write_all(b"ping").await.expect("write");
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf).await.expect("read echo");
    assert_eq!(&buf, b"ping");
    within(sent.elapsed(), 80, "round trip = 1 RTT");
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).await.expect("FIN after the echo");
    assert!(rest.is_empty());
    let (peer, accepted, arrived, _their_muxer) = server.await.expect("server");
    assert_eq!(peer, ida, "the listener learns the dialer's id");
    within(accepted - start, 200, "listener side = 2.5 RTT");
    within(arrived - sent, 40, "one way = RTT/2");
}

/// On the native stack a dead host accepts a dial and never completes it
/// (the dial fails at the transport's limit), and on a connection made
/// before it died nothing arrives either way and nothing closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_dead_host_is_blackholed() {
    let net = Network::new(LinkConfig {
        upgrade_timeout: Duration::from_secs(1),
        ..LinkConfig::fixed(Duration::from_millis(10))
    });
    let (a, b) = (net.add_host(), net.add_host());
    let (ka, kb) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    let mut listener = net.transport(b, &kb).expect("transport b");
    listener
        .listen_on(ListenerId::next(), address(b))
        .expect("listen");
    let mut dialer = net.transport(a, &ka).expect("transport a");
    let accept = tokio::spawn(async move {
        loop {
            if let TransportEvent::Incoming { upgrade, .. } =
                futures::future::poll_fn(|cx| std::pin::Pin::new(&mut listener).poll(cx)).await
            {
                let (_, muxer) = upgrade.await.expect("incoming");
                return (listener, muxer);
            }
        }
    });
    let (_, mut muxer) = dialer
        .dial(address(b), dial_opts())
        .expect("dial")
        .await
        .expect("connected while alive");
    let (_listener, mut theirs) = accept.await.expect("accepted");
    net.kill(b);
    let mut s = futures::future::poll_fn(|cx| muxer.poll_outbound_unpin(cx))
        .await
        .expect("opening a substream is local");
    s.write_all(b"hello?").await.expect("write is swallowed");
    let inbound = tokio::time::timeout(
        Duration::from_millis(300),
        futures::future::poll_fn(|cx| theirs.poll_inbound_unpin(cx)),
    )
    .await;
    assert!(inbound.is_err(), "the dead host sees no substream");
    futures::future::poll_fn(|cx| theirs.poll_close_unpin(cx))
        .await
        .expect("close");
    drop(theirs);
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_millis(300), s.read(&mut buf)).await;
    assert!(read.is_err(), "a dead host neither answers nor closes");
    let event = tokio::time::timeout(
        Duration::from_millis(300),
        futures::future::poll_fn(|cx| muxer.poll_unpin(cx)),
    )
    .await;
    assert!(event.is_err(), "its close never arrives");
    assert_eq!(net.traffic(b), (0, 0));
    let started = Instant::now();
    let again = dialer.dial(address(b), dial_opts()).expect("dial").await;
    assert!(again.is_err(), "a dial into a dead host fails");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "at the limit, not before: {:?}",
        started.elapsed()
    );
}

/// A dead node is blackholed: a peer's dial "succeeds" at the link but
/// nothing ever arrives, the dead node's byte counters stop, and a record
/// only it held is no longer found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_node_answers_nothing() {
    let net = Network::new(LinkConfig {
        upgrade_timeout: Duration::from_secs(2),
        ..LinkConfig::fixed(Duration::from_millis(10))
    });
    // Raw level: bytes written to a dead host vanish and the link never
    // reports end of stream.
    let (a, b) = (net.add_host(), net.add_host());
    let mut listener = net.raw_transport(b);
    listener
        .listen_on(ListenerId::next(), address(b))
        .expect("listen");
    net.kill(b);
    let mut link = net
        .raw_transport(a)
        .dial(address(b), dial_opts())
        .expect("dial")
        .await
        .expect("a dead host accepts the connection attempt");
    link.write_all(b"hello?").await.expect("write is swallowed");
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_millis(500), link.read(&mut buf)).await;
    assert!(read.is_err(), "a dead host neither answers nor closes");
    assert_eq!(net.traffic(b), (0, 0));
    assert_eq!(net.swallowed(a), 6);

    // Production nodes, on a network of their own: a dead node never
    // answers a lookup and no byte reaches or leaves it.
    let net = Network::new(*net.config());
    let names = Names::generate(1, 7).expect("names");
    let mut world = World::new(net.clone(), sim_config(), names.book.clone(), 7);
    world
        .form(&[None, None, None], Vec::new(), 4)
        .await
        .expect("form");
    let holder = world.nodes[2].index;
    let key = names.newest[0].dht_key();
    let report = world.nodes[2]
        .handle
        .put(names.newest[0].clone())
        .await
        .expect("put");
    assert!(report.replicas() >= 1);
    let before = tokio::time::timeout(DEADLINE, world.nodes[0].handle.get(key))
        .await
        .expect("get in time")
        .expect("get");
    assert!(before.best.is_some(), "found while everyone is alive");
    // Kill every node that holds it but the asker: holder and the other.
    world.kill(holder);
    world.kill(world.nodes[1].index);
    let frozen = (net.traffic(holder), net.traffic(world.nodes[1].index));
    // A new node asks: it holds no copy, so only the network can answer.
    let fresh = world.spawn(None, None).await.expect("a new asker");
    let after = tokio::time::timeout(DEADLINE, world.nodes[fresh].handle.get(key))
        .await
        .expect("get in time")
        .expect("get");
    let only_local_or_alive = after
        .answered_by
        .iter()
        .all(|p| *p != world.nodes[holder].peer_id && *p != world.nodes[1].peer_id);
    assert!(
        only_local_or_alive,
        "a dead node answered: {:?}",
        after.answered_by
    );
    assert_eq!(
        (net.traffic(holder), net.traffic(world.nodes[1].index)),
        frozen,
        "no byte reached or left a dead node"
    );
    world.shutdown().await;
}

/// Half the network serves forged (and wrong-key) bundles with higher
/// sequence numbers; the production lookup refuses every one of them and
/// returns only the published bundle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn liars_forged_bundle_is_never_returned() {
    let net = Network::new(LinkConfig::fixed(Duration::from_millis(10)));
    let names = Names::generate(4, 11).expect("names");
    let mut world = World::new(net, sim_config(), names.book.clone(), 11);
    let liars: Vec<Option<LieKind>> = (0..10)
        .map(|i| match i % 4 {
            1 => Some(LieKind::Forged),
            3 => Some(LieKind::WrongKey),
            _ => None,
        })
        .collect();
    world.form(&liars, Vec::new(), 8).await.expect("form");
    for bundle in &names.newest {
        let report = world.nodes[0]
            .handle
            .put(bundle.clone())
            .await
            .expect("put");
        assert!(report.replicas() >= 1);
    }
    let names = Arc::new(names);
    let mut refused = 0;
    for (i, bundle) in names.newest.iter().enumerate() {
        let asker = [2, 4, 6, 8][i];
        let key = bundle.dht_key();
        let got = tokio::time::timeout(DEADLINE, world.nodes[asker].handle.get(key))
            .await
            .expect("get in time")
            .expect("get");
        let best = got.best.expect("the honest replicas are found");
        assert_eq!(names.verdict(&key, best.as_bytes()), Verdict::Fresh);
        assert_eq!(best.sequence(), 2, "never the liars' sequence 1000");
        refused += got.invalid_answers;
    }
    assert!(refused > 0, "the liars were asked and refused");
    world.shutdown().await;
}

/// Every holder but one is dead: the production lookup returns the one
/// valid answer at the end of `get_grace`, not at the query timeout, and
/// repeated lookups make the asker drop the dead peers from its routing
/// table (their dials time out `MAX_PEER_FAILURES` times).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_holders_neither_stall_a_get_nor_stay_in_the_table() {
    let mut config = sim_config();
    config.query_timeout = Duration::from_secs(60);
    config.get_grace = Duration::from_secs(1);
    config.request_timeout = Duration::from_secs(2);
    config.dial_timeout = Duration::from_secs(2);
    // The production default (the simulator's `IfRoom` leaves the asker a
    // table whose lookup converges on node 0 before the grace ends: the get
    // is as fast and as right, but the grace path is not exercised).
    config.bucket_inserts = kadns_dht::BucketInserts::Probe;
    let net = Network::new(LinkConfig {
        upgrade_timeout: config.dial_timeout,
        ..LinkConfig::fixed(Duration::from_millis(10))
    });
    let names = Names::generate(1, 13).expect("names");
    let mut world = World::new(net, config, names.book.clone(), 13);
    world.form(&[None; 10], Vec::new(), 8).await.expect("form");
    let bundle = names.newest[0].clone();
    let key = bundle.dht_key();
    let report = world.nodes[0].handle.put(bundle).await.expect("put");
    assert!(report.replicas() >= 8, "k = 20 > 10 nodes: all hold it");
    // The asker joins after the put (it holds no copy); then all but
    // node 0 and the asker die.
    let asker = world.spawn(None, None).await.expect("asker");
    let handle = world.nodes[asker].handle.clone();
    tokio::time::timeout(DEADLINE, handle.refresh())
        .await
        .expect("refresh in time")
        .expect("refresh");
    let dead: Vec<_> = (1..10).map(|i| world.nodes[i].peer_id).collect();
    for i in 1..10 {
        world.kill(i);
    }
    let started = Instant::now();
    let got = tokio::time::timeout(Duration::from_secs(90), handle.get(key))
        .await
        .expect("get ends")
        .expect("get");
    let took = started.elapsed();
    let best = got.best.expect("node 0's copy is found");
    assert_eq!(names.verdict(&key, best.as_bytes()), Verdict::Fresh);
    assert_eq!(got.answered_by, vec![world.nodes[0].peer_id]);
    assert_eq!(
        handle.metrics().gets_grace_expired.get(),
        1,
        "it returned at the grace, short of the quorum of 3"
    );
    // Without the grace it would wait for the nine dead holders (per-request
    // and dial limits, 2 s each, three at a time, at least).
    assert!(took < Duration::from_secs(15), "took {took:?}");
    // The asker's connections to the dead stay open (a dead host closes
    // nothing): its pings fail and close them, later lookups dial the dead
    // and those dials time out; after MAX_PEER_FAILURES failures in a row
    // each dead peer leaves the routing table.
    let deadline = Instant::now() + Duration::from_secs(150);
    loop {
        let table = handle.peers().await.expect("peers");
        if !table.iter().any(|p| dead.contains(p)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "dead peers still in the table: {} of 9",
            table.iter().filter(|p| dead.contains(p)).count()
        );
        let _ = tokio::time::timeout(Duration::from_secs(90), handle.get(key)).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(handle.metrics().peers_removed.get() >= 9);
    assert!(
        handle
            .peers()
            .await
            .expect("peers")
            .contains(&world.nodes[0].peer_id)
    );
    world.shutdown().await;
}

/// The production swarm's round trips, seen through a get: on a connection
/// that is open, a Kademlia request costs one RTT (the protocol is chosen
/// lazily, with the request); on a new connection it costs three (the
/// dial's two, then the request). With libp2p's default negotiation (`V1`,
/// which waits for the listener's confirmation) these were two and four.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_costs_one_rtt_on_an_open_connection_and_three_on_a_new_one() {
    const RTT: u64 = 200;
    let config = sim_config();
    let net = Network::new(LinkConfig::fixed(Duration::from_millis(RTT)));
    let names = Names::generate(1, 21).expect("names");
    let mut world = World::new(net, config, names.book.clone(), 21);
    world.form(&[None; 2], Vec::new(), 2).await.expect("form");
    let bundle = names.newest[0].clone();
    let key = bundle.dht_key();
    let report = world.nodes[0].handle.put(bundle).await.expect("put");
    assert_eq!(report.replicas(), 2, "both nodes hold it");
    // The asker joins after the put: it holds no copy, and its join has
    // just opened connections to both holders. Once both are in its
    // routing table too, its get asks both at once: one hop.
    let asker = world.spawn(None, None).await.expect("asker");
    let handle = world.nodes[asker].handle.clone();
    let deadline = Instant::now() + DEADLINE;
    while handle.connected_peers().await.expect("connected").len() < 2
        || handle.peers().await.expect("peers").len() < 2
    {
        assert!(Instant::now() < deadline, "the asker never reached both");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let timed_get = || async {
        let started = Instant::now();
        let got = tokio::time::timeout(DEADLINE, handle.get(key))
            .await
            .expect("get in time")
            .expect("get");
        let took = started.elapsed();
        let best = got.best.expect("found");
        assert_eq!(names.verdict(&key, best.as_bytes()), Verdict::Fresh);
        assert_eq!(got.answered_by.len(), 2, "both holders answered");
        took
    };
    let warm = timed_get().await;
    let want = Duration::from_millis(RTT);
    assert!(
        warm >= want && warm < want + Duration::from_millis(RTT / 2),
        "open connections: {warm:?}, want one RTT ({want:?})"
    );
    // The simulator closes idle connections after 5 s: wait for it, then
    // the same get dials both holders first.
    let deadline = Instant::now() + DEADLINE;
    while !handle
        .connected_peers()
        .await
        .expect("connected")
        .is_empty()
    {
        assert!(Instant::now() < deadline, "connections never went idle");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cold = timed_get().await;
    let want = Duration::from_millis(3 * RTT);
    assert!(
        cold >= want && cold < want + Duration::from_millis(RTT / 2),
        "new connections: {cold:?}, want three RTTs ({want:?})"
    );
    world.shutdown().await;
}

/// A join over slow links walks the routing table once. libp2p starts its
/// walk 500 ms after a peer enters a table of fewer than k; at 200 ms RTT
/// a hop on new connections takes 600 ms, so the walk starts while the
/// table is still filling, the peers that enter it during the walk start
/// another, and without `MIN_WALK_GAP` every joiner walked twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_join_walks_the_table_once() {
    let net = Network::new(LinkConfig::fixed(Duration::from_millis(200)));
    let names = Names::generate(1, 23).expect("names");
    let mut world = World::new(net, sim_config(), names.book.clone(), 23);
    world.form(&[None; 30], Vec::new(), 8).await.expect("form");
    let suppressed: u64 = world
        .nodes
        .iter()
        .map(|n| n.handle.metrics().bootstraps_suppressed.get())
        .sum();
    assert!(
        suppressed > 0,
        "libp2p started no second walk: the test shows nothing"
    );
    // Watched for 20 s, long enough for a second walk to end (a walk
    // here takes seconds): no node completes one.
    let watch = Instant::now() + Duration::from_secs(20);
    while Instant::now() < watch {
        for n in &world.nodes {
            let m = n.handle.metrics();
            assert_eq!(m.bootstraps.get(), 1, "node {} walked again", n.index);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    world.shutdown().await;
}
