//! A Redis or Valkey session: TCP to `host`, verified TLS through the crate's one rustls
//! configuration (docs/protocol.md 5.4), then the `redis` crate's protocol over that stream,
//! logging in with `AUTH <username> <password>`. Commands run with a timeout, and what is kept of
//! an error is its code (`WRONGPASS`, `NOPERM`) or a transport description: a server's message
//! can quote the command, which here carries password hashes.

use std::fmt;
use std::sync::Arc;

use ::redis::aio::MultiplexedConnection;
use ::redis::{AsyncConnectionConfig, Cmd, ErrorKind, RedisConnectionInfo, RedisError, Value};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout_at};
use tokio_rustls::TlsConnector;

use super::acl::password_hash;
use crate::credentials::Login;
use crate::deadline::StepContext;
use crate::engine::Engine;
use crate::error::Error;
use crate::rotators::driver::{
    CLEARTEXT_REFUSED, CLOSE_TIMEOUT, Failure, MAY_HAVE_APPLIED, attempt_timeout, bounded,
    database_error, error_chain,
};

/// An authenticated connection, with the user it logged in as.
pub struct RedisSession {
    conn: MultiplexedConnection,
    /// The task that drives the connection; it ends when `conn` is dropped.
    driver: JoinHandle<()>,
    pub(super) engine: Engine,
    /// The ACL user the session logged in as (`AUTH` succeeded for exactly this name).
    pub(super) user: String,
    /// SHA-256 of the password the session logged in with, as ACL rules name it. Derived from a
    /// password: never logged.
    pub(super) login_hash: String,
}

impl fmt::Debug for RedisSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSession")
            .field("engine", &self.engine)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl RedisSession {
    /// One connection attempt with `creds`, verified TLS through `tls` when given (with
    /// `tls_server_name` as the name verified and sent as SNI) or plaintext, bounded by the step's
    /// connect timeout.
    pub(super) async fn open(
        tls: Option<&TlsConnector>,
        creds: &Login,
        cleartext: bool,
        attempt: &str,
        ctx: &StepContext<'_>,
    ) -> Result<RedisSession, Failure> {
        let limit = attempt_timeout(ctx, attempt)?;
        let engine = creds.engine();
        // `AUTH` carries the password as it is: never over plaintext unless the operator said so.
        if tls.is_none() && !cleartext {
            return Err(Failure::login(engine, CLEARTEXT_REFUSED.to_owned(), false));
        }
        let deadline = Instant::now() + limit.timeout;
        // Each phase ends at the attempt's deadline. Running out of time while connecting or
        // logging in is never retried; a TLS handshake left unanswered is: a plaintext Redis
        // port reads the TLS greeting as the start of a command and waits for the rest.
        let late = |phase: &str| Failure::unanswered(engine, phase, &limit);
        let tcp = timeout_at(deadline, TcpStream::connect((creds.host(), creds.port())))
            .await
            .map_err(|_| late("connecting"))?
            .map_err(|e| {
                let before_auth = e.kind() != std::io::ErrorKind::TimedOut;
                Failure::login(engine, error_chain(&e), before_auth)
            })?;
        let _ = tcp.set_nodelay(true);
        let logged_in = if let Some(tls) = tls {
            let name = crate::tls::server_name(creds.host(), creds.tls_server_name())
                .map_err(|problem| Failure::login(engine, problem, true))?;
            let stream = timeout_at(deadline, tls.connect(name, tcp))
                .await
                .map_err(|_| Failure {
                    before_auth: true,
                    ..late("the TLS handshake")
                })?
                .map_err(|e| Failure::login(engine, error_chain(&e), true))?;
            timeout_at(deadline, Self::log_in(creds, stream)).await
        } else {
            timeout_at(deadline, Self::log_in(creds, tcp)).await
        };
        logged_in.map_err(|_| late("logging in"))?
    }

    /// `AUTH` over `stream`; the driver task starts once the server accepted the login.
    async fn log_in<S>(creds: &Login, stream: S) -> Result<RedisSession, Failure>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let engine = creds.engine();
        let info = RedisConnectionInfo::default()
            .set_username(creds.username())
            .set_password(creds.password().expose())
            .set_skip_set_lib_name();
        // The crate's own timeouts (500 ms per answer by default) are off: the step's deadline
        // bounds every call instead (docs/protocol.md 5.5).
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(None)
            .set_response_timeout(None);
        let (conn, driver) = MultiplexedConnection::new_with_config(&info, stream, config)
            .await
            .map_err(|e| {
                if e.kind() == ErrorKind::AuthenticationFailed {
                    Failure::refused(engine, describe(&e))
                } else {
                    Failure::login(engine, describe(&e), e.is_io_error())
                }
            })?;
        Ok(RedisSession {
            conn,
            driver: tokio::spawn(driver),
            engine,
            user: creds.username().to_owned(),
            login_hash: password_hash(creds.password().expose()),
        })
    }

    /// Sends `cmd` within what is left of the step and returns the server's answer; a server
    /// error is an `Err` keeping its code. The command may carry password hashes: never log it.
    pub(super) async fn send(
        &mut self,
        cmd: &Cmd,
        ctx: &StepContext<'_>,
        action: &'static str,
    ) -> Result<Value, Error> {
        let timeout = ctx.query_timeout(action)?;
        let engine = self.engine;
        // The raw answer: an error inside an array (`EXEC`'s) stays a value for the caller.
        let sent = async {
            match self.conn.send_packed_command(cmd).await {
                Ok(Value::ServerError(e)) => Err(database_error(engine, action, e.code())),
                Ok(answer) => Ok(answer),
                Err(e) => Err(database_error(engine, action, describe(&e))),
            }
        };
        bounded(timeout, sent, |timed_out| {
            database_error(engine, action, format!("{timed_out}; {MAY_HAVE_APPLIED}"))
        })
        .await
    }

    /// Closes the connection: the driver ends once the connection is dropped, or is stopped.
    pub(super) async fn close(self) {
        let RedisSession {
            conn, mut driver, ..
        } = self;
        drop(conn);
        if tokio::time::timeout(CLOSE_TIMEOUT, &mut driver)
            .await
            .is_err()
        {
            driver.abort();
        }
    }
}

/// What is kept of a driver error: the server's error code (`WRONGPASS`, `NOPERM`, `ERR`), the
/// transport description, or the error's category; never a server message, which can quote the
/// command.
pub(super) fn describe(e: &RedisError) -> String {
    if e.is_io_error() {
        return error_chain(e);
    }
    match (e.kind(), e.code()) {
        (ErrorKind::AuthenticationFailed, _) => "authentication failed (WRONGPASS)".to_owned(),
        (_, Some(code)) => code.to_owned(),
        _ => e.category().to_owned(),
    }
}

/// The error code of a server error found inside an answer (`EXEC`'s array), as [`describe`]
/// keeps it.
pub(super) fn value_error_code(value: &Value) -> Option<&str> {
    match value {
        Value::ServerError(e) => Some(e.code()),
        _ => None,
    }
}

/// The TLS connector over the crate's rustls configuration.
pub(super) fn connector(config: Arc<rustls::ClientConfig>) -> TlsConnector {
    TlsConnector::from(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_codes_never_messages() {
        let server = RedisError::from((
            ErrorKind::AuthenticationFailed,
            "Password authentication failed",
        ));
        assert_eq!(describe(&server), "authentication failed (WRONGPASS)");
        let io = RedisError::from(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "refused",
        ));
        assert!(describe(&io).contains("refused"));
    }
}
