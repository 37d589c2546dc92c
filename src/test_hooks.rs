//! Fault injection for the end-to-end tests, compiled only with the cargo
//! feature `test-hooks`, so a shipped binary never reads these variables.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Once ready, the main loop blocks for this many seconds (once), so tests
/// see that a stuck loop stops the watchdog pings.
const STALL_MAIN_LOOP: &str = "PEERCAM_TEST_STALL_MAIN_LOOP_SECS";
/// Every session task panics as it starts, so tests see that a panic takes
/// the whole process down instead of leaving a zombie session.
const PANIC_IN_SESSION: &str = "PEERCAM_TEST_PANIC_IN_SESSION";

/// Called by the main loop on every tick once the daemon is ready.
pub(crate) fn main_loop_ticked() {
    static STALLED: AtomicBool = AtomicBool::new(false);
    let stall = std::env::var(STALL_MAIN_LOOP)
        .ok()
        .and_then(|secs| secs.parse().ok())
        .map(Duration::from_secs);
    if let Some(stall) = stall
        && !STALLED.swap(true, Ordering::Relaxed)
    {
        tracing::warn!("{STALL_MAIN_LOOP}: blocking the main loop for {stall:?}");
        std::thread::sleep(stall);
    }
}

/// Called by every session task as it starts.
pub(crate) fn session_started() {
    if std::env::var_os(PANIC_IN_SESSION).is_some() {
        panic!("{PANIC_IN_SESSION}: a session task panics");
    }
}
