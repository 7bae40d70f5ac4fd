//! Routing: which zone, if any, answers for a name.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use hickory_proto::rr::Name;
use kadns_record::{OwnerName, ZONE_ID_LEN, ZoneId};

/// Where a query goes. Decided once per query by [`Resolver::route`](crate::Resolver::route),
/// like hickory's `Catalog::find`: labels are stripped off the name until
/// what is left is a trust anchor, or a single label that is a zone id.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Route {
    /// A kadns zone answers for the name.
    Zone {
        /// The zone whose key must have signed the answer.
        zone: ZoneId,
        /// The apex the query used, as the query wrote it: `<zone-id>.` or a
        /// trust anchor's name. Answers are written under it.
        apex: Name,
        /// The owner name relative to the apex, canonical: what the DHT key is
        /// derived from.
        owner: OwnerName,
    },
    /// The name is under a kadns zone but longer than any owner name a bundle
    /// can carry (`kadns_record::MAX_OWNER_LEN`): it cannot exist.
    TooLong {
        /// The zone.
        zone: ZoneId,
        /// The apex the query used.
        apex: Name,
    },
    /// Not a kadns name: forward upstream.
    Forward,
}

/// The label under which zone-id names may also be written, so that a split
/// DNS router can send them to kadns with one routing domain: `www.<zone
/// id>.kadns.` is `www.<zone id>.` (docs/operations.md, "Split DNS").
pub const ZONE_ID_SUFFIX: &str = "kadns";

/// The routing table shared by the resolver and the forwarder, swapped
/// whole on reload.
pub(crate) type SharedRouter = Arc<ArcSwap<Router>>;

/// A [`SharedRouter`] holding `router`.
pub(crate) fn shared(router: Router) -> SharedRouter {
    Arc::new(ArcSwap::from_pointee(router))
}

/// The routing table: trust anchors, and the zone-id rule.
#[derive(Clone, Debug, Default)]
pub(crate) struct Router {
    /// Anchor apex (fully qualified; `Name` compares and hashes
    /// case-insensitively) → zone.
    anchors: HashMap<Name, ZoneId>,
    /// Most labels among the anchors: longer suffixes need not be looked up.
    max_anchor_labels: usize,
}

impl Router {
    pub(crate) fn new(anchors: impl IntoIterator<Item = (Name, ZoneId)>) -> Self {
        let mut router = Self::default();
        for (mut name, zone) in anchors {
            name.set_fqdn(true);
            // Label counts, not `num_labels()` (which leaves out a leading `*`).
            router.max_anchor_labels = router.max_anchor_labels.max(name.iter().count());
            router.anchors.insert(name, zone);
        }
        router
    }

    pub(crate) fn route(&self, name: &Name) -> Route {
        let mut name = name.clone();
        name.set_fqdn(true);
        let labels = name.iter().count();
        // Longest suffix first, so the most specific anchor wins.
        for keep in (1..=labels.min(self.max_anchor_labels.max(1))).rev() {
            let apex = name.trim_to(keep);
            let zone = match self.anchors.get(&apex) {
                Some(zone) => Some(*zone),
                None if keep == 1 => zone_id_label(&apex),
                None => None,
            };
            if let Some(zone) = zone {
                return Self::zone_route(&name, zone, apex);
            }
        }
        // `… .<zone id>.kadns.`: the zone id under the routing suffix.
        if labels >= 2
            && name
                .iter()
                .next_back()
                .is_some_and(|l| l.eq_ignore_ascii_case(ZONE_ID_SUFFIX.as_bytes()))
        {
            let apex = name.trim_to(2);
            if let Some(zone) = zone_id_label(&apex) {
                return Self::zone_route(&name, zone, apex);
            }
        }
        Route::Forward
    }

    fn zone_route(name: &Name, zone: ZoneId, apex: Name) -> Route {
        match OwnerName::relative_to(name, &apex) {
            Ok(owner) => Route::Zone { zone, apex, owner },
            Err(_) => Route::TooLong { zone, apex },
        }
    }
}

impl Router {
    /// True when `name` is inside a kadns zone (an answer for it can only
    /// come from a verified bundle, never from an upstream).
    pub(crate) fn is_kadns(&self, name: &Name) -> bool {
        !matches!(self.route(name), Route::Forward)
    }
}

/// Per-domain forwarding: which upstream servers a name outside kadns goes
/// to. The longest configured suffix wins; names under none of them go to
/// the default upstreams. Decided once per query, after [`Router::route`]
/// has said "forward" (a kadns name is never forwarded, whatever this says).
#[derive(Clone, Debug, Default)]
pub(crate) struct ForwardTable {
    /// Domain (fully qualified, compared case-insensitively) → its servers.
    domains: HashMap<Name, Vec<std::net::SocketAddr>>,
    /// Most labels among the domains.
    max_labels: usize,
}

impl ForwardTable {
    pub(crate) fn new(
        domains: impl IntoIterator<Item = (Name, Vec<std::net::SocketAddr>)>,
    ) -> Self {
        let mut table = Self::default();
        for (mut name, servers) in domains {
            name.set_fqdn(true);
            table.max_labels = table.max_labels.max(name.iter().count());
            table.domains.insert(name, servers);
        }
        table
    }

    /// The servers for `name` and the domain that chose them, or `None`
    /// for the default upstreams.
    pub(crate) fn lookup(&self, name: &Name) -> Option<(&Name, &[std::net::SocketAddr])> {
        if self.domains.is_empty() {
            return None;
        }
        let mut name = name.clone();
        name.set_fqdn(true);
        let labels = name.iter().count();
        // Longest suffix first; `trim_to(0)` is the root, a valid domain too.
        for keep in (0..=labels.min(self.max_labels)).rev() {
            let suffix = name.trim_to(keep);
            if let Some((domain, servers)) = self.domains.get_key_value(&suffix) {
                return Some((domain, servers.as_slice()));
            }
        }
        None
    }
}

