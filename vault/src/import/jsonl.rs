//! JSON Lines records: one object per line. The first object's keys, in
//! order, are the columns (and the object is the first row); every later
//! object must have exactly those keys, in any order.
//!
//! Values are stored as text: strings unescaped, numbers and booleans as
//! written, `null` as SQL NULL. Nested arrays and objects are refused. A
//! line is read into a buffer capped at `max_field_bytes` times the column
//! count (at least 16), so a huge line is skipped, not held.

use std::borrow::Cow;
use std::io::{self, Read};

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::header::shown;
use super::input::Input;
use super::{ImportError, Next, Record, Records, RowError};

/// A line as read.
enum Line {
    /// In `self.line`.
    Text,
    /// Longer than the cap; skipped.
    TooLong,
    /// No more lines.
    End,
}

/// The JSON Lines parser.
pub(super) struct JsonRecords {
    max_field: usize,
    columns: Vec<String>,
    line: Vec<u8>,
    line_no: u64,
    /// The first line is the header and also the first row.
    replay_first: bool,
    seen: Vec<bool>,
}

impl JsonRecords {
    pub(super) fn new(max_field: usize) -> Self {
        JsonRecords {
            max_field,
            columns: Vec::new(),
            line: Vec::new(),
            line_no: 0,
            replay_first: false,
            seen: Vec::new(),
        }
    }

    fn max_line(&self) -> usize {
        self.max_field
            .saturating_mul(self.columns.len().max(16))
            .saturating_add(64 * 1024)
    }

    /// Reads the next non-blank line into `self.line`, without its line end.
    fn read_line<R: Read>(&mut self, input: &mut Input<R>) -> io::Result<Line> {
        loop {
            let line = self.read_one(input)?;
            let blank = self.line.iter().all(u8::is_ascii_whitespace);
            if !matches!(line, Line::Text) || !blank {
                return Ok(line);
            }
        }
    }

    fn read_one<R: Read>(&mut self, input: &mut Input<R>) -> io::Result<Line> {
        let cap = self.max_line();
        self.line.clear();
        let (mut started, mut too_long) = (false, false);
        loop {
            let chunk = input.fill()?;
            if chunk.is_empty() {
                return Ok(match (started, too_long) {
                    (false, _) => Line::End,
                    (true, true) => Line::TooLong,
                    (true, false) => Line::Text,
                });
            }
            if !started {
                self.line_no += 1;
                started = true;
            }
            let newline = chunk.iter().position(|&b| b == b'\n');
            let take = newline.unwrap_or(chunk.len());
            too_long |= self.line.len() + take > cap;
            if !too_long {
                self.line.extend_from_slice(&chunk[..take]);
            }
            input.consume(take + usize::from(newline.is_some()));
            if newline.is_some() {
                return Ok(if too_long { Line::TooLong } else { Line::Text });
            }
        }
    }

    fn bad(&self, column: Option<&str>, problem: String) -> RowError {
        RowError {
            line: self.line_no,
            column: column.map(str::to_owned),
            problem,
        }
    }

    /// Parses `self.line` into `rec`, in column order.
    fn parse_row(&mut self, rec: &mut Record) -> Result<(), RowError> {
        let entries = entries(&self.line).map_err(|p| self.bad(None, p))?;
        rec.buf.clear();
        rec.fields.clear();
        rec.fields.resize(self.columns.len(), None);
        self.seen.clear();
        self.seen.resize(self.columns.len(), false);
        for (i, (key, value)) in entries.iter().enumerate() {
            let at = self.column_index(i, key).map_err(|p| self.bad(None, p))?;
            if std::mem::replace(&mut self.seen[at], true) {
                return Err(self.bad(Some(key), "key appears twice".into()));
            }
            let field = self.value(rec, key, value)?;
            rec.fields[at] = field;
        }
        if let Some(missing) = self.seen.iter().position(|s| !s) {
            return Err(self.bad(Some(&self.columns[missing]), "key is missing".into()));
        }
        rec.used = rec.buf.len();
        rec.line = self.line_no;
        Ok(())
    }

    /// The column of the `i`-th key (usually the `i`-th column).
    fn column_index(&self, i: usize, key: &str) -> Result<usize, String> {
        if self.columns.get(i).is_some_and(|c| c == key) {
            return Ok(i);
        }
        self.columns
            .iter()
            .position(|c| c == key)
            .ok_or_else(|| format!("key {:?} is not a column of the first line", shown(key)))
    }

