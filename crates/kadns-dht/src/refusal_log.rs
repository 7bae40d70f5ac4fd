//! Rate-limited warnings for refusals an operator should see (budget,
//! closeness, disk full, storage failures): at most one line per reason
//! per [`REFUSAL_LOG_INTERVAL`], carrying how many were not logged since.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Shortest time between two warnings for the same reason.
pub const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The reasons that are logged at warn level; every other refusal (a
/// forged, stale or conflicting record) is routine and logged at debug.
pub(crate) fn is_warned(reason: &str) -> bool {
    matches!(
        reason,
        "budget_bytes" | "budget_records" | "budget_zone" | "not_closest" | "disk_full" | "storage"
    )
}

/// When each reason was last logged and how many were held back since.
#[derive(Debug, Default)]
pub(crate) struct RefusalLog {
    reasons: HashMap<&'static str, (Instant, u64)>,
}

impl RefusalLog {
    /// Whether a refusal for `reason` seen `now` is logged; if so, also
    /// returns how many were suppressed since the last line.
    pub(crate) fn admit(&mut self, reason: &'static str, now: Instant) -> Option<u64> {
        match self.reasons.get_mut(reason) {
            Some((last, suppressed)) if now.duration_since(*last) < REFUSAL_LOG_INTERVAL => {
                *suppressed += 1;
                None
            }
            Some((last, suppressed)) => {
                *last = now;
                Some(std::mem::take(suppressed))
            }
            None => {
                self.reasons.insert(reason, (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_reason_per_interval_with_the_suppressed_count() {
        let mut log = RefusalLog::default();
        let t0 = Instant::now();
        assert_eq!(log.admit("disk_full", t0), Some(0));
        assert_eq!(log.admit("budget_bytes", t0), Some(0), "reasons are apart");
        for i in 1..=5 {
            assert_eq!(log.admit("disk_full", t0 + Duration::from_secs(i)), None);
        }
        assert_eq!(
            log.admit("disk_full", t0 + REFUSAL_LOG_INTERVAL),
            Some(5),
            "the next line reports the five held back"
        );
        assert_eq!(log.admit("disk_full", t0 + REFUSAL_LOG_INTERVAL), None);
        assert!(is_warned("not_closest") && !is_warned("older"));
    }
}
