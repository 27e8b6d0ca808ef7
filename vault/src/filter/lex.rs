//! Filter text to tokens, each with its character offset.

use super::{CmpOp, FilterError, MAX_INPUT_BYTES};

/// A token of the filter language.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    /// A bare word: a keyword (compared case-insensitively) or a column.
    Word(String),
    /// A double-quoted identifier: always a column, never a keyword.
    Quoted(String),
    /// A single-quoted string.
    Text(String),
    /// A finite number.
    Number(f64),
    /// A comparison operator.
    Op(CmpOp),
    /// `(`
    Open,
    /// `)`
    Close,
    /// `,`
    Comma,
    /// End of input.
    End,
}

/// A token and its offset, in characters.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Token {
    pub tok: Tok,
    pub at: usize,
}

/// Split `input` into tokens, ending with [`Tok::End`].
pub(super) fn tokenize(input: &str) -> Result<Vec<Token>, FilterError> {
    if input.len() > MAX_INPUT_BYTES {
        let at = input
            .char_indices()
            .take_while(|(i, _)| *i < MAX_INPUT_BYTES)
            .count();
        let msg = format!("filter is longer than {MAX_INPUT_BYTES} bytes");
        return Err(FilterError::new(at, msg));
    }
    let chars: Vec<char> = input.chars().collect();
    let mut lexer = Lexer { chars, pos: 0 };
    let mut out = Vec::new();
    loop {
        let token = lexer.next_token()?;
        let end = token.tok == Tok::End;
        out.push(token);
        if end {
            return Ok(out);
        }
    }
}

/// Whether `name` can be written without double quotes: it has the
/// identifier shape and is not a keyword.
pub(super) fn is_bare_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    let shape = chars.next().is_some_and(is_ident_start) && chars.all(is_ident_continue);
    shape && !KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(name))
}

/// Words that are keywords wherever they appear.
pub(super) const KEYWORDS: [&str; 8] = ["AND", "OR", "NOT", "IN", "IS", "NULL", "LIKE", "BETWEEN"];

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || is_han(c)
}

fn is_ident_continue(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || is_han(c)
}

/// Han ideographs (Unicode Script=Han): the CJK unified and compatibility
/// blocks, radicals, and the ideographic marks 々 〇 〡-〩 〸-〻.
fn is_han(c: char) -> bool {
    matches!(c,
        '\u{2E80}'..='\u{2E99}' | '\u{2E9B}'..='\u{2EF3}' | '\u{2F00}'..='\u{2FD5}'
        | '\u{3005}' | '\u{3007}' | '\u{3021}'..='\u{3029}' | '\u{3038}'..='\u{303B}'
        | '\u{3400}'..='\u{4DBF}' | '\u{4E00}'..='\u{9FFF}' | '\u{F900}'..='\u{FA6D}'
        | '\u{FA70}'..='\u{FAD9}' | '\u{20000}'..='\u{2A6DF}' | '\u{2A700}'..='\u{2EBEF}'
        | '\u{2F800}'..='\u{2FA1F}' | '\u{30000}'..='\u{323AF}')
}

fn is_operator_char(c: char) -> bool {
    matches!(
        c,
        '=' | '!' | '<' | '>' | '-' | '+' | '*' | '/' | '%' | '|' | '&' | '^' | '~' | ';'
    )
}

struct Lexer {
    chars: Vec<char>,
    pos: usize,
}