    /// Appends one value's text to `rec.buf`; `None` for null.
    fn value(
        &self,
        rec: &mut Record,
        key: &str,
        raw: &RawValue,
    ) -> Result<Option<(usize, usize)>, RowError> {
        let text = raw.get();
        let value: Cow<'_, str> = match text.as_bytes().first() {
            Some(b'"') => serde_json::from_str::<Text<'_>>(text)
                .map(|t| t.0)
                .map_err(|e| self.bad(Some(key), e.to_string()))?,
            Some(b'{' | b'[') => {
                let problem = "nested objects and arrays are not supported".into();
                return Err(self.bad(Some(key), problem));
            }
            _ if text == "null" => return Ok(None),
            _ => Cow::Borrowed(text),
        };
        if value.len() > self.max_field {
            let problem = format!("field is larger than {} bytes", self.max_field);
            return Err(self.bad(Some(key), problem));
        }
        let start = rec.buf.len();
        rec.buf.extend_from_slice(value.as_bytes());
        Ok(Some((start, rec.buf.len())))
    }
}

impl<R: Read> Records<R> for JsonRecords {
    fn header(&mut self, input: &mut Input<R>) -> Result<Vec<String>, ImportError> {
        let problem = match self.read_line(input)? {
            Line::End => return Err(ImportError::Empty),
            Line::TooLong => format!("line {} is too long", self.line_no),
            Line::Text => {
                if self.line.starts_with(b"\xef\xbb\xbf") {
                    self.line.drain(..3);
                }
                match entries(&self.line) {
                    Ok(entries) => {
                        self.columns = entries.into_iter().map(|(k, _)| k.into_owned()).collect();
                        self.replay_first = true;
                        return Ok(self.columns.clone());
                    }
                    Err(p) => format!("line {}: {p}", self.line_no),
                }
            }
        };
        Err(ImportError::Header { problem })
    }

    fn next(&mut self, input: &mut Input<R>, rec: &mut Record) -> Result<Next, ImportError> {
        let line = if std::mem::take(&mut self.replay_first) {
            Line::Text
        } else {
            self.read_line(input)?
        };
        Ok(match line {
            Line::End => Next::End,
            Line::TooLong => {
                let problem = format!("line is longer than {} bytes", self.max_line());
                Next::Bad(self.bad(None, problem))
            }
            Line::Text => match self.parse_row(rec) {
                Ok(()) => Next::Row,
                Err(e) => Next::Bad(e),
            },
        })
    }
}

/// A JSON string, borrowed when it has no escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// A JSON object's entries, in order.
struct Entries<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Entries<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entries<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries<'de>, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<Text<'de>, &'de RawValue>()? {
                    out.push((k.0, v));
                }
                Ok(Entries(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// The entries of the object on `line`, or what is wrong with it.
fn entries(line: &[u8]) -> Result<Vec<(Cow<'_, str>, &RawValue)>, String> {
    match serde_json::from_slice::<Entries<'_>>(line) {
        Ok(e) if e.0.is_empty() => Err("the object has no keys".into()),
        Ok(e) => Ok(e.0),
        Err(e) => {
            let what = e.to_string();
            let what = match what.rfind(" at line 1 column") {
                Some(i) => format!("{} at column {}", &what[..i], e.column()),
                None => what,
            };
            Err(format!("not a JSON object: {what}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::TextEncoding;

    fn rows(text: &str) -> Vec<Result<Vec<Option<String>>, RowError>> {
        let mut input = Input::new(text.as_bytes(), TextEncoding::Utf8);
        let mut json = JsonRecords::new(64);
        json.header(&mut input).unwrap();
        let mut rec = Record::default();
        let mut out = Vec::new();
        loop {
            match json.next(&mut input, &mut rec).unwrap() {
                Next::End => return out,
                Next::Bad(e) => out.push(Err(e)),
                Next::Row => out.push(Ok((0..rec.fields.len())
                    .map(|i| rec.field(i).map(|b| String::from_utf8(b.to_vec()).unwrap()))
                    .collect())),
            }
        }
    }

    #[test]
    fn values_keys_and_problems() {
        let got = rows(concat!(
            "{\"a\":1.50,\"b\":\"x\\\"y\"}\n",
            "\n",
            "{\"b\":null,\"a\":true}\n",
            "{\"a\":1}\n",
            "{\"a\":1,\"b\":2,\"c\":3}\n",
            "{\"a\":[1],\"b\":2}\n",
            "[1,2]\n",
        ));
        let some = |s: &str| Some(s.to_owned());
        assert_eq!(got[0], Ok(vec![some("1.50"), some("x\"y")]));
        assert_eq!(got[1], Ok(vec![some("true"), None]));
        let err = |i: usize| got[i].clone().unwrap_err();
        assert_eq!((err(2).line, err(2).column.as_deref()), (4, Some("b")));
        assert!(err(3).problem.contains("\"c\" is not a column"));
        assert!(err(4).problem.contains("nested"));
        assert!(
            err(5).problem.contains("not a JSON object"),
            "{}",
            err(5).problem
        );
        assert_eq!(err(5).line, 7);
    }
}
