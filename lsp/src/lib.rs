//! # nym-lsp: the language server for `.nym` files
//!
//! Speaks the Language Server Protocol on stdio (tower-lsp-server) and
//! answers from `nym-graph`: the same parser and checker as `nym check`
//! for diagnostics, and `nym_graph::ide` for hover, completion, definition
//! and the outline. It holds documents and converts positions; it has no
//! language logic of its own.
//!
//! ## One analysis per document version
//!
//! Every request about a document (diagnostics, completion, hover,
//! semantic tokens, symbols, references, rename, inlay hints, signature
//! help, ...) reads one cached [`Analysis`] and line index, made once per
//! version of the document. The cache is keyed by the version, the target
//! and the application crate: the crate's files the checker read (job
//! signatures) are remembered with their contents and read again on each
//! request, so an edit to `src/lib.rs` on disk is seen at the next request
//! exactly as before the cache. A new version is analyzed by the document's
//! [`Incremental`] analyzer, which re-parses and re-checks only the
//! statements the edit touched (see `nym_graph::incremental`).
use nym_graph::diagnostic::{Diagnostic, Severity};
use nym_graph::ide::{self, CompletionKind, Definition};
use nym_graph::incremental::Incremental;
use nym_graph::syntax::Span;
use nym_graph::{Analysis, RustCrate, Target};
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tower_lsp_server::jsonrpc::Result;
use tower_lsp_server::ls_types::*;
use tower_lsp_server::{Client, LanguageServer, LspService, Server};

/// Byte offsets ↔ LSP positions (lines and UTF-16 columns).
pub struct LineIndex<'a> {
    src: &'a str,
    starts: Cow<'a, [usize]>,
}

/// The byte offset of each line's start in `src`.
fn line_starts(src: &str) -> Vec<usize> {
    let mut starts = vec![0];
    starts.extend(src.match_indices('\n').map(|(i, _)| i + 1));
    starts
}

impl<'a> LineIndex<'a> {
    /// Indexes `src`.
    pub fn new(src: &'a str) -> Self {
        Self {
            src,
            starts: Cow::Owned(line_starts(src)),
        }
    }

    /// The index of `src` whose line starts were already found.
    fn with_starts(src: &'a str, starts: &'a [usize]) -> Self {
        Self {
            src,
            starts: Cow::Borrowed(starts),
        }
    }

    /// The position of byte `offset` (clamped to the text).
    pub fn position(&self, offset: usize) -> Position {
        let offset = self.src.floor_char_boundary(offset.min(self.src.len()));
        let line = self.starts.partition_point(|&s| s <= offset) - 1;
        let col: usize = self.src[self.starts[line]..offset]
            .chars()
            .map(char::len_utf16)
            .sum();
        Position::new(line as u32, col as u32)
    }

    /// The byte offset of `pos`; positions past a line's end or the text's
    /// end are clamped, as the protocol asks.
    pub fn offset(&self, pos: Position) -> usize {
        let Some(&start) = self.starts.get(pos.line as usize) else {
            return self.src.len();
        };
        let end = self
            .starts
            .get(pos.line as usize + 1)
            .map_or(self.src.len(), |e| e.saturating_sub(1).max(start));
        let mut units = 0;
        for (i, c) in self.src[start..end].char_indices() {
            if units >= pos.character as usize {
                return start + i;
            }
            units += c.len_utf16();
        }
        end
    }

    /// The range of `span`.
    pub fn range(&self, span: Span) -> Range {
        Range::new(self.position(span.start), self.position(span.end))
    }
}

/// The UTF-16 units of `text` before byte `offset` (clamped to the text and
/// to a character's start): a column in a label, as the protocol counts.
fn utf16_units(text: &str, offset: usize) -> u32 {
    let end = text.floor_char_boundary(offset.min(text.len()));
    text[..end].encode_utf16().count() as u32
}

/// The most completion items one answer carries; past it the list says
/// it is incomplete and the editor asks again as the user types (clangd
/// answers at most 100 by default).
const COMPLETION_LIMIT: usize = 200;

/// An open document.
struct Doc {
    text: String,
    version: i32,
    /// The analysis of the current version, once a request asked for it.
    cached: Option<Arc<Cached>>,
    /// Re-analyzes the statements an edit touched.
    incremental: Incremental,
}

