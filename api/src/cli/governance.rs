//! Arguments for quality tickets, feedback data and operator assessments.

use clap::{Args, Subcommand};

use super::ClientArgs;

/// `zonevault quality-ticket ...`.
#[derive(Debug, Subcommand)]
pub enum QualityTicketCommand {
    /// Open a ticket on a dataset's quality (any role that sees the dataset).
    Open(TicketOpenArgs),
    /// Respond to a ticket (the dataset's provider organization).
    Respond(TicketStepArgs),
    /// Accept the response and close the ticket (the opener, or the zone's
    /// regulator as arbiter).
    Resolve(TicketStepArgs),
    /// Dispute the response; it goes back to the provider (the opener).
    Dispute(TicketStepArgs),
    /// List the tickets the caller may see (one per line), or show one.
    List {
        /// Server and client certificate.
        #[command(flatten)]
        client: ClientArgs,
        /// Only tickets unanswered past their SLA deadline.
        #[arg(long)]
        overdue: bool,
        /// Show only this ticket, in full (JSON).
        #[arg(long)]
        id: Option<String>,
    },
}

/// `zonevault quality-ticket open`.
#[derive(Debug, Args)]
pub struct TicketOpenArgs {
    /// Server and client certificate.
    #[command(flatten)]
    pub client: ClientArgs,
    /// The dataset.
    #[arg(long)]
    pub dataset: String,
    /// accuracy, relevance, completeness or timeliness.
    #[arg(long)]
    pub dimension: String,
    /// Affected fields, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub fields: Vec<String>,
    /// Affected rows (1-based), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub rows: Vec<u64>,
    /// What is wrong.
    #[arg(long)]
    pub description: String,
}

/// A ticket step with its text.
#[derive(Debug, Args)]
pub struct TicketStepArgs {
    /// Server and client certificate.
    #[command(flatten)]
    pub client: ClientArgs,
    /// The ticket (`qt-...`).
    #[arg(long)]
    pub id: String,
    /// The response, dispute or resolution note.
    #[arg(long)]
    pub text: String,
}

/// `zonevault feedback ...`.
#[derive(Debug, Subcommand)]
pub enum FeedbackCommand {
    /// Submit an imported dataset of source `feedback` (the zone's operator);
    /// prints its id and the columns detection found sensitive.
    Submit {
        /// Server and client certificate.
        #[command(flatten)]
        client: ClientArgs,
        /// The derived dataset.
        #[arg(long)]
        dataset: String,
        /// What it is and what it is derived from.
        #[arg(long)]
        description: String,
    },
    /// Approve (or with --reject, reject) feedback data (the zone's regulator).
    Approve(FeedbackReviewArgs),
    /// Apply for available feedback data (a provider-role department).
    Apply {
        /// Server and client certificate.
        #[command(flatten)]
        client: ClientArgs,
        /// The feedback record (`fb-...`).
        #[arg(long)]
        id: String,
        /// What the department will use it for.
        #[arg(long)]
        purpose: String,
        /// Columns asked for, comma-separated (default: all).
        #[arg(long, value_delimiter = ',')]
        columns: Vec<String>,
    },
    /// Review a department's application (the zone's regulator or operator;
    /// both must approve).
    Review(FeedbackReviewArgs),
    /// List feedback data with its findings and applications (JSON), or show one.
    List {
        /// Server and client certificate.
        #[command(flatten)]
        client: ClientArgs,
        /// Show only this record.
        #[arg(long)]
        id: Option<String>,
    },
}

/// An approve-or-reject review.
#[derive(Debug, Args)]
pub struct FeedbackReviewArgs {
    /// Server and client certificate.
    #[command(flatten)]
    pub client: ClientArgs,
    /// The feedback record (`fb-...`) or application (`fa-...`).
    #[arg(long)]
    pub id: String,
    /// Reject instead of approving.
    #[arg(long)]
    pub reject: bool,
    /// The reason.
    #[arg(long)]
    pub reason: String,
}

/// `zonevault assessment ...`.
#[derive(Debug, Subcommand)]
pub enum AssessmentCommand {
    /// Record an operator's assessment for a period (a Bureau regulator);
    /// the indicators are computed by the appliance.
    Record {
        /// Server and client certificate.
        #[command(flatten)]
        client: ClientArgs,
        /// The operator organization.
        #[arg(long)]
        operator: String,
        /// Start of the period, RFC 3339.
        #[arg(long)]
        from: String,
        /// End of the period, RFC 3339.
        #[arg(long)]
        to: String,
        /// excellent, good or poor.
        #[arg(long)]
        rating: String,
        /// The regulator's notes.
        #[arg(long)]
        notes: String,
    },
    /// List the assessments the caller may see (JSON).
    List {
        /// Server and client certificate.
        #[command(flatten)]
        client: ClientArgs,
    },
}
