//! A PostgreSQL session: opening it (verified TLS naming `tls_server_name`, or plaintext that
//! never gives the password away), sealed against the settings a database's owner may attach to
//! it, and what is kept of a driver error.

use std::future::Future;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{Client, Connection, NoTls, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::cleartext::NoCleartext;

use crate::credentials::Login;
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
    /// One connection attempt with `creds`, verified TLS through `tls` (when given) or
    /// plaintext, bounded by the step's connect timeout. The session is sealed by its startup options (see
    /// [`sealed_options`]); on plaintext, a server asking for the password in cleartext or as MD5
    /// is refused unless `cleartext` allows it.
    pub(super) async fn open(
        tls: Option<&MakeRustlsConnect>,
        creds: &Login,
        cleartext: bool,
        attempt: &str,
        ctx: &StepContext<'_>,
    ) -> Result<PgSession, Failure> {
        let limit = attempt_timeout(ctx, attempt)?;
        let timeout = limit.timeout;
        // Statements are bounded by the step's budget too; the server stops them there.
        let statements = ctx.query_timeout(attempt).unwrap_or(timeout);
        let mut config = tokio_postgres::Config::new();
        config
            .host(creds.host())
            .port(creds.port())
            .user(creds.username())
            .password(creds.password().expose())
            .dbname(creds.dbname().unwrap_or(DEFAULT_DBNAME))
            .application_name("db-secret-rotator")
            .options(sealed_options(statements))
            .connect_timeout(timeout);
        let engine = creds.engine();
        let connected = if let Some(tls) = tls {
            config.ssl_mode(tokio_postgres::config::SslMode::Require);
            let tls = NamedTls {
                inner: tls.clone(),
                name: creds.tls_server_name().map(str::to_owned),
            };
            spawn_connected(config.connect(tls), timeout).await
        } else if cleartext {
            config.ssl_mode(tokio_postgres::config::SslMode::Disable);
            spawn_connected(config.connect(NoTls), timeout).await
        } else {
            config.ssl_mode(tokio_postgres::config::SslMode::Disable);
            let guarded = async {
                let socket = TcpStream::connect((creds.host(), creds.port()))
                    .await
                    .map_err(|e| Failure::login(engine, error_chain(&e), true))?;
                let _ = socket.set_nodelay(true);
                Ok::<_, Failure>(config.connect_raw(NoCleartext::new(socket), NoTls).await)
            };
            match tokio::time::timeout(timeout, guarded).await {
                Err(_) => None,
                Ok(Err(failure)) => return Err(failure),
                Ok(Ok(connected)) => Some(connected.map(spawn)),
            }
        };
        let Some(connected) = connected else {
            return Err(Failure::unanswered(engine, "connecting", &limit));
        };
        match connected {
            Ok((client, connection)) => Ok(PgSession {
                client,
                connection,
                engine,
                user: creds.username().to_owned(),
            }),
            Err(e) if is_refusal(&e) => Err(Failure::refused(engine, describe(&e))),
            Err(e) if is_timeout(&e) => Err(Failure::unanswered(engine, "connecting", &limit)),
            Err(e) => {
                let before_auth = e.as_db_error().is_none();
                Err(Failure::login(engine, describe(&e), before_auth))
            }
        }
    }
}

/// The startup options every session opens with (docs/protocol.md 5.14). A database's owner can
/// attach settings to it (`ALTER DATABASE … SET`), and a role to itself, which every session
/// there would otherwise start with: a `search_path` through which a planted function or
/// operator runs with the session's privileges, a `role` it acts as, a read-only default, short
/// timeouts. Startup options outrank both, and take effect before any statement (an event
/// trigger never sees them being set). Every value exists on every supported version.
fn sealed_options(statements: Duration) -> String {
    let ms = statements.as_millis().max(1);
    format!(
        "-c search_path=pg_catalog,pg_temp -c role=none -c default_transaction_read_only=off \
         -c statement_timeout={ms} -c lock_timeout={ms} \
         -c idle_in_transaction_session_timeout={ms} -c local_preload_libraries="
    )
}

/// Connects within `timeout` and drives the connection on its own task. `None`: timed out.
async fn spawn_connected<S, T>(
    connect: impl Future<Output = Result<(Client, Connection<S, T>), tokio_postgres::Error>>,
    timeout: Duration,
) -> Option<Result<(Client, JoinHandle<()>), tokio_postgres::Error>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let connected = tokio::time::timeout(timeout, connect).await.ok()?;
    Some(connected.map(spawn))
}

/// Drives `connection` on its own task.
fn spawn<S, T>((client, connection): (Client, Connection<S, T>)) -> (Client, JoinHandle<()>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let task = tokio::spawn(async move {
        let _ = connection.await;
    });
    (client, task)
}

/// Whether the server refused the credential: a wrong password, an unknown role, a role that may
/// not log in (`28P01`, `28000`).
fn is_refusal(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    e.code().is_some_and(|code| {
        *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
    })
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
