//! `nym new`: a project from a template. The templates are the examples in
//! the repository, so every template is built and tested as an example.
//!
//! An https project gets key material of its own, made here and never
//! shipped in nym: a CA and a server certificate it signs ([`certs`]).
use nym_driver::cargo::nym_src;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// A project template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Template {
    /// Console, clock and sleep: a greeting `count` times.
    Hello,
    /// A key-value store whose counter survives restarts.
    Kv,
    /// A TCP echo server on port 7.
    Echo,
    /// A web server on port 8080: a page, baked files and a store.
    Http,
    /// The web server over TLS on port 8443, with a CA and certificate of its own.
    Https,
    /// A DNS server answering from a baked zone, over UDP and TCP on port 53.
    Dns,
}

impl Template {
    /// The example's crate name, as its graph writes jobs.
    fn example(self) -> &'static str {
        match self {
            Template::Hello => "hello",
            Template::Kv => "kv",
            Template::Echo => "echo",
            Template::Http => "http",
            Template::Https => "https",
            Template::Dns => "dns",
        }
    }

    /// Files beyond the graph and `src/lib.rs`, relative to the project.
    fn extra(self) -> &'static [(&'static str, &'static str)] {
        const WWW: &[(&str, &str)] = &[
            (
                "www/hello.txt",
                include_str!("../examples/http/www/hello.txt"),
            ),
            (
                "www/style.css",
                include_str!("../examples/http/www/style.css"),
            ),
        ];
        // The application's other modules, and its zone.
        const DNS: &[(&str, &str)] = &[
            (
                "src/answer.rs",
                include_str!("../examples/dns/src/answer.rs"),
            ),
            ("src/wire.rs", include_str!("../examples/dns/src/wire.rs")),
            ("src/zone.rs", include_str!("../examples/dns/src/zone.rs")),
            (
                "src/resolve.rs",
                include_str!("../examples/dns/src/resolve.rs"),
            ),
            ("resolver.nym", include_str!("../examples/dns/resolver.nym")),
            ("sim.toml", include_str!("../examples/dns/sim.toml")),
            (
                "zone/example.test.zone",
                include_str!("../examples/dns/zone/example.test.zone"),
            ),
        ];
        match self {
            // https's tls/ is made for each project: `certs::Certs`.
            Template::Http | Template::Https => WWW,
            Template::Dns => DNS,
            _ => &[],
        }
    }

    /// The project's `.gitignore`.
    fn gitignore(self) -> &'static str {
        match self {
            // Its keys stay on the machine that made them (README, TLS).
            Template::Https => "/target\n/data\n/kv.img\n/ca.key\n/tls/key.pem\n",
            _ => "/target\n/data\n/kv.img\n",
        }
    }

    fn files(self) -> (&'static str, &'static str) {
        match self {
            Template::Hello => (
                include_str!("../examples/hello/unikernel.nym"),
                include_str!("../examples/hello/src/lib.rs"),
            ),
            Template::Kv => (
                include_str!("../examples/kv/unikernel.nym"),
                include_str!("../examples/kv/src/lib.rs"),
            ),
            Template::Echo => (
                include_str!("../examples/echo/unikernel.nym"),
                include_str!("../examples/echo/src/lib.rs"),
            ),
            Template::Http => (
                include_str!("../examples/http/unikernel.nym"),
                include_str!("../examples/http/src/lib.rs"),
            ),
            // The same application as http; only the graph differs.
            Template::Https => (
                include_str!("../examples/https/unikernel.nym"),
                include_str!("../examples/http/src/lib.rs"),
            ),
            Template::Dns => (
                include_str!("../examples/dns/unikernel.nym"),
                include_str!("../examples/dns/src/lib.rs"),
            ),
        }
    }
}

