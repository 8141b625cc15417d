//! The parser: tokens to a [`File`], with error recovery.
//!
//! A statement that fails to parse is reported once and skipped up to its
//! `;` (or to the start of the next statement), and an argument that fails
//! is skipped up to the next `,` or `)`, so independent mistakes each get
//! their own diagnostic and the rest of the file is still checked.
//!
//! A statement starts at a `let` (a keyword, never inside an expression)
//! or at a `register(` that begins a line. An argument list whose `)` is
//! missing ends there too, so a call left open while the user types never
//! swallows the statements after it.
use crate::diagnostic::Diagnostic;
use crate::lexer::{lex, Token, TokenKind};
use crate::syntax::{Arg, Expr, ExprKind, File, Ident, MatchArm, Path, Span, Stmt};
use libos::value::{parse_duration, parse_int, Value};

/// Parses `src`, returning the tree and the syntax errors.
pub fn parse(src: &str) -> (File, Vec<Diagnostic>) {
    parse_until(src, usize::MAX)
}

/// Parses the statements of `src` that start before byte `stop`: what
/// [`parse`] makes of them when `src` goes on past `stop` with a `let`
/// (`src` holds that `let` too, as the token that ends the last
/// statement). A `let` is only ever taken as the start of a statement, so
/// a file cut before each `let` that begins a line parses piece by piece
/// into the same statements and errors as the whole: what
/// [`crate::incremental`] re-uses.
pub(crate) fn parse_until(src: &str, stop: usize) -> (File, Vec<Diagnostic>) {
    let (tokens, comments) = lex(src);
    let mut p = Parser::new(src, tokens);
    let mut stmts = Vec::new();
    while !p.at(&TokenKind::Eof) && p.peek().span.start < stop {
        let before = p.pos;
        match p.stmt() {
            Ok(s) => stmts.push(s),
            Err(()) => p.recover_stmt(),
        }
        if p.pos == before {
            p.bump(); // always make progress
        }
    }
    (File { stmts, comments }, p.diags)
}

/// Parses one expression on its own (the REPL's input), with its errors.
pub fn parse_expr(src: &str) -> (Option<Expr>, Vec<Diagnostic>) {
    let (tokens, _) = lex(src);
    let mut p = Parser::new(src, tokens);
    let e = p.expr().ok();
    if e.is_some() && !p.at(&TokenKind::Eof) {
        let t = p.peek().clone();
        p.diags.push(Diagnostic::error(
            "nym::syntax",
            t.span,
            format!("unexpected {} after the expression", describe(&t.kind)),
        ));
    }
    (e, p.diags)
}

struct Parser {
    tokens: Vec<Token>,
    /// Whether each token is the first on its line.
    line_start: Vec<bool>,
    pos: usize,
    diags: Vec<Diagnostic>,
}

type PResult<T> = Result<T, ()>;

const MAX_DEPTH: usize = 64;

fn describe(kind: &TokenKind) -> String {
    match kind {
        TokenKind::Ident(s) => format!("`{s}`"),
        TokenKind::Number(s) | TokenKind::Ipv4(s) => format!("`{s}`"),
        TokenKind::Str(_) => "a string".into(),
        TokenKind::PathSep => "`::`".into(),
        TokenKind::LParen => "`(`".into(),
        TokenKind::RParen => "`)`".into(),
        TokenKind::LBracket => "`[`".into(),
        TokenKind::RBracket => "`]`".into(),
        TokenKind::Comma => "`,`".into(),
        TokenKind::Semi => "`;`".into(),
        TokenKind::Eq => "`=`".into(),
        TokenKind::LBrace => "`{`".into(),
        TokenKind::RBrace => "`}`".into(),
        TokenKind::FatArrow => "`=>`".into(),
        TokenKind::Pipe => "`|`".into(),
        TokenKind::Dot => "`.`".into(),
        TokenKind::Error(e) => e.clone(),
        TokenKind::Eof => "the end of the file".into(),
    }
}