/// What every request about one version of a document reads.
struct Cached {
    version: i32,
    target: Target,
    /// The application crate's root and name, if any.
    krate: Option<(PathBuf, String)>,
    /// The crate's files the checker read, with what they held.
    reads: Reads,
    text: String,
    starts: Vec<usize>,
    analysis: Arc<Analysis>,
}

/// Files read through a [`RustCrate`], in order, with their contents.
type Reads = Arc<Mutex<Vec<(PathBuf, Option<String>)>>>;

impl Cached {
    fn index(&self) -> LineIndex<'_> {
        LineIndex::with_starts(&self.text, &self.starts)
    }

    /// Whether this is still the analysis of `version` for `target` and
    /// the crate at `krate`: the crate's files it read are unchanged.
    fn fresh(&self, version: i32, target: Target, krate: &Option<(PathBuf, String)>) -> bool {
        if self.version != version || self.target != target || &self.krate != krate {
            return false;
        }
        let Some((root, _)) = krate else {
            return true;
        };
        let Ok(reads) = self.reads.lock() else {
            return false;
        };
        reads
            .iter()
            .all(|(path, was)| std::fs::read_to_string(root.join(path)).ok() == *was)
    }
}

/// The server's state.
pub struct Backend {
    client: Client,
    docs: Mutex<HashMap<Uri, Doc>>,
    target: Mutex<Target>,
}

/// The root and name of the application crate of the project holding `file`.
fn project_of(uri: &Uri) -> Option<(PathBuf, String)> {
    let path: PathBuf = uri.to_file_path()?.into_owned();
    let (krate, root) = RustCrate::find(path.parent()?)?;
    Some((root, krate.name().to_owned()))
}

/// The crate at `root` read from disk, every read recorded in `reads`.
fn recording_crate(root: &std::path::Path, name: &str, reads: &Reads) -> RustCrate {
    let (root, reads) = (root.to_owned(), reads.clone());
    RustCrate::with_reader(
        name,
        Box::new(move |p| {
            let text = std::fs::read_to_string(root.join(p)).ok();
            if let Ok(mut r) = reads.lock() {
                r.push((p.to_owned(), text.clone()));
            }
            text
        }),
    )
}

fn to_lsp(d: &Diagnostic, index: &LineIndex, uri: &Uri) -> tower_lsp_server::ls_types::Diagnostic {
    let mut message = d.message.clone();
    if let Some(help) = &d.help {
        message.push_str("\nhelp: ");
        message.push_str(help);
    }
    let related = d
        .related
        .iter()
        .map(|(span, label)| DiagnosticRelatedInformation {
            location: Location::new(uri.clone(), index.range(*span)),
            message: label.clone(),
        })
        .collect::<Vec<_>>();
    tower_lsp_server::ls_types::Diagnostic {
        range: index.range(d.span),
        severity: Some(match d.severity {
            Severity::Error => DiagnosticSeverity::ERROR,
            Severity::Warning => DiagnosticSeverity::WARNING,
        }),
        code: Some(NumberOrString::String(d.code.to_owned())),
        source: Some("nym".into()),
        message,
        related_information: (!related.is_empty()).then_some(related),
        ..Default::default()
    }
}

impl Backend {
    /// The analysis of the current version of `uri`: the cached one while
    /// it is fresh, else made (incrementally) and cached.
    fn cached(&self, uri: &Uri) -> Option<Arc<Cached>> {
        let target = *self.target.lock().ok()?;
        let krate = project_of(uri);
        let mut docs = self.docs.lock().ok()?;
        let doc = docs.get_mut(uri)?;
        if let Some(c) = &doc.cached {
            if c.fresh(doc.version, target, &krate) {
                return Some(c.clone());
            }
        }
        // Let go of the old analysis first: the analyzer then moves its
        // statements into the new one instead of copying them.
        doc.cached = None;
        let reads = Reads::default();
        let rust = krate
            .as_ref()
            .map(|(root, name)| recording_crate(root, name, &reads));
        let analysis = doc.incremental.analyze(&doc.text, target, rust.as_ref());
        let cached = Arc::new(Cached {
            version: doc.version,
            target,
            krate,
            reads,
            text: doc.text.clone(),
            starts: line_starts(&doc.text),
            analysis,
        });
        doc.cached = Some(cached.clone());
        Some(cached)
    }

