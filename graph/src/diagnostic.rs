//! Diagnostics: what the parser and checker say about a file, and how they
//! are rendered (rustc-like, through miette) for the CLI and the REPL. The
//! language server sends the same [`Diagnostic`]s as LSP messages.
use crate::syntax::Span;
use std::fmt;

/// How bad it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Worth a look; the graph still runs.
    Warning,
    /// The graph cannot run.
    Error,
}

/// One finding, with its place and, where there is one, a hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// A stable code, `nym::unknown-impl`, for documentation and filtering.
    pub code: &'static str,
    /// The message, one line.
    pub message: String,
    /// Where.
    pub span: Span,
    /// The label under the span.
    pub label: String,
    /// Other places worth showing, each with its label.
    pub related: Vec<(Span, String)>,
    /// What to do about it.
    pub help: Option<String>,
    /// A machine-applicable fix: replace `span` with this text.
    pub fix: Option<Fix>,
}

/// A text edit that resolves a diagnostic (the LSP's code action).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fix {
    /// What the fix does, as a code-action title.
    pub title: String,
    /// The range to replace.
    pub span: Span,
    /// The new text.
    pub text: String,
}

impl Diagnostic {
    /// An error at `span`.
    pub fn error(code: &'static str, span: Span, message: impl Into<String>) -> Self {
        Self::new(Severity::Error, code, span, message)
    }
    /// A warning at `span`.
    pub fn warning(code: &'static str, span: Span, message: impl Into<String>) -> Self {
        Self::new(Severity::Warning, code, span, message)
    }
    fn new(severity: Severity, code: &'static str, span: Span, message: impl Into<String>) -> Self {
        Self {
            severity,
            code,
            message: message.into(),
            span,
            label: String::new(),
            related: Vec::new(),
            help: None,
            fix: None,
        }
    }
    /// Sets the label under the span.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }
    /// Adds a hint.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
    /// Adds another labelled place.
    pub fn related(mut self, span: Span, label: impl Into<String>) -> Self {
        self.related.push((span, label.into()));
        self
    }
    /// Attaches a fix.
    pub fn fix(mut self, title: impl Into<String>, span: Span, text: impl Into<String>) -> Self {
        self.fix = Some(Fix {
            title: title.into(),
            span,
            text: text.into(),
        });
        self
    }
    /// Whether this is an error.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// 1-based line and column (in characters) of byte `offset` in `src`.
pub fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = floor_char_boundary(src, offset.min(src.len()));
    let before = &src[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn floor_char_boundary(src: &str, mut i: usize) -> usize {
    while i > 0 && !src.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// A diagnostic bound to its source, in the form miette renders.
struct Report<'a> {
    diag: &'a Diagnostic,
    source: miette::NamedSource<String>,
}

impl fmt::Debug for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diag.message)
    }
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diag.message)
    }
}

impl std::error::Error for Report<'_> {}

fn labeled(span: Span, label: &str, len: usize, primary: bool) -> miette::LabeledSpan {
    let start = span.start.min(len);
    let end = span.end.clamp(start, len);
    let label = (!label.is_empty()).then(|| label.to_owned());
    let span = miette::SourceSpan::new(start.into(), end - start);
    if primary {
        miette::LabeledSpan::new_primary_with_span(label, span)
    } else {
        miette::LabeledSpan::new_with_span(label, span)
    }
}

impl miette::Diagnostic for Report<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        Some(Box::new(self.diag.code))
    }
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diag.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }
    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.diag
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.source)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        let len = self.source.inner().len();
        let main = labeled(self.diag.span, &self.diag.label, len, true);
        let rest = self
            .diag
            .related
            .iter()
            .map(move |(s, l)| labeled(*s, l, len, false));
        Some(Box::new(std::iter::once(main).chain(rest)))
    }
}

/// Renders `diags` like rustc: the message, `file:line:col`, the source
/// excerpt with labels, and the hint. `color` picks ANSI colours.
pub fn render(diags: &[Diagnostic], file: &str, src: &str, color: bool) -> String {
    let theme = if color {
        miette::GraphicalTheme::unicode()
    } else {
        miette::GraphicalTheme::unicode_nocolor()
    };
    let handler = miette::GraphicalReportHandler::new_themed(theme)
        .with_width(100)
        .with_links(false);
    let mut out = String::new();
    for d in diags {
        let report = Report {
            diag: d,
            source: miette::NamedSource::new(file, src.to_owned()),
        };
        // Writing into a String cannot fail.
        let _ = handler.render_report(&mut out, &report);
    }
    out
}

/// One line per diagnostic, `file:line:col: error[code]: message`, for
/// tools and terse output.
pub fn render_short(diags: &[Diagnostic], file: &str, src: &str) -> String {
    diags
        .iter()
        .map(|d| {
            let (line, col) = line_col(src, d.span.start);
            let sev = match d.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            format!("{file}:{line}:{col}: {sev}[{}]: {}\n", d.code, d.message)
        })
        .collect()
}
