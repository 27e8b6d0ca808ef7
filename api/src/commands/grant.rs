//! `zonevault partner ...` and `zonevault grant ...`: client commands for
//! partner tiers and grants, over mutual TLS.

use anyhow::Result;
use axum::http::Method;
use serde_json::{json, Value};

use super::zone::{call, print_table, text};
use crate::cli::{GrantCommand, GrantCreateArgs, PartnerCommand};

/// Runs one `zonevault partner` subcommand.
pub fn run_partner(cmd: PartnerCommand) -> Result<()> {
    match cmd {
        PartnerCommand::Set {
            client,
            org,
            tier,
            data_access,
            product_authorization,
            scenario_authorization,
            ownership_control,
        } => {
            let body = json!({"tier": tier, "data_access": data_access,
                "product_authorization": product_authorization,
                "scenario_authorization": scenario_authorization,
                "ownership_control": ownership_control});
            let p = call(
                &client,
                Method::PUT,
                &format!("/v1/partners/{org}"),
                Some(&body),
            )?;
            print_partners(std::slice::from_ref(&p));
        }
        PartnerCommand::List { client } => {
            let list = call(&client, Method::GET, "/v1/partners", None)?;
            print_partners(list["partners"].as_array().map_or(&[], Vec::as_slice));
        }
    }
    Ok(())
}

fn print_partners(partners: &[Value]) {
    let rows: Vec<Vec<String>> = partners
        .iter()
        .map(|p| {
            [
                "org",
                "tier",
                "data_access",
                "product_authorization",
                "scenario_authorization",
                "ownership_control",
                "updated_by",
            ]
            .iter()
            .map(|k| text(&p[*k]))
            .collect()
        })
        .collect();
    print_table(
        &[
            "ORG",
            "TIER",
            "DATA",
            "PRODUCT",
            "SCENARIO",
            "OWNERSHIP",
            "SET BY",
        ],
        &rows,
    );
}

/// Runs one `zonevault grant` subcommand.
pub fn run(cmd: GrantCommand) -> Result<()> {
    match cmd {
        GrantCommand::Create(args) => create(args),
        GrantCommand::List { client, recipient } => {
            let path = match recipient {
                Some(r) => format!("/v1/grants?recipient={}", query_escape(&r)),
                None => "/v1/grants".to_owned(),
            };
            let list = call(&client, Method::GET, &path, None)?;
            print_grants(list["grants"].as_array().map_or(&[], Vec::as_slice));
            Ok(())
        }
        GrantCommand::Revoke { client, id } => {
            let out = call(&client, Method::DELETE, &format!("/v1/grants/{id}"), None)?;
            println!(
                "grant {} revoked at {}",
                text(&out["id"]),
                text(&out["revoked_at"])
            );
            Ok(())
        }
    }
}

fn create(args: GrantCreateArgs) -> Result<()> {
    let body = json!({
        "recipient": args.recipient, "dataset": args.dataset, "columns": args.columns,
        "purpose": args.purpose, "filing": args.filing, "filter": args.filter,
        "row_limit": args.row_limit, "max_extracts": args.max_extracts, "expires": args.expires,
    });
    let out = call(&args.client, Method::POST, "/v1/grants", Some(&body))?;
    println!("{}", text(&out["id"]));
    Ok(())
}

fn print_grants(grants: &[Value]) {
    let rows: Vec<Vec<String>> = grants
        .iter()
        .map(|g| {
            let mut row: Vec<String> = ["id", "recipient", "dataset", "row_limit"]
                .iter()
                .map(|k| text(&g[*k]))
                .collect();
            let cols = g["columns"].as_array().map_or(&[][..], Vec::as_slice);
            row.push(cols.iter().map(text).collect::<Vec<_>>().join(","));
            row.push(format!(
                "{}/{}",
                text(&g["extracts_used"]),
                text(&g["max_extracts"])
            ));
            row.push(text(&g["expires_at"]));
            row.push(
                if g["revoked_at"].is_null() {
                    "active"
                } else {
                    "revoked"
                }
                .to_owned(),
            );
            row
        })
        .collect();
    print_table(
        &[
            "ID",
            "RECIPIENT",
            "DATASET",
            "ROWS",
            "COLUMNS",
            "USED",
            "EXPIRES",
            "STATE",
        ],
        &rows,
    );
}

/// Percent-encodes a query value (RFC 3986 unreserved characters kept).
pub fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_escaped() {
        assert_eq!(
            query_escape("spiffe://t/analyst/p/c"),
            "spiffe%3A%2F%2Ft%2Fanalyst%2Fp%2Fc"
        );
    }
}
