//! `zonevault share-application ...` and `zonevault filing ...`: client
//! commands for government data-sharing applications and data-use
//! filings, over mutual TLS.

use anyhow::{bail, Context, Result};
use axum::http::Method;
use serde_json::{json, Value};

use super::grant::query_escape;
use super::zone::{call, print_table, text};
use crate::cli::{
    ClientArgs, FilingCommand, FilingCreateArgs, ReviewArgs, ShareApplicationCommand, ShareFileArgs,
};
use crate::client::Client;

/// Splits `NAME:A,B,C` into the name and its list.
pub fn named_list(flag: &str, value: &str) -> Result<(String, Vec<String>)> {
    let Some((name, list)) = value.split_once(':') else {
        bail!("--{flag} {value:?}: expected NAME:A,B,...");
    };
    let items: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if name.trim().is_empty() || items.is_empty() {
        bail!("--{flag} {value:?}: expected NAME:A,B,...");
    }
    Ok((name.trim().to_owned(), items))
}

/// Runs one `zonevault share-application` subcommand.
pub fn run_share(cmd: ShareApplicationCommand) -> Result<()> {
    match cmd {
        ShareApplicationCommand::File(args) => file_share(args),
        ShareApplicationCommand::Assess(args) => review(args, "assessment", "approve"),
        ShareApplicationCommand::Decide(args) => review(args, "decision", "approve"),
        ShareApplicationCommand::List { client, id } => match id {
            Some(id) => show(&client, &format!("/v1/share-applications/{id}")),
            None => {
                let list = call(&client, Method::GET, "/v1/share-applications", None)?;
                let rows: Vec<Vec<String>> = array(&list["applications"])
                    .iter()
                    .map(|a| {
                        ["id", "zone", "provider", "state", "scenario"]
                            .iter()
                            .map(|k| text(&a[*k]))
                            .collect()
                    })
                    .collect();
                print_table(&["ID", "ZONE", "PROVIDER", "STATE", "SCENARIO"], &rows);
                Ok(())
            }
        },
    }
}

fn file_share(args: ShareFileArgs) -> Result<()> {
    let mut items = Vec::new();
    for item in &args.items {
        let (name, fields) = named_list("item", item)?;
        items.push(json!({"name": name, "fields": fields}));
    }
    let body = json!({
        "zone": args.zone, "scenario": args.scenario, "provider": args.provider,
        "items": items, "purpose": args.purpose,
        "period": {"from": args.from, "to": args.to},
    });
    let out = call(
        &args.client,
        Method::POST,
        "/v1/share-applications",
        Some(&body),
    )?;
    println!("{}", text(&out["id"]));
    Ok(())
}

/// A review step: `POST /v1/{share-applications|filings}/{id}/{step}`.
fn review(args: ReviewArgs, step: &str, key: &str) -> Result<()> {
    let collection = if step == "acknowledgement" {
        "filings"
    } else {
        "share-applications"
    };
    let mut body = json!({ "reason": args.reason });
    body[key] = json!(args.approve && !args.reject);
    let path = format!("/v1/{collection}/{}/{step}", args.id);
    let out = call(&args.client, Method::POST, &path, Some(&body))?;
    println!("{} {}", text(&out["id"]), text(&out["state"]));
    Ok(())
}

fn show(client: &ClientArgs, path: &str) -> Result<()> {
    let out = call(client, Method::GET, path, None)?;
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

fn array(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

/// Runs one `zonevault filing` subcommand.
pub fn run_filing(cmd: FilingCommand) -> Result<()> {
    match cmd {
        FilingCommand::Create(args) => create_filing(args),
        FilingCommand::Acknowledge(args) => review(args, "acknowledgement", "acknowledge"),
        FilingCommand::List { client, id } => match id {
            Some(id) => show(&client, &format!("/v1/filings/{id}")),
            None => {
                let list = call(&client, Method::GET, "/v1/filings", None)?;
                let rows: Vec<Vec<String>> = array(&list["filings"])
                    .iter()
                    .map(|f| {
                        let mut row: Vec<String> = ["id", "zone", "state", "method"]
                            .iter()
                            .map(|k| text(&f[*k]))
                            .collect();
                        let recipients: Vec<String> =
                            array(&f["recipients"]).iter().map(text).collect();
                        row.push(recipients.join(","));
                        row.push(text(&f["period"]["to"]));
                        row
                    })
                    .collect();
                print_table(
                    &["ID", "ZONE", "STATE", "METHOD", "RECIPIENTS", "UNTIL"],
                    &rows,
                );
                Ok(())
            }
        },
        FilingCommand::UsageReport {
            client,
            id,
            from,
            to,
            format,
            out,
        } => usage_report(&client, &id, from, to, &format, out),
    }
}

fn create_filing(args: FilingCreateArgs) -> Result<()> {
    let mut scope = Vec::new();
    for entry in &args.scope {
        let (dataset, columns) = named_list("scope", entry)?;
        scope.push(json!({"dataset": dataset, "columns": columns}));
    }
    let body = json!({
        "scenario": args.scenario, "scope": scope, "method": args.method,
        "recipients": args.recipients, "period": {"from": args.from, "to": args.to},
    });
    let out = call(&args.client, Method::POST, "/v1/filings", Some(&body))?;
    println!("{}", text(&out["id"]));
    Ok(())
}

fn usage_report(
    client: &ClientArgs,
    id: &str,
    from: Option<String>,
    to: Option<String>,
    format: &str,
    out: Option<std::path::PathBuf>,
) -> Result<()> {
    let mut query = vec![format!("format={}", query_escape(format))];
    if let Some(f) = from {
        query.push(format!("from={}", query_escape(&f)));
    }
    if let Some(t) = to {
        query.push(format!("to={}", query_escape(&t)));
    }
    let path = format!("/v1/filings/{id}/usage-report?{}", query.join("&"));
    let response = Client::from_args(client)?.send(Method::GET, &path, None)?;
    let body = response.text();
    if !(200..300).contains(&response.status) {
        bail!(
            "GET {path}: the server answered {}: {body}",
            response.status
        );
    }
    match out {
        Some(file) => std::fs::write(&file, body)
            .with_context(|| format!("cannot write {}", file.display()))?,
        None => print!("{body}"),
    }
    Ok(())
}
