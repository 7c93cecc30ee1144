//! Trust roots and the TLS client configuration (docs/protocol.md 5.4).
//!
//! [`TlsRoots`] is built once per container, at start-up, from three sources:
//!
//! - the **system** store: the distribution's bundle file when there is one, else everything
//!   `rustls-native-certs` finds; a store that fails to load is logged and skipped, because the
//!   other two sources may still cover the database;
//! - the **Amazon RDS** global CA bundle, embedded in the binary from `certs/rds-global-bundle.pem`
//!   (see `certs/PROVENANCE.md` for where it comes from and how to refresh it);
//! - an optional **extra** PEM bundle named by `TLS_EXTRA_CA_FILE`, which must be usable: a bad
//!   file fails start-up rather than silently leaving the database untrusted.
//!
//! Start-up cost (callgrind, docs/benchmarks.md). rustls-pki-types decodes PEM's base64 in constant
//! time, since PEM may hold private keys: about 26 instructions a byte. The system bundle and the
//! embedded RDS bundle hold public certificates only, so `parse_public_bundle` splits them into
//! sections itself and decodes them with the `base64` crate's ordinary decoder (about 7 a byte); the
//! extra file keeps the strict parser and its precise errors. rustls-native-certs would read every
//! system root twice (the bundle, then the hashed directory), so the bundle is read alone when
//! there is one. The AWS SDK's HTTPS client would load the system store once more for itself:
//! [`TlsRoots::sdk_http_client`] hands it the roots already loaded.
//!
//! The resulting [`rustls::ClientConfig`] (PostgreSQL's) uses the aws-lc-rs provider explicitly,
//! so it never depends on (or panics for lack of) a process-wide default provider. mysql_async
//! builds its own configuration from [`TlsRoots::certificates`] with `ClientConfig::builder()`,
//! which does use the process-wide provider: the MySQL rotator installs aws-lc-rs as that default.
//! `server_name` picks the name used for SNI and certificate verification (`tls_server_name`
//! wins over `host`).

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use aws_sdk_secretsmanager::config::SharedHttpClient;
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{Provider, TlsContext, TrustStore, rustls_provider::CryptoMode};
use aws_smithy_http_client::{Builder as SdkClientBuilder, ConnectorBuilder};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, ServerName};

use crate::error::Error;

/// The environment variable naming the optional extra CA bundle.
const EXTRA_CA_VARIABLE: &str = "TLS_EXTRA_CA_FILE";

/// The Amazon RDS global CA bundle, vendored with its provenance in `certs/`.
const RDS_BUNDLE_PEM: &str = include_str!("../certs/rds-global-bundle.pem");

/// Trust roots and the TLS client configuration, built once per container.
///
/// Cloning is cheap: the configuration and the certificates are shared behind [`Arc`]s.
#[derive(Clone)]
pub struct TlsRoots {
    config: Arc<ClientConfig>,
    certs: Arc<[CertificateDer<'static>]>,
    /// Number of roots loaded from each source: `Debug` shows them.
    counts: RootCounts,
}

/// A root store being filled, and the certificates it accepted: drivers that build their own
/// rustls configuration (mysql_async) take certificates, not a [`RootCertStore`].
struct Anchors {
    store: RootCertStore,
    certs: Vec<CertificateDer<'static>>,
}

impl Anchors {
    fn new() -> Self {
        Anchors {
            store: RootCertStore::empty(),
            certs: Vec::new(),
        }
    }

    /// Adds `cert` as a trust anchor, keeping it only if rustls accepts it.
    fn add(&mut self, cert: CertificateDer<'static>) -> Result<(), rustls::Error> {
        self.store.add(cert.clone())?;
        self.certs.push(cert);
        Ok(())
    }
}

/// Where the operating system's trust store is, when the environment says (`SSL_CERT_FILE`,
/// `SSL_CERT_DIR`, read with the rest of the environment by [`crate::env`]); else the
/// distribution's usual paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemStore {
    /// `SSL_CERT_FILE`: a bundle of root certificates.
    pub cert_file: Option<PathBuf>,
    /// `SSL_CERT_DIR`: a directory of root certificates, one per file.
    pub cert_dir: Option<PathBuf>,
}

/// Number of trust roots loaded from each source.
///
/// Counts are of certificates accepted as trust anchors; a root present in two sources is counted
/// in both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct RootCounts {
    /// Roots from the operating system's store.
    system: usize,
    /// Roots from the embedded Amazon RDS global bundle.
    rds: usize,
    /// Roots from `TLS_EXTRA_CA_FILE` (or the bundle given to [`TlsRoots::from_pem`]).
    extra: usize,
}

impl TlsRoots {
    /// System roots (a system store that fails to load is logged with `tracing::warn!` and skipped,
    /// not fatal), plus the embedded RDS bundle, plus the PEM file at `extra_ca_file` if given.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming `TLS_EXTRA_CA_FILE` when the extra file cannot be read, is not
    /// valid PEM, contains no certificate, or contains a certificate that cannot be a trust anchor.
    /// The message names the path, never the file's contents.
    pub fn load(system: &SystemStore, extra_ca_file: Option<&Path>) -> Result<Self, Error> {
        // Read the extra file first: a configuration mistake should fail before any other work.
        let extra = ExtraRoots::read(extra_ca_file)?;
        Self::assemble(SystemRoots::load(system), &extra)
    }

