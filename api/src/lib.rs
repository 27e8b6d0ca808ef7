//! The zonevault API and command line: the mutual-TLS server, identities
//! from client certificates, deny-by-default authorization, request
//! auditing into the vault's ledger, and the `zonevault` subcommands.
//!
//! This crate composes [`attest`] (the TPM) and [`vault`] (the data plane).
//! It never holds raw key bytes longer than a call: the master key is
//! unsealed into a zeroizing [`vault::keys::MasterKey`] and only derived,
//! zeroizing keys are kept for the server's lifetime.

pub mod app;
pub mod authz;
pub mod cli;
pub mod client;
pub mod commands;
pub mod config;
pub mod error;
pub mod identity;
pub mod pki;
pub mod server;
pub mod tls;
