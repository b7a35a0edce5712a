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