    /// The system roots, then the embedded RDS bundle, then the extra file's (already checked).
    fn assemble(system: SystemRoots, extra: &ExtraRoots) -> Result<Self, Error> {
        let SystemRoots { anchors: mut roots } = system;
        let system = roots.certs.len();
        let rds = add_rds_roots(&mut roots);
        let extra = match extra {
            ExtraRoots::None => 0,
            ExtraRoots::File { path, certs } => add_all(&mut roots, certs.clone())
                .map_err(|problem| extra_file_error(path, &problem))?,
        };
        Self::build(roots, RootCounts { system, rds, extra })
    }

    /// Only the given PEM bundle(s) (no system, no RDS) — for tests that need an exact trust set.
    ///
    /// The certificates are counted as extra roots.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming `TLS_EXTRA_CA_FILE` (the bundle stands in for that file) when `pem`
    /// is not valid PEM, contains no certificate, or contains one that cannot be a trust anchor.
    pub fn from_pem(pem: &[u8]) -> Result<Self, Error> {
        let problem = |problem: BundleProblem| Error::Config {
            variable: EXTRA_CA_VARIABLE,
            problem: format!("(PEM bundle given to TlsRoots::from_pem) {problem}"),
        };
        let certs = parse_bundle(pem).map_err(problem)?;
        let mut roots = Anchors::new();
        let extra = add_all(&mut roots, certs).map_err(problem)?;
        Self::build(
            roots,
            RootCounts {
                system: 0,
                rds: 0,
                extra,
            },
        )
    }

    /// The shared client configuration: the aws-lc-rs provider, rustls's safe default protocol
    /// versions (TLS 1.3 and 1.2), these roots, and no client certificate.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        Arc::clone(&self.config)
    }

    /// The same roots as DER certificates (every one rustls accepted as a trust anchor), for
    /// drivers that build their own TLS configuration from certificates (mysql_async's `SslOpts`).
    pub fn certificates(&self) -> &[CertificateDer<'static>] {
        &self.certs
    }

    /// The roots that came from the operating system's store (the first `RootCounts::system`
    /// of [`TlsRoots::certificates`]: they are added first).
    pub fn system_certificates(&self) -> &[CertificateDer<'static>] {
        &self.certs[..self.counts.system]
    }

    fn build(roots: Anchors, counts: RootCounts) -> Result<Self, Error> {
        let Anchors {
            store: roots,
            certs,
        } = roots;
        // The provider is passed explicitly, so no process-default provider is needed (rustls would
        // panic in `ClientConfig::builder()` if none, or more than one, could be chosen).
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            // Cannot fail with the stock aws-lc-rs provider; kept as an error rather than a panic.
            .map_err(|e| Error::Config {
                variable: "TLS_MODE",
                problem: format!("cannot be honoured: the TLS provider is unusable ({e})"),
            })?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            config: Arc::new(config),
            certs: certs.into(),
            counts,
        })
    }
}

/// The container's trust roots, loaded when first needed rather than at start-up
/// (docs/benchmarks.md, "At the floor on a 128 MB function"): the start-up of a 128 MB
/// function, at 7 % of a CPU, is then the configuration and the clients alone.
///
/// [`LazyRoots::new`] reads and checks `TLS_EXTRA_CA_FILE` at once, so that a bad file still
/// fails start-up naming the variable, before any AWS call; it costs a few certificates. The
/// rest waits:
///
/// - the **system** roots, when the AWS SDK builds its first HTTPS connector (at the first AWS
///   call) or when a database is first contacted over TLS, whichever comes first;
/// - the **Amazon RDS** bundle, the trust anchors of all three sources and the rustls
///   configuration ([`LazyRoots::get`]), when a database is first contacted over TLS: the
///   connectors ask for them before the attempt's time is counted.
///
/// Cloning shares the roots (an [`Arc`]): every connector and the SDK client load them once.
#[derive(Clone)]
pub struct LazyRoots {
    inner: Arc<Lazy>,
}

struct Lazy {
    store: SystemStore,
    extra: ExtraRoots,
    /// The system roots loaded for the SDK before the rest was needed; the full load takes them.
    system: Mutex<Option<SystemRoots>>,
    roots: OnceLock<TlsRoots>,
}

impl LazyRoots {
    /// Roots to be loaded on first use from the system store, the embedded RDS bundle and
    /// `extra_ca_file`, which is read and checked now.
    ///
    /// # Errors
    ///
    /// As [`TlsRoots::load`]: [`Error::Config`] naming `TLS_EXTRA_CA_FILE` when the extra file
    /// cannot be read, is not valid PEM, contains no certificate, or contains a certificate that
    /// cannot be a trust anchor.
    pub fn new(system: &SystemStore, extra_ca_file: Option<&Path>) -> Result<Self, Error> {
        Ok(LazyRoots {
            inner: Arc::new(Lazy {
                store: system.clone(),
                extra: ExtraRoots::read(extra_ca_file)?,
                system: Mutex::new(None),
                roots: OnceLock::new(),
            }),
        })
    }