impl Lexer {
    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.pos + ahead).copied()
    }

    fn next_token(&mut self) -> Result<Token, FilterError> {
        while self.peek(0).is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
        let at = self.pos;
        let Some(c) = self.peek(0) else {
            return Ok(Token { tok: Tok::End, at });
        };
        let tok = match c {
            '(' | ')' | ',' => {
                self.pos += 1;
                match c {
                    '(' => Tok::Open,
                    ')' => Tok::Close,
                    _ => Tok::Comma,
                }
            }
            '\'' => Tok::Text(self.quoted('\'', "unterminated string")?),
            '"' => Tok::Quoted(self.quoted('"', "unterminated quoted identifier")?),
            c if c.is_ascii_digit() => self.number()?,
            '-' if self.peek(1).is_some_and(|d| d.is_ascii_digit()) => self.number()?,
            c if is_ident_start(c) => Tok::Word(self.word()),
            c if is_operator_char(c) => Tok::Op(self.operator()?),
            c => {
                let msg = format!("unexpected character {c:?}");
                return Err(FilterError::new(at, msg));
            }
        };
        Ok(Token { tok, at })
    }

    /// A quoted run starting at `self.pos`; a doubled quote is one quote.
    fn quoted(&mut self, quote: char, unterminated: &str) -> Result<String, FilterError> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.peek(0) {
                None => return Err(FilterError::new(start, unterminated)),
                Some(c) if c == quote => {
                    if self.peek(1) == Some(quote) {
                        out.push(quote);
                        self.pos += 2;
                    } else {
                        self.pos += 1;
                        return Ok(out);
                    }
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn word(&mut self) -> String {
        let start = self.pos;
        while self.peek(0).is_some_and(is_ident_continue) {
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect()
    }

    /// `-?[0-9]+(.[0-9]+)?([eE][+-]?[0-9]+)?`, finite, not followed by a
    /// letter (so `12abc` is an error, not `12` then `abc`).
    fn number(&mut self) -> Result<Tok, FilterError> {
        let start = self.pos;
        if self.peek(0) == Some('-') {
            self.pos += 1;
        }
        self.digits();
        if self.peek(0) == Some('.') && self.peek(1).is_some_and(|d| d.is_ascii_digit()) {
            self.pos += 1;
            self.digits();
        }
        if matches!(self.peek(0), Some('e' | 'E')) {
            let sign = usize::from(matches!(self.peek(1), Some('+' | '-')));
            if self.peek(1 + sign).is_some_and(|d| d.is_ascii_digit()) {
                self.pos += 1 + sign;
                self.digits();
            }
        }
        if self
            .peek(0)
            .is_some_and(|c| is_ident_continue(c) || c == '.')
        {
            return Err(FilterError::new(start, "malformed number"));
        }
        let text: String = self.chars[start..self.pos].iter().collect();
        match text.parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(Tok::Number(n)),
            _ => Err(FilterError::new(start, "number out of range")),
        }
    }

    fn digits(&mut self) {
        while self.peek(0).is_some_and(|d| d.is_ascii_digit()) {
            self.pos += 1;
        }
    }

    /// The longest run of operator characters, which must be one operator.
    fn operator(&mut self) -> Result<CmpOp, FilterError> {
        let start = self.pos;
        while self.peek(0).is_some_and(is_operator_char) {
            self.pos += 1;
        }
        let text: String = self.chars[start..self.pos].iter().collect();
        let op = match text.as_str() {
            "=" => CmpOp::Eq,
            "!=" | "<>" => CmpOp::Ne,
            "<" => CmpOp::Lt,
            "<=" => CmpOp::Le,
            ">" => CmpOp::Gt,
            ">=" => CmpOp::Ge,
            _ => {
                let msg = format!("unknown operator {text:?}");
                return Err(FilterError::new(start, msg));
            }
        };
        Ok(op)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        tokenize(s).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn splits_words_strings_numbers_and_operators() {
        assert_eq!(
            toks("区县 >= -1.5e3 AND \"a\"\"b\" <> 'it''s'"),
            [
                Tok::Word("区县".into()),
                Tok::Op(CmpOp::Ge),
                Tok::Number(-1500.0),
                Tok::Word("AND".into()),
                Tok::Quoted("a\"b".into()),
                Tok::Op(CmpOp::Ne),
                Tok::Text("it's".into()),
                Tok::End,
            ]
        );
    }

    #[test]
    fn positions_count_characters_not_bytes() {
        let t = tokenize("海淀 = 'x'").unwrap();
        assert_eq!(t.iter().map(|t| t.at).collect::<Vec<_>>(), [0, 3, 5, 8]);
        let e = tokenize("海淀区 == 1").unwrap_err();
        assert_eq!(e.position, 4);
        assert!(e.message.contains("unknown operator \"==\""), "{e}");
    }

    #[test]
    fn rejects_bad_numbers_and_characters() {
        assert_eq!(tokenize("a = 12abc").unwrap_err().position, 4);
        assert_eq!(
            tokenize("a = 1e999").unwrap_err().message,
            "number out of range"
        );
        assert_eq!(
            tokenize("a = 1.2.3").unwrap_err().message,
            "malformed number"
        );
        assert_eq!(tokenize("a = #").unwrap_err().position, 4);
        assert_eq!(tokenize("a = 'x' --").unwrap_err().position, 8);
    }

    #[test]
    fn bare_identifiers_exclude_keywords() {
        assert!(is_bare_identifier("amount_2"));
        assert!(is_bare_identifier("金额"));
        assert!(!is_bare_identifier("and"));
        assert!(!is_bare_identifier("2x"));
        assert!(!is_bare_identifier("a b"));
        assert!(!is_bare_identifier(""));
    }

    #[test]
    fn overlong_input_is_refused_with_a_position() {
        let long = format!("a = '{}'", "x".repeat(MAX_INPUT_BYTES));
        let e = tokenize(&long).unwrap_err();
        assert_eq!(e.position, MAX_INPUT_BYTES);
    }
}
