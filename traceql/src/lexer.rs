//! Splits query text into tokens with their line and column. Attribute names are lexed here
//! (not in the parser) because their characters overlap with operators: `span.a-b/c` is one
//! name, while `-` and `/` between values are operators.

use crate::ast::AttrScope;
use crate::error::{Error, Pos};
use crate::value::parse_duration;

/// Token kinds.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Tok {
    LBrace,
    RBrace,
    LParen,
    RParen,
    Comma,
    Eq,
    Ne,
    Re,
    NRe,
    Gt,
    Ge,
    Lt,
    Le,
    Desc,
    Anc,
    Tilde,
    NotChild,
    NotParent,
    NotDesc,
    NotAnc,
    UnionSibl,
    UnionChild,
    UnionParent,
    UnionDesc,
    UnionAnc,
    And,
    Or,
    Not,
    Pipe,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Caret,
    Str(String),
    /// An integer literal; its sign is a separate `Minus`, so `9223372036854775808` lexes.
    Int(u64),
    Float(f64),
    Duration(u64),
    /// A bare word: keywords, intrinsics, function names.
    Ident(String),
    /// `span.key`, `.key`, …
    Attr(Option<AttrScope>, String),
    /// `span:id`, `trace:rootName`, …: scope and name.
    Scoped(String, String),
    Eof,
}

/// A token and where it starts.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) pos: Pos,
}

/// Characters that end an unquoted attribute name (besides whitespace).
pub(crate) fn is_attr_char(c: char) -> bool {
    !c.is_whitespace()
        && !matches!(
            c,
            '{' | '}' | '(' | ')' | '=' | '~' | '!' | '<' | '>' | '&' | '|' | '^' | ',' | '"'
        )
}

struct Lexer<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: usize,
    column: usize,
}

