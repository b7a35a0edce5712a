//! An injectable clock, so expiry logic is testable without sleeping.

use chrono::{DateTime, Utc};
use std::fmt::Debug;

/// A source of the current time.
pub trait Clock: Send + Sync + Debug + 'static {
    /// The current UTC time.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)]
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock tests (and tools) move by hand: it starts at the system time and then follows the
/// system clock plus an offset that [`ManualClock::advance`] and [`ManualClock::set`] change.
/// Time still passes (so timeouts and background tasks behave as in production); tests jump
/// over expiries and windows instead of sleeping through them.
#[derive(Debug, Default)]
pub struct ManualClock {
    offset_micros: std::sync::atomic::AtomicI64,
}

impl ManualClock {
    /// A clock that reads the system time until moved.
    pub fn new() -> Self {
        Self::default()
    }

    /// Move forward (or, negative, back) by `seconds`.
    pub fn advance(&self, seconds: f64) {
        let micros = (seconds * 1_000_000.0) as i64;
        self.offset_micros
            .fetch_add(micros, std::sync::atomic::Ordering::SeqCst);
    }

    /// Jump to `at` (time keeps passing from there).
    #[allow(clippy::disallowed_methods)]
    pub fn set(&self, at: DateTime<Utc>) {
        let offset = (at - Utc::now()).num_microseconds().unwrap_or(0);
        self.offset_micros
            .store(offset, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    #[allow(clippy::disallowed_methods)]
    fn now(&self) -> DateTime<Utc> {
        let offset = self.offset_micros.load(std::sync::atomic::Ordering::SeqCst);
        Utc::now() + chrono::Duration::microseconds(offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_when_told() {
        let clock = ManualClock::new();
        let before = clock.now();
        clock.advance(3600.0);
        let after = clock.now();
        assert!((after - before).num_seconds() >= 3600);
        let noon = DateTime::parse_from_rfc3339("2030-06-01T12:00:00Z")
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default();
        clock.set(noon);
        assert!((clock.now() - noon).num_seconds().abs() <= 1);
    }
}
