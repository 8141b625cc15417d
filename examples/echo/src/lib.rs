//! echo: a TCP echo server. Every connection gets back what it sends; many
//! connections are served at once, so one that stalls or vanishes holds up
//! nobody else.
#![no_std]
extern crate alloc;

use alloc::{boxed::Box, format, string::String};
use libos::{Console, Flow, Stack};

/// The job: listens on `port` and echoes each connection until it closes.
pub async fn start(console: impl Console, stack: impl Stack, port: u16) -> Result<(), String> {
    let mut listener = libos::net::listen(&stack, port).await?;
    let _ = console
        .log(&format!("echo: listening on port {port}"))
        .await;
    let err = libos::net::serve(&mut *listener, |flow, _peer| echo(flow)).await;
    Err(format!("port {port}: {err}"))
}

async fn echo(mut flow: Box<dyn Flow>) {
    let mut buf = [0u8; 4096];
    loop {
        match flow.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if flow.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = flow.close().await;
}