    /// Roots already loaded (tests that trust exactly their own CA).
    pub fn loaded(roots: TlsRoots) -> Self {
        LazyRoots {
            inner: Arc::new(Lazy {
                store: SystemStore::default(),
                extra: ExtraRoots::None,
                system: Mutex::new(None),
                roots: OnceLock::from(roots),
            }),
        }
    }

    /// The roots and the client configuration, loaded now if they are not yet.
    ///
    /// # Panics
    ///
    /// Never in practice: the extra file was checked when these roots were made, and the stock
    /// aws-lc-rs provider supports rustls's default protocol versions.
    pub fn get(&self) -> &TlsRoots {
        self.inner.roots.get_or_init(|| {
            let system = self
                .inner
                .system
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take()
                .unwrap_or_else(|| SystemRoots::load(&self.inner.store));
            TlsRoots::assemble(system, &self.inner.extra)
                .expect("the extra roots were checked when the roots were made")
        })
    }

    /// Whether the roots have been loaded (by [`LazyRoots::get`]).
    pub fn is_loaded(&self) -> bool {
        self.inner.roots.get().is_some()
    }

    /// The system roots as one PEM bundle, `None` when there are none; from the loaded roots, or
    /// else the system store alone, kept for the full load.
    fn system_roots_pem(&self) -> Option<String> {
        if let Some(roots) = self.inner.roots.get() {
            return system_roots_pem(roots.system_certificates());
        }
        let mut system = self
            .inner
            .system
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let system = system.get_or_insert_with(|| SystemRoots::load(&self.inner.store));
        system_roots_pem(&system.anchors.certs)
    }

    /// The HTTPS client for the AWS SDK: the SDK's default client (rustls with aws-lc-rs, the
    /// SDK's cipher suites, proxy settings from the environment), trusting exactly the system
    /// roots loaded here, as the default client would after loading the system store again for
    /// itself (bundle and hashed directory, with the constant-time decoder). The roots are
    /// loaded when the SDK builds its first connector, at the first AWS call; with no system root,
    /// the connector trusts what the SDK's default client would (the native store, which it then
    /// loads).
    pub fn sdk_http_client(&self) -> SharedHttpClient {
        let roots = self.clone();
        let context = OnceLock::new();
        let no_roots = OnceLock::new();
        // What aws-smithy-runtime's default HTTPS client does, with our trust store. The SDK takes
        // roots as PEM only and decodes them (in constant time) for every connector it builds:
        // one per connection settings, which makes requests, and one more per SDK client created
        // (two at start-up: Secrets Manager's and the STS client of aws-config's credential
        // chain), built with neither settings nor runtime components only to load the default
        // client's trust store early, then dropped. That probe gets a connector that trusts
        // nothing, so that it costs nothing; were it ever used, its TLS handshakes would fail.
        SdkClientBuilder::new().build_with_connector_fn(move |settings, components| {
            let probe = settings.is_none() && components.is_none();
            let tls: &TlsContext = if probe {
                no_roots.get_or_init(|| trusting(TrustStore::empty()))
            } else {
                context.get_or_init(|| match roots.system_roots_pem() {
                    Some(pem) => trusting(TrustStore::empty().with_pem_certificate(pem)),
                    None => trusting(TrustStore::default()),
                })
            };
            let mut builder = ConnectorBuilder::default()
                .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
                .tls_context(tls.clone());
            builder.set_connector_settings(settings.cloned());
            if let Some(components) = components {
                builder.set_sleep_impl(components.sleep_impl());
            }
            builder.set_proxy_config(Some(ProxyConfig::from_env()));
            builder.build()
        })
    }
}

/// A TLS context trusting `store`; a context the SDK cannot build (it never fails for a trust
/// store alone) trusts the SDK's defaults.
fn trusting(store: TrustStore) -> TlsContext {
    TlsContext::builder()
        .with_trust_store(store)
        .build()
        .unwrap_or_else(|error| {
            tracing::warn!(%error, "system roots not usable by the SDK; it loads its own");
            TlsContext::default()
        })
}

/// `certs` as one PEM bundle, `None` when there are none. Each was accepted by
/// [`RootCertStore::add`], so the SDK, which panics on a certificate it cannot add, accepts every
/// one too.
fn system_roots_pem(certs: &[CertificateDer<'static>]) -> Option<String> {
    if certs.is_empty() {
        return None;
    }
    let mut pem = String::with_capacity(certs.iter().map(|c| c.len() * 4 / 3 + 64).sum());
    for cert in certs {
        pem.push_str("-----BEGIN CERTIFICATE-----\n");
        BASE64.encode_string(cert, &mut pem);
        pem.push_str("\n-----END CERTIFICATE-----\n");
    }
    Some(pem)
}

impl fmt::Debug for LazyRoots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.inner.roots.get() {
            Some(roots) => f.debug_tuple("LazyRoots").field(roots).finish(),
            None => f.write_str("LazyRoots(not loaded)"),
        }
    }
}

impl fmt::Debug for TlsRoots {
    // `ClientConfig`'s own `Debug` is long and says nothing useful in a log; the counts do.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsRoots")
            .field("counts", &self.counts)
            .finish_non_exhaustive()
    }
}

