//! The consumer's address behind trusted proxies: the one rule, in `gatehouse-net`.

pub use gatehouse_net::resolve;