impl Lexer<'_> {
    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            column: self.column,
        }
    }

    fn peek(&mut self) -> Option<char> {
        self.chars.peek().copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.next()?;
        if c == '\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(c)
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.bump();
            true
        } else {
            false
        }
    }

    /// Skips whitespace and `//` / `/* */` comments. A `/` not starting a comment is left.
    fn skip_trivia(&mut self) -> Result<(), Error> {
        loop {
            match self.peek() {
                Some(c) if c.is_whitespace() => {
                    self.bump();
                }
                Some('/') => {
                    let mut ahead = self.chars.clone();
                    ahead.next();
                    match ahead.next() {
                        Some('/') => {
                            while let Some(c) = self.peek() {
                                if c == '\n' {
                                    break;
                                }
                                self.bump();
                            }
                        }
                        Some('*') => {
                            let start = self.pos();
                            self.bump();
                            self.bump();
                            loop {
                                match self.bump() {
                                    None => {
                                        return Err(Error::parse(start, "unterminated comment"));
                                    }
                                    Some('*') if self.eat('/') => break,
                                    Some(_) => {}
                                }
                            }
                        }
                        _ => return Ok(()),
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn next_token(&mut self) -> Result<Token, Error> {
        self.skip_trivia()?;
        let pos = self.pos();
        let Some(c) = self.bump() else {
            return Ok(Token { tok: Tok::Eof, pos });
        };
        let tok = match c {
            '{' => Tok::LBrace,
            '}' => Tok::RBrace,
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            ',' => Tok::Comma,
            '~' => Tok::Tilde,
            '+' => Tok::Plus,
            '-' => Tok::Minus,
            '*' => Tok::Star,
            '/' => Tok::Slash,
            '%' => Tok::Percent,
            '^' => Tok::Caret,
            '=' if self.eat('~') => Tok::Re,
            '=' => Tok::Eq,
            '!' if self.eat('=') => Tok::Ne,
            '!' if self.eat('~') => Tok::NRe,
            '!' if self.eat('>') => {
                if self.eat('>') {
                    Tok::NotDesc
                } else {
                    Tok::NotChild
                }
            }
            '!' if self.eat('<') => {
                if self.eat('<') {
                    Tok::NotAnc
                } else {
                    Tok::NotParent
                }
            }
            '!' => Tok::Not,
            '>' if self.eat('>') => Tok::Desc,
            '>' if self.eat('=') => Tok::Ge,
            '>' => Tok::Gt,
            '<' if self.eat('<') => Tok::Anc,
            '<' if self.eat('=') => Tok::Le,
            '<' => Tok::Lt,
            '&' if self.eat('&') => Tok::And,
            '&' if self.eat('~') => Tok::UnionSibl,
            '&' if self.eat('>') => {
                if self.eat('>') {
                    Tok::UnionDesc
                } else {
                    Tok::UnionChild
                }
            }
            '&' if self.eat('<') => {
                if self.eat('<') {
                    Tok::UnionAnc
                } else {
                    Tok::UnionParent
                }
            }
            '|' if self.eat('|') => Tok::Or,
            '|' => Tok::Pipe,
            '"' => Tok::Str(self.string(pos)?),
            '`' => Tok::Str(self.raw_string(pos)?),
            '.' => Tok::Attr(None, self.attr_name(pos)?),
            c if c.is_ascii_digit() => self.number(c, pos)?,
            c if c.is_ascii_alphabetic() || c == '_' => self.word(c, pos)?,
            c => return Err(Error::parse(pos, format!("unexpected character '{c}'"))),
        };
        Ok(Token { tok, pos })
    }

    fn string(&mut self, start: Pos) -> Result<String, Error> {
        let mut out = String::new();
        loop {
            let pos = self.pos();
            match self.bump() {
                None => return Err(Error::parse(start, "unterminated string")),
                Some('"') => return Ok(out),
                Some('\\') => match self.bump() {
                    Some('"') => out.push('"'),
                    Some('\\') => out.push('\\'),
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some(c) => {
                        return Err(Error::parse(pos, format!("invalid escape sequence \\{c}")));
                    }
                    None => return Err(Error::parse(start, "unterminated string")),
                },
                Some(c) => out.push(c),
            }
        }
    }

    fn raw_string(&mut self, start: Pos) -> Result<String, Error> {
        let mut out = String::new();
        loop {
            match self.bump() {
                None => return Err(Error::parse(start, "unterminated string")),
                Some('`') => return Ok(out),
                Some(c) => out.push(c),
            }
        }
    }

    /// An attribute name after its scope: unquoted runs and `"quoted"` parts.
    fn attr_name(&mut self, start: Pos) -> Result<String, Error> {
        let mut out = String::new();
        let mut any = false;
        loop {
            match self.peek() {
                Some('"') => {
                    let qpos = self.pos();
                    self.bump();
                    loop {
                        let pos = self.pos();
                        match self.bump() {
                            None => {
                                return Err(Error::parse(
                                    qpos,
                                    "unterminated quoted attribute name",
                                ));
                            }
                            Some('"') => break,
                            Some('\\') => match self.bump() {
                                Some(c @ ('"' | '\\')) => out.push(c),
                                _ => {
                                    return Err(Error::parse(
                                        pos,
                                        "invalid escape sequence in attribute name",
                                    ));
                                }
                            },
                            Some(c) => out.push(c),
                        }
                    }
                    any = true;
                }
                Some(c) if is_attr_char(c) => {
                    out.push(c);
                    self.bump();
                    any = true;
                }
                _ => break,
            }
        }
        if !any {
            return Err(Error::parse(start, "expected an attribute name"));
        }
        Ok(out)
    }

    fn digits(&mut self, out: &mut String) {
        while let Some(c) = self.peek().filter(char::is_ascii_digit) {
            out.push(c);
            self.bump();
        }
    }

    fn number(&mut self, first: char, pos: Pos) -> Result<Tok, Error> {
        let mut text = String::from(first);
        self.digits(&mut text);
        let mut float = false;
        if self.peek() == Some('.') && self.second_is_digit() {
            float = true;
            text.push('.');
            self.bump();
            self.digits(&mut text);
        }
        if matches!(self.peek(), Some('e' | 'E')) && self.exponent_follows() {
            float = true;
            text.push('e');
            self.bump();
            if let Some(sign @ ('+' | '-')) = self.peek() {
                text.push(sign);
                self.bump();
            }
            self.digits(&mut text);
        } else if self.peek().is_some_and(|c| c.is_alphabetic()) {
            // A duration: the number continues with units and maybe more numbers (`1h30m`).
            while let Some(c) = self
                .peek()
                .filter(|c| c.is_alphanumeric() || *c == '.' || *c == '_')
            {
                text.push(c);
                self.bump();
            }
            return parse_duration(&text)
                .map(Tok::Duration)
                .ok_or_else(|| Error::parse(pos, format!("invalid duration {text}")));
        }
        if self
            .peek()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.')
        {
            return Err(Error::parse(pos, format!("invalid number {text}")));
        }
        if float {
            match text.parse::<f64>() {
                Ok(f) if f.is_finite() => Ok(Tok::Float(f)),
                _ => Err(Error::parse(pos, format!("float out of range {text}"))),
            }
        } else {
            text.parse::<u64>()
                .map(Tok::Int)
                .map_err(|_| Error::parse(pos, format!("integer out of range {text}")))
        }
    }

    fn second_is_digit(&self) -> bool {
        let mut ahead = self.chars.clone();
        ahead.next();
        ahead.next().is_some_and(|c| c.is_ascii_digit())
    }

    fn exponent_follows(&self) -> bool {
        let mut ahead = self.chars.clone();
        ahead.next();
        match ahead.next() {
            Some('+' | '-') => ahead.next().is_some_and(|c| c.is_ascii_digit()),
            Some(c) => c.is_ascii_digit(),
            None => false,
        }
    }

    fn word(&mut self, first: char, pos: Pos) -> Result<Tok, Error> {
        let mut word = String::from(first);
        while let Some(c) = self
            .peek()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        {
            word.push(c);
            self.bump();
        }
        match self.peek() {
            Some('.') => {
                let scope = match word.as_str() {
                    "span" => AttrScope::Span,
                    "resource" => AttrScope::Resource,
                    "event" => AttrScope::Event,
                    "link" => AttrScope::Link,
                    "instrumentation" => AttrScope::Instrumentation,
                    "parent" => return Err(Error::unsupported(pos, "the parent. scope")),
                    _ => return Err(Error::parse(pos, format!("unknown attribute scope {word}"))),
                };
                self.bump();
                Ok(Tok::Attr(Some(scope), self.attr_name(pos)?))
            }
            Some(':') => {
                if !matches!(
                    word.as_str(),
                    "span" | "trace" | "event" | "link" | "instrumentation"
                ) {
                    return Err(Error::parse(pos, format!("unknown intrinsic scope {word}")));
                }
                self.bump();
                let mut name = String::new();
                while let Some(c) = self
                    .peek()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                {
                    name.push(c);
                    self.bump();
                }
                if name.is_empty() {
                    return Err(Error::parse(
                        pos,
                        format!("expected an intrinsic after {word}:"),
                    ));
                }
                Ok(Tok::Scoped(word, name))
            }
            _ => Ok(Tok::Ident(word)),
        }
    }
}

/// Lexes all of `src`; the last token is `Eof`.
pub(crate) fn lex(src: &str) -> Result<Vec<Token>, Error> {
    let mut lexer = Lexer {
        chars: src.chars().peekable(),
        line: 1,
        column: 1,
    };
    let mut out = Vec::new();
    loop {
        let t = lexer.next_token()?;
        let end = t.tok == Tok::Eof;
        out.push(t);
        if end {
            return Ok(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<Tok> {
        lex(src).unwrap().into_iter().map(|t| t.tok).collect()
    }

    fn err(src: &str) -> (usize, usize, String) {
        let e = lex(src).unwrap_err();
        (e.line(), e.column(), e.to_string())
    }

    #[test]
    fn attribute_names_take_operator_like_characters() {
        assert_eq!(
            toks("span.http.status_code resource.k8s.pod-name .a/b:c+d*e"),
            vec![
                Tok::Attr(Some(AttrScope::Span), "http.status_code".into()),
                Tok::Attr(Some(AttrScope::Resource), "k8s.pod-name".into()),
                Tok::Attr(None, "a/b:c+d*e".into()),
                Tok::Eof
            ]
        );
        assert_eq!(
            toks(r#"span."foo bar".baz event."a\"b\\""#),
            vec![
                Tok::Attr(Some(AttrScope::Span), "foo bar.baz".into()),
                Tok::Attr(Some(AttrScope::Event), "a\"b\\".into()),
                Tok::Eof
            ]
        );
        assert_eq!(
            toks(".a!=1"),
            vec![Tok::Attr(None, "a".into()), Tok::Ne, Tok::Int(1), Tok::Eof]
        );
    }

    #[test]
    fn operators_take_the_longest_match() {
        assert_eq!(
            toks("!>> !> !<< !< &>> &> &<< &< &~ >> << >= <= =~ !~ != && || | ~ !"),
            vec![
                Tok::NotDesc,
                Tok::NotChild,
                Tok::NotAnc,
                Tok::NotParent,
                Tok::UnionDesc,
                Tok::UnionChild,
                Tok::UnionAnc,
                Tok::UnionParent,
                Tok::UnionSibl,
                Tok::Desc,
                Tok::Anc,
                Tok::Ge,
                Tok::Le,
                Tok::Re,
                Tok::NRe,
                Tok::Ne,
                Tok::And,
                Tok::Or,
                Tok::Pipe,
                Tok::Tilde,
                Tok::Not,
                Tok::Eof
            ]
        );
    }

    #[test]
    fn literals() {
        assert_eq!(
            toks(r#"1 2.5 1e3 1.5s 10µs 1h30m "a\"\n" `x\d` 9223372036854775808"#),
            vec![
                Tok::Int(1),
                Tok::Float(2.5),
                Tok::Float(1000.0),
                Tok::Duration(1_500_000_000),
                Tok::Duration(10_000),
                Tok::Duration(5_400_000_000_000),
                Tok::Str("a\"\n".into()),
                Tok::Str("x\\d".into()),
                Tok::Int(9_223_372_036_854_775_808),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn comments_are_skipped() {
        assert_eq!(
            toks("{ // all\n } /* x */ | 3 / 2"),
            vec![
                Tok::LBrace,
                Tok::RBrace,
                Tok::Pipe,
                Tok::Int(3),
                Tok::Slash,
                Tok::Int(2),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn errors_point_at_the_token() {
        assert_eq!(err("{ \"abc }").1, 3);
        assert!(err("{ \"abc }").2.contains("unterminated string"));
        let (l, c, m) = err("{\n  duration > 5x }");
        assert_eq!((l, c), (2, 14));
        assert!(m.contains("invalid duration 5x"), "{m}");
        assert!(err(r#""\q""#).2.contains("invalid escape sequence"));
        assert!(err("foo.bar").2.contains("unknown attribute scope foo"));
        assert!(err("/* x").2.contains("unterminated comment"));
        assert!(err("@").2.contains("unexpected character '@'"));
        assert!(err("1.5.3").2.contains("invalid number"));
        assert!(
            err("99999999999999999999")
                .2
                .contains("integer out of range")
        );
        assert_eq!(
            err("{ parent.x = 1 }").2,
            "unsupported at line 1, col 3: the parent. scope is not supported"
        );
    }

    #[test]
    fn columns_count_characters() {
        let t = lex("\"µµ\" x").unwrap();
        assert_eq!(t[1].pos, Pos { line: 1, column: 6 });
    }
}
