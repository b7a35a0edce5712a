//! An injectable clock, so expiry logic is testable without sleeping.

use chrono::{DateTime, Utc};
use std::fmt::Debug;
use std::time::{Duration, Instant};

/// A source of the current time.
pub trait Clock: Send + Sync + Debug + 'static {
    /// The current UTC time.
    fn now(&self) -> DateTime<Utc>;

    /// A monotonic reading, for intervals that must not depend on the wall clock (rate
    /// windows, failure budgets): it never goes back when the system clock is stepped, so a
    /// step back cannot keep a profile denied for as long as the step. Calendar periods
    /// (quotas) and expiries use [`Clock::now`].
    fn monotonic(&self) -> Instant {
        Instant::now()
    }
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
///
/// Its [`Clock::monotonic`] reading moves forward with every forward move and ignores moves
/// back, like a real monotonic clock when the wall clock is stepped: moving the clock back
/// imitates an NTP step.
#[derive(Debug, Default)]
pub struct ManualClock {
    offset_micros: std::sync::atomic::AtomicI64,
    /// The sum of the forward moves, µs.
    forward_micros: std::sync::atomic::AtomicU64,
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
        self.forward(micros);
    }

    /// Jump to `at` (time keeps passing from there).
    #[allow(clippy::disallowed_methods)]
    pub fn set(&self, at: DateTime<Utc>) {
        let offset = (at - Utc::now()).num_microseconds().unwrap_or(0);
        let before = self
            .offset_micros
            .swap(offset, std::sync::atomic::Ordering::SeqCst);
        self.forward(offset.saturating_sub(before));
    }

    fn forward(&self, micros: i64) {
        if let Ok(micros) = u64::try_from(micros) {
            self.forward_micros
                .fetch_add(micros, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

impl Clock for ManualClock {
    #[allow(clippy::disallowed_methods)]
    fn now(&self) -> DateTime<Utc> {
        let offset = self.offset_micros.load(std::sync::atomic::Ordering::SeqCst);
        Utc::now() + chrono::Duration::microseconds(offset)
    }

    fn monotonic(&self) -> Instant {
        let forward = self
            .forward_micros
            .load(std::sync::atomic::Ordering::SeqCst);
        let now = Instant::now();
        now.checked_add(Duration::from_micros(forward))
            .unwrap_or(now)
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

    #[test]
    fn the_monotonic_reading_ignores_moves_back() {
        let clock = ManualClock::new();
        let start = clock.monotonic();
        clock.advance(-3600.0);
        assert!(clock.monotonic() >= start);
        assert!(clock.monotonic() - start < Duration::from_secs(60));
        clock.advance(10.0);
        assert!(clock.monotonic() - start >= Duration::from_secs(10));
        let wall = clock.now();
        clock.set(wall + chrono::Duration::seconds(100));
        assert!(clock.monotonic() - start >= Duration::from_secs(110));
        clock.set(wall - chrono::Duration::days(1));
        assert!(clock.monotonic() - start >= Duration::from_secs(110));
    }
}
