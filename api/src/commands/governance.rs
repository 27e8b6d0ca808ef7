//! `zonevault quality-ticket|feedback|assessment ...` (client): the
//! quality, feedback-data and assessment workflows, one request each.

use anyhow::Result;
use axum::http::Method;
use serde_json::{json, Value};

use super::zone::call;
use crate::cli::{AssessmentCommand, FeedbackCommand, FeedbackReviewArgs, QualityTicketCommand};

fn print_json(v: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn print_ticket(t: &Value) {
    println!(
        "{}\t{}\t{}\t{}\tdue {}\toverdue {}",
        t["id"].as_str().unwrap_or_default(),
        t["state"].as_str().unwrap_or_default(),
        t["dataset"].as_str().unwrap_or_default(),
        t["dimension"].as_str().unwrap_or_default(),
        t["due_at"].as_str().unwrap_or_default(),
        t["overdue"],
    );
}

/// Runs one `zonevault quality-ticket` subcommand.
pub fn run_quality(cmd: QualityTicketCommand) -> Result<()> {
    let (client, path, body) = match cmd {
        QualityTicketCommand::Open(a) => {
            let body = json!({
                "dataset": a.dataset, "dimension": a.dimension, "fields": a.fields,
                "rows": a.rows, "description": a.description,
            });
            let t = call(&a.client, Method::POST, "/v1/quality-tickets", Some(&body))?;
            println!("{}", t["id"].as_str().unwrap_or_default());
            eprintln!("due {}", t["due_at"].as_str().unwrap_or_default());
            return Ok(());
        }
        QualityTicketCommand::Respond(a) => (a.client, format!("{}/response", a.id), a.text),
        QualityTicketCommand::Resolve(a) => (a.client, format!("{}/resolution", a.id), a.text),
        QualityTicketCommand::Dispute(a) => (a.client, format!("{}/dispute", a.id), a.text),
        QualityTicketCommand::List {
            client,
            overdue,
            id,
        } => return list_tickets(&client, overdue, id),
    };
    let path = format!("/v1/quality-tickets/{path}");
    let t = call(&client, Method::POST, &path, Some(&json!({ "text": body })))?;
    print_ticket(&t);
    Ok(())
}

fn list_tickets(client: &crate::cli::ClientArgs, overdue: bool, id: Option<String>) -> Result<()> {
    if let Some(id) = id {
        let t = call(
            client,
            Method::GET,
            &format!("/v1/quality-tickets/{id}"),
            None,
        )?;
        return print_json(&t);
    }
    let path = if overdue {
        "/v1/quality-tickets?overdue=true"
    } else {
        "/v1/quality-tickets"
    };
    let list = call(client, Method::GET, path, None)?;
    for t in list["tickets"].as_array().into_iter().flatten() {
        print_ticket(t);
    }
    Ok(())
}

fn review(a: &FeedbackReviewArgs, path: &str) -> Result<Value> {
    let body = json!({"approve": !a.reject, "reason": a.reason});
    call(&a.client, Method::POST, path, Some(&body))
}

/// Runs one `zonevault feedback` subcommand.
pub fn run_feedback(cmd: FeedbackCommand) -> Result<()> {
    match cmd {
        FeedbackCommand::Submit {
            client,
            dataset,
            description,
        } => {
            let body = json!({"dataset": dataset, "description": description});
            let f = call(&client, Method::POST, "/v1/feedback", Some(&body))?;
            println!("{}", f["id"].as_str().unwrap_or_default());
            eprintln!(
                "submitted; sensitive columns found: {}; awaiting the zone regulator",
                f["findings"]["sensitive_columns"]
            );
        }
        FeedbackCommand::Approve(a) => {
            let f = review(&a, &format!("/v1/feedback/{}/approval", a.id))?;
            println!("{}\t{}", a.id, f["state"].as_str().unwrap_or_default());
        }
        FeedbackCommand::Apply {
            client,
            id,
            purpose,
            columns,
        } => {
            let body = json!({"purpose": purpose, "columns": columns});
            let path = format!("/v1/feedback/{id}/applications");
            let a = call(&client, Method::POST, &path, Some(&body))?;
            println!("{}", a["id"].as_str().unwrap_or_default());
        }
        FeedbackCommand::Review(a) => {
            let r = review(&a, &format!("/v1/feedback-applications/{}/review", a.id))?;
            println!("{}\t{}", a.id, r["state"].as_str().unwrap_or_default());
        }
        FeedbackCommand::List { client, id } => {
            let path = match id {
                Some(id) => format!("/v1/feedback/{id}"),
                None => "/v1/feedback".to_owned(),
            };
            print_json(&call(&client, Method::GET, &path, None)?)?;
        }
    }
    Ok(())
}

/// Runs one `zonevault assessment` subcommand.
pub fn run_assessment(cmd: AssessmentCommand) -> Result<()> {
    match cmd {
        AssessmentCommand::Record {
            client,
            operator,
            from,
            to,
            rating,
            notes,
        } => {
            let body = json!({
                "operator": operator, "period": {"from": from, "to": to},
                "rating": rating, "notes": notes,
            });
            let r = call(&client, Method::POST, "/v1/assessments", Some(&body))?;
            println!("{}", r["assessment"]["id"].as_str().unwrap_or_default());
            if let Some(t) = r["termination"].as_object() {
                eprintln!(
                    "the operating authorization of {} is terminated; revoked grants: {}",
                    t["operator"].as_str().unwrap_or_default(),
                    t["revoked_grants"]
                );
            }
        }
        AssessmentCommand::List { client } => {
            print_json(&call(&client, Method::GET, "/v1/assessments", None)?)?;
        }
    }
    Ok(())
}
