//! `zonevault sample`: deterministic synthetic zone data (CSV, JSON Lines,
//! or GB18030-encoded CSV) from [`vault::sample`], for the demo, the tests
//! and the benchmarks. Needs no server and no TPM; no real personal data.

use std::fs::File;
use std::io::{BufWriter, Write};

use anyhow::{bail, Context, Result};

use crate::cli::SampleArgs;

/// What to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SampleFormat {
    Csv,
    JsonLines,
}

/// Runs `zonevault sample`.
pub fn run(args: SampleArgs) -> Result<()> {
    let format = match args.format.as_str() {
        "csv" => SampleFormat::Csv,
        "jsonl" => SampleFormat::JsonLines,
        other => bail!("--format {other:?}: expected csv or jsonl"),
    };
    let gb18030 = match args.encoding.to_ascii_lowercase().as_str() {
        "utf-8" | "utf8" => false,
        "gb18030" if format == SampleFormat::Csv => true,
        "gb18030" => bail!("--encoding gb18030 is only for --format csv"),
        other => bail!("--encoding {other:?}: expected utf-8 or gb18030"),
    };
    let file =
        File::create(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut out = BufWriter::new(file);
    write(&mut out, format, gb18030, args.rows, args.seed)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    out.flush()
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    eprintln!(
        "wrote {} rows (seed {}) to {}",
        args.rows,
        args.seed,
        args.out.display()
    );
    Ok(())
}

fn write(
    out: &mut impl Write,
    format: SampleFormat,
    gb18030: bool,
    rows: u64,
    seed: u64,
) -> std::io::Result<()> {
    match (format, gb18030) {
        (SampleFormat::JsonLines, _) => vault::sample::write_jsonl(rows, seed, out),
        (SampleFormat::Csv, false) => vault::sample::write_csv(rows, seed, out),
        (SampleFormat::Csv, true) => {
            // Re-encoded in chunks of whole lines, so memory stays flat.
            let mut utf8 = Gb18030Lines {
                out,
                pending: Vec::new(),
            };
            vault::sample::write_csv(rows, seed, &mut utf8)?;
            utf8.finish()
        }
    }
}

/// Re-encodes UTF-8 written to it into GB18030, line by line.
struct Gb18030Lines<'a, W: Write> {
    out: &'a mut W,
    pending: Vec<u8>,
}

impl<W: Write> Write for Gb18030Lines<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(buf);
        if let Some(end) = self.pending.iter().rposition(|&b| b == b'\n') {
            let rest = self.pending.split_off(end + 1);
            self.emit()?;
            self.pending = rest;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

impl<W: Write> Gb18030Lines<'_, W> {
    fn emit(&mut self) -> std::io::Result<()> {
        let text = std::str::from_utf8(&self.pending)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        self.out.write_all(&vault::sample::to_gb18030(text))?;
        self.pending.clear();
        Ok(())
    }

    fn finish(mut self) -> std::io::Result<()> {
        self.emit()?;
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gb18030_output_decodes_to_the_utf8_output() {
        let mut utf8 = Vec::new();
        write(&mut utf8, SampleFormat::Csv, false, 50, 7).unwrap_or_else(|e| panic!("{e}"));
        let mut gb = Vec::new();
        write(&mut gb, SampleFormat::Csv, true, 50, 7).unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(utf8, gb);
        let (decoded, _, bad) = encoding_rs::GB18030.decode(&gb);
        assert!(!bad);
        assert_eq!(decoded.as_bytes(), utf8.as_slice());
    }
}
