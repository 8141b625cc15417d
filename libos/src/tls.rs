//! TLS as devices: rustls (TLS 1.3 only) with a pure-Rust crypto provider
//! (RustCrypto), so the same code runs in-process and in a unikernel.
//!
//! - [`Server`] wraps a [`Stack`]: every connection its listeners accept is
//!   a TLS session, so an application written against `Stack` serves HTTPS
//!   unchanged (`tls::server(stack, certs)` in a graph).
//! - [`Client`] wraps a [`Stack`]: `connect` returns a flow whose handshake
//!   is done and whose server proved to be `name` (`tls::client`).
//! - [`TlsFlow`] is TLS over any [`Flow`], for applications that wrap flows
//!   themselves ([`TlsFlow::server`], [`TlsFlow::client`]).
//!
//! Certificates and keys come from a [`KvRo`]: `cert.pem` (the chain, leaf
//! first) and `key.pem` (the leaf's PKCS#8 private key; ECDSA P-256/P-384,
//! Ed25519 or RSA) for a server; `ca.pem` (the roots to trust) for a client.
//! `kv::baked("tls")` bakes them into an image. They are read at every
//! `listen`, so replacing them takes effect on the next listener.
//!
//! Randomness comes from the platform's entropy source through `getrandom`
//! (the guest runtime registers its own); certificate validity is checked
//! against the [`WallClock`] the device is given.
use crate::net::{Accepted, Listener, NetError, UdpSocket};
use crate::{BoxFuture, Flow, FlowError, KvRo, Stack, WallClock};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::net::SocketAddrV4;
use rustls::client::UnbufferedClientConnection;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::UnbufferedServerConnection;
use rustls::time_provider::TimeProvider;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// The most plaintext encrypted into one record.
const MAX_PLAINTEXT: usize = 16 * 1024;
/// The most ciphertext buffered unprocessed. rustls keeps the records of
/// a handshake message in the caller's buffer until the whole message is
/// in, and a message may be 64 KiB (a long certificate chain): that, its
/// records' headers, and a record of room.
const MAX_INCOMING: usize = 88 * 1024;
/// The most ciphertext read from the peer at once.
const READ_CHUNK: usize = 16 * 1024;

/// The crypto provider: TLS 1.3 suites and key exchanges from RustCrypto.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls_rustcrypto::provider())
}

/// Tells rustls the time, for certificate validity, from a [`WallClock`].
struct Clock<C>(C);

impl<C> fmt::Debug for Clock<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WallClock")
    }
}

impl<C: WallClock> TimeProvider for Clock<C> {
    fn current_time(&self) -> Option<UnixTime> {
        Some(UnixTime::since_unix_epoch(
            core::time::Duration::from_nanos(self.0.now_unix_ns()),
        ))
    }
}

/// A short, static reason for a rustls error: what a user can act on.
fn reason(e: &rustls::Error) -> &'static str {
    use rustls::Error as E;
    match e {
        E::InvalidMessage(_) => "the peer does not speak TLS (malformed record)",
        E::InvalidCertificate(_) => "the peer's certificate is not valid",
        E::NoCertificatesPresented => "the peer presented no certificate",
        E::AlertReceived(_) => "the peer ended the handshake with an alert",
        E::PeerIncompatible(_) => "the peer supports no TLS 1.3 suite in common",
        E::PeerMisbehaved(_) => "the peer broke the TLS protocol",
        E::DecryptError => "a record failed to decrypt",
        E::NoApplicationProtocol => "no application protocol in common",
        E::InappropriateMessage { .. } | E::InappropriateHandshakeMessage { .. } => {
            "the peer sent a message out of turn"
        }
        _ => "the TLS session failed",
    }
}

/// The PEM file `key` of `store`.
async fn pem(store: &impl KvRo, key: &str, missing: &'static str) -> Result<Vec<u8>, NetError> {
    store.get(key).await.map_err(|_| NetError::Tls(missing))
}

/// The certificates in a PEM file, in order.
fn certificates(pem: &[u8], none: &'static str) -> Result<Vec<CertificateDer<'static>>, NetError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| NetError::Tls(none))?;
    if certs.is_empty() {
        return Err(NetError::Tls(none));
    }
    Ok(certs)
}