/// The name used for SNI and certificate verification: `override_name` (the secret's
/// `tls_server_name`) if given, else `host`. IP addresses become [`ServerName::IpAddress`].
///
/// # Errors
///
/// A message naming the offending field (`host` or `tls_server_name`), never its value, when the
/// name is neither a valid DNS name nor an IP address. An empty override is an error, not a
/// fallback to `host`.
pub(crate) fn server_name(
    host: &str,
    override_name: Option<&str>,
) -> Result<ServerName<'static>, String> {
    let (field, name) = match override_name {
        Some(name) => ("tls_server_name", name),
        None => ("host", host),
    };
    if name.is_empty() {
        return Err(format!(
            "field `{field}` is empty; expected a DNS name or IP address"
        ));
    }
    // Parse addresses first: an IP literal must be verified against the certificate's IP SANs.
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(ServerName::IpAddress(ip.into()));
    }
    ServerName::try_from(name)
        .map(|name| name.to_owned())
        .map_err(|_| {
            format!("field `{field}` is not a valid DNS name or IP address for TLS verification")
        })
}

/// What is wrong with a PEM bundle. Its `Display` never includes the bundle's contents.
#[derive(Debug)]
enum BundleProblem {
    /// The PEM structure itself is broken.
    Pem(&'static str),
    /// No `CERTIFICATE` section.
    NoCertificate,
    /// Certificate `index` (1-based) is not usable as a trust anchor.
    NotAnAnchor { index: usize, reason: rustls::Error },
}

impl fmt::Display for BundleProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pem(what) => write!(f, "is not valid PEM: {what}"),
            Self::NoCertificate => f.write_str(
                "contains no certificate (expected `-----BEGIN CERTIFICATE-----` sections)",
            ),
            Self::NotAnAnchor { index, reason } => {
                write!(
                    f,
                    "has certificate #{index} that cannot be a trust anchor: {reason}"
                )
            }
        }
    }
}

/// Describes a PEM error without its payload: `pem::Error`'s `Display` quotes the offending line or
/// base64 text, which would put file contents into an error message.
fn describe_pem_error(e: &pem::Error) -> &'static str {
    match e {
        pem::Error::MissingSectionEnd { .. } => "a section has no END line",
        pem::Error::IllegalSectionStart { .. } => "a BEGIN line is malformed",
        pem::Error::Base64Decode(_) => "a section's base64 body does not decode",
        pem::Error::SectionTooLarge => "a section is larger than 256 MB",
        _ => "the PEM structure is malformed",
    }
}

/// All certificates in `pem`; other section types (keys, CRLs) are skipped.
fn parse_bundle(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, BundleProblem> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| BundleProblem::Pem(describe_pem_error(&e)))?;
    if certs.is_empty() {
        return Err(BundleProblem::NoCertificate);
    }
    Ok(certs)
}

/// Adds every certificate, failing on the first that is not a usable trust anchor.
fn add_all(
    roots: &mut Anchors,
    certs: Vec<CertificateDer<'static>>,
) -> Result<usize, BundleProblem> {
    let count = certs.len();
    for (i, cert) in certs.into_iter().enumerate() {
        roots
            .add(cert)
            .map_err(|reason| BundleProblem::NotAnAnchor {
                index: i + 1,
                reason,
            })?;
    }
    Ok(count)
}

fn extra_file_error(path: &Path, problem: &dyn fmt::Display) -> Error {
    Error::Config {
        variable: EXTRA_CA_VARIABLE,
        problem: format!("names `{}`, which {problem}", path.display()),
    }
}

/// Reads and parses the extra bundle: it must exist, be readable and hold at least one certificate.
fn read_extra_bundle(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    // Read then parse, rather than `pem_file_iter`, so an I/O failure and a parse failure get
    // distinct messages.
    let bytes = std::fs::read(path)
        .map_err(|e| extra_file_error(path, &format_args!("cannot be read: {e}")))?;
    parse_bundle(&bytes).map_err(|problem| extra_file_error(path, &problem))
}

/// Adds every certificate rustls accepts as a trust anchor; returns (added, ignored), like
/// [`RootCertStore::add_parsable_certificates`].
fn add_parsable(roots: &mut Anchors, certs: Vec<CertificateDer<'static>>) -> (usize, usize) {
    let total = certs.len();
    let added = certs
        .into_iter()
        .filter(|cert| roots.add(cert.clone()).is_ok())
        .count();
    (added, total - added)
}

/// The certificates of a PEM bundle of **public** certificates: `CERTIFICATE` sections, other
/// sections skipped, text outside sections ignored, as [`parse_bundle`] does.
///
/// Base64 is decoded by the `base64` crate (standard alphabet, padded, as PEM bodies are), which
/// is not constant-time: the input holds no secret. Never use it for a file that may hold a
/// private key.
fn parse_public_bundle(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, BundleProblem> {
    // A bundle that is not text is left to the strict parsers (system) or is a build fault (RDS).
    let text =
        std::str::from_utf8(pem).map_err(|_| BundleProblem::Pem("the bundle is not text"))?;
    let mut certs = Vec::new();
    let mut lines = text.lines().map(str::trim_end);
    while let Some(line) = lines.next() {
        let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|rest| rest.strip_suffix("-----"))
        else {
            continue;
        };
        let mut body = Vec::with_capacity(2048);
        let mut closed = false;
        for line in lines.by_ref() {
            if line
                .strip_prefix("-----END ")
                .and_then(|rest| rest.strip_suffix("-----"))
                == Some(label)
            {
                closed = true;
                break;
            }
            body.extend_from_slice(line.as_bytes());
        }
        if !closed {
            return Err(BundleProblem::Pem("a section has no END line"));
        }
        if label == "CERTIFICATE" {
            let der = BASE64
                .decode(&body)
                .map_err(|_| BundleProblem::Pem("a section's base64 body does not decode"))?;
            certs.push(CertificateDer::from(der));
        }
    }
    if certs.is_empty() {
        return Err(BundleProblem::NoCertificate);
    }
    Ok(certs)
}

