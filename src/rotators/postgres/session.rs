//! A PostgreSQL session: opening it (verified TLS naming `tls_server_name`, or plaintext), and
//! what is kept of a driver error.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{Client, NoTls, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::credentials::DbSecret;
use crate::deadline::StepContext;
use crate::engine::Engine;
use crate::rotators::driver::{Failure, attempt_timeout, error_chain};

/// Database used when the secret has no `dbname`.
const DEFAULT_DBNAME: &str = "postgres";

/// An authenticated PostgreSQL connection.
#[derive(Debug)]
pub struct PgSession {
    pub(super) client: Client,
    pub(super) connection: JoinHandle<()>,
    pub(super) engine: Engine,
    pub(super) user: String,
}

/// Wraps the rustls connector to verify (and send as SNI) `tls_server_name` instead of `host`.
struct NamedTls {
    inner: MakeRustlsConnect,
    name: Option<String>,
}

impl MakeTlsConnect<Socket> for NamedTls {
    type Stream = <MakeRustlsConnect as MakeTlsConnect<Socket>>::Stream;
    type TlsConnect = <MakeRustlsConnect as MakeTlsConnect<Socket>>::TlsConnect;
    type Error = <MakeRustlsConnect as MakeTlsConnect<Socket>>::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<Self::TlsConnect, Self::Error> {
        let name = self.name.as_deref().unwrap_or(domain);
        MakeTlsConnect::<Socket>::make_tls_connect(&mut self.inner, name)
    }
}

impl PgSession {
    /// One connection attempt with `creds`, verified TLS through `tls` or plaintext, bounded by
    /// the step's connect timeout.
    pub(super) async fn open(
        tls: &MakeRustlsConnect,
        creds: &DbSecret,
        use_tls: bool,
        attempt: &str,
        ctx: &StepContext<'_>,
    ) -> Result<PgSession, Failure> {
        let timeout = attempt_timeout(ctx, attempt)?;
        let mut config = tokio_postgres::Config::new();
        config
            .host(creds.host())
            .port(creds.port())
            .user(creds.username())
            .password(creds.password().expose())
            .dbname(creds.dbname().unwrap_or(DEFAULT_DBNAME))
            .application_name("db-secret-rotator")
            .connect_timeout(timeout);
        let engine = creds.engine();
        let connected = if use_tls {
            config.ssl_mode(tokio_postgres::config::SslMode::Require);
            let tls = NamedTls {
                inner: tls.clone(),
                name: creds.tls_server_name().map(str::to_owned),
            };
            spawn_connected(&config, tls, timeout).await
        } else {
            config.ssl_mode(tokio_postgres::config::SslMode::Disable);
            spawn_connected(&config, NoTls, timeout).await
        };
        let Some(connected) = connected else {
            return Err(Failure::login(
                engine,
                format!("timed out after {timeout:?}"),
                false,
            ));
        };
        match connected {
            Ok((client, connection)) => Ok(PgSession {
                client,
                connection,
                engine,
                user: creds.username().to_owned(),
            }),
            Err(e) => {
                let before_auth = e.as_db_error().is_none() && !is_timeout(&e);
                Err(Failure::login(engine, describe(&e), before_auth))
            }
        }
    }
}

/// Connects within `timeout` and drives the connection on its own task. `None`: timed out.
async fn spawn_connected<T>(
    config: &tokio_postgres::Config,
    tls: T,
    timeout: Duration,
) -> Option<Result<(Client, JoinHandle<()>), tokio_postgres::Error>>
where
    T: MakeTlsConnect<Socket>,
    T::Stream: Send + 'static,
{
    let connected = tokio::time::timeout(timeout, config.connect(tls))
        .await
        .ok()?;
    Some(connected.map(|(client, connection)| {
        let task = tokio::spawn(async move {
            let _ = connection.await;
        });
        (client, task)
    }))
}

fn is_timeout(e: &tokio_postgres::Error) -> bool {
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
}

/// The code kept from a driver error: the SQLSTATE for a server error, else the driver's description
/// of a transport or TLS failure with its causes (`error performing TLS handshake: invalid peer
/// certificate: UnknownIssuer`), which carry no credential.
pub(super) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("SQLSTATE {}", db.code().code()),
        None => error_chain(e),
    }
}

/// For a statement that contains a password: the SQLSTATE only, never the server's text.
pub(super) fn statement_code(e: &tokio_postgres::Error) -> String {
    match e.code() {
        Some(code) => format!("SQLSTATE {}", code.code()),
        None if e.is_closed() => "connection closed".to_owned(),
        None => "no SQLSTATE".to_owned(),
    }
}