/// A server configuration from `cert.pem` and `key.pem` in `certs`.
pub async fn server_config(
    certs: &impl KvRo,
    clock: impl WallClock + 'static,
) -> Result<Arc<ServerConfig>, NetError> {
    let chain = certificates(
        &pem(
            certs,
            "cert.pem",
            "tls::server: the store has no `cert.pem`",
        )
        .await?,
        "tls::server: `cert.pem` holds no PEM certificate",
    )?;
    let key = PrivateKeyDer::from_pem_slice(
        &pem(certs, "key.pem", "tls::server: the store has no `key.pem`").await?,
    )
    .map_err(|_| NetError::Tls("tls::server: `key.pem` holds no PEM private key"))?;
    let config = ServerConfig::builder_with_details(provider(), Arc::new(Clock(clock)))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|_| NetError::Tls("tls::server: the provider lacks TLS 1.3"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|_| {
            NetError::Tls(
                "tls::server: `key.pem` is of no supported type or does not match `cert.pem`",
            )
        })?;
    Ok(Arc::new(config))
}

/// A client configuration trusting the roots in `ca.pem` of `roots`.
pub async fn client_config(
    roots: &impl KvRo,
    clock: impl WallClock + 'static,
) -> Result<Arc<ClientConfig>, NetError> {
    let mut store = RootCertStore::empty();
    for cert in certificates(
        &pem(roots, "ca.pem", "tls::client: the store has no `ca.pem`").await?,
        "tls::client: `ca.pem` holds no PEM certificate",
    )? {
        store
            .add(cert)
            .map_err(|_| NetError::Tls("tls::client: a certificate of `ca.pem` is malformed"))?;
    }
    let config = ClientConfig::builder_with_details(provider(), Arc::new(Clock(clock)))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|_| NetError::Tls("tls::client: the provider lacks TLS 1.3"))?
        .with_root_certificates(store)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Either side of a connection, behind one interface.
enum Conn {
    Client(UnbufferedClientConnection),
    Server(UnbufferedServerConnection),
}

/// What one step of the state machine asks of the flow.
enum Step {
    /// Something was done in memory; step again.
    Again,
    /// The handshake is done and nothing is pending: the goal can be met.
    Ready,
    /// More ciphertext from the peer is needed.
    NeedInput,
    /// The peer sent close_notify: it sends nothing more.
    PeerClosed,
    /// Both sides sent close_notify.
    Closed,
}

/// What a caller wants from [`TlsFlow::drive`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum Goal {
    Handshake,
    Read,
    Write,
    Close,
}

/// Grows `out` until `f` can write into its spare room, then keeps what it
/// wrote.
fn append<E>(
    out: &mut Vec<u8>,
    mut f: impl FnMut(&mut [u8]) -> Result<usize, E>,
    needs: impl Fn(&E) -> Option<usize>,
) -> Result<(), E> {
    let used = out.len();
    let mut room = 512;
    loop {
        out.resize(used + room, 0);
        match f(&mut out[used..]) {
            Ok(n) => {
                out.truncate(used + n);
                return Ok(());
            }
            Err(e) => match needs(&e) {
                Some(size) if size > room => room = size,
                _ => {
                    out.truncate(used);
                    return Err(e);
                }
            },
        }
    }
}

/// Handles one state: encodes handshake records into `out`, copies received
/// plaintext into `plain`, encrypts `send` (or a close_notify) once the
/// handshake is done. Returns the bytes to drop from the incoming buffer,
/// the step, and how much of `send` went into `out`.
fn handle<Data>(
    status: UnbufferedStatus<'_, '_, Data>,
    goal: Goal,
    send: &[u8],
    out: &mut Vec<u8>,
    plain: &mut Vec<u8>,
) -> (usize, Result<(Step, usize), rustls::Error>) {
    let UnbufferedStatus { mut discard, state } = status;
    let step = (|| {
        Ok(match state? {
            ConnectionState::ReadTraffic(mut records) => {
                while let Some(record) = records.next_record() {
                    let record = record?;
                    discard += record.discard;
                    plain.extend_from_slice(record.payload);
                }
                (Step::Again, 0)
            }
            ConnectionState::EncodeTlsData(mut encode) => {
                append(
                    out,
                    |buf| encode.encode(buf),
                    |e| match e {
                        EncodeError::InsufficientSize(s) => Some(s.required_size),
                        _ => None,
                    },
                )
                .map_err(|_| rustls::Error::General("encoding a handshake record".into()))?;
                (Step::Again, 0)
            }
            ConnectionState::TransmitTlsData(transmit) => {
                // `out` is written to the peer before the flow next waits
                // for it, so the data counts as sent from here on.
                transmit.done();
                (Step::Again, 0)
            }
            ConnectionState::BlockedHandshake => (Step::NeedInput, 0),
            ConnectionState::PeerClosed => (Step::PeerClosed, 0),
            ConnectionState::Closed => (Step::Closed, 0),
            ConnectionState::WriteTraffic(mut write) => match goal {
                Goal::Write => {
                    let n = send.len().min(MAX_PLAINTEXT);
                    append(out, |buf| write.encrypt(&send[..n], buf), needs_room)
                        .map_err(|_| rustls::Error::EncryptError)?;
                    (Step::Ready, n)
                }
                Goal::Close => {
                    append(out, |buf| write.queue_close_notify(buf), needs_room)
                        .map_err(|_| rustls::Error::EncryptError)?;
                    (Step::Ready, 0)
                }
                Goal::Handshake | Goal::Read => (Step::Ready, 0),
            },
            // Early data is never accepted (the server's configuration
            // leaves it off); anything new is a state this code cannot use.
            _ => return Err(rustls::Error::General("unexpected TLS state".into())),
        })
    })();
    (discard, step)
}

