//! The governance workflows of the guidance (京经信发〔2022〕87号), each a
//! typed state machine that the catalog stores and the API drives, one
//! role per step:
//!
//! - [`share`]: government data-sharing applications (clause 3): the
//!   operator files, the zone's regulator assesses, the providing
//!   department decides; only a doubly approved application lets
//!   government data in, and only its approved fields.
//! - [`filing`]: data-use filings (备案, clause 7): the operator files the
//!   scenario, scope, method, recipients and period; the regulator
//!   acknowledges or rejects. Every grant is made under an acknowledged,
//!   in-period filing and inside its scope.
//! - [`usage`]: the periodic usage report of a filing, computed from the
//!   ledger.
//! - [`period`]: the validity period, reviews and texts the workflows share.
//! - [`quality`]: data quality tickets (clause 4): any role opens one, the
//!   providing organization responds, the opener resolves or disputes;
//!   an SLA per dimension in [`workdays`].
//! - [`feedback`]: feedback data (反哺, clause 5): submitted by the
//!   operator with its detection findings, approved by the regulator,
//!   applied for by a department and approved by both before any grant.
//! - [`assessment`]: the Bureau's assessment of an operator (clause 9),
//!   its indicators, and the termination two poor ratings in a row cause.
//! - [`refusal`]: the refused step (403 / 409 / 400) of those three.
//!
//! These modules hold records and transitions only; who the caller is
//! (role, organization) is checked by the API, which passes the caller's
//! identity into each transition so it is recorded.

pub mod assessment;
pub mod feedback;
pub mod filing;
pub mod period;
pub mod quality;
pub mod refusal;
pub mod share;
pub mod usage;
pub mod workdays;
