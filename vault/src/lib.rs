//! The data plane of zonevault (stub, being filled in).
pub mod catalog;
pub mod datadir;
pub mod dataset_file;
pub mod keys;
pub mod ledger;
pub mod recovery;