fn needs_room(e: &EncryptError) -> Option<usize> {
    match e {
        EncryptError::InsufficientSize(s) => Some(s.required_size),
        _ => None,
    }
}

/// A TLS session over a flow. The handshake runs on first use (or in
/// [`TlsFlow::handshake`]); reads return plaintext, writes encrypt.
pub struct TlsFlow<F> {
    inner: F,
    conn: Conn,
    /// Ciphertext received and not yet processed.
    incoming: Vec<u8>,
    /// Ciphertext to send.
    out: Vec<u8>,
    /// Plaintext received and not yet read, from `plain_at` on.
    plain: Vec<u8>,
    plain_at: usize,
    /// Where ciphertext is read before it joins `incoming`, so a read that
    /// is abandoned midway leaves `incoming` as it was.
    scratch: Vec<u8>,
    /// The peer sent close_notify (or closed its flow).
    peer_done: bool,
    /// This side sent close_notify: it writes nothing more.
    closed: bool,
    /// The session failed; every later call fails the same way.
    failed: Option<&'static str>,
}

impl<F: Flow> TlsFlow<F> {
    fn new(inner: F, conn: Conn) -> Self {
        Self {
            inner,
            conn,
            incoming: Vec::new(),
            out: Vec::new(),
            plain: Vec::new(),
            plain_at: 0,
            scratch: Vec::new(),
            peer_done: false,
            closed: false,
            failed: None,
        }
    }

    /// The server side of a session over `inner`.
    pub fn server(inner: F, config: Arc<ServerConfig>) -> Result<Self, FlowError> {
        let conn = UnbufferedServerConnection::new(config)
            .map_err(|_| FlowError::Protocol("cannot start a TLS server session"))?;
        Ok(Self::new(inner, Conn::Server(conn)))
    }

    /// The client side of a session over `inner`, expecting the server to
    /// prove it is `name` (a DNS name or an IP address).
    pub fn client(inner: F, config: Arc<ClientConfig>, name: &str) -> Result<Self, FlowError> {
        let name = ServerName::try_from(String::from(name))
            .map_err(|_| FlowError::Protocol("the server name is neither a DNS name nor an IP"))?;
        let conn = UnbufferedClientConnection::new(config, name)
            .map_err(|_| FlowError::Protocol("cannot start a TLS client session"))?;
        Ok(Self::new(inner, Conn::Client(conn)))
    }

    /// Completes the handshake, if it is not done yet.
    pub async fn handshake(&mut self) -> Result<(), FlowError> {
        self.drive(Goal::Handshake, &[]).await.map(|_| ())
    }

