//! The data plane of zonevault: the key hierarchy, the encrypted catalog
//! and dataset files, recovery shares, and the audit ledger.
//!
//! What it never does: open a socket, write a key to disk in clear (keys
//! reach disk only sealed by the TPM, wrapped under another key, or as
//! passphrase-encrypted recovery shares), or put key bytes in an error or a
//! `Debug` string. Secrets zeroize on drop and are exposed only through
//! narrowly named methods.
pub mod aggregate;
pub mod catalog;
pub mod datadir;
pub mod dataset;
pub mod dataset_file;
pub mod desensitize;
pub mod detect;
pub mod extract;
pub mod filter;
pub mod governance;
pub mod grant;
pub mod ids;
pub mod import;
pub mod keys;
pub mod ledger;
pub mod lifecycle;
pub mod monitor;
#[cfg(test)]
mod mutate;
pub mod recovery;
pub mod sample;
pub mod schema;
pub mod trace;
pub mod zone;
