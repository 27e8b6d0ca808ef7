//! Custodian passphrases: read one per line from a file (automation) or,
//! without a file, from the terminal with echo off.

use std::path::Path;

use anyhow::{bail, Context, Result};
use zeroize::Zeroizing;

/// Shortest passphrase accepted for a recovery share.
const MIN_LEN: usize = 8;

/// A custodian's passphrase; zeroized on drop, never printed.
pub struct Passphrase(Zeroizing<String>);

impl Passphrase {
    /// The passphrase's bytes, for the key derivation.
    pub fn bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// Reads `count` passphrases, from `file` when given, else from the terminal.
/// `what(i)` names the i-th passphrase in prompts and errors.
pub fn read(
    file: Option<&Path>,
    count: usize,
    confirm: bool,
    what: impl Fn(usize) -> String,
) -> Result<Vec<Passphrase>> {
    let list = match file {
        Some(path) => from_file(path, count)?,
        None => from_terminal(count, confirm, &what)?,
    };
    for (i, p) in list.iter().enumerate() {
        if p.0.chars().count() < MIN_LEN {
            bail!(
                "{} is shorter than {MIN_LEN} characters; choose a longer one",
                what(i)
            );
        }
    }
    Ok(list)
}

fn from_file(path: &Path, count: usize) -> Result<Vec<Passphrase>> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read passphrase file {}", path.display()))?,
    );
    let lines: Vec<Passphrase> = text
        .lines()
        .map(|l| Passphrase(Zeroizing::new(l.trim_end_matches('\r').to_owned())))
        .filter(|p| !p.0.is_empty())
        .take(count)
        .collect();
    if lines.len() < count {
        bail!(
            "passphrase file {} holds {} passphrases, {count} are needed (one per line)",
            path.display(),
            lines.len()
        );
    }
    Ok(lines)
}

fn from_terminal(
    count: usize,
    confirm: bool,
    what: &impl Fn(usize) -> String,
) -> Result<Vec<Passphrase>> {
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let first = prompt(&format!("{}: ", what(i)))?;
        if confirm {
            let again = prompt(&format!("{} (again): ", what(i)))?;
            if *first != *again {
                bail!("the two entries of {} differ", what(i));
            }
        }
        out.push(Passphrase(first));
    }
    Ok(out)
}

fn prompt(text: &str) -> Result<Zeroizing<String>> {
    rpassword::prompt_password(text)
        .map(Zeroizing::new)
        .context("cannot read a passphrase from the terminal; use --recovery-passphrases FILE")
}
