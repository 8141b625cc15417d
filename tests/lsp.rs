//! `nym lsp` end to end: the real binary on stdio, spoken to as an editor
//! would (JSON-RPC with Content-Length framing): every request it
//! advertises, each answer checked in UTF-16 columns, garbage included.
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

mod common;
use common::project;

struct Client {
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

fn json(s: &str) -> String {
    s.to_owned()
}

impl Client {
    fn send_raw(&mut self, body: &str) {
        write!(self.stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        self.stdin.flush().unwrap();
    }
    fn request(&mut self, id: u32, method: &str, params: &str) -> String {
        self.send_raw(&format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{params}}}"#
        ));
        self.until(|m| m.contains(&format!(r#""id":{id}"#)) && !m.contains(r#""method""#))
    }
    fn notify(&mut self, method: &str, params: &str) {
        self.send_raw(&format!(
            r#"{{"jsonrpc":"2.0","method":"{method}","params":{params}}}"#
        ));
    }
    fn recv(&mut self) -> String {
        let mut len = 0;
        loop {
            let mut line = String::new();
            assert!(
                self.stdout.read_line(&mut line).unwrap() > 0,
                "the server closed its output"
            );
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some(v) = line.strip_prefix("Content-Length: ") {
                len = v.parse().unwrap();
            }
        }
        let mut body = vec![0; len];
        self.stdout.read_exact(&mut body).unwrap();
        let m = String::from_utf8(body).unwrap();
        eprintln!("<- {}", m.chars().take(400).collect::<String>());
        m
    }
    fn until(&mut self, pred: impl Fn(&str) -> bool) -> String {
        for _ in 0..50 {
            let m = self.recv();
            if pred(&m) {
                return m;
            }
        }
        panic!("no matching message");
    }
}

/// A `nym lsp` process and a client on its stdio.
fn start() -> (Child, Client) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nym"))
        .arg("lsp")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let c = Client {
        stdin: child.stdin.take().unwrap(),
        stdout: BufReader::new(child.stdout.take().unwrap()),
    };
    (child, c)
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[test]
fn diagnostics_hover_completion_definition_symbols_and_garbage() {
    let (_tmp, dir) = project("editing", "kv");
    let path = dir.join("unikernel.nym");
    let uri = format!("file://{}", path.display());
    let broken = "let console = console::default();\nlet store = kv::memm();\nlet app = job editing::start(console, store);\nregister(\"editing\", [app]);\n";

    let (mut child, mut c) = start();

    let init = c.request(
        1,
        "initialize",
        &json(r#"{"capabilities":{},"initializationOptions":{"target":"unix"}}"#),
    );
    assert!(init.contains(r#""hoverProvider":true"#), "{init}");
    assert!(
        init.contains(r#""textDocumentSync":2"#),
        "incremental sync: {init}"
    );
    c.notify("initialized", "{}");

    c.notify(
        "textDocument/didOpen",
        &format!(
            r#"{{"textDocument":{{"uri":"{uri}","languageId":"nym","version":1,"text":"{}"}}}}"#,
            escape(broken)
        ),
    );
    let diags = c.until(|m| m.contains("publishDiagnostics"));
    assert!(
        diags.contains("unknown implementation `kv::memm`"),
        "{diags}"
    );
    let v: serde_json::Value = serde_json::from_str(&diags).unwrap();
    assert_eq!(
        v["params"]["diagnostics"][0]["range"],
        serde_json::json!({"start": {"line": 1, "character": 12}, "end": {"line": 1, "character": 20}})
    );
    assert!(
        diags.contains("did you mean `kv::mem`?"),
        "the hint travels too: {diags}"
    );

    // The quick fix the checker suggests, as a code action.
    let actions = c.request(
        20,
        "textDocument/codeAction",
        &format!(r#"{{"textDocument":{{"uri":"{uri}"}},"range":{{"start":{{"line":1,"character":14}},"end":{{"line":1,"character":14}}}},"context":{{"diagnostics":[]}}}}"#),
    );
    let v: serde_json::Value = serde_json::from_str(&actions).unwrap();
    assert_eq!(v["result"][0]["title"], "use `kv::mem`", "{actions}");
    let edit = &v["result"][0]["edit"]["changes"][&uri][0];
    assert_eq!(edit["newText"], "kv::mem");
    assert_eq!(
        edit["range"],
        serde_json::json!({"start": {"line": 1, "character": 12}, "end": {"line": 1, "character": 20}})
    );

    // Fix it with an incremental edit: replace `memm` by `mem`.
    c.notify(
        "textDocument/didChange",
        &format!(r#"{{"textDocument":{{"uri":"{uri}","version":2}},"contentChanges":[{{"range":{{"start":{{"line":1,"character":16}},"end":{{"line":1,"character":20}}}},"text":"mem"}}]}}"#),
    );
    let diags = c.until(|m| m.contains("publishDiagnostics"));
    assert!(
        diags.contains(r#""diagnostics":[]"#),
        "the edit fixed it: {diags}"
    );

    let hover = c.request(
        2,
        "textDocument/hover",
        &format!(r#"{{"textDocument":{{"uri":"{uri}"}},"position":{{"line":1,"character":14}}}}"#),
    );
    assert!(
        hover.contains("kv::mem() -> Kv")
            && hover.contains("targets: unix, kvm, qemu, libvirt, xen"),
        "{hover}"
    );
    let hover = c.request(
        3,
        "textDocument/hover",
        &format!(r#"{{"textDocument":{{"uri":"{uri}"}},"position":{{"line":2,"character":16}}}}"#),
    );
    assert!(
        hover.contains("pub async fn start"),
        "a job's Rust signature: {hover}"
    );

    let def = c.request(
        4,
        "textDocument/definition",
        &format!(r#"{{"textDocument":{{"uri":"{uri}"}},"position":{{"line":2,"character":39}}}}"#),
    );
    let v: serde_json::Value = serde_json::from_str(&def).unwrap();
    assert_eq!(
        v["result"]["range"],
        serde_json::json!({"start": {"line": 1, "character": 4}, "end": {"line": 1, "character": 9}}),
        "`store` goes to its let: {def}"
    );
    let def = c.request(
        5,
        "textDocument/definition",
        &format!(r#"{{"textDocument":{{"uri":"{uri}"}},"position":{{"line":2,"character":16}}}}"#),
    );
    assert!(
        def.contains("src/lib.rs"),
        "a job goes to its Rust function: {def}"
    );

    // In the job's second argument (a Kv), completion offers stores only.
    let comp = c.request(
        6,
        "textDocument/completion",
        &format!(r#"{{"textDocument":{{"uri":"{uri}"}},"position":{{"line":2,"character":38}}}}"#),
    );
    assert!(
        comp.contains(r#""label":"kv::mem""#) && comp.contains(r#""label":"store""#),
        "{comp}"
    );
    assert!(
        !comp.contains(r#""label":"console::default""#) && !comp.contains(r#""label":"console""#),
        "consoles do not fit a Kv: {comp}"
    );

    let syms = c.request(
        7,
        "textDocument/documentSymbol",
        &format!(r#"{{"textDocument":{{"uri":"{uri}"}}}}"#),
    );
    for name in ["console", "store", "app", "register"] {
        assert!(syms.contains(&format!(r#""name":"{name}""#)), "{syms}");
    }

    // Garbage: a body that is not JSON, an unknown method, an edit far out
    // of range. Each gets its protocol answer; the server keeps serving.
    c.send_raw("{ this is not json");
    let err = c.until(|m| m.contains("-32700"));
    assert!(err.contains("error"), "{err}");
    let unknown = c.request(8, "nym/noSuchMethod", "{}");
    assert!(unknown.contains("-32601"), "{unknown}");
    c.notify(
        "textDocument/didChange",
        &format!(r#"{{"textDocument":{{"uri":"{uri}","version":3}},"contentChanges":[{{"range":{{"start":{{"line":900,"character":5}},"end":{{"line":999,"character":0}}}},"text":"\n"}}]}}"#),
    );
    let _ = c.until(|m| m.contains("publishDiagnostics"));
    let hover = c.request(
        9,
        "textDocument/hover",
        &format!(r#"{{"textDocument":{{"uri":"{uri}"}},"position":{{"line":1,"character":14}}}}"#),
    );
    assert!(hover.contains("kv::mem"), "still serving: {hover}");

    // Switching the target re-checks the document for it: kv::dir is fine
    // on unix and not on kvm.
    c.notify(
        "textDocument/didChange",
        &format!(r#"{{"textDocument":{{"uri":"{uri}","version":4}},"contentChanges":[{{"text":"{}"}}]}}"#, escape(&broken.replace("kv::memm()", "kv::dir(\"d\")"))),
    );
    let on_unix = c.until(|m| m.contains("publishDiagnostics") && m.contains(r#""version":4"#));
    assert!(on_unix.contains(r#""diagnostics":[]"#), "{on_unix}");
    c.notify(
        "workspace/didChangeConfiguration",
        r#"{"settings":{"nym":{"target":"kvm"}}}"#,
    );
    let on_kvm = c.until(|m| m.contains("publishDiagnostics"));
    assert!(
        on_kvm.contains("`kv::dir` is not available on target kvm"),
        "{on_kvm}"
    );

    let _ = c.request(10, "shutdown", "null");
    c.notify("exit", "null");
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

/// A stock editor's LSP client: Debian's Neovim (0.7, so
/// `vim.lsp.start_client`) opens a graph with a mistake and prints the
/// diagnostics `nym lsp` sent it.
#[test]
fn neovim_shows_the_diagnostics_of_nym_lsp() {
    if !common::required(
        common::runs("nvim"),
        "nvim cannot run: scripts/install.sh installs neovim",
    ) {
        return;
    }
    let (_tmp, dir) = project("innvim", "hello");
    std::fs::write(dir.join("unikernel.nym"), "let console = console::defualt();\nlet j = job innvim::start(console, clock::mono(), time::default(), 3, 100ms);\nregister(\"innvim\", [j]);\n").unwrap();
    let script = dir.join("check.lua");
    std::fs::write(
        &script,
        format!(
            r#"
vim.filetype.add({{ extension = {{ nym = "nym" }} }})
local client = vim.lsp.start_client({{ name = "nym", cmd = {{ "{nym}", "lsp" }}, root_dir = "{root}" }})
vim.cmd("edit {root}/unikernel.nym")
vim.lsp.buf_attach_client(0, client)
local ok = vim.wait(10000, function() return #vim.diagnostic.get(0) > 0 end, 50)
for _, d in ipairs(vim.diagnostic.get(0)) do
  print(string.format("diag %d:%d %s", d.lnum + 1, d.col + 1, (d.message:gsub("\n", " | "))))
end
if not ok then print("no diagnostics arrived") end
vim.cmd("qa!")
"#,
            nym = env!("CARGO_BIN_EXE_nym"),
            root = dir.display()
        ),
    )
    .unwrap();
    // Neovim 0.7 runs a Lua file with `-c luafile`; with no terminal it
    // must not wait for input, and the script ends it after 10 s at most.
    let mut child = Command::new("nvim")
        .args([
            "--headless",
            "--clean",
            "-c",
            &format!("luafile {}", script.display()),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    common::exit_within(
        &mut child,
        std::time::Duration::from_secs(30),
        "nvim finishes",
    );
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    assert!(
        text.contains("diag 1:15 unknown implementation `console::defualt`"),
        "the first diagnostic, at its place: {text}"
    );
    assert!(text.contains("did you mean `console::default`?"), "{text}");
}

/// Random edits through the server: it never crashes, and after every edit
/// its diagnostics are exactly `nym check`'s on the same text (one checker).
#[test]
fn random_edits_keep_the_server_alive_and_agreeing_with_nym_check() {
    let (_tmp, dir) = project("fuzzed", "kv");
    let path = dir.join("unikernel.nym");
    let uri = format!("file://{}", path.display());
    let mut text = std::fs::read_to_string(&path).unwrap();
    let (mut child, mut c) = start();
    let _ = c.request(1, "initialize", r#"{"capabilities":{}}"#);
    c.notify("initialized", "{}");
    c.notify(
        "textDocument/didOpen",
        &format!(
            r#"{{"textDocument":{{"uri":"{uri}","languageId":"nym","version":1,"text":"{}"}}}}"#,
            escape(&text)
        ),
    );
    let _ = c.until(|m| m.contains("publishDiagnostics"));

    // ASCII pieces, so LSP columns are byte columns on the client side too.
    const PIECES: &[&str] = &[
        "kv::mem()",
        "console",
        ";",
        "(",
        ")",
        ",",
        "let x = ",
        "key(\"k\", 3)",
        "job",
        "\n",
        "\"s\"",
        "10.0.0.1/8",
        "::",
        "store",
        " ",
    ];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rand = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let mut with_errors = 0;
    for version in 2..62 {
        let start = rand(text.len() + 1);
        let end = (start + rand(6)).min(text.len());
        let insert = if rand(3) == 0 {
            ""
        } else {
            PIECES[rand(PIECES.len())]
        };
        let pos = |off: usize| {
            let line = text[..off].matches('\n').count();
            let col = off - text[..off].rfind('\n').map_or(0, |i| i + 1);
            format!(r#"{{"line":{line},"character":{col}}}"#)
        };
        let change = format!(
            r#"{{"textDocument":{{"uri":"{uri}","version":{version}}},"contentChanges":[{{"range":{{"start":{},"end":{}}},"text":"{}"}}]}}"#,
            pos(start),
            pos(end),
            escape(insert)
        );
        text.replace_range(start..end, insert);
        c.notify("textDocument/didChange", &change);
        let published = c.until(|m| {
            m.contains("publishDiagnostics") && m.contains(&format!(r#""version":{version}"#))
        });
        let v: serde_json::Value = serde_json::from_str(&published).unwrap();
        let from_server: Vec<String> = v["params"]["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                let first = d["message"]
                    .as_str()
                    .unwrap()
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_owned();
                format!(
                    "{}:{} {} {first}",
                    d["range"]["start"]["line"].as_u64().unwrap() + 1,
                    d["range"]["start"]["character"].as_u64().unwrap() + 1,
                    d["code"].as_str().unwrap()
                )
            })
            .collect();

        std::fs::write(&path, &text).unwrap();
        let check = Command::new(env!("CARGO_BIN_EXE_nym"))
            .args(["check", "--short"])
            .current_dir(&dir)
            .output()
            .unwrap();
        let from_check: Vec<String> = String::from_utf8_lossy(&check.stderr)
            .lines()
            .filter_map(|l| l.strip_prefix("unikernel.nym:"))
            .map(|l| {
                // line:col: severity[code]: message
                let (place, rest) = l.split_once(": ").unwrap();
                let (sev_code, message) = rest.split_once("]: ").unwrap();
                let code = sev_code.split_once('[').unwrap().1;
                format!("{place} {code} {message}").replacen(':', ":", 1)
            })
            .collect();
        assert_eq!(
            from_server, from_check,
            "after edit {version} the text is:\n{text}"
        );
        with_errors += usize::from(!from_check.is_empty());
    }
    assert!(
        with_errors > 10,
        "the edits broke the graph often enough to compare something ({with_errors})"
    );
    let _ = c.request(99, "shutdown", "null");
    c.notify("exit", "null");
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_ten_megabyte_document_gets_an_answer_and_the_server_goes_on() {
    let (_tmp, dir) = project("huge", "hello");
    let uri = format!("file://{}", dir.join("unikernel.nym").display());
    let (mut child, mut c) = start();
    let _ = c.request(1, "initialize", r#"{"capabilities":{}}"#);
    let line = format!("// {}\\n", "x".repeat(1000));
    let text = format!(
        "{}let c = console::default();\\n",
        line.repeat(10 * 1024 * 1024 / line.len())
    );
    c.notify(
        "textDocument/didOpen",
        &format!(
            r#"{{"textDocument":{{"uri":"{uri}","languageId":"nym","version":1,"text":"{text}"}}}}"#
        ),
    );
    let diags = c.until(|m| m.contains("publishDiagnostics"));
    assert!(
        diags.contains("no `register(...)`"),
        "checked to the end: {}",
        &diags[..diags.len().min(300)]
    );
    let hover = c.request(
        2,
        "textDocument/hover",
        &format!(
            r#"{{"textDocument":{{"uri":"{uri}"}},"position":{{"line":10400,"character":10}}}}"#
        ),
    );
    assert!(hover.contains(r#""id":2"#));
    let _ = c.request(3, "shutdown", "null");
    c.notify("exit", "null");
    assert!(child.wait().unwrap().success());
}

#[test]
fn quick_fixes_for_a_missing_target_a_missing_register_and_an_unused_binding() {
    let (_tmp, dir) = project("fixes", "kv");
    let uri = format!("file://{}", dir.join("unikernel.nym").display());
    let text = "let unused = kv::mem();\nlet store = kv::dir(\"d\");\nlet app = job fixes::start(console::default(), store);\n";
    let (mut child, mut c) = start();
    let _ = c.request(
        1,
        "initialize",
        r#"{"capabilities":{},"initializationOptions":{"target":"kvm"}}"#,
    );
    c.notify(
        "textDocument/didOpen",
        &format!(
            r#"{{"textDocument":{{"uri":"{uri}","languageId":"nym","version":1,"text":"{}"}}}}"#,
            escape(text)
        ),
    );
    let _ = c.until(|m| m.contains("publishDiagnostics"));
    let actions = |c: &mut Client, id: u32, line: u32, ch: u32| {
        let reply = c.request(
            id,
            "textDocument/codeAction",
            &format!(r#"{{"textDocument":{{"uri":"{uri}"}},"range":{{"start":{{"line":{line},"character":{ch}}},"end":{{"line":{line},"character":{ch}}}}},"context":{{"diagnostics":[]}}}}"#),
        );
        let v: serde_json::Value = serde_json::from_str(&reply).unwrap();
        v["result"].as_array().cloned().unwrap_or_default()
    };
    let fix = |a: &serde_json::Value| {
        (
            a["title"].as_str().unwrap_or("").to_owned(),
            a["edit"]["changes"][&uri][0]["newText"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
        )
    };

    let on_dir = actions(&mut c, 2, 1, 15);
    assert!(
        on_dir
            .iter()
            .map(fix)
            .any(|(t, n)| t == "replace with `kv::mem()`" && n == "kv::mem()"),
        "{on_dir:?}"
    );
    let on_unused = actions(&mut c, 3, 0, 6);
    assert!(
        on_unused
            .iter()
            .map(fix)
            .any(|(t, n)| t == "remove `unused`" && n.is_empty()),
        "{on_unused:?}"
    );
    let at_end = actions(&mut c, 4, 3, 0);
    assert!(
        at_end
            .iter()
            .map(fix)
            .any(|(t, n)| t == "add `register`" && n.contains("register(\"fixes\", [app]);")),
        "{at_end:?}"
    );
    let _ = c.request(5, "shutdown", "null");
    c.notify("exit", "null");
    assert!(child.wait().unwrap().success());
}

// References, rename, semantic tokens, inlay hints, signature help and
// formatting, each answer checked whole. Every document has text outside
// ASCII before the places asked about, so a column counted in bytes or in
// chars instead of UTF-16 units is caught: `ä` is 2 bytes and 1 unit, `🙂`
// 4 bytes, 1 char and 2 units.

/// An editor with one graph open: `nym lsp` on a fresh project of the kv
/// template, initialized, its `unikernel.nym` open holding `text`.
struct Editor {
    _tmp: tempfile::TempDir,
    dir: std::path::PathBuf,
    child: Child,
    c: Client,
    uri: String,
    /// The document as the editor holds it.
    text: String,
    /// The `initialize` result: the capabilities the server announced.
    init: Value,
    id: u32,
    version: u32,
}

impl Editor {
    fn open(name: &str, text: &str) -> Editor {
        let (_tmp, dir) = project(name, "kv");
        let uri = format!("file://{}", dir.join("unikernel.nym").display());
        let (child, mut c) = start();
        let init: Value =
            serde_json::from_str(&c.request(1, "initialize", r#"{"capabilities":{}}"#)).unwrap();
        c.notify("initialized", "{}");
        c.notify(
            "textDocument/didOpen",
            &json!({"textDocument": {"uri": uri, "languageId": "nym", "version": 1, "text": text}})
                .to_string(),
        );
        let _ = c.until(|m| m.contains("publishDiagnostics"));
        Editor {
            _tmp,
            dir,
            child,
            c,
            uri,
            text: text.to_owned(),
            init: init["result"].clone(),
            id: 1,
            version: 1,
        }
    }

    /// The reply (`result` or `error`) to `method` on the document.
    fn ask(&mut self, method: &str, mut params: Value) -> Value {
        params["textDocument"] = json!({ "uri": self.uri });
        self.id += 1;
        serde_json::from_str(&self.c.request(self.id, method, &params.to_string())).unwrap()
    }

    /// The reply to `method` at `line`:`character` (UTF-16 units).
    fn at(&mut self, method: &str, line: u32, character: u32, mut params: Value) -> Value {
        params["position"] = json!({"line": line, "character": character});
        self.ask(method, params)
    }

    /// Replaces the whole document, as an editor sends it; the diagnostics
    /// published for the new version.
    fn set(&mut self, text: &str) -> Value {
        self.version += 1;
        self.text = text.to_owned();
        self.c.notify(
            "textDocument/didChange",
            &json!({"textDocument": {"uri": self.uri, "version": self.version},
                    "contentChanges": [{"text": text}]})
            .to_string(),
        );
        let version = format!(r#""version":{}"#, self.version);
        let published = self
            .c
            .until(|m| m.contains("publishDiagnostics") && m.contains(&version));
        serde_json::from_str::<Value>(&published).unwrap()["params"]["diagnostics"].clone()
    }

    /// The document with `edits` (LSP text edits) made.
    fn edited(&self, edits: &Value) -> String {
        let mut edits: Vec<(usize, usize, &str)> = edits
            .as_array()
            .expect("a list of edits")
            .iter()
            .map(|e| {
                (
                    offset(&self.text, &e["range"]["start"]),
                    offset(&self.text, &e["range"]["end"]),
                    e["newText"].as_str().unwrap(),
                )
            })
            .collect();
        edits.sort_by_key(|&(start, _, _)| std::cmp::Reverse(start));
        let mut text = self.text.clone();
        for (start, end, new) in edits {
            text.replace_range(start..end, new);
        }
        text
    }

    /// `line:character "text"`: where an LSP range starts and what it covers.
    fn place(&self, range: &Value) -> String {
        let (start, end) = (
            offset(&self.text, &range["start"]),
            offset(&self.text, &range["end"]),
        );
        format!(
            "{}:{} {:?}",
            range["start"]["line"],
            range["start"]["character"],
            &self.text[start..end]
        )
    }

    /// The places of `locations`, all in this document.
    fn places(&self, locations: &Value) -> Vec<String> {
        locations
            .as_array()
            .expect("a list of locations")
            .iter()
            .map(|l| {
                assert_eq!(l["uri"], self.uri, "{l}");
                self.place(&l["range"])
            })
            .collect()
    }

    fn close(mut self) {
        self.id += 1;
        let _ = self.c.request(self.id, "shutdown", "null");
        self.c.notify("exit", "null");
        assert!(self.child.wait().unwrap().success());
    }
}

/// The byte offset in `text` of an LSP position, counted by the client on
/// its own: a line, then UTF-16 units into it. A position inside a
/// character or past its line's end fails the test.
fn offset(text: &str, position: &Value) -> usize {
    let line = position["line"].as_u64().unwrap() as usize;
    let character = position["character"].as_u64().unwrap() as usize;
    let start: usize = text.split_inclusive('\n').take(line).map(str::len).sum();
    let mut units = 0;
    for (i, c) in text[start..].char_indices() {
        if units == character {
            return start + i;
        }
        assert!(
            units < character && c != '\n',
            "{position} is not at a character of its line"
        );
        units += c.len_utf16();
    }
    assert_eq!(units, character, "{position} is past the text");
    text.len()
}

/// `store` used after `dätä🙂` on its line; `full` declared there, used in
/// the arm of `match target` for unix (the target the server checks for).
const WRAPPED_STORE: &str = "// Zähler 🙂: a store, wrapped
let console = console::default();
let store = kv::dir(\"dätä🙂\"); let full = kv::full(store);
let pick = match target { unix => full, _ => kv::mem() };
let app = job NAME::start(console, pick);
register(\"NAME\", [app]);
";

#[test]
fn references_of_a_binding_from_its_let_and_its_uses() {
    let text = WRAPPED_STORE.replace("NAME", "refs");
    let mut ed = Editor::open("refs", &text);
    assert_eq!(ed.init["capabilities"]["referencesProvider"], true);
    let with_let = json!({"context": {"includeDeclaration": true}});
    let uses_only = json!({"context": {"includeDeclaration": false}});

    // From the use after `dätä🙂`: UTF-16 column 51 (byte 55; byte 51 is
    // in `kv::full`, which has no references), and from the `let`.
    let store = [r#"2:4 "store""#, r#"2:51 "store""#];
    let r = ed.at("textDocument/references", 2, 51, with_let.clone());
    assert_eq!(ed.places(&r["result"]), store, "{r}");
    let r = ed.at("textDocument/references", 2, 4, with_let.clone());
    assert_eq!(ed.places(&r["result"]), store, "{r}");
    let r = ed.at("textDocument/references", 2, 4, uses_only.clone());
    assert_eq!(ed.places(&r["result"]), store[1..], "without the let: {r}");

    // `full`, from just past its name at the `let` (after the emoji) and
    // in the match arm.
    let full = [r#"2:35 "full""#, r#"3:34 "full""#];
    let r = ed.at("textDocument/references", 2, 39, with_let.clone());
    assert_eq!(ed.places(&r["result"]), full, "{r}");
    let r = ed.at("textDocument/references", 3, 38, uses_only.clone());
    assert_eq!(ed.places(&r["result"]), full[1..], "{r}");

    // Nothing to refer to: an implementation, a comment, past the text.
    for (line, character) in [(2, 14), (0, 12), (99, 0)] {
        let r = ed.at("textDocument/references", line, character, with_let.clone());
        assert_eq!(r["result"], Value::Null, "at {line}:{character}: {r}");
    }
    ed.close();
}

#[test]
fn rename_rewrites_the_let_and_every_use_or_says_why_not() {
    let text = WRAPPED_STORE.replace("NAME", "renaming");
    let mut ed = Editor::open("renaming", &text);
    assert_eq!(ed.init["capabilities"]["renameProvider"], true);

    // Refused, with the reason: a name that is not one, one already bound,
    // a keyword, and a place that is no binding (`kv::dir`).
    for (line, character, new, why) in [
        (2, 39, "1x", "`1x` is not a name"),
        (2, 39, "full store", "`full store` is not a name"),
        (2, 39, "let", "`let` is not a name"),
        (2, 39, "console", "`console` is already bound"),
        (2, 14, "db", "only `let` bindings can be renamed"),
    ] {
        let r = ed.at(
            "textDocument/rename",
            line,
            character,
            json!({ "newName": new }),
        );
        assert_eq!(r["error"]["code"], -32602, "{new}: {r}");
        let message = r["error"]["message"].as_str().unwrap_or("");
        assert!(message.starts_with(why), "{new}: {r}");
        assert_eq!(r.get("result"), None, "{r}");
    }

    // From just past `full` after `dätä🙂` (where the cursor stands after
    // typing the name): its `let` and its use, in this document only.
    let r = ed.at("textDocument/rename", 2, 39, json!({"newName": "wrapped"}));
    let changes = r["result"]["changes"].as_object().expect("changes");
    assert_eq!(changes.keys().collect::<Vec<_>>(), [&ed.uri], "{r}");
    let edits = &changes[&ed.uri];
    let mut in_order: Vec<&Value> = edits.as_array().expect("edits").iter().collect();
    in_order.sort_by_key(|e| {
        let at = &e["range"]["start"];
        (at["line"].as_u64(), at["character"].as_u64())
    });
    let rewritten: Vec<String> = in_order
        .iter()
        .map(|e| format!("{} -> {}", ed.place(&e["range"]), e["newText"]))
        .collect();
    assert_eq!(
        rewritten,
        [r#"2:35 "full" -> "wrapped""#, r#"3:34 "full" -> "wrapped""#]
    );
    let renamed = ed.edited(edits);
    assert_eq!(
        renamed,
        text.replace("let full =", "let wrapped =")
            .replace("unix => full,", "unix => wrapped,")
    );
    assert_eq!(ed.set(&renamed), json!([]), "the renamed graph checks");
    ed.close();
}

/// `full` used only in arms of `match target` for other targets than unix
/// (the one the server checks for, evaluating the unix arm alone), after
/// `dätä🙂` on their line.
const ACROSS_ARMS: &str = "// Zähler 🙂: a store per target
let console = console::default();
let full = kv::mem();
let pick = match target { unix => kv::dir(\"dätä🙂\"), kvm => full, _ => kv::full(full) };
let app = job NAME::start(console, pick);
register(\"NAME\", [app]);
";

#[test]
fn references_and_rename_reach_the_arms_for_other_targets() {
    let text = ACROSS_ARMS.replace("NAME", "arms");
    let mut ed = Editor::open("arms", &text);
    assert_eq!(
        ed.set(&text),
        json!([]),
        "`full` is not unused: kvm and the others use it"
    );

    // From the `let`, and from the use nested in `kv::full(...)` (UTF-16
    // column 80; the implementation `kv::full` is at 75).
    let full = [r#"2:4 "full""#, r#"3:60 "full""#, r#"3:80 "full""#];
    let with_let = json!({"context": {"includeDeclaration": true}});
    let r = ed.at("textDocument/references", 2, 6, with_let.clone());
    assert_eq!(ed.places(&r["result"]), full, "{r}");
    let r = ed.at("textDocument/references", 3, 82, with_let);
    assert_eq!(ed.places(&r["result"]), full, "{r}");

    // Renamed from the kvm arm: every arm follows, so the graph still
    // checks for the targets whose arms the server never evaluated.
    let r = ed.at("textDocument/rename", 3, 62, json!({"newName": "spare"}));
    let renamed = ed.edited(&r["result"]["changes"][&ed.uri]);
    assert_eq!(
        renamed,
        text.replace("let full", "let spare")
            .replace("=> full", "=> spare")
            .replace("full(full)", "full(spare)")
    );
    assert_eq!(ed.set(&renamed), json!([]), "the renamed graph checks");
    std::fs::write(ed.dir.join("unikernel.nym"), &renamed).unwrap();
    for target in ["kvm", "qemu", "unix"] {
        let out = common::run(common::nym(&ed.dir).args(["check", "--target", target]));
        assert!(
            out.status.success(),
            "the renamed graph checks for {target}"
        );
    }
    ed.close();
}

#[test]
fn semantic_tokens_decoded_with_the_announced_legend() {
    let text = "// Zähler 🙂
let console = console::default();
let store = kv::dir(\"dätä🙂\"); let app = job tokens::start(console, kv::full(store));
let n = match target { unix => netif::pair(\"ü\"), _ => netif::lossy(netif::default(), 5, seed = 7) };
let broken = kv::mem(;
register(\"tokens\", [app]);
";
    let mut ed = Editor::open("tokens", text);
    let provider = &ed.init["capabilities"]["semanticTokensProvider"];
    assert_eq!(provider["full"], true, "{provider}");
    let legend = provider["legend"].clone();
    let names = |list: &Value| -> Vec<String> {
        list.as_array()
            .expect("a legend list")
            .iter()
            .map(|n| n.as_str().unwrap().to_owned())
            .collect()
    };
    let (types, modifiers) = (
        names(&legend["tokenTypes"]),
        names(&legend["tokenModifiers"]),
    );

    let r = ed.ask("textDocument/semanticTokens/full", json!({}));
    let data: Vec<u64> = r["result"]["data"]
        .as_array()
        .expect("token data")
        .iter()
        .map(|n| n.as_u64().unwrap())
        .collect();
    assert_eq!(data.len() % 5, 0, "five numbers a token: {r}");
    // The delta encoding: a token's line is relative to the one before, its
    // column too when on the same line.
    let (mut line, mut column) = (0, 0);
    let mut tokens = Vec::new();
    for t in data.chunks(5) {
        let [delta_line, delta_start, length, ty, mods] = [t[0], t[1], t[2], t[3], t[4]];
        line += delta_line;
        column = if delta_line == 0 {
            column + delta_start
        } else {
            delta_start
        };
        let ty = types.get(ty as usize).expect("a type in the legend");
        let mods: Vec<&str> = (0..64)
            .filter(|bit| mods & (1 << bit) != 0)
            .map(|bit| {
                modifiers
                    .get(bit)
                    .expect("a modifier in the legend")
                    .as_str()
            })
            .collect();
        let range = json!({"start": {"line": line, "character": column},
                           "end": {"line": line, "character": column + length}});
        tokens.push(format!(
            "{} {ty}{}",
            ed.place(&range),
            mods.iter().map(|m| format!(".{m}")).collect::<String>()
        ));
    }
    assert_eq!(
        tokens,
        [
            r#"0:0 "// Zähler 🙂" comment"#,
            r#"1:0 "let" keyword"#,
            r#"1:4 "console" variable"#,
            r#"1:14 "console" namespace"#,
            r#"1:23 "default" function"#,
            r#"2:0 "let" keyword"#,
            r#"2:4 "store" variable"#,
            r#"2:12 "kv" namespace"#,
            r#"2:16 "dir" function"#,
            r#"2:20 "\"dätä🙂\"" string"#,
            r#"2:31 "let" keyword"#,
            r#"2:35 "app" variable"#,
            r#"2:41 "job" keyword"#,
            r#"2:45 "tokens" namespace"#,
            r#"2:53 "start" function"#,
            r#"2:59 "console" variable"#,
            r#"2:68 "kv" namespace"#,
            r#"2:72 "full" function"#,
            r#"2:77 "store" variable"#,
            // After `ü`, one unit and two bytes.
            r#"3:0 "let" keyword"#,
            r#"3:4 "n" variable"#,
            r#"3:8 "match" keyword"#,
            r#"3:23 "unix" namespace"#,
            r#"3:31 "netif" namespace"#,
            r#"3:38 "pair" function"#,
            r#"3:43 "\"ü\"" string"#,
            r#"3:54 "netif" namespace"#,
            r#"3:61 "lossy" function"#,
            r#"3:67 "netif" namespace"#,
            r#"3:74 "default" function"#,
            r#"3:85 "5" number"#,
            r#"3:88 "seed" parameter"#,
            r#"3:95 "7" number"#,
            // What parses of a broken statement.
            r#"4:0 "let" keyword"#,
            r#"4:4 "broken" variable"#,
            r#"4:13 "kv" namespace"#,
            r#"4:17 "mem" function"#,
            r#"5:0 "register" function"#,
            r#"5:9 "\"tokens\"" string"#,
            r#"5:20 "app" variable"#,
        ],
        "{r}"
    );
    ed.close();
}

#[test]
fn inlay_hints_give_each_let_its_type_after_the_name() {
    let text = "let console = console::default();
let store = kv::dir(\"dätä🙂\"); let full = kv::full(store);
let app = job hints::start(console, full);
let broken = kv::mem(;
register(\"hints\", [app]);
";
    let mut ed = Editor::open("hints", text);
    assert_eq!(ed.init["capabilities"]["inlayHintProvider"], true);
    let r = ed.ask(
        "textDocument/inlayHint",
        json!({"range": {"start": {"line": 0, "character": 0}, "end": {"line": 5, "character": 0}}}),
    );
    let hints = r["result"].as_array().expect("hints");
    let mut placed: Vec<(String, String)> = Vec::new();
    for h in hints {
        assert_eq!(h["kind"], 1, "a type hint: {h}");
        placed.push((
            format!("{}:{}", h["position"]["line"], h["position"]["character"]),
            h["label"].as_str().expect("a plain label").to_owned(),
        ));
    }
    // `full` ends at UTF-16 column 39 (43 in bytes, 38 in chars); the
    // statement that does not parse still has its type.
    assert_eq!(
        placed,
        [
            ("0:11".to_owned(), ": Console".to_owned()),
            ("1:9".to_owned(), ": Kv".to_owned()),
            ("1:39".to_owned(), ": Kv".to_owned()),
            ("2:7".to_owned(), ": Job".to_owned()),
            ("3:10".to_owned(), ": Kv".to_owned()),
        ],
        "{r}"
    );
    // Where an editor draws them.
    let drawn = ed.edited(&Value::Array(
        hints
            .iter()
            .map(|h| json!({"range": {"start": h["position"], "end": h["position"]}, "newText": h["label"]}))
            .collect(),
    ));
    assert_eq!(
        drawn,
        "let console: Console = console::default();
let store: Kv = kv::dir(\"dätä🙂\"); let full: Kv = kv::full(store);
let app: Job = job hints::start(console, full);
let broken: Kv = kv::mem(;
register(\"hints\", [app]);
"
    );
    ed.close();
}

/// The parameters of a signature as the text of its label their offsets
/// cover, counted by the client on its own in UTF-16 units of the label.
fn parameter_texts(sig: &Value) -> Vec<String> {
    let label: Vec<u16> = sig["label"]
        .as_str()
        .expect("a label")
        .encode_utf16()
        .collect();
    sig["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .map(|p| {
            let offsets = p["label"].as_array().expect("label offsets, not text");
            assert_eq!(offsets.len(), 2, "{p}");
            let [start, end] = [0, 1].map(|i| offsets[i].as_u64().unwrap() as usize);
            assert!(start <= end && end <= label.len(), "{p} is within {sig}");
            String::from_utf16(&label[start..end]).expect("offsets at characters")
        })
        .collect()
}

#[test]
fn signature_help_marks_the_parameter_at_the_cursor() {
    let text = "let console = console::default();
let n = netif::lossy(netif::pair(\"🙂 ü\"), 5, 7);
let app = job sigs::start(console, kv::mem());
let x = kv::nope(1);
let g = job sigs::greet(console, 3);
register(\"sigs\", [app, g]);
";
    let mut ed = Editor::open("sigs", text);
    // A job whose Rust names are not ASCII (Rust takes `ä`, not `🙂`).
    let lib = ed.dir.join("src/lib.rs");
    let mut rust = std::fs::read_to_string(&lib).unwrap();
    rust.push_str("\npub async fn greet(zähler: impl Console, größe: u32) {}\n");
    std::fs::write(&lib, rust).unwrap();
    assert_eq!(
        ed.init["capabilities"]["signatureHelpProvider"]["triggerCharacters"],
        json!(["(", ","])
    );
    let lossy = "netif::lossy(netif: Netif, percent: int, seed: int = 1) -> Netif";
    let lossy_params = ["netif: Netif", "percent: int", "seed: int"];
    let pair = "netif::pair(name: string) -> Netif";
    let pair_params = ["name: string"];
    // Line 1 in UTF-16 units: `netif::pair(` at 21, `"🙂 ü"` at 33..39,
    // `5` at 42, `7` at 45, the closing `)` at 46.
    for (character, label, params, active) in [
        (21, lossy, &lossy_params[..], 0),
        (37, pair, &pair_params[..], 0),
        (39, pair, &pair_params[..], 0),
        (41, lossy, &lossy_params[..], 1),
        (42, lossy, &lossy_params[..], 1),
        (44, lossy, &lossy_params[..], 2),
        (46, lossy, &lossy_params[..], 2),
    ] {
        let r = ed.at("textDocument/signatureHelp", 1, character, json!({}));
        let help = &r["result"];
        assert_eq!(help["activeSignature"], 0, "at 1:{character}: {r}");
        assert_eq!(help["activeParameter"], active, "at 1:{character}: {r}");
        let sig = &help["signatures"][0];
        assert_eq!(help["signatures"].as_array().map(Vec::len), Some(1), "{r}");
        assert_eq!(sig["label"], label, "at 1:{character}: {r}");
        assert_eq!(sig["activeParameter"], active, "{r}");
        assert_eq!(parameter_texts(sig), params, "at 1:{character}: {r}");
    }

    // A job's: its Rust signature, from the project's src/lib.rs, each
    // parameter marked where Rust writes it.
    for (line, character, label, params, active) in [
        (
            2,
            35,
            "pub async fn start(console: impl Console, store: impl Kv) -> Result<(), Error>",
            &["console: impl Console", "store: impl Kv"][..],
            1,
        ),
        (
            4,
            33,
            "pub async fn greet(zähler: impl Console, größe: u32)",
            &["zähler: impl Console", "größe: u32"][..],
            1,
        ),
    ] {
        let r = ed.at("textDocument/signatureHelp", line, character, json!({}));
        let sig = &r["result"]["signatures"][0];
        assert_eq!(sig["label"], label, "{r}");
        assert_eq!(r["result"]["activeParameter"], active, "{r}");
        assert_eq!(parameter_texts(sig), params, "{r}");
    }

    // None: past the closing parenthesis, on the callee, in an unknown one.
    for (line, character) in [(1, 47), (1, 12), (3, 17)] {
        let r = ed.at("textDocument/signatureHelp", line, character, json!({}));
        assert_eq!(r["result"], Value::Null, "at {line}:{character}: {r}");
    }
    ed.close();
}

#[test]
fn formatting_turns_a_badly_laid_out_graph_into_the_nym_fmt_form() {
    // No newline at the end: the edit's end is after the emoji, in UTF-16.
    let bad = "// Zähler, badly laid out 🙂
let console=console::default( ) ;
let   store = kv::dir( \"dätä\" );



let app=job formatting::start(console,
    store);   register(\"formatting\",[app]); // ✓ 🙂";
    let good = "// Zähler, badly laid out 🙂
let console = console::default();
let store   = kv::dir(\"dätä\");

let app = job formatting::start(console, store);
register(\"formatting\", [app]); // ✓ 🙂
";
    let mut ed = Editor::open("formatting", bad);
    assert_eq!(ed.init["capabilities"]["documentFormattingProvider"], true);
    let options = json!({"options": {"tabSize": 4, "insertSpaces": true}});

    let r = ed.ask("textDocument/formatting", options.clone());
    assert_eq!(
        r["result"],
        json!([{"range": {"start": {"line": 0, "character": 0}, "end": {"line": 7, "character": 51}},
                "newText": good}]),
        "one edit, the whole text: {r}"
    );
    let formatted = ed.edited(&r["result"]);
    assert_eq!(formatted, good);
    // The form `nym fmt` gives the same file.
    let file = ed.dir.join("unikernel.nym");
    std::fs::write(&file, bad).unwrap();
    let out = common::run(common::nym(&ed.dir).arg("fmt"));
    assert!(out.status.success());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), good);

    // Formatted already: no edits.
    assert_eq!(ed.set(&formatted), json!([]));
    let r = ed.ask("textDocument/formatting", options.clone());
    assert_eq!(r["result"], Value::Null, "{r}");

    // A syntax error: the file is left alone, as the server documents.
    let broken = format!("{good}let b = kv::mem(;\n");
    let diagnostics = ed.set(&broken);
    assert_eq!(diagnostics[0]["code"], "nym::syntax", "{diagnostics}");
    let r = ed.ask("textDocument/formatting", options);
    assert_eq!(r["result"], Value::Null, "{r}");
    ed.close();
}

/// The notebook lesson asks for the graph to be fixed with the language
/// server's quick fix: the fix `nym lsp` offers on the lesson's start graph
/// is the lesson's solution.
#[test]
fn the_notebook_lessons_quick_fix_is_its_solution() {
    let tmp = tempfile::tempdir().unwrap();
    let nym = std::path::Path::new(env!("CARGO_BIN_EXE_nym"));
    let (t, _) = nym_tutorials::Tutorial::start(nym, "notebook", tmp.path()).unwrap();
    let path = t.dir.join("unikernel.nym");
    let text = std::fs::read_to_string(&path).unwrap();
    let uri = format!("file://{}", path.display());
    let (mut child, mut c) = start();
    let _ = c.request(1, "initialize", r#"{"capabilities":{}}"#);
    c.notify(
        "textDocument/didOpen",
        &json!({"textDocument": {"uri": uri, "languageId": "nym", "version": 1, "text": text}})
            .to_string(),
    );
    let published = c.until(|m| m.contains("publishDiagnostics"));
    assert!(published.contains("consle"), "{published}");
    let (line, col) = text
        .lines()
        .enumerate()
        .find_map(|(i, l)| Some((i, l.find("consle")?)))
        .unwrap();
    let at = json!({"line": line, "character": col});
    let reply: Value = serde_json::from_str(
        &c.request(
            2,
            "textDocument/codeAction",
            &json!({"textDocument": {"uri": uri}, "range": {"start": at, "end": at},
                "context": {"diagnostics": []}})
            .to_string(),
        ),
    )
    .unwrap();
    let actions = reply["result"].as_array().cloned().unwrap_or_default();
    let fix = actions
        .iter()
        .find(|a| a["title"].as_str().is_some_and(|t| t.contains("console")))
        .unwrap_or_else(|| panic!("no quick fix naming `console`: {actions:?}"));
    let mut fixed = text.clone();
    let mut edits: Vec<&Value> = fix["edit"]["changes"][&uri]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    edits.sort_by_key(|e| std::cmp::Reverse(offset(&text, &e["range"]["start"])));
    for e in edits {
        let (s, end) = (
            offset(&text, &e["range"]["start"]),
            offset(&text, &e["range"]["end"]),
        );
        fixed.replace_range(s..end, e["newText"].as_str().unwrap());
    }
    let solution = &t.lesson.solutions["quickfix"]["unikernel.nym"];
    assert_eq!(fixed, String::from_utf8_lossy(solution));
    let _ = c.request(3, "shutdown", "null");
    c.notify("exit", "null");
    assert!(child.wait().unwrap().success());
}