impl Parser {
    fn new(src: &str, tokens: Vec<Token>) -> Self {
        let line_start = tokens
            .iter()
            .scan(0, |prev_end, t| {
                let gap = &src[(*prev_end).min(t.span.start)..t.span.start];
                let first = *prev_end == 0 || gap.contains('\n');
                *prev_end = t.span.end;
                Some(first)
            })
            .collect();
        Parser {
            tokens,
            line_start,
            pos: 0,
            diags: Vec::new(),
        }
    }
    fn peek(&self) -> &Token {
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }
    fn peek_at(&self, n: usize) -> &Token {
        &self.tokens[(self.pos + n).min(self.tokens.len() - 1)]
    }
    fn at(&self, kind: &TokenKind) -> bool {
        &self.peek().kind == kind
    }
    fn at_keyword(&self, kw: &str) -> bool {
        matches!(&self.peek().kind, TokenKind::Ident(s) if s == kw)
    }
    /// Whether the next token starts a statement: a `let`, or a
    /// `register(` at the start of a line (`register` is no keyword, and
    /// written inside an expression it is the checker's to refuse).
    fn at_stmt_start(&self) -> bool {
        self.at_keyword("let")
            || (self.at_keyword("register")
                && self.peek_at(1).kind == TokenKind::LParen
                && self.line_start.get(self.pos).copied().unwrap_or(false))
    }
    /// Whether the statement being parsed cannot go on: the input ended,
    /// or a `;` or the next statement came.
    fn at_stmt_end(&self) -> bool {
        self.at(&TokenKind::Eof) || self.at(&TokenKind::Semi) || self.at_stmt_start()
    }
    /// Whether a diagnostic was already reported at the next token or after
    /// the last one taken (the statement's end was found and reported).
    fn reported_here(&self) -> bool {
        let end = self.prev_end();
        self.diags.last().is_some_and(|d| d.span.start >= end)
    }
    fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        t
    }
    fn prev_end(&self) -> usize {
        self.pos
            .checked_sub(1)
            .map_or(0, |i| self.tokens[i].span.end)
    }
    /// The empty span just after the last token taken.
    fn prev_span(&self) -> Span {
        Span::new(self.prev_end(), self.prev_end())
    }

    /// Reports what was found instead of `what`.
    fn unexpected(&mut self, what: &str) {
        let t = self.peek().clone();
        let d = match t.kind {
            TokenKind::Error(msg) => {
                Diagnostic::error("nym::syntax", t.span, msg.clone()).label(msg)
            }
            _ => Diagnostic::error(
                "nym::syntax",
                t.span,
                format!("expected {what}, found {}", describe(&t.kind)),
            )
            .label(format!("expected {what}")),
        };
        self.diags.push(d);
    }

    fn expect(&mut self, kind: TokenKind, what: &str) -> PResult<Token> {
        if self.at(&kind) {
            Ok(self.bump())
        } else {
            self.unexpected(what);
            Err(())
        }
    }

    fn ident(&mut self, what: &str) -> PResult<Ident> {
        match &self.peek().kind {
            TokenKind::Ident(name) if !is_keyword(name) => {
                let name = name.clone();
                let span = self.bump().span;
                Ok(Ident { name, span })
            }
            _ => {
                self.unexpected(what);
                Err(())
            }
        }
    }

    /// Skips to just after the next `;`, or to the start of the next statement.
    fn recover_stmt(&mut self) {
        loop {
            if self.at(&TokenKind::Eof) || self.at_stmt_start() {
                return;
            }
            if self.bump().kind == TokenKind::Semi {
                return;
            }
        }
    }

    fn stmt(&mut self) -> PResult<Stmt> {
        let start = self.peek().span;
        if self.at_keyword("let") {
            self.bump();
            let name = self.ident("a binding name after `let`")?;
            self.expect(TokenKind::Eq, "`=`")?;
            let value = self.expr()?;
            self.semi()?;
            Ok(Stmt::Let {
                name,
                value,
                span: start.to(Span::new(self.prev_end(), self.prev_end())),
            })
        } else {
            let expr = self.expr()?;
            self.semi()?;
            Ok(Stmt::Expr {
                expr,
                span: start.to(Span::new(self.prev_end(), self.prev_end())),
            })
        }
    }

    /// A missing `;` is reported at the end of the statement; parsing goes
    /// on as if it were there when the next token starts a statement.
    fn semi(&mut self) -> PResult<()> {
        if self.at(&TokenKind::Semi) {
            self.bump();
            return Ok(());
        }
        let end = self.prev_end();
        let next_starts_stmt = self.at_stmt_start() || self.at(&TokenKind::Eof);
        // The statement ended early and that was reported (an unclosed
        // call): a missing `;` there is the same mistake.
        if next_starts_stmt && self.reported_here() {
            return Ok(());
        }
        self.diags.push(
            Diagnostic::error(
                "nym::syntax",
                Span::new(end, end),
                format!("expected `;`, found {}", describe(&self.peek().kind)),
            )
            .label("add `;` here")
            .fix("add `;`", Span::new(end, end), ";"),
        );
        if next_starts_stmt {
            Ok(())
        } else {
            Err(())
        }
    }

    fn expr(&mut self) -> PResult<Expr> {
        self.expr_at(0)
    }

    fn expr_at(&mut self, depth: usize) -> PResult<Expr> {
        if depth > MAX_DEPTH {
            let span = self.peek().span;
            self.diags.push(Diagnostic::error(
                "nym::syntax",
                span,
                format!("expressions nest deeper than {MAX_DEPTH} levels"),
            ));
            return Err(());
        }
        let t = self.peek().clone();
        let lit = |v| {
            Ok(Expr {
                kind: ExprKind::Lit(v),
                span: t.span,
            })
        };
        match &t.kind {
            TokenKind::Str(s) => {
                self.bump();
                lit(Value::Str(s.clone()))
            }
            TokenKind::Number(text) => {
                self.bump();
                self.number(text, t.span)
            }
            TokenKind::Ipv4(text) => {
                self.bump();
                Ok(Expr {
                    kind: match text.parse() {
                        Ok(c) => ExprKind::Lit(Value::Cidr(c)),
                        Err(_) => ExprKind::BadCidr(text.clone()),
                    },
                    span: t.span,
                })
            }
            TokenKind::LBracket => {
                self.bump();
                let items = self.list(depth)?;
                let close = self.expect(TokenKind::RBracket, "`]`")?;
                Ok(Expr {
                    kind: ExprKind::List(items),
                    span: t.span.to(close.span),
                })
            }
            TokenKind::Ident(k) if k == "true" || k == "false" => {
                self.bump();
                lit(Value::Bool(k == "true"))
            }
            TokenKind::Ident(k) if k == "match" => {
                self.bump();
                self.match_target(t.span, depth)
            }
            TokenKind::Ident(k) if k == "job" => {
                self.bump();
                let path = self.path()?;
                let (args, close) = self.args(depth, "`(` after the job's function")?;
                Ok(Expr {
                    span: t.span.to(self.prev_span()),
                    kind: ExprKind::Job { path, args, close },
                })
            }
            TokenKind::Ident(k) if !is_keyword(k) => {
                let path = self.path()?;
                if self.at(&TokenKind::LParen) {
                    let (args, close) = self.args(depth, "`(`")?;
                    Ok(Expr {
                        span: path.span.to(self.prev_span()),
                        kind: ExprKind::Call { path, args, close },
                    })
                } else if path.segments.len() == 1 && self.at(&TokenKind::Dot) {
                    let receiver = path.segments.into_iter().next().ok_or(())?;
                    self.bump();
                    let method = self.ident("a method name after `.`")?;
                    let (args, close) = self.args(depth, "`(` to call the method")?;
                    Ok(Expr {
                        span: receiver.span.to(self.prev_span()),
                        kind: ExprKind::Method {
                            receiver,
                            method,
                            args,
                            close,
                        },
                    })
                } else if path.segments.len() == 1 {
                    let id = path.segments.into_iter().next().ok_or(())?;
                    Ok(Expr {
                        span: id.span,
                        kind: ExprKind::Name(id),
                    })
                } else {
                    self.unexpected("`(` to apply the implementation");
                    Err(())
                }
            }
            _ => {
                self.unexpected("an expression");
                Err(())
            }
        }
    }

    /// `match target { pattern => expr, ... }` after the `match`.
    fn match_target(&mut self, start: Span, depth: usize) -> PResult<Expr> {
        if !matches!(&self.peek().kind, TokenKind::Ident(k) if k == "target") {
            self.unexpected("`target` (a graph can match on the target it is built for)");
            return Err(());
        }
        self.bump();
        self.expect(TokenKind::LBrace, "`{`")?;
        let mut arms = Vec::new();
        while !self.at(&TokenKind::RBrace) {
            let mut targets = Vec::new();
            if matches!(&self.peek().kind, TokenKind::Ident(k) if k == "_") {
                self.bump();
            } else {
                targets.push(self.ident("a target name or `_`")?);
                while self.at(&TokenKind::Pipe) {
                    self.bump();
                    targets.push(self.ident("a target name after `|`")?);
                }
            }
            self.expect(TokenKind::FatArrow, "`=>`")?;
            let value = self.expr_at(depth + 1)?;
            arms.push(MatchArm { targets, value });
            if self.at(&TokenKind::Comma) {
                self.bump();
            } else if !self.at(&TokenKind::RBrace) {
                self.unexpected("`,` or `}`");
                return Err(());
            }
        }
        let close = self.bump().span;
        Ok(Expr {
            kind: ExprKind::Match(arms),
            span: start.to(close),
        })
    }

    fn number(&mut self, text: &str, span: Span) -> PResult<Expr> {
        let first_alpha = text.find(|c: char| c.is_ascii_alphabetic());
        let value = match first_alpha.map(|i| &text[i..]) {
            Some("KiB" | "MiB" | "GiB") | None => parse_int(text)
                .map(Value::Int)
                .map_err(|_| "integer out of range"),
            Some(_) => parse_duration(text)
                .map(Value::Duration)
                .map_err(|_| "unknown unit (durations: ns us ms s min h; sizes: KiB MiB GiB)"),
        };
        match value {
            Ok(v) => Ok(Expr {
                kind: ExprKind::Lit(v),
                span,
            }),
            Err(msg) => {
                self.diags.push(
                    Diagnostic::error("nym::bad-value", span, format!("`{text}`: {msg}"))
                        .label(msg),
                );
                Ok(Expr {
                    kind: ExprKind::Error,
                    span,
                })
            }
        }
    }

    fn path(&mut self) -> PResult<Path> {
        let first = self.ident("a name")?;
        let mut span = first.span;
        let mut segments = vec![first];
        while self.at(&TokenKind::PathSep) {
            self.bump();
            let seg = self.ident("a name after `::`")?;
            span = span.to(seg.span);
            segments.push(seg);
        }
        Ok(Path { segments, span })
    }

    /// `( arg, name = arg, ... )`: returns the arguments and the `)` span.
    /// `(args)`: the arguments and the closing parenthesis; `opening`
    /// says what is expected when the `(` is missing.
    fn args(&mut self, depth: usize, opening: &str) -> PResult<(Vec<Arg>, Span)> {
        self.expect(TokenKind::LParen, opening)?;
        let mut args = Vec::new();
        loop {
            if self.at(&TokenKind::RParen) {
                return Ok((args, self.bump().span));
            }
            if self.at_stmt_end() {
                return Ok(self.unclosed(args, "`)`"));
            }
            let named = matches!(self.peek().kind, TokenKind::Ident(_))
                && self.peek_at(1).kind == TokenKind::Eq;
            let name = if named {
                let n = self.ident("a parameter name")?;
                self.bump(); // `=`
                Some(n)
            } else {
                None
            };
            match self.expr_at(depth + 1) {
                Ok(value) => args.push(Arg { name, value }),
                Err(()) => {
                    // Skip this argument, keep the others.
                    let start = self.peek().span.start;
                    self.skip_until_arg_end();
                    let span = Span::new(start, self.prev_end().max(start));
                    args.push(Arg {
                        name,
                        value: Expr {
                            kind: ExprKind::Error,
                            span,
                        },
                    });
                }
            }
            if self.at(&TokenKind::Comma) {
                self.bump();
            } else if self.at_stmt_end() {
                return Ok(self.unclosed(args, "`,` or `)`"));
            } else if !self.at(&TokenKind::RParen) {
                self.unexpected("`,` or `)`");
                self.skip_until_arg_end();
                if self.at(&TokenKind::Comma) {
                    self.bump();
                } else if self.at_stmt_end() {
                    return Ok(self.unclosed(args, "`)`"));
                } else if !self.at(&TokenKind::RParen) {
                    return Err(());
                }
            }
        }
    }

    /// A call whose `)` never came (the input, the statement or the line
    /// before the next statement ended): reports the missing `what` (once:
    /// a failed last argument may have said so already) and keeps the
    /// arguments given, so the statement still exists for the checker.
    /// It is closed by an empty span at the token that ended it: the blank
    /// space up to there is still inside the call, so completion and
    /// signature help at `lossy(n, ▮` know the call (a REPL line is one
    /// while it is typed).
    fn unclosed(&mut self, args: Vec<Arg>, what: &str) -> (Vec<Arg>, Span) {
        if !self.reported_here() {
            self.unexpected(what);
        }
        let at = self.peek().span.start;
        (args, Span::new(at, at))
    }

    /// Skips to the `,` or `)` that ends the current argument, minding
    /// nesting, or to the end of the statement.
    fn skip_until_arg_end(&mut self) {
        let mut depth = 0usize;
        loop {
            if self.at_stmt_start() {
                return;
            }
            match self.peek().kind {
                TokenKind::Eof | TokenKind::Semi => return,
                TokenKind::LParen | TokenKind::LBracket | TokenKind::LBrace => depth += 1,
                TokenKind::RParen | TokenKind::RBracket | TokenKind::RBrace if depth == 0 => return,
                TokenKind::RParen | TokenKind::RBracket | TokenKind::RBrace => depth -= 1,
                TokenKind::Comma if depth == 0 => return,
                _ => {}
            }
            self.bump();
        }
    }

    fn list(&mut self, depth: usize) -> PResult<Vec<Expr>> {
        let mut items = Vec::new();
        while !self.at(&TokenKind::RBracket) {
            items.push(self.expr_at(depth + 1)?);
            if !self.at(&TokenKind::Comma) {
                break;
            }
            self.bump();
        }
        Ok(items)
    }
}

/// Whether `s` is a keyword, which a name cannot be.
pub(crate) fn is_keyword(s: &str) -> bool {
    matches!(s, "let" | "job" | "true" | "false" | "match")
}
