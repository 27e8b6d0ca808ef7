//! Tokens to an [`Expr`], by recursive descent with bounded depth.

use super::lex::{tokenize, Tok, Token, KEYWORDS};
use super::{Column, Expr, FilterError, Literal, MAX_DEPTH, MAX_TERMS};

/// Parse a filter. Errors carry the character offset of the offending
/// token.
pub fn parse(input: &str) -> Result<Expr, FilterError> {
    let tokens = tokenize(input)?;
    let mut p = Parser {
        tokens,
        next: 0,
        depth: 0,
        terms: 0,
    };
    if p.peek().tok == Tok::End {
        return Err(FilterError::new(0, "empty filter"));
    }
    let expr = p.or()?;
    let t = p.peek();
    if t.tok != Tok::End {
        let msg = format!(
            "unexpected {} after the end of the filter",
            describe(&t.tok)
        );
        return Err(FilterError::new(t.at, msg));
    }
    Ok(expr)
}

struct Parser {
    tokens: Vec<Token>,
    next: usize,
    depth: usize,
    terms: usize,
}

impl Parser {
    fn peek(&self) -> &Token {
        // `tokenize` always ends with `End`, and nothing advances past it.
        &self.tokens[self.next.min(self.tokens.len() - 1)]
    }

    fn advance(&mut self) -> Token {
        let t = self.peek().clone();
        if t.tok != Tok::End {
            self.next += 1;
        }
        t
    }

    fn at_keyword(&self, kw: &str) -> bool {
        matches!(&self.peek().tok, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
    }

    fn keyword(&mut self, kw: &str) -> Result<(), FilterError> {
        if self.at_keyword(kw) {
            self.advance();
            Ok(())
        } else {
            Err(self.expected(kw))
        }
    }

    fn expected(&self, what: &str) -> FilterError {
        let t = self.peek();
        FilterError::new(t.at, format!("expected {what}, found {}", describe(&t.tok)))
    }

    fn or(&mut self) -> Result<Expr, FilterError> {
        let mut operands = vec![self.and()?];
        while self.at_keyword("OR") {
            self.advance();
            operands.push(self.and()?);
        }
        Ok(one_or(operands, Expr::Or))
    }

    fn and(&mut self) -> Result<Expr, FilterError> {
        let mut operands = vec![self.not()?];
        while self.at_keyword("AND") {
            self.advance();
            operands.push(self.not()?);
        }
        Ok(one_or(operands, Expr::And))
    }

    fn not(&mut self) -> Result<Expr, FilterError> {
        if self.at_keyword("NOT") {
            self.enter()?;
            self.advance();
            let inner = self.not()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        if self.peek().tok == Tok::Open {
            self.enter()?;
            self.advance();
            let inner = self.or()?;
            if self.peek().tok != Tok::Close {
                return Err(self.expected("')'"));
            }
            self.advance();
            self.depth -= 1;
            return Ok(inner);
        }
        self.predicate()
    }

    fn enter(&mut self) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            let msg = format!("filter nests deeper than {MAX_DEPTH} levels");
            return Err(FilterError::new(self.peek().at, msg));
        }
        Ok(())
    }

    fn predicate(&mut self) -> Result<Expr, FilterError> {
        self.terms += 1;
        if self.terms > MAX_TERMS {
            let msg = format!("filter has more than {MAX_TERMS} terms");
            return Err(FilterError::new(self.peek().at, msg));
        }
        let column = self.column()?;
        let t = self.advance();
        match t.tok {
            Tok::Op(op) => {
                let value = self.literal()?;
                Ok(Expr::Compare { column, op, value })
            }
            Tok::Word(w) if w.eq_ignore_ascii_case("IN") => self.in_list(column),
            Tok::Word(w) if w.eq_ignore_ascii_case("IS") => {
                let negated = self.at_keyword("NOT");
                if negated {
                    self.advance();
                }
                self.keyword("NULL")?;
                Ok(Expr::IsNull { column, negated })
            }
            Tok::Word(w) if w.eq_ignore_ascii_case("LIKE") => match self.advance() {
                Token {
                    tok: Tok::Text(pattern),
                    ..
                } => Ok(Expr::Like { column, pattern }),
                other => Err(FilterError::new(
                    other.at,
                    format!("LIKE takes a string, found {}", describe(&other.tok)),
                )),
            },
            Tok::Word(w) if w.eq_ignore_ascii_case("BETWEEN") => self.between(column),
            other => Err(FilterError::new(
                t.at,
                format!(
                    "expected an operator, IN, IS, LIKE or BETWEEN, found {}",
                    describe(&other)
                ),
            )),
        }
    }