    /// Runs the state machine until `goal` is met; returns how much of
    /// `send` was taken.
    async fn drive(&mut self, goal: Goal, send: &[u8]) -> Result<usize, FlowError> {
        if let Some(why) = self.failed {
            return Err(FlowError::Protocol(why));
        }
        loop {
            if goal == Goal::Read && self.plain_at < self.plain.len() {
                self.flush().await?;
                return Ok(0);
            }
            let (discard, step) = self.step(goal, send);
            self.incoming.drain(..discard);
            let (step, taken) = match step {
                Ok(s) => s,
                Err(e) => return Err(self.fail(&e).await),
            };
            match step {
                Step::Again => {}
                Step::Ready if goal == Goal::Read => {
                    if self.peer_done {
                        return Ok(0);
                    }
                    self.flush().await?;
                    // A peer that closes its flow without close_notify ends
                    // the stream (as most HTTP clients do), unless it stops
                    // inside a record: that is a truncation.
                    if !self.fill().await? {
                        if !self.incoming.is_empty() {
                            return Err(self.failure("the peer closed inside a TLS record"));
                        }
                        self.peer_done = true;
                    }
                }
                Step::Ready => {
                    self.flush().await?;
                    if goal == Goal::Close {
                        self.closed = true;
                        self.inner.close().await?;
                    }
                    return Ok(taken);
                }
                Step::NeedInput => {
                    self.flush().await?;
                    if !self.fill().await? {
                        return Err(FlowError::Reset);
                    }
                }
                Step::PeerClosed => self.peer_done = true,
                Step::Closed => {
                    self.flush().await?;
                    return match goal {
                        Goal::Write => Err(FlowError::Closed),
                        _ => Ok(0),
                    };
                }
            }
        }
    }

    fn step(&mut self, goal: Goal, send: &[u8]) -> (usize, Result<(Step, usize), rustls::Error>) {
        let (out, plain) = (&mut self.out, &mut self.plain);
        if self.plain_at == plain.len() {
            plain.clear();
            self.plain_at = 0;
        }
        let incoming = &mut self.incoming;
        match &mut self.conn {
            Conn::Client(c) => handle(c.process_tls_records(incoming), goal, send, out, plain),
            Conn::Server(c) => handle(c.process_tls_records(incoming), goal, send, out, plain),
        }
    }

    /// Records the failure, sends the alert rustls queued for the peer (if
    /// it can), and returns the error every later call returns too.
    async fn fail(&mut self, e: &rustls::Error) -> FlowError {
        let why = reason(e);
        self.failed = Some(why);
        // One more step encodes the alert rustls queued. Only one: a
        // further step would parse the bad input again, and rustls asserts
        // that it never sends a second fatal alert (a panic, found by the
        // garbage test).
        let (discard, _) = self.step(Goal::Handshake, &[]);
        self.incoming.drain(..discard.min(self.incoming.len()));
        let _ = self.flush().await;
        FlowError::Protocol(why)
    }

    /// Marks the session failed for `why`.
    fn failure(&mut self, why: &'static str) -> FlowError {
        self.failed = Some(why);
        FlowError::Protocol(why)
    }

