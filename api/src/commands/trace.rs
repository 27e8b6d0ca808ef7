//! `zonevault trace`: uploads a suspected leaked file as it is (CSV, JSON
//! Lines or Parquet; streamed, never held whole here; the server tells
//! the formats apart by their content) to `POST /v1/leak-trace` and prints
//! the ranked candidates, the named recipient, or "no match" with the best
//! p-value.

use anyhow::Result;
use serde_json::Value;

use super::wire::Uploader;
use crate::cli::TraceArgs;

/// Runs `zonevault trace`.
pub fn run(args: TraceArgs) -> Result<()> {
    let mut path = "/v1/leak-trace".to_owned();
    if let Some(d) = &args.dataset {
        path.push_str(&format!("?dataset={}", urlencoding(d)));
    }
    let verdict = Uploader::new(&args.client)?
        .send_file("POST", &path, &args.file, &mut |_| {})?
        .ok()?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&verdict)?);
        return Ok(());
    }
    print_verdict(&verdict);
    Ok(())
}

/// Dataset ids are `[a-z0-9-]`; anything else is percent-encoded.
fn urlencoding(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `1e-42`, from a log10 p-value.
fn p_text(log10_p: Option<f64>) -> String {
    match log10_p {
        Some(l) if l > -4.0 => format!("{:.4}", 10f64.powf(l)),
        Some(l) if l.is_finite() => format!("1e{:.0}", l.floor()),
        Some(_) => "0".to_owned(),
        None => "?".to_owned(),
    }
}

fn print_verdict(v: &Value) {
    let rows = v["leaked_rows"].as_u64().unwrap_or(0);
    let n = v["candidates"].as_u64().unwrap_or(0);
    println!("read {rows} rows; scored {n} issued extracts");
    let best = p_text(v["best_log10_p_adjusted"].as_f64());
    if v["matched"].as_bool() == Some(true) {
        println!(
            "MATCH: recipient {} (extract {}), p-value x candidates = {best}",
            v["recipient"].as_str().unwrap_or("?"),
            v["extract"].as_str().unwrap_or("?"),
        );
    } else {
        println!(
            "no match: no issued extract explains this file (best p-value x candidates = {best})"
        );
    }
    println!(
        "{:<28} {:<28} {:>7} {:>10}  recipient",
        "extract", "grant", "score", "p-value"
    );
    for c in v["ranked"].as_array().into_iter().flatten() {
        println!(
            "{:<28} {:<28} {:>7.3} {:>10}  {}",
            c["extract"].as_str().unwrap_or("?"),
            c["grant"].as_str().unwrap_or("?"),
            c["score"].as_f64().unwrap_or(0.0),
            p_text(c["log10_p"].as_f64()),
            c["recipient"].as_str().unwrap_or("?"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p_values_print_readably() {
        assert_eq!(p_text(Some(0.0)), "1.0000");
        assert_eq!(p_text(Some(-42.3)), "1e-43");
        assert_eq!(p_text(None), "?");
        assert_eq!(urlencoding("residents"), "residents");
        assert_eq!(urlencoding("a b"), "a%20b");
    }
}