    fn with_doc<T>(
        &self,
        uri: &Uri,
        f: impl FnOnce(&str, &LineIndex, &Analysis, Option<&RustCrate>) -> T,
    ) -> Option<T> {
        let cached = self.cached(uri)?;
        let krate = cached
            .krate
            .as_ref()
            .map(|(root, name)| RustCrate::on_disk(name, root));
        Some(f(
            &cached.text,
            &cached.index(),
            &cached.analysis,
            krate.as_ref(),
        ))
    }

    async fn publish(&self, uri: Uri) {
        let Some(cached) = self.cached(&uri) else {
            return;
        };
        let index = cached.index();
        let diags = cached
            .analysis
            .diagnostics()
            .iter()
            .map(|d| to_lsp(d, &index, &uri))
            .collect::<Vec<_>>();
        let version = Some(cached.version);
        self.client.publish_diagnostics(uri, diags, version).await;
    }
}

fn apply(text: &mut String, change: TextDocumentContentChangeEvent) {
    match change.range {
        None => *text = change.text,
        Some(range) => {
            let index = LineIndex::new(text);
            let (start, end) = (index.offset(range.start), index.offset(range.end));
            let (start, end) = (start.min(end), start.max(end));
            text.replace_range(start..end, &change.text);
        }
    }
}

impl LanguageServer for Backend {
    async fn initialize(&self, params: InitializeParams) -> Result<InitializeResult> {
        let target = params
            .initialization_options
            .as_ref()
            .and_then(|o| o.get("target"))
            .and_then(|t| t.as_str())
            .and_then(Target::from_name);
        if let (Some(t), Ok(mut slot)) = (target, self.target.lock()) {
            *slot = t;
        }
        Ok(InitializeResult {
            capabilities: ServerCapabilities {
                text_document_sync: Some(TextDocumentSyncCapability::Kind(
                    TextDocumentSyncKind::INCREMENTAL,
                )),
                hover_provider: Some(HoverProviderCapability::Simple(true)),
                completion_provider: Some(CompletionOptions {
                    trigger_characters: Some(vec![":".into(), "(".into()]),
                    ..Default::default()
                }),
                definition_provider: Some(OneOf::Left(true)),
                references_provider: Some(OneOf::Left(true)),
                document_formatting_provider: Some(OneOf::Left(true)),
                semantic_tokens_provider: Some(
                    SemanticTokensServerCapabilities::SemanticTokensOptions(
                        SemanticTokensOptions {
                            legend: SemanticTokensLegend {
                                token_types: ide::TOKEN_TYPES
                                    .iter()
                                    .map(|t| SemanticTokenType::new(t))
                                    .collect(),
                                token_modifiers: vec![],
                            },
                            full: Some(SemanticTokensFullOptions::Bool(true)),
                            ..Default::default()
                        },
                    ),
                ),
                rename_provider: Some(OneOf::Left(true)),
                code_action_provider: Some(CodeActionProviderCapability::Simple(true)),
                inlay_hint_provider: Some(OneOf::Left(true)),
                signature_help_provider: Some(SignatureHelpOptions {
                    trigger_characters: Some(vec!["(".into(), ",".into()]),
                    ..Default::default()
                }),
                document_symbol_provider: Some(OneOf::Left(true)),
                ..Default::default()
            },
            server_info: Some(ServerInfo {
                name: "nym".into(),
                version: Some(env!("CARGO_PKG_VERSION").into()),
            }),
            offset_encoding: None,
        })
    }

    async fn shutdown(&self) -> Result<()> {
        Ok(())
    }

    async fn did_open(&self, params: DidOpenTextDocumentParams) {
        let doc = params.text_document;
        if let Ok(mut docs) = self.docs.lock() {
            docs.insert(
                doc.uri.clone(),
                Doc {
                    text: doc.text,
                    version: doc.version,
                    cached: None,
                    incremental: Incremental::default(),
                },
            );
        }
        self.publish(doc.uri).await;
    }

    async fn did_change(&self, params: DidChangeTextDocumentParams) {
        let uri = params.text_document.uri;
        // Edits are applied before any await, in arrival order; a version
        // older than the document's is ignored.
        if let Ok(mut docs) = self.docs.lock() {
            let Some(doc) = docs.get_mut(&uri) else {
                return;
            };
            if params.text_document.version < doc.version {
                return;
            }
            for change in params.content_changes {
                apply(&mut doc.text, change);
            }
            doc.version = params.text_document.version;
        }
        self.publish(uri).await;
    }

