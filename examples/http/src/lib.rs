//! http: a small HTTP/1.1 server over any [`Stack`].
//!
//! - `GET /` answers [`INDEX`], a constant of this file: edit it while
//!   `nym run --watch` runs and the next request gets the new text.
//! - `GET /NAME` answers the file `NAME` of the baked directory.
//! - `GET /kv/NAME` and `PUT /kv/NAME` read and write the `state` store.
//!
//! Connections are kept alive and served concurrently; a request that is
//! malformed or too large gets its 4xx answer and the connection is closed.
#![no_std]
extern crate alloc;

use alloc::{boxed::Box, format, string::String, vec::Vec};
use libos::{Console, Flow, FlowError, Kv, KvError, KvRo, Stack};

/// The page at `/`.
pub const INDEX: &str = "Hello from nym!\n";

/// The largest request head (request line and headers).
const MAX_HEAD: usize = 8 * 1024;
/// The largest request body.
const MAX_BODY: usize = 1024 * 1024;

/// The job: serves HTTP on `port` until the stack fails.
pub async fn start(
    console: impl Console,
    stack: impl Stack,
    files: impl KvRo,
    state: impl Kv,
    port: u16,
) -> Result<(), String> {
    let mut listener = libos::net::listen(&stack, port).await?;
    let _ = console
        .log(&format!("http: listening on port {port}"))
        .await;
    let err = libos::net::serve(&mut *listener, |flow, _peer| serve(flow, &files, &state)).await;
    Err(format!("port {port}: {err}"))
}

/// A parsed request.
struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
    close: bool,
}

/// Why a request got no normal answer.
enum Bad {
    /// Answer with this status, then close.
    Status(u16, &'static str),
    /// The client went away.
    Gone,
}

impl From<FlowError> for Bad {
    fn from(_: FlowError) -> Self {
        Bad::Gone
    }
}

/// Serves one connection, request after request.
async fn serve(mut flow: Box<dyn Flow>, files: &impl KvRo, state: &impl Kv) {
    let mut buf = Vec::new();
    loop {
        let (status, ctype, body, close) = match read_request(&mut flow, &mut buf).await {
            Ok(req) => {
                let (status, ctype, body) = answer(&req, files, state).await;
                (status, ctype, body, req.close)
            }
            Err(Bad::Status(status, why)) => {
                (status, "text/plain", format!("{why}\n").into_bytes(), true)
            }
            Err(Bad::Gone) => break,
        };
        let head = format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{}\r\n",
            reason(status),
            body.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        if flow.write_all(head.as_bytes()).await.is_err() || flow.write_all(&body).await.is_err() {
            break;
        }
        if close {
            break;
        }
    }
    let _ = flow.close().await;
}

/// Reads one request; `buf` keeps bytes already read past it (pipelining).
async fn read_request(flow: &mut Box<dyn Flow>, buf: &mut Vec<u8>) -> Result<Request, Bad> {
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD {
            return Err(Bad::Status(431, "request head too large"));
        }
        match flow.read(&mut chunk).await? {
            0 => return Err(Bad::Gone),
            n => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = core::str::from_utf8(&buf[..head_end])
        .map_err(|_| Bad::Status(400, "request head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let mut parts = lines.next().unwrap_or("").split(' ');
    let (Some(method), Some(path), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Bad::Status(400, "malformed request line"));
    };
    if !version.starts_with("HTTP/1.") || !path.starts_with('/') {
        return Err(Bad::Status(400, "malformed request line"));
    }
    let mut length = 0usize;
    let mut close = version == "HTTP/1.0";
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(Bad::Status(400, "malformed header"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = value
                .parse()
                .map_err(|_| Bad::Status(400, "bad Content-Length"))?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(Bad::Status(501, "chunked bodies are not supported"));
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        }
    }
    if length > MAX_BODY {
        return Err(Bad::Status(413, "body too large"));
    }
    let method = String::from(method);
    let path = String::from(path);
    buf.drain(..head_end + 4);
    while buf.len() < length {
        match flow.read(&mut chunk).await? {
            0 => return Err(Bad::Gone),
            n => buf.extend_from_slice(&chunk[..n]),
        }
    }
    // One copy: `drain(..).collect()` moves byte by byte, which in a debug
    // image (guest code is slow here) took seconds for 40 KB.
    let body = buf[..length].to_vec();
    buf.drain(..length);
    Ok(Request {
        method,
        path,
        body,
        close,
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The answer to a request: status, content type, body.
async fn answer(req: &Request, files: &impl KvRo, state: &impl Kv) -> (u16, &'static str, Vec<u8>) {
    let text = |status, s: &str| (status, "text/plain", s.as_bytes().to_vec());
    let path = req.path.split('?').next().unwrap_or("/");
    if let Some(key) = path.strip_prefix("/kv/") {
        return match req.method.as_str() {
            "GET" => match state.get(key).await {
                Ok(v) => (200, "application/octet-stream", v),
                Err(KvError::NotFound(_)) => text(404, "no such key\n"),
                Err(e) => (500, "text/plain", format!("{e}\n").into_bytes()),
            },
            "PUT" => match state.set(key, &req.body).await {
                Ok(()) => text(204, ""),
                Err(KvError::InvalidKey(e)) => (400, "text/plain", format!("{e}\n").into_bytes()),
                Err(e) => (500, "text/plain", format!("{e}\n").into_bytes()),
            },
            _ => text(405, "use GET or PUT\n"),
        };
    }
    if req.method != "GET" {
        return text(405, "use GET\n");
    }
    if path == "/" {
        return (200, "text/html; charset=utf-8", INDEX.as_bytes().to_vec());
    }
    match files.get(&path[1..]).await {
        Ok(v) => (200, content_type(path), v),
        Err(_) => text(404, "not found\n"),
    }
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css",
        Some("js") => "text/javascript",
        Some("txt") => "text/plain; charset=utf-8",
        Some("json") => "application/json",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        _ => "Not Implemented",
    }
}
