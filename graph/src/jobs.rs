//! Job signatures, read from the application's Rust source with `syn`, so
//! `job hello::start(console::default())` is checked against
//! `pub async fn start(c: impl Console)` before anything is compiled.
use crate::catalog::ParamType;
use crate::types::{Kind, ValueType};
use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use syn::spanned::Spanned;

/// A job parameter as the graph sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobParam {
    /// The Rust parameter's name.
    pub name: String,
    /// What the graph must pass.
    pub ty: ParamType,
    /// For integers, the Rust type (`u32`), whose range the checker enforces.
    pub int_ty: Option<&'static str>,
    /// Where it is written in [`JobSig::rust`], as a byte range
    /// (`console: impl Console`): signature help marks it there.
    pub in_rust: Range<usize>,
}

/// A job's signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSig {
    /// `hello::start`
    pub path: String,
    /// The parameters in order.
    pub params: Vec<JobParam>,
    /// The Rust declaration, for hover: `pub async fn start(c: impl Console)`.
    pub rust: String,
    /// The file it is in, relative to the project.
    pub file: PathBuf,
    /// 1-based line of the `fn`.
    pub line: usize,
    /// 1-based line of the first statement of its body (where a debugger
    /// should stop first: an async job's body runs in its future, not in
    /// the `fn`).
    pub body_line: usize,
}

/// Why a job's function cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// The path's crate is not the application's.
    #[error("`{found}` is not the application crate (it is `{expected}`)")]
    UnknownCrate {
        /// What the graph wrote.
        found: String,
        /// The application crate's name.
        expected: String,
    },
    /// The path is a crate with no function.
    #[error("a job names a function: write `job {krate}::start(...)`")]
    NoFunction {
        /// The crate written.
        krate: String,
    },
    /// A module on the path does not exist.
    #[error("module `{module}` not found in the application (looked in {looked})")]
    NoModule {
        /// The module's path.
        module: String,
        /// The files tried.
        looked: String,
    },
    /// The function does not exist.
    #[error("no function `{name}` in `{module}`")]
    NotFound {
        /// The function's name.
        name: String,
        /// Where it was looked for.
        module: String,
        /// Public async functions that do exist there.
        candidates: Vec<String>,
    },
    /// The function is not `pub`.
    #[error("`{0}` is not `pub`: a job must be a public function")]
    NotPublic(String),
    /// The function is not `async`.
    #[error("`{0}` is not `async`: a job is a `pub async fn`")]
    NotAsync(String),
    /// A parameter's type is neither a device nor a value.
    #[error("parameter `{name}: {ty}` of `{job}` is neither a device (`impl Console`, …) nor a value (integer, `String`, `bool`, `Duration`, `Ipv4Cidr`)")]
    BadParam {
        /// The job.
        job: String,
        /// The parameter.
        name: String,
        /// Its Rust type.
        ty: String,
    },
    /// The return type is neither `()` nor a `Result`.
    #[error("`{0}` must return `()` or `Result<(), E>`")]
    BadReturn(String),
    /// A source file does not parse as Rust.
    #[error("{file} does not parse as Rust ({message}); fix it first: `cargo check` shows the whole error")]
    Syntax {
        /// The file.
        file: String,
        /// rustc-free parse error from syn.
        message: String,
    },
}

/// Reads a source file given its path relative to the project.
pub type Reader = Box<dyn Fn(&Path) -> Option<String> + Send + Sync>;

/// The application crate, as far as jobs are concerned.
pub struct RustCrate {
    name: String,
    read: Reader,
}

impl RustCrate {
    /// The crate `name` (as in Cargo.toml; `-` becomes `_`) at `root`.
    pub fn on_disk(name: &str, root: &Path) -> Self {
        let root = root.to_owned();
        Self::with_reader(
            name,
            Box::new(move |p| std::fs::read_to_string(root.join(p)).ok()),
        )
    }

    /// The application crate of the project holding `path`: the nearest
    /// directory at or above it with a Cargo.toml naming a package.
    pub fn find(path: &Path) -> Option<(RustCrate, PathBuf)> {
        let dir = path.ancestors().find(|d| d.join("Cargo.toml").is_file())?;
        let name = package_name(&std::fs::read_to_string(dir.join("Cargo.toml")).ok()?)?;
        Some((RustCrate::on_disk(&name, dir), dir.to_owned()))
    }

    /// A crate whose files are given in memory (tests, unsaved buffers).
    pub fn in_memory(name: &str, files: HashMap<PathBuf, String>) -> Self {
        Self::with_reader(name, Box::new(move |p| files.get(p).cloned()))
    }