    /// Writes everything in `out` to the peer, dropping what is written as
    /// it goes (an abandoned flush sends nothing twice). Records are
    /// numbered: after a failed write the session cannot go on.
    async fn flush(&mut self) -> Result<(), FlowError> {
        while !self.out.is_empty() {
            match self.inner.write(&self.out).await {
                Ok(0) => return Err(self.failure("the connection closed while sending")),
                Ok(n) => drop(self.out.drain(..n)),
                Err(e) => {
                    self.failed = Some("the connection failed while sending");
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Reads more ciphertext from the peer; false when its flow ended.
    async fn fill(&mut self) -> Result<bool, FlowError> {
        if self.incoming.len() >= MAX_INCOMING {
            return Err(self.failure("the peer sent a message larger than TLS allows"));
        }
        let room = READ_CHUNK.min(MAX_INCOMING - self.incoming.len());
        self.scratch.resize(room, 0);
        let n = self.inner.read(&mut self.scratch).await?;
        self.incoming.extend_from_slice(&self.scratch[..n]);
        Ok(n > 0)
    }
}

impl<F: Flow> Flow for TlsFlow<F> {
    fn read<'a>(&'a mut self, buf: &'a mut [u8]) -> BoxFuture<'a, Result<usize, FlowError>> {
        Box::pin(async move {
            self.drive(Goal::Read, &[]).await?;
            let available = &self.plain[self.plain_at..];
            let n = available.len().min(buf.len());
            buf[..n].copy_from_slice(&available[..n]);
            self.plain_at += n;
            Ok(n)
        })
    }

    fn write<'a>(&'a mut self, data: &'a [u8]) -> BoxFuture<'a, Result<usize, FlowError>> {
        Box::pin(async move {
            if self.closed {
                return Err(FlowError::Closed);
            }
            if data.is_empty() {
                return Ok(0);
            }
            self.drive(Goal::Write, data).await
        })
    }

    fn close(&mut self) -> BoxFuture<'_, Result<(), FlowError>> {
        Box::pin(async move {
            if self.closed {
                return Ok(());
            }
            self.drive(Goal::Close, &[]).await.map(|_| ())
        })
    }
}

/// `tls::server`: a stack whose listeners hand out TLS sessions.
pub struct Server<S, K, C> {
    stack: S,
    certs: K,
    clock: Arc<C>,
}

impl<S: Stack, K: KvRo, C: WallClock + 'static> Server<S, K, C> {
    /// TLS over `stack`, with the certificate and key in `certs`.
    pub fn new(stack: S, certs: K, clock: C) -> Self {
        Self {
            stack,
            certs,
            clock: Arc::new(clock),
        }
    }
}

/// A listener whose connections are TLS sessions; each handshake runs on
/// the connection's first read or write, so a slow or hostile client holds
/// up only its own connection.
struct ServerListener {
    inner: Box<dyn Listener>,
    config: Arc<ServerConfig>,
}

impl Listener for ServerListener {
    fn accept(&mut self) -> BoxFuture<'_, Result<Accepted, NetError>> {
        Box::pin(async move {
            let (flow, peer) = self.inner.accept().await?;
            let tls = TlsFlow::server(flow, self.config.clone())
                .map_err(|_| NetError::Tls("cannot start a TLS server session"))?;
            Ok((Box::new(tls) as Box<dyn Flow>, peer))
        })
    }
}

impl<S: Stack, K: KvRo, C: WallClock + 'static> Stack for Server<S, K, C> {
    fn listen(&self, port: u16) -> BoxFuture<'_, Result<Box<dyn Listener>, NetError>> {
        Box::pin(async move {
            let config = server_config(&self.certs, self.clock.clone()).await?;
            let inner = self.stack.listen(port).await?;
            Ok(Box::new(ServerListener { inner, config }) as Box<dyn Listener>)
        })
    }

    fn connect(&self, addr: SocketAddrV4) -> BoxFuture<'_, Result<Box<dyn Flow>, NetError>> {
        self.stack.connect(addr)
    }

    fn udp(&self, port: u16) -> BoxFuture<'_, Result<Box<dyn UdpSocket>, NetError>> {
        self.stack.udp(port)
    }

    fn describe(&self) -> Vec<String> {
        self.stack.describe()
    }
}

/// `tls::client`: a stack whose connections are TLS sessions with servers
/// that prove to be `name`, by a chain to a root in `ca.pem`.
pub struct Client<S, K, C> {
    stack: S,
    roots: K,
    clock: Arc<C>,
    name: String,
}

impl<S: Stack, K: KvRo, C: WallClock + 'static> Client<S, K, C> {
    /// TLS over `stack`, trusting the roots in `roots` and expecting `name`.
    pub fn new(stack: S, roots: K, clock: C, name: &str) -> Self {
        Self {
            stack,
            roots,
            clock: Arc::new(clock),
            name: name.into(),
        }
    }
}

impl<S: Stack, K: KvRo, C: WallClock + 'static> Stack for Client<S, K, C> {
    fn listen(&self, port: u16) -> BoxFuture<'_, Result<Box<dyn Listener>, NetError>> {
        self.stack.listen(port)
    }

    fn udp(&self, port: u16) -> BoxFuture<'_, Result<Box<dyn UdpSocket>, NetError>> {
        self.stack.udp(port)
    }

    fn connect(&self, addr: SocketAddrV4) -> BoxFuture<'_, Result<Box<dyn Flow>, NetError>> {
        Box::pin(async move {
            let config = client_config(&self.roots, self.clock.clone()).await?;
            let flow = self.stack.connect(addr).await?;
            let mut tls = TlsFlow::client(flow, config, &self.name).map_err(|e| match e {
                FlowError::Protocol(why) => NetError::Tls(why),
                _ => NetError::Tls("cannot start a TLS client session"),
            })?;
            tls.handshake().await.map_err(|e| match e {
                FlowError::Protocol(why) => NetError::Tls(why),
                FlowError::Reset | FlowError::Closed => {
                    NetError::Tls("the server closed the connection during the handshake")
                }
                FlowError::Io(e) => NetError::Io(e),
            })?;
            Ok(Box::new(tls) as Box<dyn Flow>)
        })
    }

    fn describe(&self) -> Vec<String> {
        self.stack.describe()
    }
}
