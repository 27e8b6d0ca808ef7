//! The measured-launch stage of the appliance (`zonevault-launch`).
//!
//! Owns measuring the `zonevault` binary and its configuration file
//! (SHA-256 each) into the launcher PCR ([`attest::LAUNCHER_PCR`]) with an
//! event per extension in the event log, computing the expected launcher
//! PCR value from release artifacts ([`measure::reference`]), and the
//! platform hardening that must happen before and in the server
//! ([`harden`]), and the system calls of the appliance image's init
//! ([`sysinit`]). It never reads a secret and never decides whether a
//! measurement is good: the TPM policy and the regulator's verifier do.

pub mod harden;
pub mod measure;
pub mod sysinit;
