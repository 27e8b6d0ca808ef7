//! The byte stream under the parsers: counts the raw bytes read (for
//! progress), decodes GB18030 to UTF-8 on the fly, buffers a fixed window,
//! and sniffs the start for emptiness and binary data.
//!
//! Memory is one [`WINDOW`]-sized buffer (plus the decoder's own for
//! GB18030), whatever the size of the input. A malformed GB18030 sequence
//! becomes the byte 0xFF, which is never valid UTF-8, so the field check
//! downstream reports it with its line and column.

use std::io::{self, Read};

use encoding_rs::{Decoder, DecoderResult, GB18030};

use super::TextEncoding;

/// Size of the read window.
const WINDOW: usize = 64 * 1024;

/// How much of the start is examined for binary data.
pub(super) const SNIFF: usize = 8 * 1024;

/// What the start of the input looks like.
pub(super) enum Sniffed {
    /// Nothing but whitespace (or a byte-order mark).
    Empty,
    /// Binary data, first seen on this line.
    Binary(u64),
    /// Text.
    Text,
}

/// Buffered, decoded input.
pub(super) struct Input<R> {
    source: Source<R>,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    eof: bool,
}

enum Source<R> {
    Utf8 { inner: R, raw: u64 },
    Gb18030(Gb18030Reader<R>),
}

impl<R: Read> Input<R> {
    pub(super) fn new(inner: R, encoding: TextEncoding) -> Self {
        let source = match encoding {
            TextEncoding::Utf8 => Source::Utf8 { inner, raw: 0 },
            TextEncoding::Gb18030 => Source::Gb18030(Gb18030Reader::new(inner)),
        };
        Input {
            source,
            buf: vec![0; WINDOW],
            pos: 0,
            end: 0,
            eof: false,
        }
    }

    /// Raw (undecoded) bytes read so far.
    pub(super) fn raw_bytes(&self) -> u64 {
        match &self.source {
            Source::Utf8 { raw, .. } => *raw,
            Source::Gb18030(r) => r.raw,
        }
    }

    /// The buffered bytes, reading more if none are; empty at the end.
    pub(super) fn fill(&mut self) -> io::Result<&[u8]> {
        if self.pos == self.end && !self.eof {
            self.pos = 0;
            self.end = 0;
            self.read_more()?;
        }
        Ok(&self.buf[self.pos..self.end])
    }

