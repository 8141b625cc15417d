//! `tls::server` and `tls::client` (rustls in libos) with real handshakes:
//! over the host's sockets, over two `stack::direct` on an in-memory link,
//! and against clients that speak no TLS or vanish.
#[path = "../../../tests/common/tls.rs"]
mod certs;
mod common;

use common::{direct, free_port};
use libos::kv::Baked;
use libos::netif::pair;
use libos::platform::Platform;
use libos::tls::{Client, Server};
use libos::{Flow, NetError, Stack};
use nym_unix::platform::Unix;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::path::Path;
use std::time::Duration;

/// The files of `dir` as a baked store.
fn store(dir: &Path, files: &[&str]) -> Baked {
    Baked::from_entries(
        files
            .iter()
            .map(|f| (f.to_string(), std::fs::read(dir.join(f)).unwrap())),
    )
}

/// A test CA and a certificate for localhost, 127.0.0.1 and 10.0.0.1 in a
/// new directory, and the server's store of them.
fn pki() -> (tempfile::TempDir, Baked) {
    let dir = tempfile::tempdir().unwrap();
    certs::make_certs(dir.path(), "DNS:localhost, IP:127.0.0.1, IP:10.0.0.1");
    let server = store(dir.path(), &["cert.pem", "key.pem"]);
    (dir, server)
}

fn roots(dir: &tempfile::TempDir) -> Baked {
    store(dir.path(), &["ca.pem"])
}

/// Serves on `port` of `stack`: reads each connection to its end, then
/// sends it all back upper case and closes; the errors connections ended
/// with go to `errors`.
async fn shouting_server(
    stack: impl Stack + 'static,
    port: u16,
    errors: tokio::sync::mpsc::UnboundedSender<String>,
) {
    let mut listener = stack.listen(port).await.unwrap();
    loop {
        let (mut flow, _) = listener.accept().await.unwrap();
        let errors = errors.clone();
        tokio::spawn(async move {
            let result: Result<(), libos::FlowError> = async {
                let mut all = read_to_end(&mut flow).await?;
                all.make_ascii_uppercase();
                flow.write_all(&all).await?;
                flow.close().await
            }
            .await;
            if let Err(e) = result {
                let _ = errors.send(e.to_string());
            }
        });
    }
}

async fn read_to_end(flow: &mut Box<dyn Flow>) -> Result<Vec<u8>, libos::FlowError> {
    let mut all = Vec::new();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match flow.read(&mut buf).await? {
            0 => return Ok(all),
            n => all.extend_from_slice(&buf[..n]),
        }
    }
}

/// Sends `data` over `flow`, finishes sending, and returns all it reads
/// back.
async fn round_trip(flow: &mut Box<dyn Flow>, data: &[u8]) -> Vec<u8> {
    for chunk in data.chunks(10_000) {
        flow.write_all(chunk).await.unwrap();
    }
    flow.close().await.unwrap();
    read_to_end(flow).await.unwrap()
}

fn loopback(port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)
}

fn client(roots: Baked, name: &str) -> impl Stack {
    Client::new(
        Unix.socket_stack().unwrap(),
        roots,
        Unix.wall_clock().unwrap(),
        name,
    )
}