/// The zone id a single-label name spells, if it spells one.
fn zone_id_label(apex: &Name) -> Option<ZoneId> {
    let label = apex.iter().next()?;
    if label.len() != ZONE_ID_LEN {
        return None;
    }
    std::str::from_utf8(label).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kadns_record::ZoneKey;

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    #[test]
    fn zone_id_names() {
        let zone = ZoneKey::from_seed([1; 32]).zone_id();
        let router = Router::new([]);
        let upper = format!("WWW.{}", zone.to_string().to_uppercase());
        for text in [format!("www.{zone}."), format!("www.{zone}"), upper] {
            let Route::Zone {
                zone: z,
                apex,
                owner,
            } = router.route(&name(&text))
            else {
                panic!("{text} is a kadns name");
            };
            assert_eq!(z, zone);
            assert_eq!(apex, zone.apex());
            assert!(apex.is_fqdn());
            assert_eq!(owner.to_string(), "www");
        }
        assert!(matches!(router.route(&zone.apex()), Route::Zone { owner, .. } if owner.is_apex()));
        // A zone id that is not the top-level label is an ordinary name.
        assert_eq!(router.route(&name(&format!("{zone}.com."))), Route::Forward);
        assert_eq!(router.route(&name("example.com.")), Route::Forward);
        assert_eq!(router.route(&Name::root()), Route::Forward);
        // 52 characters that are not z-base-32 are not a zone.
        assert_eq!(
            router.route(&name(&format!("a.{}.", "l".repeat(52)))),
            Route::Forward
        );
    }

    #[test]
    fn zone_ids_under_the_routing_suffix() {
        let zone = ZoneKey::from_seed([1; 32]).zone_id();
        let router = Router::new([]);
        for text in [
            format!("www.{zone}.kadns."),
            format!("WWW.{}.KADNS", zone.to_string().to_uppercase()),
        ] {
            let Route::Zone {
                zone: z,
                apex,
                owner,
            } = router.route(&name(&text))
            else {
                panic!("{text} is a kadns name");
            };
            assert_eq!(z, zone);
            assert_eq!(apex.to_lowercase(), name(&format!("{zone}.kadns.")));
            assert_eq!(owner.to_string(), "www");
        }
        assert!(
            matches!(router.route(&name(&format!("{zone}.kadns."))), Route::Zone { owner, .. } if owner.is_apex())
        );
        assert_eq!(router.route(&name("www.example.kadns.")), Route::Forward);
        assert_eq!(router.route(&name("kadns.")), Route::Forward);
        assert_eq!(
            router.route(&name(&format!("{zone}.other."))),
            Route::Forward
        );
    }

    #[test]
    fn anchors_longest_match_and_case() {
        let a = ZoneKey::from_seed([1; 32]).zone_id();
        let b = ZoneKey::from_seed([2; 32]).zone_id();
        let router = Router::new([(name("example.kad"), a), (name("sub.Example.KAD."), b)]);
        let route = router.route(&name("WWW.Example.Kad"));
        assert_eq!(
            route,
            Route::Zone {
                zone: a,
                apex: name("Example.Kad."),
                owner: OwnerName::from_labels([b"www".as_slice()]).unwrap(),
            }
        );
        let Route::Zone { apex, .. } = &route else {
            unreachable!()
        };
        assert!(
            apex.eq_case(&name("Example.Kad.")),
            "the apex keeps the query's case"
        );
        assert!(
            matches!(router.route(&name("x.sub.example.kad.")), Route::Zone { zone, .. } if zone == b)
        );
        assert!(
            matches!(router.route(&name("example.kad")), Route::Zone { zone, owner, .. } if zone == a && owner.is_apex())
        );
        assert_eq!(router.route(&name("kad.")), Route::Forward);
        assert_eq!(router.route(&name("notexample.kad.")), Route::Forward);
    }

    #[test]
    fn forward_table_longest_suffix_wins() {
        let a: std::net::SocketAddr = "127.0.0.1:5301".parse().unwrap();
        let b: std::net::SocketAddr = "127.0.0.1:5302".parse().unwrap();
        let table = ForwardTable::new([
            (name("corp.example"), vec![a]),
            (name("lab.Corp.Example."), vec![b]),
        ]);
        assert_eq!(table.lookup(&name("www.corp.example.")).unwrap().1, [a]);
        assert_eq!(table.lookup(&name("CORP.EXAMPLE")).unwrap().1, [a]);
        assert_eq!(table.lookup(&name("x.lab.corp.example.")).unwrap().1, [b]);
        assert_eq!(table.lookup(&name("lab.corp.example.")).unwrap().1, [b]);
        assert!(table.lookup(&name("notcorp.example.")).is_none());
        assert!(table.lookup(&name("example.")).is_none());
        assert!(ForwardTable::default().lookup(&name("a.b.")).is_none());
        let root = ForwardTable::new([(Name::root(), vec![a])]);
        assert_eq!(root.lookup(&name("anything.test.")).unwrap().1, [a]);
    }

    #[test]
    fn names_too_long_for_a_bundle() {
        let a = ZoneKey::from_seed([1; 32]).zone_id();
        let router = Router::new([(name("k."), a)]);
        let long = format!("{}k.", "abcdefghi.".repeat(24));
        assert!(matches!(router.route(&name(&long)), Route::TooLong { .. }));
    }
}