/// The operating system's roots, and what failed to load.
///
/// OpenSSL-style stores hold every root twice: in one bundle file, and again one file per
/// certificate in a hashed directory (Debian 12: 146 roots, about 290 directory entries), and
/// `rustls_native_certs::load_native_certs` reads both. When a bundle file is found (`SSL_CERT_FILE`,
/// else the distribution's path as openssl-probe knows it: `/etc/ssl/certs/ca-certificates.crt`,
/// `/etc/pki/tls/certs/ca-bundle.crt`, …) and `SSL_CERT_DIR` is not set, the bundle alone is read:
/// the same roots for a fraction of the start-up time. Otherwise, or when the bundle cannot be
/// read or parsed, `rustls-native-certs` scans everything as before.
///
/// The full scan is `rustls-native-certs`', which reads the same two variables from the process
/// environment itself.
fn system_certs(system: &SystemStore) -> (Vec<CertificateDer<'static>>, Vec<String>) {
    if system.cert_dir.is_none() {
        // An explicit SSL_CERT_FILE is used even when it cannot be read, so that the full scan
        // below reports it, as before; openssl-probe would skip a missing one silently.
        let bundle = system
            .cert_file
            .clone()
            .or_else(|| openssl_probe::probe().cert_file);
        if let Some(file) = bundle {
            let parsed = std::fs::read(&file)
                .map_err(|e| e.to_string())
                .and_then(|bytes| parse_public_bundle(&bytes).map_err(|p| p.to_string()));
            match parsed {
                Ok(mut certs) => {
                    certs.sort_unstable_by(|a, b| a.as_ref().cmp(b.as_ref()));
                    certs.dedup();
                    return (certs, Vec::new());
                }
                Err(problem) => tracing::warn!(
                    path = %file.display(),
                    %problem,
                    "system CA bundle unusable; scanning the whole system store"
                ),
            }
        }
    }
    let native = rustls_native_certs::load_native_certs();
    let errors = native.errors.iter().map(ToString::to_string).collect();
    (native.certs, errors)
}

/// The operating system's roots that rustls accepts as trust anchors, in the order read.
struct SystemRoots {
    anchors: Anchors,
}

impl SystemRoots {
    /// Reads the system store; failures are logged and skipped.
    fn load(system: &SystemStore) -> Self {
        let (certs, errors) = system_certs(system);
        for error in &errors {
            tracing::warn!(%error, "skipping part of the system trust store that failed to load");
        }
        let mut anchors = Anchors::new();
        let (added, ignored) = add_parsable(&mut anchors, certs);
        if ignored > 0 {
            tracing::warn!(
                ignored,
                "skipping system root certificates that rustls cannot use"
            );
        }
        if added == 0 {
            tracing::warn!(
                "no system root certificates loaded; relying on the RDS and extra bundles"
            );
        }
        SystemRoots { anchors }
    }
}

/// `TLS_EXTRA_CA_FILE`'s certificates, read and checked.
enum ExtraRoots {
    /// No extra file.
    None,
    /// The file's certificates, each one rustls accepts as a trust anchor.
    File {
        path: PathBuf,
        certs: Vec<CertificateDer<'static>>,
    },
}

impl ExtraRoots {
    /// Reads and parses `path`, and checks that every certificate can be a trust anchor: a file
    /// that cannot be used fails here, naming the variable and the path, never its contents.
    fn read(path: Option<&Path>) -> Result<Self, Error> {
        let Some(path) = path else {
            return Ok(ExtraRoots::None);
        };
        let certs = read_extra_bundle(path)?;
        add_all(&mut Anchors::new(), certs.clone())
            .map_err(|problem| extra_file_error(path, &problem))?;
        Ok(ExtraRoots::File {
            path: path.to_owned(),
            certs,
        })
    }
}