    fn column(&mut self) -> Result<Column, FilterError> {
        let t = self.peek().clone();
        let name = match t.tok {
            Tok::Quoted(name) if !name.is_empty() => name,
            Tok::Word(w) if !KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(&w)) => w,
            _ => return Err(self.expected("a column name")),
        };
        self.advance();
        Ok(Column {
            name,
            position: t.at,
        })
    }

    fn literal(&mut self) -> Result<Literal, FilterError> {
        let lit = match &self.peek().tok {
            Tok::Text(s) => Literal::Text(s.clone()),
            Tok::Number(n) => Literal::Number(*n),
            _ => return Err(self.expected("a string or a number")),
        };
        self.advance();
        Ok(lit)
    }

    fn in_list(&mut self, column: Column) -> Result<Expr, FilterError> {
        if self.peek().tok != Tok::Open {
            return Err(self.expected("'('"));
        }
        self.advance();
        let mut values = Vec::new();
        loop {
            let at = self.peek().at;
            let v = self.literal()?;
            if values.first().is_some_and(|first| !same_kind(first, &v)) {
                return Err(mixed(at, "an IN list"));
            }
            if values.len() == MAX_TERMS {
                let msg = format!("IN list has more than {MAX_TERMS} values");
                return Err(FilterError::new(at, msg));
            }
            values.push(v);
            match self.advance() {
                Token {
                    tok: Tok::Comma, ..
                } => continue,
                Token {
                    tok: Tok::Close, ..
                } => return Ok(Expr::In { column, values }),
                t => {
                    let msg = format!("expected ',' or ')', found {}", describe(&t.tok));
                    return Err(FilterError::new(t.at, msg));
                }
            }
        }
    }

    fn between(&mut self, column: Column) -> Result<Expr, FilterError> {
        let low = self.literal()?;
        self.keyword("AND")?;
        let at = self.peek().at;
        let high = self.literal()?;
        if !same_kind(&low, &high) {
            return Err(mixed(at, "a BETWEEN range"));
        }
        Ok(Expr::Between { column, low, high })
    }
}

fn one_or(mut operands: Vec<Expr>, wrap: fn(Vec<Expr>) -> Expr) -> Expr {
    if operands.len() == 1 {
        if let Some(only) = operands.pop() {
            return only;
        }
    }
    wrap(operands)
}

fn same_kind(a: &Literal, b: &Literal) -> bool {
    matches!(
        (a, b),
        (Literal::Text(_), Literal::Text(_)) | (Literal::Number(_), Literal::Number(_))
    )
}

fn mixed(at: usize, what: &str) -> FilterError {
    FilterError::new(at, format!("{what} mixes strings and numbers"))
}

fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Word(w) if KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(w)) => {
            format!("keyword {}", w.to_ascii_uppercase())
        }
        Tok::Word(w) => format!("{w:?}"),
        Tok::Quoted(w) => format!("column \"{w}\""),
        Tok::Text(_) => "a string".into(),
        Tok::Number(_) => "a number".into(),
        Tok::Op(op) => format!("operator {}", op.sql()),
        Tok::Open => "'('".into(),
        Tok::Close => "')'".into(),
        Tok::Comma => "','".into(),
        Tok::End => "the end of the filter".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::CmpOp;

    fn col(name: &str) -> Column {
        Column {
            name: name.into(),
            position: 0,
        }
    }

    fn eq(name: &str, n: f64) -> Expr {
        Expr::Compare {
            column: col(name),
            op: CmpOp::Eq,
            value: Literal::Number(n),
        }
    }

    #[test]
    fn and_binds_tighter_than_or() {
        let e = parse("a = 1 OR b = 2 AND c = 3").unwrap();
        let want = Expr::Or(vec![
            eq("a", 1.0),
            Expr::And(vec![eq("b", 2.0), eq("c", 3.0)]),
        ]);
        assert_eq!(e, want);
        let e = parse("(a = 1 OR b = 2) AND c = 3").unwrap();
        let want = Expr::And(vec![
            Expr::Or(vec![eq("a", 1.0), eq("b", 2.0)]),
            eq("c", 3.0),
        ]);
        assert_eq!(e, want);
    }

    #[test]
    fn not_binds_tighter_than_and() {
        let e = parse("not a = 1 and b = 2").unwrap();
        let want = Expr::And(vec![Expr::Not(Box::new(eq("a", 1.0))), eq("b", 2.0)]);
        assert_eq!(e, want);
    }

    #[test]
    fn chinese_identifiers_and_values() {
        let e = parse("district = '海淀区' AND 金额 >= 1000").unwrap();
        let want = Expr::And(vec![
            Expr::Compare {
                column: col("district"),
                op: CmpOp::Eq,
                value: Literal::Text("海淀区".into()),
            },
            Expr::Compare {
                column: col("金额"),
                op: CmpOp::Ge,
                value: Literal::Number(1000.0),
            },
        ]);
        assert_eq!(e, want);
    }

    #[test]
    fn in_between_like_is_null() {
        let e = parse("x In (1, 2) AND y between 'a' and 'b' AND z like 'q%' AND w is not null")
            .unwrap();
        let Expr::And(v) = e else { panic!("not AND") };
        assert!(matches!(&v[0], Expr::In { values, .. } if values.len() == 2));
        assert!(matches!(
            &v[1],
            Expr::Between {
                low: Literal::Text(_),
                ..
            }
        ));
        assert!(matches!(&v[2], Expr::Like { pattern, .. } if pattern == "q%"));
        assert!(matches!(&v[3], Expr::IsNull { negated: true, .. }));
    }

    fn err(s: &str) -> (usize, String) {
        let e = parse(s).unwrap_err();
        (e.position, e.message)
    }

    #[test]
    fn errors_carry_positions() {
        assert_eq!(err("").0, 0);
        assert_eq!(err("   ").1, "empty filter");
        assert_eq!(err("a = 'abc").1, "unterminated string");
        assert_eq!(err("金额 = 'abc").0, 5);
        assert_eq!(err("a ~= 1").0, 2);
        let (at, msg) = err("a = 1 b");
        assert_eq!(at, 6);
        assert!(msg.contains("after the end"), "{msg}");
        assert_eq!(err("a = 1)").0, 5);
        assert_eq!(err("(a = 1").0, 6);
        assert_eq!(err("a = b").1, "expected a string or a number, found \"b\"");
        assert_eq!(
            err("and = 1").1,
            "expected a column name, found keyword AND"
        );
        assert_eq!(err("a IN (1, 'x')").0, 9);
        assert_eq!(err("a BETWEEN 1 AND 'z'").0, 16);
        assert_eq!(err("a LIKE 5").0, 7);
        assert_eq!(err("a IS NOT 5").0, 9);
        assert_eq!(
            err("a = 1 AND").1,
            "expected a column name, found the end of the filter"
        );
    }

    #[test]
    fn raw_injection_is_not_sql() {
        // Either a parse error or a harmless typed expression; here `1` is
        // not a column and `--` is not an operator.
        assert!(parse("name = '' OR 1=1 --'").is_err());
        assert!(parse("name = ''; DROP TABLE t").is_err());
        assert!(parse("name = '' OR 'a'='a'").is_err());
    }

    #[test]
    fn limits_are_enforced_with_positions() {
        let deep = format!(
            "{}a = 1{}",
            "(".repeat(MAX_DEPTH + 1),
            ")".repeat(MAX_DEPTH + 1)
        );
        let e = parse(&deep).unwrap_err();
        assert_eq!(e.position, MAX_DEPTH);
        let ok = format!("{}a = 1{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
        let nots = format!("{}a = 1", "NOT ".repeat(MAX_DEPTH + 1));
        assert!(parse(&nots).unwrap_err().message.contains("nests deeper"));

        let many = vec!["a = 1"; MAX_TERMS + 1].join(" OR ");
        let e = parse(&many).unwrap_err();
        assert_eq!(e.position, MAX_TERMS * "a = 1 OR ".len());
        assert!(parse(&vec!["a=1"; MAX_TERMS].join(" OR ")).is_ok());
        let list = vec!["1"; MAX_TERMS + 1].join(",");
        assert!(parse(&format!("a IN ({list})")).is_err());
    }

    #[test]
    fn random_input_never_panics() {
        // xorshift64*, fixed seed: reproducible, no dependency.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_F491_4F6C_DD1D)
        };
        let alphabet: Vec<char> = "ab海 '\"()=<>!,.-e1 0ANDORNOTINISLIKEBETWEENNULL\u{0}\u{7f}é"
            .chars()
            .collect();
        let cols: Vec<String> = ["a", "b", "海", "AND"].map(String::from).into();
        for i in 0..5000 {
            let len = (next() % 64) as usize;
            let input = if i % 2 == 0 {
                let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                String::from_utf8_lossy(&bytes).into_owned()
            } else {
                (0..len)
                    .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                    .collect()
            };
            if let Ok(e) = parse(&input) {
                let _ = e.to_sql(&cols);
                assert_eq!(parse(&e.to_string()).unwrap(), e, "{input:?}");
            }
        }
    }
}