/// Why a project could not be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NewError {
    /// The name is not a crate name.
    #[error("`{0}` is not a valid project name: use lowercase letters, digits, `-` and `_`, starting with a letter")]
    BadName(String),
    /// The directory exists.
    #[error("{} already exists; pick another name or remove it", .0.display())]
    Exists(PathBuf),
    /// The https template's certificates could not be made.
    #[error("cannot make the project's TLS certificates: {0}")]
    Certs(#[from] certs::CertsError),
    /// Writing failed.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Creates project `name` in `parent` from `template`; returns its directory.
pub(crate) fn create(parent: &Path, name: &str, template: Template) -> Result<PathBuf, NewError> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        return Err(NewError::BadName(name.into()));
    }
    let dir = parent.join(name);
    if dir.exists() {
        return Err(NewError::Exists(dir));
    }
    let rust_name = name.replace('-', "_");
    let unikernel = name.replace('_', "-");
    let (graph, lib) = template.files();
    let example = template.example();
    let graph = graph
        .replace(&format!("job {example}::"), &format!("job {rust_name}::"))
        .replace(
            &format!("register(\"{example}\""),
            &format!("register(\"{unikernel}\""),
        );
    let manifest = format!(
        "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n\
         [dependencies]\n{}\n\
         # A project of its own, even inside another Cargo workspace.\n[workspace]\n",
        nym_driver::cargo::path_dep("libos", &nym_src().join("libos"), "").trim_end()
    );
    let mut files: Vec<File> = [
        ("Cargo.toml", manifest),
        ("unikernel.nym", graph),
        ("src/lib.rs", lib.to_owned()),
        (".gitignore", template.gitignore().to_owned()),
    ]
    .into_iter()
    .chain(template.extra().iter().map(|&(p, t)| {
        // Another graph of the template's (dns's resolver.nym) names the
        // crate's jobs as the main one does.
        let text = match p.ends_with(".nym") {
            true => t.replace(&format!("job {example}::"), &format!("job {rust_name}::")),
            false => t.to_owned(),
        };
        (p, text)
    }))
    .map(|(rel, text)| File::public(rel, text))
    .collect();
    if template == Template::Https {
        let made = certs::Certs::new(name)?;
        files.extend([
            File::public("tls/ca.pem", made.ca_pem),
            File::public("tls/cert.pem", made.cert_pem),
            File::private("tls/key.pem", made.key_pem),
            // Outside tls/: everything there is baked into the program.
            File::private("ca.key", made.ca_key_pem),
        ]);
    }
    for file in files {
        let path = dir.join(file.rel);
        file.write(&path)
            .map_err(|source| NewError::Write { path, source })?;
    }
    Ok(dir)
}

/// A file of a new project.
struct File {
    /// Where, relative to the project.
    rel: &'static str,
    text: String,
    /// A private key: readable by its owner only (mode 0600), from the
    /// moment it exists.
    private: bool,
}

impl File {
    fn public(rel: &'static str, text: String) -> Self {
        File {
            rel,
            text,
            private: false,
        }
    }

    fn private(rel: &'static str, text: String) -> Self {
        File {
            rel,
            text,
            private: true,
        }
    }

    /// Writes the file at `path`, which must not exist yet.
    fn write(&self, path: &Path) -> std::io::Result<()> {
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p)?;
        }
        let mode = if self.private { 0o600 } else { 0o666 };
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)?
            .write_all(self.text.as_bytes())
    }
}

/// The https template's key material, made for each project: a CA, and a
/// server certificate it signs for the names the template serves on.
///
/// rcgen writes the certificates; it is built without a crypto backend of
/// its own, and signs through [`rcgen::SigningKey`] with RustCrypto's P-256,
/// the implementation `libos::tls` already uses.
mod certs {
    use p256::ecdsa::{DerSignature, SigningKey};
    use p256::pkcs8::{EncodePrivateKey, LineEnding};
    use rand_core::{OsRng, RngCore};
    use rcgen::{
        BasicConstraints, CertificateParams, CidrSubnet, DnType, ExtendedKeyUsagePurpose,
        GeneralSubtree, IsCa, Issuer, KeyIdMethod, KeyUsagePurpose, NameConstraints, SanType,
        SerialNumber,
    };
    use sha2::{Digest, Sha256};
    use std::net::{IpAddr, Ipv4Addr};
    use time::{Duration, OffsetDateTime};

