//! Turns source text into tokens. Never fails: bad characters and
//! unterminated strings become [`TokenKind::Error`] tokens the parser reports.
use crate::syntax::Span;

/// The kinds of token.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenKind {
    /// `foo`, also the keywords `let`, `job`, `true`, `false`.
    Ident(String),
    /// A number with an optional unit: `3`, `500ms`, `4MiB`.
    Number(String),
    /// A dotted quad with an optional prefix: `10.0.0.2/24`.
    Ipv4(String),
    /// A string literal, unescaped.
    Str(String),
    /// `::`
    PathSep,
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `[`
    LBracket,
    /// `]`
    RBracket,
    /// `,`
    Comma,
    /// `;`
    Semi,
    /// `=`
    Eq,
    /// `{`
    LBrace,
    /// `}`
    RBrace,
    /// `=>`
    FatArrow,
    /// `|`
    Pipe,
    /// `.`, between a device and the method called on it.
    Dot,
    /// Something the lexer could not read, with the reason.
    Error(String),
    /// The end of input.
    Eof,
}

/// A token and its place.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    /// What it is.
    pub kind: TokenKind,
    /// Where it is.
    pub span: Span,
}

/// The tokens of `src` (ending with [`TokenKind::Eof`]) and the spans of its comments.
pub fn lex(src: &str) -> (Vec<Token>, Vec<Span>) {
    let bytes = src.as_bytes();
    let mut tokens = Vec::new();
    let mut comments = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        let c = bytes[i];
        let kind = match c {
            b' ' | b'\t' | b'\r' | b'\n' => {
                i += 1;
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                comments.push(Span::new(start, i));
                continue;
            }
            b'=' if bytes.get(i + 1) == Some(&b'>') => {
                i += 2;
                TokenKind::FatArrow
            }
            b'.' => {
                i += 1;
                TokenKind::Dot
            }
            b'(' | b')' | b'[' | b']' | b',' | b';' | b'=' | b'{' | b'}' | b'|' => {
                i += 1;
                match c {
                    b'(' => TokenKind::LParen,
                    b')' => TokenKind::RParen,
                    b'[' => TokenKind::LBracket,
                    b']' => TokenKind::RBracket,
                    b',' => TokenKind::Comma,
                    b';' => TokenKind::Semi,
                    b'{' => TokenKind::LBrace,
                    b'}' => TokenKind::RBrace,
                    b'|' => TokenKind::Pipe,
                    _ => TokenKind::Eq,
                }
            }
            b':' if bytes.get(i + 1) == Some(&b':') => {
                i += 2;
                TokenKind::PathSep
            }
            b'"' => {
                let (kind, end) = string(src, i);
                i = end;
                kind
            }
            b'0'..=b'9' => {
                let (kind, end) = number(bytes, i);
                i = end;
                kind
            }
            c if c == b'_' || c.is_ascii_alphabetic() => {
                while i < bytes.len() && (bytes[i] == b'_' || bytes[i].is_ascii_alphanumeric()) {
                    i += 1;
                }
                TokenKind::Ident(src[start..i].to_owned())
            }
            _ => {
                // Skip one whole character, however many bytes it takes.
                let ch = src[i..].chars().next().unwrap_or('?');
                i += ch.len_utf8();
                TokenKind::Error(match ch {
                    '-' => "unexpected `-`: values cannot be negative".into(),
                    ch => format!("unexpected character `{}`", ch.escape_default()),
                })
            }
        };
        tokens.push(Token {
            kind,
            span: Span::new(start, i),
        });
    }
    tokens.push(Token {
        kind: TokenKind::Eof,
        span: Span::new(src.len(), src.len()),
    });
    (tokens, comments)
}

fn string(src: &str, start: usize) -> (TokenKind, usize) {
    let mut out = String::new();
    let mut chars = src[start + 1..].char_indices();
    while let Some((off, c)) = chars.next() {
        let at = start + 1 + off;
        match c {
            '"' => return (TokenKind::Str(out), at + 1),
            '\n' => return (TokenKind::Error("unterminated string".into()), at),
            '\\' => match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, '\\')) => out.push('\\'),
                Some((_, '"')) => out.push('"'),
                // End after the escaped character, however many bytes it takes.
                Some((o, c)) => {
                    return (
                        TokenKind::Error("unknown escape (use \\n \\t \\\\ \\\")".into()),
                        start + 1 + o + c.len_utf8(),
                    )
                }
                None => break,
            },
            c => out.push(c),
        }
    }
    (TokenKind::Error("unterminated string".into()), src.len())
}

fn number(bytes: &[u8], start: usize) -> (TokenKind, usize) {
    let digits = |mut i: usize| {
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    let mut i = digits(start);
    if bytes.get(i) == Some(&b'.') && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
        // A dotted quad: take digits and dots, then an optional /prefix.
        while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        if bytes.get(i) == Some(&b'/') {
            i = digits(i + 1);
        }
        return (
            TokenKind::Ipv4(String::from_utf8_lossy(&bytes[start..i]).into()),
            i,
        );
    }
    while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
        i += 1;
    }
    (
        TokenKind::Number(String::from_utf8_lossy(&bytes[start..i]).into()),
        i,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<TokenKind> {
        lex(src).0.into_iter().map(|t| t.kind).collect()
    }

    #[test]
    fn lexes_every_token_form() {
        use TokenKind::*;
        assert_eq!(
            kinds(r#"let a = kv::dir("d\"x", 10.0.0.2/24, 500ms); // c"#),
            vec![
                Ident("let".into()),
                Ident("a".into()),
                Eq,
                Ident("kv".into()),
                PathSep,
                Ident("dir".into()),
                LParen,
                Str("d\"x".into()),
                Comma,
                Ipv4("10.0.0.2/24".into()),
                Comma,
                Number("500ms".into()),
                RParen,
                Semi,
                Eof
            ]
        );
        assert_eq!(
            kinds("\"abc\n"),
            vec![Error("unterminated string".into()), Eof]
        );
        assert_eq!(
            kinds("é"),
            vec![Error("unexpected character `\\u{e9}`".into()), Eof]
        );
    }
}