    async fn did_close(&self, params: DidCloseTextDocumentParams) {
        if let Ok(mut docs) = self.docs.lock() {
            docs.remove(&params.text_document.uri);
        }
        self.client
            .publish_diagnostics(params.text_document.uri, vec![], None)
            .await;
    }

    async fn hover(&self, params: HoverParams) -> Result<Option<Hover>> {
        let pos = params.text_document_position_params;
        Ok(self
            .with_doc(&pos.text_document.uri, |_, index, a, krate| {
                ide::hover(a, krate, index.offset(pos.position)).map(|(span, md)| Hover {
                    contents: HoverContents::Markup(MarkupContent {
                        kind: MarkupKind::Markdown,
                        value: md,
                    }),
                    range: Some(index.range(span)),
                })
            })
            .flatten())
    }

    async fn completion(&self, params: CompletionParams) -> Result<Option<CompletionResponse>> {
        let pos = params.text_document_position;
        Ok(
            self.with_doc(&pos.text_document.uri, |text, index, a, krate| {
                let offset = index.offset(pos.position);
                let all = ide::completions(text, a, krate, offset);
                let (items, incomplete) =
                    ide::limit(all, ide::word_before(text, offset), COMPLETION_LIMIT);
                let items = items
                    .into_iter()
                    .map(|c| CompletionItem {
                        label: c.label,
                        detail: Some(c.detail),
                        kind: Some(match c.kind {
                            CompletionKind::Implementation => CompletionItemKind::FUNCTION,
                            CompletionKind::Binding => CompletionItemKind::VARIABLE,
                            CompletionKind::Key => CompletionItemKind::CONSTANT,
                            CompletionKind::Keyword => CompletionItemKind::KEYWORD,
                            CompletionKind::Method => CompletionItemKind::METHOD,
                        }),
                        ..Default::default()
                    })
                    .collect();
                CompletionResponse::List(CompletionList {
                    is_incomplete: incomplete,
                    items,
                })
            }),
        )
    }

    async fn goto_definition(
        &self,
        params: GotoDefinitionParams,
    ) -> Result<Option<GotoDefinitionResponse>> {
        let pos = params.text_document_position_params;
        let uri = pos.text_document.uri;
        Ok(self
            .with_doc(&uri, |_, index, a, krate| {
                match ide::definition(a, krate, index.offset(pos.position))? {
                    Definition::Here(span) => Some(GotoDefinitionResponse::Scalar(Location::new(
                        uri.clone(),
                        index.range(span),
                    ))),
                    Definition::Catalog(line) => {
                        let at = Position::new(line.saturating_sub(1) as u32, 0);
                        Some(GotoDefinitionResponse::Scalar(Location::new(
                            Uri::from_file_path(ide::catalog_path())?,
                            Range::new(at, at),
                        )))
                    }
                    Definition::Rust(file, line) => {
                        let project = uri
                            .to_file_path()?
                            .parent()?
                            .ancestors()
                            .find(|d| d.join("Cargo.toml").is_file())?
                            .to_owned();
                        let target = Uri::from_file_path(project.join(&file))?;
                        let at = Position::new(line.saturating_sub(1) as u32, 0);
                        Some(GotoDefinitionResponse::Scalar(Location::new(
                            target,
                            Range::new(at, at),
                        )))
                    }
                }
            })
            .flatten())
    }

    async fn did_change_configuration(&self, params: DidChangeConfigurationParams) {
        // `{"nym": {"target": "kvm"}}` or `{"target": "kvm"}`.
        let s = &params.settings;
        let target = s
            .get("nym")
            .unwrap_or(s)
            .get("target")
            .and_then(|t| t.as_str())
            .and_then(Target::from_name);
        let Some(target) = target else { return };
        if let Ok(mut slot) = self.target.lock() {
            *slot = target;
        }
        let uris: Vec<Uri> = self
            .docs
            .lock()
            .map(|d| d.keys().cloned().collect())
            .unwrap_or_default();
        for uri in uris {
            self.publish(uri).await;
        }
    }

    async fn semantic_tokens_full(
        &self,
        params: SemanticTokensParams,
    ) -> Result<Option<SemanticTokensResult>> {
        Ok(self.with_doc(&params.text_document.uri, |_, index, a, _| {
            let mut data = Vec::new();
            let (mut line, mut col) = (0, 0);
            for (start, len, kind) in ide::semantic_tokens(a) {
                let (from, to) = (index.position(start), index.position(start + len));
                if to.line != from.line {
                    continue; // tokens never span lines in the protocol
                }
                let delta_line = from.line - line;
                let delta_start = if delta_line == 0 {
                    from.character - col
                } else {
                    from.character
                };
                data.push(SemanticToken {
                    delta_line,
                    delta_start,
                    length: to.character - from.character,
                    token_type: kind,
                    token_modifiers_bitset: 0,
                });
                (line, col) = (from.line, from.character);
            }
            SemanticTokensResult::Tokens(SemanticTokens {
                result_id: None,
                data,
            })
        }))
    }