    /// Marks `n` buffered bytes as used.
    pub(super) fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.end);
    }

    /// Reads once into the free end of the window; sets `eof` on 0 bytes.
    fn read_more(&mut self) -> io::Result<()> {
        let free = &mut self.buf[self.end..];
        let n = loop {
            let r = match &mut self.source {
                Source::Utf8 { inner, raw } => inner.read(free).inspect(|n| *raw += *n as u64),
                Source::Gb18030(r) => r.read(free),
            };
            match r {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        self.end += n;
        self.eof = n == 0;
        Ok(())
    }

    /// Examines up to [`SNIFF`] bytes of the start without consuming them.
    pub(super) fn sniff(&mut self) -> io::Result<Sniffed> {
        while self.end - self.pos < SNIFF && !self.eof {
            self.read_more()?;
        }
        Ok(classify(&self.buf[self.pos..self.end]))
    }
}

/// Empty, binary or text: NUL bytes, or more than 1 in 20 bytes being
/// control characters other than tab, CR, LF, mean binary.
fn classify(start: &[u8]) -> Sniffed {
    let body = start.strip_prefix(b"\xef\xbb\xbf").unwrap_or(start);
    if body.iter().all(u8::is_ascii_whitespace) {
        return Sniffed::Empty;
    }
    let control = |b: &u8| (*b < 0x20 && !matches!(*b, b'\t' | b'\n' | b'\r')) || *b == 0x7f;
    let line_of = |i: usize| 1 + start[..i].iter().filter(|&&b| b == b'\n').count() as u64;
    if let Some(i) = start.iter().position(|&b| b == 0) {
        return Sniffed::Binary(line_of(i));
    }
    let controls = start.iter().filter(|b| control(b)).count();
    if controls * 20 > start.len() {
        let first = start.iter().position(control).unwrap_or(0);
        return Sniffed::Binary(line_of(first));
    }
    Sniffed::Text
}

/// A `Read` adapter that decodes GB18030 (and GBK, its subset) to UTF-8,
/// one window at a time. A UTF-8 or UTF-16 byte-order mark switches the
/// decoder to that encoding, as browsers do.
struct Gb18030Reader<R> {
    inner: R,
    decoder: Decoder,
    raw: u64,
    pending: Vec<u8>,
    pos: usize,
    end: usize,
    eof: bool,
    /// A malformed sequence whose 0xFF marker did not fit in the last read.
    marker_owed: bool,
}

impl<R: Read> Gb18030Reader<R> {
    fn new(inner: R) -> Self {
        Gb18030Reader {
            inner,
            decoder: GB18030.new_decoder(),
            raw: 0,
            pending: vec![0; WINDOW],
            pos: 0,
            end: 0,
            eof: false,
            marker_owed: false,
        }
    }

    fn refill(&mut self) -> io::Result<()> {
        let n = self.inner.read(&mut self.pending)?;
        self.raw += n as u64;
        self.pos = 0;
        self.end = n;
        self.eof = n == 0;
        Ok(())
    }
}

impl<R: Read> Read for Gb18030Reader<R> {
    /// Needs room for at least one decoded character (4 bytes) in `out`.
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let mut written = 0;
        if self.marker_owed && !out.is_empty() {
            out[0] = 0xff;
            written = 1;
            self.marker_owed = false;
        }
        while written == 0 {
            if self.pos == self.end && !self.eof {
                self.refill()?;
            }
            let src = &self.pending[self.pos..self.end];
            let (result, read, n) =
                self.decoder
                    .decode_to_utf8_without_replacement(src, &mut out[written..], self.eof);
            self.pos += read;
            written += n;
            match result {
                DecoderResult::Malformed(..) if written < out.len() => {
                    out[written] = 0xff;
                    written += 1;
                }
                DecoderResult::Malformed(..) => self.marker_owed = true,
                DecoderResult::InputEmpty if self.eof => return Ok(written),
                DecoderResult::OutputFull if written == 0 => {
                    return Err(io::Error::other("GB18030 decode buffer too small"))
                }
                _ => {}
            }
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(mut input: Input<&[u8]>) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let chunk = input.fill().unwrap().to_vec();
            if chunk.is_empty() {
                return out;
            }
            input.consume(chunk.len());
            out.extend(chunk);
        }
    }

    #[test]
    fn gb18030_decodes_across_windows_and_marks_malformed_bytes() {
        let text = "姓名,地址\n".repeat(20_000);
        let encoded = crate::sample::to_gb18030(&text);
        let input = Input::new(encoded.as_slice(), TextEncoding::Gb18030);
        assert_eq!(drain(input), text.as_bytes());
        let bad: &[u8] = b"a,\xff\xff\n";
        let out = drain(Input::new(bad, TextEncoding::Gb18030));
        assert!(std::str::from_utf8(&out).is_err());
        assert!(out.starts_with(b"a,"));
    }

    #[test]
    fn sniff_finds_empty_binary_and_text() {
        let sniff = |b: &[u8]| Input::new(b, TextEncoding::Utf8).sniff().unwrap();
        assert!(matches!(sniff(b""), Sniffed::Empty));
        assert!(matches!(sniff(b"\xef\xbb\xbf \r\n"), Sniffed::Empty));
        assert!(matches!(sniff(b"a,b\n1,2\n\0"), Sniffed::Binary(3)));
        let noise: Vec<u8> = (0u8..=255).cycle().skip(1).take(4000).collect();
        assert!(matches!(sniff(&noise), Sniffed::Binary(_)));
        assert!(matches!(sniff("a,b\n名,\t2\n".as_bytes()), Sniffed::Text));
    }
}
