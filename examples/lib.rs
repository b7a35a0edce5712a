//! Examples of using Gatehouse from a resource server: see `resource_server.rs`.