/// Adds the embedded RDS bundle. It is fixed at build time and checked by unit tests, so a problem
/// here is logged rather than failing start-up.
fn add_rds_roots(roots: &mut Anchors) -> usize {
    match parse_public_bundle(RDS_BUNDLE_PEM.as_bytes()) {
        Ok(certs) => {
            let (added, ignored) = add_parsable(roots, certs);
            if ignored > 0 {
                tracing::warn!(
                    ignored,
                    "skipping embedded RDS root certificates that rustls cannot use"
                );
            }
            added
        }
        Err(problem) => {
            tracing::warn!(%problem, "embedded RDS bundle unusable; no RDS roots loaded");
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use rustls::{ClientConnection, ServerConfig, ServerConnection};
    use rustls_pki_types::PrivateKeyDer;

    use super::*;

    /// Certificates in `certs/rds-global-bundle.pem` (see `certs/PROVENANCE.md`).
    const RDS_BUNDLE_COUNT: usize = 115;

    const TEST_CA: &[u8] = include_bytes!("../certs/testdata/test-ca.pem");
    const LOCALHOST_CERT: &[u8] = include_bytes!("../certs/testdata/localhost.pem");
    const LOCALHOST_KEY: &[u8] = include_bytes!("../certs/testdata/localhost.key");

    fn testdata(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("certs/testdata")
            .join(name)
    }

    fn config_problem(err: Error) -> String {
        match err {
            Error::Config { variable, problem } => {
                assert_eq!(variable, EXTRA_CA_VARIABLE);
                problem
            }
            #[allow(unreachable_patterns)] // the real `Error` has more variants
            other => panic!("expected Error::Config, got {other:?}"),
        }
    }

    /// Runs a full in-memory handshake against a server presenting `localhost.pem`.
    fn handshake(
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
    ) -> Result<(), rustls::Error> {
        let server_config = ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from_pem_slice(LOCALHOST_CERT).unwrap()],
            PrivateKeyDer::from_pem_slice(LOCALHOST_KEY).unwrap(),
        )
        .unwrap();
        let mut client = ClientConnection::new(config, name)?;
        let mut server = ServerConnection::new(Arc::new(server_config)).unwrap();
        let mut buf = Vec::new();
        for _ in 0..10 {
            if !client.is_handshaking() && !server.is_handshaking() {
                return Ok(());
            }
            buf.clear();
            while client.wants_write() {
                client.write_tls(&mut buf).unwrap();
            }
            let mut rd = &buf[..];
            while !rd.is_empty() {
                server.read_tls(&mut rd).unwrap();
            }
            // The server's verdict on our alerts is irrelevant; the client's error is what we test.
            let _ = server.process_new_packets();
            buf.clear();
            while server.wants_write() {
                server.write_tls(&mut buf).unwrap();
            }
            let mut rd = &buf[..];
            while !rd.is_empty() {
                client.read_tls(&mut rd).unwrap();
            }
            client.process_new_packets()?;
        }
        panic!("handshake did not finish");
    }

    #[test]
    fn embedded_rds_bundle_parses_completely() {
        let certs = parse_bundle(RDS_BUNDLE_PEM.as_bytes()).unwrap();
        assert_eq!(certs.len(), RDS_BUNDLE_COUNT);
        let mut roots = Anchors::new();
        assert_eq!(add_all(&mut roots, certs).unwrap(), RDS_BUNDLE_COUNT);
        assert_eq!(roots.store.len(), RDS_BUNDLE_COUNT);
        assert_eq!(roots.certs.len(), RDS_BUNDLE_COUNT);
    }

    #[test]
    fn public_bundle_parser_matches_the_strict_one() {
        let mut bundles = vec![
            RDS_BUNDLE_PEM.as_bytes().to_vec(),
            TEST_CA.to_vec(),
            LOCALHOST_CERT.to_vec(),
            // CRLF line ends, text and other sections between certificates.
            format!(
                "junk\r\n{}\r\n-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n{}",
                std::str::from_utf8(TEST_CA).unwrap().replace('\n', "\r\n"),
                std::str::from_utf8(LOCALHOST_CERT).unwrap()
            )
            .into_bytes(),
        ];
        if let Some(file) = openssl_probe::probe().cert_file {
            bundles.push(std::fs::read(file).unwrap());
        }
        for bundle in &bundles {
            let strict = parse_bundle(bundle).unwrap();
            assert!(!strict.is_empty());
            assert_eq!(parse_public_bundle(bundle).unwrap(), strict);
        }
    }

    #[test]
    fn public_bundle_parser_rejects_malformed_sections() {
        // A bundle it rejects is read by rustls-native-certs instead (system) or is a build-time
        // fault caught by the tests above (RDS): strictness costs nothing.
        for pem in [
            &b"-----BEGIN CERTIFICATE-----\nAAAA\n"[..],
            b"-----BEGIN CERTIFICATE-----\nAA!A\n-----END CERTIFICATE-----\n",
            b"-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n",
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATX-----\n",
        ] {
            assert!(
                matches!(parse_public_bundle(pem), Err(BundleProblem::Pem(_))),
                "{}",
                String::from_utf8_lossy(pem)
            );
        }
        for pem in [&b""[..], b"just some text\n", LOCALHOST_KEY] {
            assert!(matches!(
                parse_public_bundle(pem),
                Err(BundleProblem::NoCertificate)
            ));
        }
    }

    #[test]
    fn system_roots_load() {
        // The system store may be empty in a bare container; where it has a bundle, its roots
        // load without error.
        let (certs, errors) = system_certs(&SystemStore::default());
        if openssl_probe::probe().cert_file.is_some() {
            assert!(!certs.is_empty());
            assert!(errors.is_empty(), "{errors:?}");
        }
        // `SSL_CERT_FILE`, as the environment gave it, is the bundle read.
        let given = SystemStore {
            cert_file: Some(testdata("test-ca.pem")),
            cert_dir: None,
        };
        let (certs, errors) = system_certs(&given);
        assert_eq!((certs.len(), errors.len()), (1, 0));
    }

    #[test]
    fn load_without_extra_file() {
        let roots = TlsRoots::load(&SystemStore::default(), None).unwrap();
        let counts = roots.counts;
        assert_eq!(counts.rds, RDS_BUNDLE_COUNT);
        assert_eq!(counts.extra, 0);
        assert_eq!(
            roots.certificates().len(),
            counts.system + counts.rds + counts.extra
        );
        // The system store may be empty in a bare container; loading must still succeed.
        let config = roots.client_config();
        assert!(Arc::ptr_eq(&config, &roots.client_config()));
        assert!(format!("{roots:?}").contains("rds: 115"));
    }

    #[test]
    fn system_roots_come_first_and_reach_the_sdk_unchanged() {
        let roots =
            TlsRoots::load(&SystemStore::default(), Some(&testdata("test-ca.pem"))).unwrap();
        let system = roots.system_certificates();
        assert_eq!(system.len(), roots.counts.system);
        let extra = CertificateDer::from_pem_slice(TEST_CA).unwrap();
        assert!(!system.contains(&extra));
        assert_eq!(roots.certificates().last(), Some(&extra));
        let lazy = LazyRoots::loaded(roots.clone());
        match lazy.system_roots_pem() {
            // The SDK reads it with the strict parser and adds every certificate.
            Some(pem) => {
                let parsed = parse_bundle(pem.as_bytes()).unwrap();
                assert_eq!(parsed, system);
                let mut store = RootCertStore::empty();
                for cert in parsed {
                    store.add(cert).unwrap();
                }
            }
            // A bare container: the SDK trusts what its default client would.
            None => assert!(system.is_empty()),
        }
        let bare = LazyRoots::loaded(TlsRoots::from_pem(TEST_CA).unwrap());
        assert!(bare.get().system_certificates().is_empty());
        assert!(bare.system_roots_pem().is_none());
    }

    #[test]
    fn lazy_roots_check_the_extra_file_at_once_and_load_the_rest_on_first_use() {
        // A bad extra file fails at once, naming the variable, as `TlsRoots::load` does.
        for name in ["does-not-exist.pem", "localhost.key"] {
            let err = LazyRoots::new(&SystemStore::default(), Some(&testdata(name))).unwrap_err();
            assert!(config_problem(err).contains(name));
        }
        // A certificate that cannot be a trust anchor, too: not when a database is contacted.
        let not_anchor =
            std::env::temp_dir().join(format!("dsr-not-anchor-{}.pem", std::process::id()));
        std::fs::write(
            &not_anchor,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let err = LazyRoots::new(&SystemStore::default(), Some(&not_anchor)).unwrap_err();
        let _ = std::fs::remove_file(&not_anchor);
        assert!(config_problem(err).contains("certificate #1"));
        let path = testdata("test-ca.pem");
        let lazy = LazyRoots::new(&SystemStore::default(), Some(&path)).unwrap();
        assert!(!lazy.is_loaded());
        assert_eq!(format!("{lazy:?}"), "LazyRoots(not loaded)");
        // The SDK's connector needs the system roots alone; the full load takes them over.
        let pem = lazy.system_roots_pem();
        assert!(!lazy.is_loaded());
        let roots = lazy.get();
        assert!(lazy.is_loaded());
        let eager = TlsRoots::load(&SystemStore::default(), Some(&path)).unwrap();
        assert_eq!(roots.counts, eager.counts);
        assert_eq!(roots.certificates(), eager.certificates());
        assert_eq!(pem, system_roots_pem(eager.system_certificates()));
        // Loaded once: every clone shares the configuration.
        assert!(Arc::ptr_eq(
            &lazy.clone().get().client_config(),
            &roots.client_config()
        ));
        handshake(
            roots.client_config(),
            server_name("localhost", None).unwrap(),
        )
        .unwrap();
        // Without the SDK first, the same roots.
        let direct = LazyRoots::new(&SystemStore::default(), Some(&path)).unwrap();
        assert_eq!(direct.get().certificates(), eager.certificates());
    }

    #[test]
    fn load_with_extra_file_counts_it_and_trusts_it() {
        let path = testdata("test-ca.pem");
        let roots = TlsRoots::load(&SystemStore::default(), Some(&path)).unwrap();
        assert_eq!(roots.counts.extra, 1);
        assert_eq!(roots.counts.rds, RDS_BUNDLE_COUNT);
        handshake(
            roots.client_config(),
            server_name("localhost", None).unwrap(),
        )
        .unwrap();
    }

    #[test]
    fn load_with_missing_file_names_variable_and_path() {
        let path = testdata("does-not-exist.pem");
        let err = TlsRoots::load(&SystemStore::default(), Some(&path)).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(EXTRA_CA_VARIABLE), "{text}");
        let problem = config_problem(err);
        assert!(problem.contains("does-not-exist.pem"), "{problem}");
        assert!(problem.contains("cannot be read"), "{problem}");
    }

    #[test]
    fn load_with_file_without_certificates_fails() {
        // A private key alone is a plausible mistake, and must not leak into the message.
        let path = testdata("localhost.key");
        let problem =
            config_problem(TlsRoots::load(&SystemStore::default(), Some(&path)).unwrap_err());
        assert!(problem.contains("contains no certificate"), "{problem}");
        assert!(problem.contains("localhost.key"), "{problem}");
        let key = std::str::from_utf8(LOCALHOST_KEY).unwrap();
        let body = key.lines().nth(1).unwrap();
        assert!(!problem.contains(body), "{problem}");
    }

    #[test]
    fn load_with_directory_fails() {
        let path = testdata("");
        let problem =
            config_problem(TlsRoots::load(&SystemStore::default(), Some(&path)).unwrap_err());
        assert!(problem.contains("cannot be read"), "{problem}");
    }

    #[test]
    fn malformed_pem_is_rejected_without_echoing_it() {
        for pem in [
            &b"-----BEGIN CERTIFICATE-----\nSENTINELxSENTINEL\n"[..],
            &b"-----BEGIN CERTIFICATE-----\nSENTINEL!SENTINEL\n-----END CERTIFICATE-----\n"[..],
            &b"-----BEGIN SENTINEL\n"[..],
        ] {
            let problem = config_problem(TlsRoots::from_pem(pem).unwrap_err());
            assert!(problem.contains("is not valid PEM"), "{problem}");
            assert!(!problem.contains("SENTINEL"), "{problem}");
        }
    }

    #[test]
    fn non_anchor_certificate_is_rejected() {
        let pem = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let problem = config_problem(TlsRoots::from_pem(pem).unwrap_err());
        assert!(problem.contains("certificate #1"), "{problem}");
    }

    #[test]
    fn empty_and_certificate_free_pem_is_rejected() {
        for pem in [&b""[..], b"just some text\n", LOCALHOST_KEY] {
            let problem = config_problem(TlsRoots::from_pem(pem).unwrap_err());
            assert!(problem.contains("contains no certificate"), "{problem}");
        }
    }

    #[test]
    fn from_pem_is_the_exact_trust_set() {
        let roots = TlsRoots::from_pem(TEST_CA).unwrap();
        assert_eq!(
            roots.counts,
            RootCounts {
                system: 0,
                rds: 0,
                extra: 1
            }
        );
        assert_eq!(roots.certificates().len(), 1);
        let config = roots.client_config();
        handshake(Arc::clone(&config), server_name("localhost", None).unwrap()).unwrap();
        handshake(Arc::clone(&config), server_name("127.0.0.1", None).unwrap()).unwrap();
        // Wrong name: chain is fine, hostname verification is not.
        let err = handshake(config, server_name("db.example.com", None).unwrap()).unwrap_err();
        assert!(
            matches!(
                err,
                rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName)
                    | rustls::Error::InvalidCertificate(
                        rustls::CertificateError::NotValidForNameContext { .. }
                    )
            ),
            "{err:?}"
        );
    }

    #[test]
    fn untrusted_chain_is_rejected() {
        let roots = TlsRoots::from_pem(RDS_BUNDLE_PEM.as_bytes()).unwrap();
        assert_eq!(roots.counts.extra, RDS_BUNDLE_COUNT);
        let err = handshake(
            roots.client_config(),
            server_name("localhost", None).unwrap(),
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
            ),
            "{err:?}"
        );
    }

    #[test]
    fn server_name_for_ip_addresses() {
        let v4 = server_name("127.0.0.1", None).unwrap();
        assert!(matches!(v4, ServerName::IpAddress(_)), "{v4:?}");
        assert_eq!(v4.to_str(), "127.0.0.1");
        let v6 = server_name("::1", None).unwrap();
        assert!(matches!(v6, ServerName::IpAddress(_)), "{v6:?}");
    }

    #[test]
    fn server_name_for_dns_names() {
        let name = server_name("db.example.com", None).unwrap();
        assert!(matches!(name, ServerName::DnsName(_)), "{name:?}");
        assert_eq!(name.to_str(), "db.example.com");
    }

    #[test]
    fn server_name_override_wins() {
        let name = server_name("10.0.0.5", Some("db.example.com")).unwrap();
        assert_eq!(name.to_str(), "db.example.com");
        let name = server_name(
            "db-cname.example.org",
            Some("mydb.abc123.eu-west-1.rds.amazonaws.com"),
        )
        .unwrap();
        assert_eq!(name.to_str(), "mydb.abc123.eu-west-1.rds.amazonaws.com");
        let name = server_name("db.example.com", Some("192.0.2.7")).unwrap();
        assert!(matches!(name, ServerName::IpAddress(_)), "{name:?}");
    }

    #[test]
    fn server_name_errors_name_the_field_not_the_value() {
        let err = server_name("bad host!SENTINEL", None).unwrap_err();
        assert!(err.contains("`host`"), "{err}");
        assert!(!err.contains("SENTINEL"), "{err}");
        let err = server_name("db.example.com", Some("no_good SENTINEL")).unwrap_err();
        assert!(err.contains("`tls_server_name`"), "{err}");
        assert!(!err.contains("SENTINEL"), "{err}");
        let err = server_name("", None).unwrap_err();
        assert!(err.contains("`host` is empty"), "{err}");
        let err = server_name("db.example.com", Some("")).unwrap_err();
        assert!(err.contains("`tls_server_name` is empty"), "{err}");
    }
}