    async fn formatting(&self, params: DocumentFormattingParams) -> Result<Option<Vec<TextEdit>>> {
        Ok(self
            .with_doc(&params.text_document.uri, |text, index, _, _| {
                // A file with syntax errors is left alone: no edits.
                let formatted = nym_graph::format::format(text).ok()?;
                (formatted != text).then(|| {
                    vec![TextEdit::new(
                        index.range(Span::new(0, text.len())),
                        formatted,
                    )]
                })
            })
            .flatten())
    }

    async fn references(&self, params: ReferenceParams) -> Result<Option<Vec<Location>>> {
        Ok(self.references_impl(params).await)
    }

    async fn rename(&self, params: RenameParams) -> Result<Option<WorkspaceEdit>> {
        let pos = params.text_document_position;
        let uri = pos.text_document.uri;
        let result = self.with_doc(&uri, |_, index, a, _| {
            ide::rename(a, index.offset(pos.position), &params.new_name).map(|edits| {
                edits
                    .into_iter()
                    .map(|(span, new)| TextEdit::new(index.range(span), new))
                    .collect::<Vec<_>>()
            })
        });
        match result {
            None => Ok(None),
            Some(Ok(edits)) => Ok(Some(WorkspaceEdit {
                changes: Some(HashMap::from([(uri, edits)])),
                ..Default::default()
            })),
            Some(Err(e)) => Err(tower_lsp_server::jsonrpc::Error::invalid_params(
                e.to_string(),
            )),
        }
    }

    async fn code_action(&self, params: CodeActionParams) -> Result<Option<CodeActionResponse>> {
        let uri = params.text_document.uri;
        Ok(self.with_doc(&uri, |_, index, a, _| {
            let (start, end) = (
                index.offset(params.range.start),
                index.offset(params.range.end),
            );
            a.diagnostics()
                .iter()
                .filter(|d| d.span.start <= end && start <= d.span.end.max(d.span.start + 1))
                .filter_map(|d| {
                    let fix = d.fix.as_ref()?;
                    let edit = TextEdit::new(index.range(fix.span), fix.text.clone());
                    Some(CodeActionOrCommand::CodeAction(CodeAction {
                        title: fix.title.clone(),
                        kind: Some(CodeActionKind::QUICKFIX),
                        diagnostics: Some(vec![to_lsp(d, index, &uri)]),
                        edit: Some(WorkspaceEdit {
                            changes: Some(HashMap::from([(uri.clone(), vec![edit])])),
                            ..Default::default()
                        }),
                        is_preferred: Some(true),
                        ..Default::default()
                    }))
                })
                .collect()
        }))
    }

    async fn inlay_hint(&self, params: InlayHintParams) -> Result<Option<Vec<InlayHint>>> {
        Ok(self.with_doc(&params.text_document.uri, |_, index, a, _| {
            ide::inlay_hints(a)
                .into_iter()
                .map(|(offset, label)| InlayHint {
                    position: index.position(offset),
                    label: InlayHintLabel::String(label),
                    kind: Some(InlayHintKind::TYPE),
                    text_edits: None,
                    tooltip: None,
                    padding_left: None,
                    padding_right: None,
                    data: None,
                })
                .collect()
        }))
    }

    async fn signature_help(&self, params: SignatureHelpParams) -> Result<Option<SignatureHelp>> {
        let pos = params.text_document_position_params;
        Ok(self
            .with_doc(&pos.text_document.uri, |_, index, a, krate| {
                let sig = ide::signature_help(a, krate, index.offset(pos.position))?;
                // Offsets, not text: a job's parameter is written in its
                // Rust signature (`console: impl Console`), and an editor
                // finds a text label only if it is in the signature's.
                let parameters = sig
                    .params
                    .iter()
                    .map(|place| ParameterInformation {
                        label: ParameterLabel::LabelOffsets([
                            utf16_units(&sig.label, place.start),
                            utf16_units(&sig.label, place.end),
                        ]),
                        documentation: None,
                    })
                    .collect();
                let active = sig.active as u32;
                Some(SignatureHelp {
                    signatures: vec![SignatureInformation {
                        label: sig.label,
                        documentation: None,
                        parameters: Some(parameters),
                        active_parameter: Some(active),
                    }],
                    active_signature: Some(0),
                    active_parameter: Some(active),
                })
            })
            .flatten())
    }

