//! The zonevault API (stub, being filled in).
pub mod authz;
pub mod cli;
pub mod config;
pub mod error;
pub mod identity;
pub mod pki;
pub mod server;
pub mod tls;