/// A TLS shouting server on a free port of the host's sockets: its port,
/// and the errors its connections end with.
async fn serve_on_sockets(
    server_files: Baked,
) -> (u16, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let port = free_port();
    let (tx, errors) = tokio::sync::mpsc::unbounded_channel();
    let server = Server::new(
        Unix.socket_stack().unwrap(),
        server_files,
        Unix.wall_clock().unwrap(),
    );
    tokio::spawn(shouting_server(server, port, tx));
    tokio::time::sleep(Duration::from_millis(200)).await;
    (port, errors)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_client_and_server_talk_over_host_sockets() {
    let (dir, server_files) = pki();
    let (port, mut errors) = serve_on_sockets(server_files).await;

    let c = client(roots(&dir), "localhost");
    let mut flow = c.connect(loopback(port)).await.unwrap();
    assert_eq!(round_trip(&mut flow, b"hello, tls").await, b"HELLO, TLS");
    assert!(errors.try_recv().is_err(), "a clean session ends cleanly");
    // Closed for writing means closed: nothing is sent after close_notify,
    // and closing again is harmless.
    assert!(matches!(
        flow.write(b"late").await,
        Err(libos::FlowError::Closed)
    ));
    flow.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_not_who_the_client_expects_is_refused() {
    let (dir, server_files) = pki();
    let (port, _errors) = serve_on_sockets(server_files).await;

    let wrong = client(roots(&dir), "bank.example");
    match wrong.connect(loopback(port)).await {
        Err(NetError::Tls(why)) => assert!(why.contains("certificate is not valid"), "{why}"),
        Err(e) => panic!("expected a certificate error, got {e}"),
        Ok(_) => panic!("a server without bank.example's certificate was trusted"),
    }
    // A CA the server's chain does not lead to.
    let (other, _) = pki();
    match client(roots(&other), "localhost")
        .connect(loopback(port))
        .await
    {
        Err(NetError::Tls(why)) => assert!(why.contains("certificate is not valid"), "{why}"),
        Err(e) => panic!("expected a certificate error, got {e}"),
        Ok(_) => panic!("a certificate from an unknown CA was trusted"),
    }
    // The server goes on serving.
    let mut flow = client(roots(&dir), "127.0.0.1")
        .connect(loopback(port))
        .await
        .unwrap();
    assert_eq!(round_trip(&mut flow, b"still here").await, b"STILL HERE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_vanishing_clients_do_not_stop_the_server() {
    let (dir, server_files) = pki();
    let (port, mut errors) = serve_on_sockets(server_files).await;

    // Plain HTTP to a TLS port: the session fails with a reason, and the
    // client is told (an alert) or hung up on, not left waiting.
    let reply = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(loopback(port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut reply = Vec::new();
        s.read_to_end(&mut reply)
            .expect("the server hangs up in time");
        reply
    })
    .await
    .unwrap();
    assert!(
        reply.is_empty() || reply[0] == 0x15,
        "an alert or nothing: {reply:?}"
    );
    let why = tokio::time::timeout(Duration::from_secs(10), errors.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(why.contains("does not speak TLS"), "{why}");

    // A record header announcing more than TLS allows, then silence.
    tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(loopback(port)).unwrap();
        s.write_all(&[0x16, 0x03, 0x01, 0xff, 0xff]).unwrap();
        s.write_all(&[0u8; 64]).unwrap();
    })
    .await
    .unwrap();
    // Clients that connect and vanish, before and during the handshake.
    for _ in 0..5 {
        drop(TcpStream::connect(loopback(port)).unwrap());
    }

    let mut flow = client(roots(&dir), "localhost")
        .connect(loopback(port))
        .await
        .unwrap();
    assert_eq!(round_trip(&mut flow, b"after them").await, b"AFTER THEM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_its_certificate_says_which_file_is_missing() {
    let empty = libos::kv::Mem::new();
    let server = Server::new(
        Unix.socket_stack().unwrap(),
        empty,
        Unix.wall_clock().unwrap(),
    );
    match server.listen(free_port()).await {
        Err(e) => assert_eq!(
            e.to_string(),
            "TLS: tls::server: the store has no `cert.pem`"
        ),
        Ok(_) => panic!("listening without a certificate"),
    }
    let (dir, _) = pki();
    std::fs::write(dir.path().join("key.pem"), "not a key").unwrap();
    let server = Server::new(
        Unix.socket_stack().unwrap(),
        store(dir.path(), &["cert.pem", "key.pem"]),
        Unix.wall_clock().unwrap(),
    );
    match server.listen(free_port()).await {
        Err(e) => assert!(
            e.to_string().contains("`key.pem` holds no PEM private key"),
            "{e}"
        ),
        Ok(_) => panic!("listening without a key"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_runs_over_stack_direct_and_moves_a_megabyte_intact() {
    let (dir, server_files) = pki();
    let (a, b) = pair();
    let (tx, _errors) = tokio::sync::mpsc::unbounded_channel();
    let server = Server::new(direct(a, 1), server_files, Unix.wall_clock().unwrap());
    tokio::spawn(shouting_server(server, 443, tx));
    let c = Client::new(
        direct(b, 2),
        roots(&dir),
        Unix.wall_clock().unwrap(),
        "10.0.0.1",
    );
    let data: Vec<u8> = (0..1 << 20).map(|i: u32| b'a' + (i % 26) as u8).collect();
    let got = tokio::time::timeout(Duration::from_secs(60), async {
        let mut flow = c
            .connect(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 443))
            .await
            .unwrap();
        round_trip(&mut flow, &data).await
    })
    .await
    .expect("a megabyte through TLS over smoltcp within a minute");
    assert_eq!(got, data.to_ascii_uppercase());
}