    async fn document_symbol(
        &self,
        params: DocumentSymbolParams,
    ) -> Result<Option<DocumentSymbolResponse>> {
        Ok(self.with_doc(&params.text_document.uri, |_, index, a, _| {
            #[allow(deprecated)]
            let symbols = ide::symbols(a)
                .into_iter()
                .map(|s| DocumentSymbol {
                    name: s.name,
                    detail: Some(s.detail),
                    kind: SymbolKind::VARIABLE,
                    tags: None,
                    deprecated: None,
                    range: index.range(s.span),
                    selection_range: index.range(s.selection),
                    children: None,
                })
                .collect();
            DocumentSymbolResponse::Nested(symbols)
        }))
    }
}

impl Backend {
    async fn references_impl(&self, params: ReferenceParams) -> Option<Vec<Location>> {
        let pos = params.text_document_position;
        let uri = pos.text_document.uri;
        self.with_doc(&uri, |_, index, a, _| {
            let spans = ide::occurrences(a, index.offset(pos.position))?;
            let skip = usize::from(!params.context.include_declaration);
            Some(
                spans
                    .into_iter()
                    .skip(skip)
                    .map(|s| Location::new(uri.clone(), index.range(s)))
                    .collect(),
            )
        })
        .flatten()
    }
}

/// Reads one `Content-Length`-framed message; `None` at the end of input.
/// A frame without a length is skipped (its headers are consumed).
async fn read_frame<R: AsyncBufRead + Unpin>(r: &mut R) -> std::io::Result<Option<Vec<u8>>> {
    loop {
        let mut len = None;
        let mut any = false;
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).await? == 0 {
                return Ok(None);
            }
            let line = line.trim_end();
            if line.is_empty() {
                if any {
                    break;
                }
                continue;
            }
            any = true;
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    len = value.trim().parse::<usize>().ok();
                }
            }
        }
        let Some(len) = len.filter(|l| *l <= MAX_MESSAGE) else {
            continue;
        };
        let mut body = vec![0; len];
        r.read_exact(&mut body).await?;
        return Ok(Some(body));
    }
}

/// The largest message accepted (a 10 MB document fits).
const MAX_MESSAGE: usize = 64 << 20;

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
    out.extend_from_slice(body);
    out
}

/// Why a body is not a JSON-RPC message tower-lsp can take (its framed
/// reader ends the whole stream on such a body, so they never reach it).
fn reject(body: &[u8]) -> Option<serde_json::Value> {
    let error = |code: i32, message: &str, id: serde_json::Value| serde_json::json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}});
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Some(error(-32700, "Parse error", serde_json::Value::Null));
    };
    let id = v.get("id").cloned().unwrap_or(serde_json::Value::Null);
    let ok = v.is_object()
        && v.get("jsonrpc").and_then(|j| j.as_str()) == Some("2.0")
        && (v.get("method").is_some_and(|m| m.is_string())
            || (v.get("id").is_some() && (v.get("result").is_some() || v.get("error").is_some())));
    (!ok).then(|| error(-32600, "Invalid Request", id))
}

