//! `zonevault policy show|put`: the desensitization policy in force
//! (`GET /v1/policy`) and replacing it with a TOML file (`PUT /v1/policy`,
//! streamed like an import; a refusal names the row and field).

use anyhow::Result;
use serde_json::Value;

use super::wire::Uploader;
use crate::cli::PolicyCommand;
use crate::client::Client;

/// Runs one `zonevault policy` subcommand.
pub fn run(cmd: PolicyCommand) -> Result<()> {
    match cmd {
        PolicyCommand::Show(args) => {
            let policy = Client::from_args(&args)?.get("/v1/policy")?.json()?;
            let field = |k: &str| policy[k].as_str().unwrap_or("").to_owned();
            eprintln!("policy {} (sha256 {})", field("version"), field("sha256"));
            print!("{}", field("toml"));
            Ok(())
        }
        PolicyCommand::Put(args) => {
            let reply = Uploader::new(&args.client)?
                .send_file("PUT", "/v1/policy", &args.file, &mut |_| {})?
                .ok()?;
            let version = reply["version"].as_str().unwrap_or("?");
            let sha = reply.get("sha256").and_then(Value::as_str).unwrap_or("?");
            println!("policy {version} in force (sha256 {sha})");
            Ok(())
        }
    }
}