    /// A crate whose files come from `read`.
    pub fn with_reader(name: &str, read: Reader) -> Self {
        Self {
            name: name.replace('-', "_"),
            read,
        }
    }

    /// The crate's name as Rust code writes it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The signature of the job at `path` (`["hello", "start"]`).
    pub fn job(&self, path: &[String]) -> Result<JobSig, JobError> {
        let (krate, rest) = path.split_first().ok_or(JobError::NoFunction {
            krate: String::new(),
        })?;
        if krate != &self.name {
            return Err(JobError::UnknownCrate {
                found: krate.clone(),
                expected: self.name.clone(),
            });
        }
        let (fname, modules) = rest.split_last().ok_or(JobError::NoFunction {
            krate: krate.clone(),
        })?;

        // Walk the modules from src/lib.rs, following `mod x;` to files and
        // `mod x { }` inline.
        let mut file = PathBuf::from("src/lib.rs");
        let mut dir = PathBuf::from("src");
        let text = (self.read)(&file).ok_or_else(|| JobError::NoModule {
            module: krate.clone(),
            looked: file.display().to_string(),
        })?;
        let syntax = syn::parse_file(&text).map_err(|e| syntax_error(&file, &e))?;
        let mut items: Vec<syn::Item> = syntax.items;
        let mut module_path = krate.clone();
        for m in modules {
            module_path = format!("{module_path}::{m}");
            let found = items.iter().find_map(|i| match i {
                syn::Item::Mod(md) if md.ident == m.as_str() => Some(md.clone()),
                _ => None,
            });
            let Some(md) = found else {
                return Err(JobError::NoModule {
                    module: module_path,
                    looked: file.display().to_string(),
                });
            };
            if let Some((_, inline)) = &md.content {
                items = inline.clone();
                dir = dir.join(m);
                continue;
            }
            let candidates = [dir.join(format!("{m}.rs")), dir.join(m).join("mod.rs")];
            let Some((path, text)) = candidates
                .iter()
                .find_map(|p| (self.read)(p).map(|t| (p.clone(), t)))
            else {
                return Err(JobError::NoModule {
                    module: module_path,
                    looked: candidates
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(" and "),
                });
            };
            items = syn::parse_file(&text)
                .map_err(|e| JobError::Syntax {
                    file: path.display().to_string(),
                    message: e.to_string(),
                })?
                .items;
            file = path;
            dir = dir.join(m);
        }

        let full = path.join("::");
        let func = items.iter().find_map(|i| match i {
            syn::Item::Fn(f) if f.sig.ident == fname.as_str() => Some(f),
            _ => None,
        });
        let Some(func) = func else {
            return Err(JobError::NotFound {
                name: fname.clone(),
                module: module_path,
                candidates: public_async_fns(&items),
            });
        };
        if !matches!(func.vis, syn::Visibility::Public(_)) {
            return Err(JobError::NotPublic(full));
        }
        if func.sig.asyncness.is_none() {
            return Err(JobError::NotAsync(full));
        }
        match &func.sig.output {
            syn::ReturnType::Default => {}
            syn::ReturnType::Type(_, ty) => {
                let ok = match &**ty {
                    syn::Type::Tuple(t) => t.elems.is_empty(),
                    syn::Type::Path(p) => {
                        p.path.segments.last().is_some_and(|s| s.ident == "Result")
                    }
                    _ => false,
                };
                if !ok {
                    return Err(JobError::BadReturn(full));
                }
            }
        }
        let sig = &func.sig;
        let rust = format!("pub {}", tokens(sig));
        let mut params = Vec::new();
        for (input, in_rust) in sig.inputs.iter().zip(param_places(&rust, sig)) {
            let syn::FnArg::Typed(pt) = input else {
                return Err(JobError::BadParam {
                    job: full,
                    name: "self".into(),
                    ty: "Self".into(),
                });
            };
            let name = match &*pt.pat {
                syn::Pat::Ident(i) => i.ident.to_string(),
                other => tokens(other),
            };
            let Some((ty, int_ty)) = param_type(&pt.ty, &sig.generics) else {
                return Err(JobError::BadParam {
                    job: full,
                    name,
                    ty: tokens(&*pt.ty),
                });
            };
            params.push(JobParam {
                name,
                ty,
                int_ty,
                in_rust,
            });
        }
        Ok(JobSig {
            path: full,
            params,
            rust,
            file,
            line: sig.fn_token.span().start().line,
            body_line: func.block.stmts.first().map_or_else(
                || func.block.span().start().line,
                |st| st.span().start().line,
            ),
        })
    }
}

