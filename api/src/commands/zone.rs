//! `zonevault zone ...`: client commands for zones, over mutual TLS.

use anyhow::{bail, Result};
use axum::http::Method;
use serde_json::{json, Value};

use crate::cli::{ClientArgs, ZoneCommand};
use crate::client::Client;

/// One JSON request as the caller in `args`; the JSON answer, or an error
/// carrying the server's message (and the field and problem it names).
pub fn call(args: &ClientArgs, method: Method, path: &str, body: Option<&Value>) -> Result<Value> {
    let client = Client::from_args(args)?;
    let bytes = body.map(serde_json::to_vec).transpose()?;
    let response = client.send(method.clone(), path, bytes)?;
    let json = response.json().unwrap_or(Value::Null);
    if !(200..300).contains(&response.status) {
        let mut message = format!("{method} {path}: the server answered {}", response.status);
        for key in ["message", "field", "problem"] {
            if let Some(v) = json.get(key).and_then(Value::as_str) {
                message.push_str(&format!("; {key}: {v}"));
            }
        }
        bail!(message);
    }
    Ok(json)
}

/// Runs one `zonevault zone` subcommand.
pub fn run(cmd: ZoneCommand) -> Result<()> {
    match cmd {
        ZoneCommand::Create {
            client,
            id,
            name,
            kind,
            domain,
            supervisor,
        } => {
            let body = json!({
                "id": id, "name": name, "kind": kind, "domain": domain,
                "supervisor": supervisor.unwrap_or_default(),
            });
            let zone = call(&client, Method::POST, "/v1/zones", Some(&body))?;
            print_zones(std::slice::from_ref(&zone));
        }
        ZoneCommand::List { client } => {
            let list = call(&client, Method::GET, "/v1/zones", None)?;
            let zones = list["zones"].as_array().cloned().unwrap_or_default();
            print_zones(&zones);
        }
        ZoneCommand::Show { client, id } => {
            let zone = call(&client, Method::GET, &format!("/v1/zones/{id}"), None)?;
            print_zones(std::slice::from_ref(&zone));
        }
        ZoneCommand::HandOver { client, id, to } => {
            let path = format!("/v1/zones/{id}/supervision");
            let body = json!({ "supervisor": to });
            let out = call(&client, Method::POST, &path, Some(&body))?;
            println!(
                "zone {}: supervision handed from {} to {}",
                text(&out["zone"]),
                text(&out["from"]),
                text(&out["to"])
            );
        }
    }
    Ok(())
}

/// A JSON value as plain text (`-` for null).
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

fn print_zones(zones: &[Value]) {
    let rows: Vec<Vec<String>> = zones
        .iter()
        .map(|z| {
            ["id", "kind", "domain", "supervisor", "operator", "name"]
                .iter()
                .map(|k| text(&z[*k]))
                .collect()
        })
        .collect();
    print_table(
        &["ID", "KIND", "DOMAIN", "SUPERVISOR", "OPERATOR", "NAME"],
        &rows,
    );
}

/// Prints an aligned text table (widths in characters).
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}
