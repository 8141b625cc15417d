//! The syntax tree of a `.nym` file: what the parser produces and the
//! checker, printer and language server read. Every node carries its span.
use libos::Value;

/// A byte range in the source, `start..end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl Span {
    /// The range `start..end`.
    pub fn new(start: usize, end: usize) -> Self {
        Self { start, end }
    }
    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
    /// Whether the span covers no byte: the `close` of a call whose `)`
    /// is missing (the parser reported it; the span sits at the token that
    /// ended the call, so the blank space before it is still the call's).
    pub fn is_empty(self) -> bool {
        self.start == self.end
    }
    /// Whether `offset` lies inside (or just after) the span.
    pub fn contains(self, offset: usize) -> bool {
        self.start <= offset && offset <= self.end
    }
}

/// A name with its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident {
    /// The name.
    pub name: String,
    /// Where it is written.
    pub span: Span,
}

/// `a::b::c`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    /// The segments, at least one.
    pub segments: Vec<Ident>,
    /// The whole path.
    pub span: Span,
}

impl Path {
    /// The path as written, `kv::mem`.
    pub fn text(&self) -> String {
        self.segments
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join("::")
    }
}

/// One argument of an application, positional or `name = value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Arg {
    /// The parameter's name, for a named argument.
    pub name: Option<Ident>,
    /// The argument.
    pub value: Expr,
}

/// An expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    /// What it is.
    pub kind: ExprKind,
    /// Where it is.
    pub span: Span,
}

/// The forms of expression.
#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    /// An application of an implementation or a builtin: `kv::dir("data")`,
    /// `key("count", 3)`, `register("hello", [...])`.
    Call {
        /// What is applied.
        path: Path,
        /// Its arguments.
        args: Vec<Arg>,
        /// The closing parenthesis (where a missing argument is reported);
        /// empty where it is missing, at the token that ended the call
        /// (the end of the input, a `;`, the next statement), which may be
        /// past the expression's own span.
        close: Span,
    },
    /// `job crate::function(args)`.
    Job {
        /// The Rust function.
        path: Path,
        /// Its arguments.
        args: Vec<Arg>,
        /// The closing parenthesis; empty where it is missing (as for a call).
        close: Span,
    },
    /// A call of a method of a bound device, `store.get("k")`: what a
    /// session runs on the live device (in a file it is refused).
    Method {
        /// The device's binding.
        receiver: Ident,
        /// The method, a method of the device's trait.
        method: Ident,
        /// Its arguments.
        args: Vec<Arg>,
        /// The closing parenthesis; empty where it is missing (as for a call).
        close: Span,
    },
    /// A reference to a `let` binding.
    Name(Ident),
    /// A literal value.
    Lit(Value),
    /// An IPv4 literal that did not parse as a CIDR (reported by the checker).
    BadCidr(String),
    /// `[a, b]`.
    List(Vec<Expr>),
    /// `match target { unix => a, kvm | qemu => b, _ => c }`: the arm
    /// whose pattern names the target being checked for.
    Match(Vec<MatchArm>),
    /// What the parser left where an expression failed to parse; the
    /// checker stays silent about it so one typo gives one diagnostic.
    Error,
}

/// One arm of a `match target`.
#[derive(Debug, Clone, PartialEq)]
pub struct MatchArm {
    /// The targets it is for; empty for `_`.
    pub targets: Vec<Ident>,
    /// Its value.
    pub value: Expr,
}

/// A statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Stmt {
    /// `let name = value;`
    Let {
        /// The binding.
        name: Ident,
        /// Its value.
        value: Expr,
        /// The whole statement.
        span: Span,
    },
    /// An expression statement, `register(...);`
    Expr {
        /// The expression.
        expr: Expr,
        /// The whole statement.
        span: Span,
    },
}

impl Stmt {
    /// The whole statement's span.
    pub fn span(&self) -> Span {
        match self {
            Stmt::Let { span, .. } | Stmt::Expr { span, .. } => *span,
        }
    }
}

/// A parsed file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct File {
    /// The statements in order.
    pub stmts: Vec<Stmt>,
    /// The comments, for the formatter.
    pub comments: Vec<Span>,
}
