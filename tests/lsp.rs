//! `nym lsp` end to end: the real binary on stdio, spoken to as an editor
//! would (JSON-RPC with Content-Length framing), garbage included.
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
        hover.contains("kv::mem() -> Kv") && hover.contains("targets: unix, kvm, qemu, xen"),
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
