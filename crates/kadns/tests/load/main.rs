//! Tests of the `kadns` binary under load: floods of records and queries,
//! thousands of connections. They are a binary of their own, and run one at
//! a time ([`serial`]), so that the load they make never starves the
//! timing of another test (cargo runs test binaries one after the other).

mod e2e_limits;
mod e2e_storage;
// Shared with `tests/integration`; this binary uses part of each.
#[allow(dead_code)]
#[path = "../integration/e2e_support.rs"]
mod e2e_support;
#[allow(dead_code)]
#[path = "../integration/support.rs"]
mod support;

use tokio::sync::{Mutex, MutexGuard};

/// Every test's own runtime waits on it (a tokio mutex works across
/// runtimes, and a test that panics releases it as it unwinds).
static SERIAL: Mutex<()> = Mutex::const_new(());

/// Taken first by every test of this binary: one at a time.
async fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().await
}
