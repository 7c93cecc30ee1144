//! PostgreSQL and Aurora PostgreSQL.
//!
//! Passwords are sent as client-computed SCRAM-SHA-256 verifiers, so the plaintext never reaches the
//! server's logs or `pg_stat_activity`. `ALTER ROLE` is a utility statement and cannot take bound
//! parameters: the role name and the verifier are escaped client-side.

use std::sync::Arc;
use std::time::Duration;

use postgres_protocol::escape::{escape_identifier, escape_literal};
use tokio::task::JoinHandle;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{Client, NoTls, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{
    Account, Failure, Rotator, StepContext, TlsChoice, connect_per_tls_choice, original_name,
};
use crate::config::TlsMode;
use crate::credentials::{DbSecret, Password};
use crate::error::Error;
use crate::rotators::Engine;

/// Database used when the secret has no `dbname`.
pub const DEFAULT_DBNAME: &str = "postgres";

/// How long [`Rotator::close`] waits for the connection to end after `Terminate`.
const CLOSE_TIMEOUT: Duration = Duration::from_millis(250);

/// The PostgreSQL rotator: TLS configuration shared by every connection.
#[derive(Clone)]
pub struct PostgresRotator {
    /// Built once: each connection clones it (an `Arc`), never the rustls configuration.
    tls: MakeRustlsConnect,
    mode: TlsMode,
}

impl std::fmt::Debug for PostgresRotator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresRotator")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// An authenticated PostgreSQL connection.
#[derive(Debug)]
pub struct PgSession {
    client: Client,
    connection: JoinHandle<()>,
    engine: Engine,
    user: String,
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

/// The code kept from a driver error: the SQLSTATE for a server error, else the driver's description
/// of a transport or TLS failure with its causes (`error performing TLS handshake: invalid peer
/// certificate: UnknownIssuer`), which carry no credential.
fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("SQLSTATE {}", db.code().code());
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// For a statement that contains a password: the SQLSTATE only, never the server's text.
fn statement_code(e: &tokio_postgres::Error) -> String {
    match e.code() {
        Some(code) => format!("SQLSTATE {}", code.code()),
        None if e.is_closed() => "connection closed".to_owned(),
        None => "no SQLSTATE".to_owned(),
    }
}

impl PostgresRotator {
    /// A rotator verifying servers with `tls` and falling back per `mode`.
    pub fn new(tls: Arc<rustls::ClientConfig>, mode: TlsMode) -> Self {
        PostgresRotator {
            tls: MakeRustlsConnect::new((*tls).clone()),
            mode,
        }
    }

    async fn connect_once(
        &self,
        creds: &DbSecret,
        use_tls: bool,
        attempt: &str,
        ctx: &StepContext<'_>,
    ) -> Result<PgSession, Failure> {
        let timeout = ctx
            .deadline
            .connect_timeout(ctx.step, attempt)
            .map_err(|error| Failure {
                error,
                before_auth: false,
            })?;
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
        let failed = |code: String, before_auth: bool| Failure {
            error: Error::Database {
                engine,
                action: "logging in",
                code,
            },
            before_auth,
        };
        let connected = if use_tls {
            config.ssl_mode(tokio_postgres::config::SslMode::Require);
            let tls = NamedTls {
                inner: self.tls.clone(),
                name: creds.tls_server_name().map(str::to_owned),
            };
            spawn_connected(&config, tls, timeout).await
        } else {
            config.ssl_mode(tokio_postgres::config::SslMode::Disable);
            spawn_connected(&config, NoTls, timeout).await
        };
        let Some(connected) = connected else {
            return Err(failed(format!("timed out after {timeout:?}"), false));
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
                Err(failed(describe(&e), before_auth))
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

impl Rotator for PostgresRotator {
    type Session = PgSession;

    async fn connect(
        &self,
        creds: &DbSecret,
        attempt: &str,
        ctx: &StepContext<'_>,
    ) -> Result<PgSession, Error> {
        connect_per_tls_choice(
            TlsChoice::resolve(creds.ssl(), self.mode),
            creds,
            ctx,
            |tls| self.connect_once(creds, tls, attempt, ctx),
        )
        .await
    }

    async fn check(&self, session: &mut PgSession, ctx: &StepContext<'_>) -> Result<(), Error> {
        let timeout = ctx.deadline.query_timeout(ctx.step, "test query")?;
        let failed = |code: String| Error::Database {
            engine: session.engine,
            action: "running the test query",
            code,
        };
        match tokio::time::timeout(timeout, session.client.simple_query("SELECT NOW()")).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(failed(describe(&e))),
            Err(_) => Err(failed(format!("timed out after {timeout:?}"))),
        }
    }

    async fn set_own_password(
        &self,
        session: &mut PgSession,
        user: &DbSecret,
        new: &Password,
        ctx: &StepContext<'_>,
    ) -> Result<(), Error> {
        let timeout = ctx.deadline.query_timeout(ctx.step, "ALTER ROLE")?;
        let verifier = postgres_protocol::password::scram_sha_256(new.expose().as_bytes());
        // Contains the verifier, not the password; still never logged.
        let statement = format!(
            "ALTER ROLE {} PASSWORD {}",
            escape_identifier(user.username()),
            escape_literal(&verifier)
        );
        let failed = |code: String| Error::Database {
            engine: session.engine,
            action: "setting the password",
            code,
        };
        match tokio::time::timeout(timeout, session.client.batch_execute(&statement)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(failed(statement_code(&e))),
            Err(_) => Err(failed(format!(
                "timed out after {timeout:?}; the change may or may not have been applied"
            ))),
        }
    }

    fn account(&self, session: &PgSession) -> Account {
        Account {
            user: session.user.clone(),
            host: None,
        }
    }

    /// Creates the pending user (the clone, on the first rotation) or sets its password, then
    /// repairs the clone: `LOGIN`, membership in the original role, and `SET role` to the original so
    /// that objects it creates belong to the original. One transaction.
    async fn set_password_as_master(
        &self,
        master: &mut PgSession,
        current: &Account,
        pending: &DbSecret,
        ctx: &StepContext<'_>,
    ) -> Result<(), Error> {
        let engine = master.engine;
        let target = pending.username();
        let original = original_name(&current.user, target);
        let clone = if original == target {
            current.user.as_str()
        } else {
            target
        };
        let timeout = ctx
            .deadline
            .query_timeout(ctx.step, "creating or updating the alternate user")?;
        let failed = |action: &'static str, e: &tokio_postgres::Error| Error::Database {
            engine,
            action,
            code: statement_code(e),
        };
        let work = async {
            let transaction = master
                .client
                .transaction()
                .await
                .map_err(|e| failed("starting a transaction", &e))?;
            let exists = transaction
                .query_opt(
                    "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1",
                    &[&target],
                )
                .await
                .map_err(|e| failed("looking up the user", &e))?
                .is_some();
            let verifier =
                postgres_protocol::password::scram_sha_256(pending.password().expose().as_bytes());
            // Contains the verifier, not the password; still never logged.
            let statement = format!(
                "{} ROLE {} WITH LOGIN PASSWORD {}",
                if exists { "ALTER" } else { "CREATE" },
                escape_identifier(target),
                escape_literal(&verifier)
            );
            transaction
                .batch_execute(&statement)
                .await
                .map_err(|e| failed("setting the password", &e))?;
            let repair = format!(
                "GRANT {original_id} TO {clone_id}; \
                 ALTER ROLE {clone_id} WITH LOGIN; \
                 ALTER ROLE {clone_id} SET role = {original_literal}",
                original_id = escape_identifier(original),
                clone_id = escape_identifier(clone),
                original_literal = escape_literal(original),
            );
            transaction
                .batch_execute(&repair)
                .await
                .map_err(|e| failed("repairing the alternate user", &e))?;
            transaction
                .commit()
                .await
                .map_err(|e| failed("committing", &e))?;
            Ok::<bool, Error>(exists)
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(Ok(existed)) => {
                tracing::info!(user = target, created = !existed, "alternate user updated");
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::Database {
                engine,
                action: "creating or updating the alternate user",
                code: format!(
                    "timed out after {timeout:?}; the transaction may or may not have been committed"
                ),
            }),
        }
    }

    async fn close(&self, session: PgSession) {
        let PgSession {
            client, connection, ..
        } = session;
        drop(client);
        // Dropping the client sends Terminate; wait briefly so the server sees a clean close. A
        // connection still waiting for an answer (a statement that timed out) never finishes:
        // stop it rather than leave it running in the warm container. The wait is a fraction of
        // the deadline's safety margin, which a statement timeout leaves for closing and reporting.
        let mut connection = connection;
        if tokio::time::timeout(CLOSE_TIMEOUT, &mut connection)
            .await
            .is_err()
        {
            connection.abort();
        }
    }
}