/// The `name` of the `[package]` section of a Cargo.toml.
pub fn package_name(toml: &str) -> Option<String> {
    let mut in_package = false;
    for line in toml.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package {
            if let Some(rest) = line.strip_prefix("name") {
                return Some(
                    rest.trim_start()
                        .strip_prefix('=')?
                        .trim()
                        .trim_matches('"')
                        .to_owned(),
                );
            }
        }
    }
    None
}

fn syntax_error(file: &Path, e: &syn::Error) -> JobError {
    let at = e.span().start();
    // Unbalanced delimiters fail before parsing, with no position.
    let file = if at.line > 0 {
        format!("{}:{}:{}", file.display(), at.line, at.column + 1)
    } else {
        file.display().to_string()
    };
    JobError::Syntax {
        file,
        message: e.to_string(),
    }
}

fn tokens(t: &dyn quote::ToTokens) -> String {
    t.to_token_stream()
        .to_string()
        .replace(" :", ":")
        .replace(" ,", ",")
        .replace("( ", "(")
        .replace(" )", ")")
        .replace(" (", "(")
        .replace("& ", "&")
        .replace(" < ", "<")
        .replace(" <", "<")
        .replace(" >", ">")
}

/// Where each parameter of `sig` is written in `rust`, its printing
/// (`pub ` and [`tokens`] of the signature): each parameter's own printing,
/// found in order after the name and generics (`<C: Console>` is written
/// like a parameter), one range for each. Printing is local, so a
/// parameter's text is the same alone and in the signature; were it not
/// found, its range is empty (nothing marked, nothing wrong).
fn param_places(rust: &str, sig: &syn::Signature) -> Vec<Range<usize>> {
    // `pub async fn start<C: Console>()`: the same text as `rust` up to the
    // parameters' `(`.
    let mut head = sig.clone();
    head.inputs.clear();
    head.output = syn::ReturnType::Default;
    head.generics.where_clause = None;
    let mut at = format!("pub {}", tokens(&head))
        .len()
        .saturating_sub("()".len());
    sig.inputs
        .iter()
        .map(|input| {
            let text = tokens(input);
            match rust.get(at..).and_then(|rest| rest.find(&text)) {
                Some(i) => {
                    let start = at + i;
                    at = start + text.len();
                    start..at
                }
                None => 0..0,
            }
        })
        .collect()
}

fn public_async_fns(items: &[syn::Item]) -> Vec<String> {
    items
        .iter()
        .filter_map(|i| match i {
            syn::Item::Fn(f)
                if f.sig.asyncness.is_some() && matches!(f.vis, syn::Visibility::Public(_)) =>
            {
                Some(f.sig.ident.to_string())
            }
            _ => None,
        })
        .collect()
}

const INTS: &[&str] = &[
    "u8", "u16", "u32", "u64", "usize", "i8", "i16", "i32", "i64", "isize",
];

fn bound_kind<'a>(bounds: impl IntoIterator<Item = &'a syn::TypeParamBound>) -> Option<Kind> {
    bounds.into_iter().find_map(|b| match b {
        syn::TypeParamBound::Trait(t) => t
            .path
            .segments
            .last()
            .and_then(|s| Kind::from_trait_name(&s.ident.to_string())),
        _ => None,
    })
}

fn param_type(
    ty: &syn::Type,
    generics: &syn::Generics,
) -> Option<(ParamType, Option<&'static str>)> {
    match ty {
        syn::Type::ImplTrait(it) => bound_kind(&it.bounds).map(|k| (ParamType::Device(k), None)),
        syn::Type::Path(p) if p.qself.is_none() => {
            let last = p.path.segments.last()?.ident.to_string();
            if let Some(int) = INTS.iter().find(|i| **i == last) {
                return Some((ParamType::Value(ValueType::Int), Some(int)));
            }
            let value = match last.as_str() {
                "String" => Some(ValueType::Str),
                "bool" => Some(ValueType::Bool),
                "Duration" => Some(ValueType::Duration),
                "Ipv4Cidr" => Some(ValueType::Cidr),
                _ => None,
            };
            if let Some(v) = value {
                return Some((ParamType::Value(v), None));
            }
            // A generic parameter: its bounds, inline or in the where clause.
            let inline = generics
                .type_params()
                .find(|tp| tp.ident == last)
                .and_then(|tp| bound_kind(&tp.bounds));
            let in_where = || {
                generics
                    .where_clause
                    .as_ref()?
                    .predicates
                    .iter()
                    .find_map(|pred| match pred {
                        syn::WherePredicate::Type(pt) if tokens(&pt.bounded_ty) == last => {
                            bound_kind(&pt.bounds)
                        }
                        _ => None,
                    })
            };
            inline
                .or_else(in_where)
                .map(|k| (ParamType::Device(k), None))
        }
        syn::Type::Paren(p) => param_type(&p.elem, generics),
        _ => None,
    }
}
