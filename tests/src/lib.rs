//! The `e2e` crate: shared harness for zonevault's tests.
//!
//! It owns starting and stopping software TPMs ([`swtpm::Swtpm`]) on free
//! loopback ports; a loopback wire tap ([`swtpm::WireTap`]) that records the
//! bytes exchanged with a TPM so tests can prove what crosses the interface;
//! and [`appliance`], a whole appliance (the real binary, its own swtpm, a
//! demo PKI) for end-to-end tests. It never links libtss2, never binds
//! anything but 127.0.0.1, and never leaves a process behind: every swtpm it
//! starts is killed, by process group, when its handle drops.

// Test-harness code: a failed setup step should panic with its reason.
#[allow(clippy::expect_used, clippy::unwrap_used)]
pub mod appliance;
pub mod swtpm;
mod wiretap;

pub use swtpm::{tpm_available, Swtpm};
pub use wiretap::WireTap;