    /// How long the server certificate is valid: a year, below the 398 days
    /// browsers accept for a server certificate (and that scanners flag).
    pub(crate) const SERVER_DAYS: i64 = 365;
    /// How long the CA is valid: five years, so its key (kept in `ca.key`)
    /// can sign a new server certificate when the first expires.
    pub(crate) const CA_DAYS: i64 = 5 * 365;
    /// Random bytes in a serial number: 126 bits of them (the top two bits
    /// are fixed), where CA/Browser Forum rules ask for at least 64.
    const SERIAL_BYTES: usize = 16;
    /// The guest's address on QEMU's user network and nym's monitor.
    const GUEST_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);

    /// Why the certificates could not be made.
    #[derive(Debug, thiserror::Error)]
    pub(crate) enum CertsError {
        /// The system's random number generator failed.
        #[error("no randomness from the system: {0}")]
        // (Neither this error nor PKCS#8's is a `std::error::Error` unless
        // their crates' `std` features are on; their text is what matters.)
        Random(rand_core::Error),
        /// rcgen refused the parameters or the signature.
        #[error("{0}")]
        Rcgen(#[from] rcgen::Error),
        /// A key could not be encoded as PKCS#8.
        #[error("cannot encode a key as PKCS#8: {0}")]
        Pkcs8(p256::pkcs8::Error),
    }

    /// A CA and a server certificate signed by it, in PEM.
    pub(crate) struct Certs {
        /// The CA's certificate: what clients trust.
        pub(crate) ca_pem: String,
        /// The CA's PKCS#8 private key.
        pub(crate) ca_key_pem: String,
        /// The server certificate, for localhost, 127.0.0.1 and 10.0.2.15.
        pub(crate) cert_pem: String,
        /// The server's PKCS#8 private key (ECDSA P-256).
        pub(crate) key_pem: String,
    }

    impl Certs {
        /// New keys and certificates for project `project`.
        pub(crate) fn new(project: &str) -> Result<Self, CertsError> {
            // Backdated an hour, for clocks a little behind the host's.
            let now = OffsetDateTime::now_utc() - Duration::hours(1);

            let ca_key = Key::generate()?;
            let mut ca = CertificateParams::default();
            ca.distinguished_name = rcgen::DistinguishedName::new();
            ca.distinguished_name
                .push(DnType::CommonName, format!("nym CA for {project}"));
            ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
            ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            // Whoever trusts this CA trusts it for these names only, and
            // its key, kept in the project, can sign for nothing else.
            ca.name_constraints = Some(NameConstraints {
                permitted_subtrees: vec![
                    GeneralSubtree::DnsName("localhost".into()),
                    GeneralSubtree::IpAddress(host(Ipv4Addr::LOCALHOST)),
                    GeneralSubtree::IpAddress(host(GUEST_IP)),
                ],
                excluded_subtrees: Vec::new(),
            });
            ca.not_before = now;
            ca.not_after = now + Duration::days(CA_DAYS);
            ca.serial_number = Some(serial()?);
            ca.key_identifier_method = KeyIdMethod::PreSpecified(ca_key.identifier());
            let ca_cert = ca.self_signed(&ca_key)?;

            let key = Key::generate()?;
            let mut leaf = CertificateParams::default();
            leaf.distinguished_name = rcgen::DistinguishedName::new();
            leaf.distinguished_name
                .push(DnType::CommonName, "localhost");
            leaf.subject_alt_names = vec![
                SanType::DnsName("localhost".try_into()?),
                SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                SanType::IpAddress(IpAddr::V4(GUEST_IP)),
            ];
            leaf.is_ca = IsCa::ExplicitNoCa;
            leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            leaf.use_authority_key_identifier_extension = true;
            leaf.not_before = now;
            leaf.not_after = now + Duration::days(SERVER_DAYS);
            leaf.serial_number = Some(serial()?);
            leaf.key_identifier_method = KeyIdMethod::PreSpecified(key.identifier());
            let cert = leaf.signed_by(&key, &Issuer::from_params(&ca, &ca_key))?;

            Ok(Certs {
                ca_pem: ca_cert.pem(),
                ca_key_pem: ca_key.pkcs8_pem()?,
                cert_pem: cert.pem(),
                key_pem: key.pkcs8_pem()?,
            })
        }
    }

    /// The subnet of one IPv4 address.
    fn host(ip: Ipv4Addr) -> CidrSubnet {
        CidrSubnet::V4(ip.octets(), [255; 4])
    }

    /// A positive serial number of [`SERIAL_BYTES`] bytes, random but for
    /// its top two bits (01: positive, and no leading zero byte to drop).
    fn serial() -> Result<SerialNumber, CertsError> {
        let mut bytes = [0; SERIAL_BYTES];
        OsRng
            .try_fill_bytes(&mut bytes)
            .map_err(CertsError::Random)?;
        bytes[0] = bytes[0] & 0x3f | 0x40;
        Ok(SerialNumber::from_slice(&bytes))
    }

    /// An ECDSA P-256 key pair, as rcgen signs with it.
    struct Key {
        secret: SigningKey,
        /// The public key as an uncompressed SEC1 point.
        public: Vec<u8>,
    }

    impl Key {
        fn generate() -> Result<Self, CertsError> {
            let secret = loop {
                let mut bytes = p256::FieldBytes::default();
                OsRng
                    .try_fill_bytes(&mut bytes)
                    .map_err(CertsError::Random)?;
                // Zero and numbers past the group order are no keys: draw
                // again (a chance of about one in 2^32).
                if let Ok(k) = SigningKey::from_bytes(&bytes) {
                    break k;
                }
            };
            let public = secret
                .verifying_key()
                .to_encoded_point(false)
                .as_bytes()
                .to_vec();
            Ok(Key { secret, public })
        }

        /// The key identifier of RFC 5280 (4.2.1.2): the first 20 bytes of
        /// the SHA-256 of the SubjectPublicKeyInfo.
        fn identifier(&self) -> Vec<u8> {
            use rcgen::PublicKeyData;
            Sha256::digest(self.subject_public_key_info())[..20].to_vec()
        }

        fn pkcs8_pem(&self) -> Result<String, CertsError> {
            Ok(self
                .secret
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(CertsError::Pkcs8)?
                .to_string())
        }
    }

    impl rcgen::PublicKeyData for Key {
        fn der_bytes(&self) -> &[u8] {
            &self.public
        }

        fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
            &rcgen::PKCS_ECDSA_P256_SHA256
        }
    }

    impl rcgen::SigningKey for Key {
        fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
            use p256::ecdsa::signature::Signer;
            let signature: DerSignature = self
                .secret
                .try_sign(msg)
                .map_err(|_| rcgen::Error::RemoteKeyError)?;
            Ok(signature.as_bytes().to_vec())
        }
    }
}