/// Serves the protocol on stdin/stdout until the client exits. Malformed
/// messages get their JSON-RPC error and the session goes on.
pub async fn serve_stdio() {
    let (service, socket) = LspService::new(|client| Backend {
        client,
        docs: Mutex::new(HashMap::new()),
        target: Mutex::new(Target::Unix),
    });
    let (mut to_server, server_in) = tokio::io::duplex(1 << 20);
    let (server_out, from_server) = tokio::io::duplex(1 << 20);
    let (errors_tx, mut errors_rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();

    // One writer owns stdout: the server's frames and the guard's errors
    // never interleave.
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        let mut from_server = tokio::io::BufReader::new(from_server);
        let mut errors_open = true;
        loop {
            let out = tokio::select! {
                f = read_frame(&mut from_server) => match f { Ok(Some(body)) => frame(&body), _ => break },
                e = errors_rx.recv(), if errors_open => match e {
                    Some(body) => frame(&body),
                    None => {
                        errors_open = false;
                        continue;
                    }
                },
            };
            if stdout.write_all(&out).await.is_err() || stdout.flush().await.is_err() {
                break;
            }
        }
    });
    let guard = tokio::spawn(async move {
        let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
        while let Ok(Some(body)) = read_frame(&mut stdin).await {
            match reject(&body) {
                Some(error) => {
                    let _ = errors_tx.send(error.to_string().into_bytes());
                }
                None => {
                    if to_server.write_all(&frame(&body)).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
    Server::new(server_in, server_out, socket)
        .serve(service)
        .await;
    guard.abort();
    let _ = writer.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_messages_are_answered_not_forwarded() {
        assert_eq!(reject(b"{ nope").unwrap()["error"]["code"], -32700);
        assert_eq!(reject(br#"{"id": 3}"#).unwrap()["error"]["code"], -32600);
        assert_eq!(reject(br#"{"id": 3}"#).unwrap()["id"], 3);
        assert_eq!(reject(br#"[1, 2]"#).unwrap()["error"]["code"], -32600);
        assert!(reject(br#"{"jsonrpc":"2.0","method":"initialized","params":{}}"#).is_none());
        assert!(reject(br#"{"jsonrpc":"2.0","id":1,"result":null}"#).is_none());
    }

    #[test]
    fn a_cached_analysis_goes_stale_when_a_crate_file_it_read_changes() {
        let root = std::env::temp_dir().join(format!("nym-lsp-cache-{}", std::process::id()));
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::write(root.join("Cargo.toml"), "[package]\nname = \"app\"\n").unwrap();
        let lib = root.join("src/lib.rs");
        std::fs::write(&lib, "pub async fn start(c: impl libos::Console) {}\n").unwrap();
        let text = "let j = job app::start(console::default());\nregister(\"app\", [j]);\n";
        let krate = Some((root.clone(), "app".to_owned()));
        let reads = Reads::default();
        let rust = recording_crate(&root, "app", &reads);
        let analysis = Incremental::default().analyze(text, Target::Unix, Some(&rust));
        assert!(!analysis.has_errors(), "{:?}", analysis.diagnostics());
        let cached = Cached {
            version: 3,
            target: Target::Unix,
            krate: krate.clone(),
            reads,
            text: text.into(),
            starts: line_starts(text),
            analysis,
        };
        assert!(cached.fresh(3, Target::Unix, &krate));
        assert!(!cached.fresh(4, Target::Unix, &krate), "a new version");
        assert!(!cached.fresh(3, Target::Kvm, &krate), "another target");
        assert!(!cached.fresh(3, Target::Unix, &None), "no crate any more");
        std::fs::write(&lib, "pub async fn begin(c: impl libos::Console) {}\n").unwrap();
        assert!(
            !cached.fresh(3, Target::Unix, &krate),
            "the job's source changed"
        );
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn label_offsets_count_utf16_units() {
        let label = "f(ä: 🙂, b: int)";
        let b = label.find("b:").unwrap();
        assert_eq!(b, 12, "bytes");
        assert_eq!(utf16_units(label, b), 9, "ä is one unit, 🙂 two");
        assert_eq!(utf16_units(label, label.len() + 5), 16, "clamped");
        assert_eq!(utf16_units(label, 3), 2, "inside `ä`: its start");
    }

    #[test]
    fn positions_round_trip_and_clamp() {
        let src = "let a = 1;\nlet é = \"ü\";\n";
        let idx = LineIndex::new(src);
        assert_eq!(idx.position(0), Position::new(0, 0));
        let off = src.find('é').unwrap();
        assert_eq!(idx.position(off), Position::new(1, 4));
        assert_eq!(idx.offset(Position::new(1, 4)), off);
        assert_eq!(
            idx.offset(Position::new(1, 999)),
            src.len() - 1,
            "past the line's end: its end"
        );
        assert_eq!(
            idx.offset(Position::new(99, 0)),
            src.len(),
            "past the text: its end"
        );
        let mut t = String::from(src);
        apply(
            &mut t,
            TextDocumentContentChangeEvent {
                range: Some(Range::new(Position::new(50, 0), Position::new(0, 0))),
                range_length: None,
                text: "x".into(),
            },
        );
        assert!(
            t.ends_with('x') || t.starts_with('x'),
            "a backwards, out-of-range edit is clamped, not a panic"
        );
    }
}
