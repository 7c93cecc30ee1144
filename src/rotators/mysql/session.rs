//! A MySQL or MariaDB session: opening it (TLS, the account the server authenticated, the quoting
//! rules of its `sql_mode`), running statements, and what is kept of a driver error.

use std::fmt;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, DriverError, IoError, OptsBuilder};

use super::MysqlTls;
use super::auth_plugin::PasswordPlugin;
use super::quote::quote_literal;
use crate::credentials::Login;
use crate::deadline::StepContext;
use crate::engine::Engine;
use crate::error::Error;
use crate::rotators::Account;
use crate::rotators::driver::{
    CLEARTEXT_REFUSED, Failure, MAY_HAVE_APPLIED, attempt_timeout, bounded, database_error,
    error_chain,
};

/// An authenticated MySQL or MariaDB connection, with the account the server authenticated and
/// the quoting rules of its `sql_mode`.
pub struct MySession {
    pub(super) conn: Conn,
    pub(super) engine: Engine,
    pub(super) account: Account,
    pub(super) server: ServerSession,
    /// The connection is verified TLS: a statement carrying a password may use it.
    pub(super) tls: bool,
    /// `ALLOW_CLEARTEXT_PASSWORDS`: a statement carrying a password may use a plaintext
    /// connection too.
    pub(super) cleartext: bool,
}

/// What a session learns about itself when it opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ServerSession {
    /// `sql_mode` contains `NO_BACKSLASH_ESCAPES`.
    pub(super) no_backslash_escapes: bool,
    /// `@@version` names MariaDB (the secret's `engine` may say `mysql` for a MariaDB server).
    pub(super) mariadb: bool,
}

impl ServerSession {
    /// From the session's `@@SESSION.sql_mode` and `@@version`.
    pub(super) fn from_row(sql_mode: &str, version: &str) -> Self {
        ServerSession {
            no_backslash_escapes: sql_mode
                .split(',')
                .any(|mode| mode.trim().eq_ignore_ascii_case("NO_BACKSLASH_ESCAPES")),
            mariadb: version.to_ascii_lowercase().contains("mariadb"),
        }
    }

    /// A string literal for this session's `sql_mode`.
    pub(super) fn literal(&self, value: &str) -> String {
        quote_literal(value, self.no_backslash_escapes)
    }

    /// MySQL's statement that changes the logged-in account's own password to `new`: `ALTER
    /// USER CURRENT_USER() IDENTIFIED BY …`. Contains the password: never log it.
    pub(super) fn own_password_statement(&self, new: &str) -> String {
        format!(
            "ALTER USER CURRENT_USER() IDENTIFIED BY {}",
            self.literal(new)
        )
    }

    /// MariaDB's statement that gives the logged-in account's one authentication method the
    /// value its plugin stores for `new`, computed client-side: `SET PASSWORD = '<value>'`, so
    /// no statement carries the password (docs/protocol.md 5.14). Contains a value derived from
    /// the password: never log it.
    pub(super) fn own_stored_value_statement(&self, plugin: PasswordPlugin, new: &str) -> String {
        format!("SET PASSWORD = {}", self.literal(&plugin.stored_value(new)))
    }

    /// MySQL's statement for an account under `PASSWORD REQUIRE CURRENT`: `ALTER USER
    /// CURRENT_USER() IDENTIFIED BY <new> REPLACE <login>`, where `login` is the password that
    /// opened the session. Contains both passwords: never log it.
    pub(super) fn own_password_replacing(&self, new: &str, login: &str) -> String {
        format!(
            "ALTER USER CURRENT_USER() IDENTIFIED BY {} REPLACE {}",
            self.literal(new),
            self.literal(login)
        )
    }
}

impl fmt::Debug for MySession {
    // `Conn`'s own `Debug` prints the connection options; keep to what identifies the session.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MySession")
            .field("engine", &self.engine)
            .field("account", &self.account)
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl MySession {
    /// One connection attempt with `creds`, verified TLS through `tls` when given (with
    /// `tls_server_name` as the name verified and sent as SNI) or plaintext, bounded by the step's
    /// connect timeout.
    pub(super) async fn open(
        tls: Option<&MysqlTls>,
        creds: &Login,
        cleartext: bool,
        attempt: &str,
        ctx: &StepContext<'_>,
    ) -> Result<MySession, Failure> {
        let limit = attempt_timeout(ctx, attempt)?;
        let engine = creds.engine();
        let use_tls = tls.is_some();
        let opts = match tls {
            Some(tls) => {
                if let Some(name) = creds.tls_server_name() {
                    // Validated here so that the error names the field; an invalid name means
                    // TLS cannot be set up, like an invalid `host` in the driver.
                    crate::tls::server_name(creds.host(), Some(name))
                        .map_err(|problem| Failure::login(engine, problem, true))?;
                }
                // The template carries the TLS options and the configuration built from them.
                OptsBuilder::from_opts(tls.template(creds.tls_server_name()))
            }
            None => OptsBuilder::default(),
        };
        let opts = opts
            .ip_or_hostname(creds.host())
            .tcp_port(creds.port())
            .user(Some(creds.username()))
            .pass(Some(creds.password().expose()))
            .db_name(creds.dbname())
            // The driver would otherwise read `@@socket` and reconnect through a local Unix
            // socket when one exists: a different account (`'user'@'localhost'`) and no TLS.
            .prefer_socket(false);
        let work = async {
            let mut conn = Conn::new(opts).await.map_err(|e| {
                if is_refusal(&e) {
                    Failure::refused(engine, error_code(&e))
                } else if is_timeout(&e) {
                    Failure::unanswered(engine, "connecting", &limit)
                } else {
                    Failure::login(engine, error_code(&e), failed_before_auth(&e))
                }
            })?;
            match read_session(&mut conn).await {
                Ok((account, server)) => Ok(MySession {
                    conn,
                    engine,
                    account,
                    server,
                    tls: use_tls,
                    cleartext,
                }),
                Err(code) => {
                    let _ = conn.disconnect().await;
                    Err(Failure::login(engine, code, false))
                }
            }
        };
        match tokio::time::timeout(limit.timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(Failure::unanswered(engine, "logging in", &limit)),
        }
    }

    /// `user@host`, as errors name the account.
    pub(super) fn account_name(&self) -> String {
        format!(
            "{}@{}",
            self.account.user,
            self.account.host.as_deref().unwrap_or_default()
        )
    }

    /// Refuses a statement that carries a password unless the connection is verified TLS or
    /// `ALLOW_CLEARTEXT_PASSWORDS` allows it (docs/protocol.md 5.14). MariaDB's statements carry
    /// computed values instead and never need this.
    pub(super) fn may_send_password(&self, action: &'static str) -> Result<(), Error> {
        if self.tls || self.cleartext {
            Ok(())
        } else {
            Err(database_error(self.engine, action, CLEARTEXT_REFUSED))
        }
    }

    /// Runs `statement` (which may contain a password or grant text: never logged); a failure
    /// keeps only the error number and SQLSTATE.
    pub(super) async fn execute(
        &mut self,
        statement: &str,
        action: &'static str,
    ) -> Result<(), Error> {
        let engine = self.engine;
        self.conn
            .query_drop(statement)
            .await
            .map_err(|e| database_error(engine, action, error_code(&e)))
    }

    /// [`MySession::execute`] under `timeout`.
    pub(super) async fn run(
        &mut self,
        statement: &str,
        timeout: Duration,
        action: &'static str,
    ) -> Result<(), Error> {
        let engine = self.engine;
        bounded(timeout, self.execute(statement, action), |timed_out| {
            database_error(engine, action, format!("{timed_out}; {MAY_HAVE_APPLIED}"))
        })
        .await
    }
}

/// The code kept from a driver error: `error <number> (<SQLSTATE>)` for a server error, never its
/// message; else the driver's description of a transport, TLS or protocol failure with its causes
/// (`… invalid peer certificate: UnknownIssuer`), which carries no credential and no SQL.
pub(super) fn error_code(e: &mysql_async::Error) -> String {
    if let mysql_async::Error::Server(server) = e {
        return format!("error {} ({})", server.code, server.state);
    }
    error_chain(e)
}

/// The server's error number, when the server answered with an error.
pub(super) fn server_error_number(e: &mysql_async::Error) -> Option<u16> {
    match e {
        mysql_async::Error::Server(server) => Some(server.code),
        _ => None,
    }
}

/// `ER_ACCESS_DENIED_ERROR`, `ER_ACCESS_DENIED_NO_PASSWORD_ERROR`, MySQL's
/// `ER_ACCOUNT_HAS_BEEN_LOCKED`, MariaDB's locked account: the server refused the credential.
const REFUSALS: [u16; 4] = [1045, 1698, 3118, 4151];

/// Whether the server refused the credential (another version may be tried).
fn is_refusal(e: &mysql_async::Error) -> bool {
    server_error_number(e).is_some_and(|n| REFUSALS.contains(&n))
}

/// Whether the connection attempt timed out in the driver.
fn is_timeout(e: &mysql_async::Error) -> bool {
    matches!(e, mysql_async::Error::Io(IoError::Io(io)) if io.kind() == std::io::ErrorKind::TimedOut)
}

/// Whether a failed connection attempt never reached authentication. Server errors (1045 and
/// friends), authentication-plugin failures and timeouts count as reached: none of them may be
/// retried in plaintext.
fn failed_before_auth(e: &mysql_async::Error) -> bool {
    match e {
        mysql_async::Error::Server(_) => false,
        mysql_async::Error::Driver(
            DriverError::UnknownAuthPlugin { .. }
            | DriverError::CleartextPluginDisabled
            | DriverError::MysqlOldPasswordDisabled
            | DriverError::InvalidParsecSalt,
        ) => false,
        mysql_async::Error::Io(IoError::Io(io)) => io.kind() != std::io::ErrorKind::TimedOut,
        _ => true,
    }
}

/// Reads `CURRENT_USER()` (the account the server authenticated), `@@SESSION.sql_mode` and
/// `@@version`, in one round trip.
async fn read_session(conn: &mut Conn) -> Result<(Account, ServerSession), String> {
    let row: Option<(String, String, String)> = conn
        .query_first("SELECT CURRENT_USER(), @@SESSION.sql_mode, @@version")
        .await
        .map_err(|e| error_code(&e))?;
    let (current_user, sql_mode, version) = row.ok_or("SELECT CURRENT_USER() returned no row")?;
    let account =
        split_account(&current_user).ok_or("CURRENT_USER() is not of the form user@host")?;
    Ok((account, ServerSession::from_row(&sql_mode, &version)))
}

/// Splits `CURRENT_USER()`'s `user@host` at the **last** `@`: a user name may contain `@`, a host
/// may not.
fn split_account(current_user: &str) -> Option<Account> {
    current_user.rsplit_once('@').map(|(user, host)| Account {
        user: user.to_owned(),
        host: Some(host.to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_reads_its_sql_mode_and_server() {
        let nbe = ServerSession::from_row(
            "STRICT_TRANS_TABLES,no_backslash_escapes",
            "10.11.6-MariaDB-0+deb12u1",
        );
        assert!(nbe.no_backslash_escapes && nbe.mariadb);
        // Literals follow the mode the session reported.
        assert_eq!(nbe.literal(r"a'b\c"), r"'a''b\c'");
        let default =
            ServerSession::from_row("STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION", "8.0.36");
        assert!(!default.no_backslash_escapes && !default.mariadb);
        assert_eq!(default.literal(r"a'b\c"), r"'a\'b\\c'");
        assert!(!ServerSession::from_row("", "").no_backslash_escapes);
    }

    #[test]
    fn the_own_password_statement_follows_the_sessions_sql_mode() {
        // What the live round trip (`literals_round_trip_in_both_sql_modes`) proves the server
        // reads back as exactly the password, in each mode.
        let password = "a'b\\c\"%_";
        let mariadb = ServerSession::from_row("STRICT_TRANS_TABLES", "10.11.6-MariaDB");
        // MariaDB gets the stored value, never the password.
        let native = mariadb.own_stored_value_statement(PasswordPlugin::Native, password);
        assert_eq!(
            native,
            format!(
                "SET PASSWORD = '{}'",
                PasswordPlugin::Native.stored_value(password)
            )
        );
        let ed25519 = mariadb.own_stored_value_statement(PasswordPlugin::Ed25519, password);
        assert!(ed25519.starts_with("SET PASSWORD = '"), "{ed25519}");
        for statement in [native, ed25519] {
            assert!(!statement.contains("a'b") && !statement.contains("a\\'b"));
        }
        let mysql_nbe = ServerSession::from_row("ANSI_QUOTES,NO_BACKSLASH_ESCAPES", "8.4.0");
        assert_eq!(
            mysql_nbe.own_password_statement(password),
            "ALTER USER CURRENT_USER() IDENTIFIED BY 'a''b\\c\"%_'"
        );
    }

    #[test]
    fn replace_names_the_password_that_logged_in() {
        let mysql = ServerSession::from_row("STRICT_TRANS_TABLES", "8.0.36");
        assert_eq!(
            mysql.own_password_replacing("new'pw", "login\\pw"),
            "ALTER USER CURRENT_USER() IDENTIFIED BY 'new\\'pw' REPLACE 'login\\\\pw'"
        );
        let nbe = ServerSession::from_row("NO_BACKSLASH_ESCAPES", "8.4.0");
        assert_eq!(
            nbe.own_password_replacing("new'pw", "login\\pw"),
            "ALTER USER CURRENT_USER() IDENTIFIED BY 'new''pw' REPLACE 'login\\pw'"
        );
    }

    #[test]
    fn current_user_splits_at_the_last_at() {
        let split = |s: &str| split_account(s).map(|a| (a.user, a.host.unwrap()));
        assert_eq!(split("app@%"), Some(("app".into(), "%".into())));
        assert_eq!(split("a@b@10.0.%"), Some(("a@b".into(), "10.0.%".into())));
        assert_eq!(split("@localhost"), Some(("".into(), "localhost".into())));
        assert_eq!(split("app@"), Some(("app".into(), "".into())));
        assert_eq!(split("app"), None);
    }

    #[test]
    fn error_codes_keep_number_and_state_only() {
        let e = mysql_async::Error::Server(mysql_async::ServerError {
            code: 1064,
            message: "You have an error in your SQL syntax near 'S3cret'".into(),
            state: "42000".into(),
        });
        assert_eq!(error_code(&e), "error 1064 (42000)");
        assert!(!failed_before_auth(&e));
        let io = mysql_async::Error::Io(IoError::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "refused",
        )));
        assert!(failed_before_auth(&io));
        let timeout = mysql_async::Error::Io(IoError::Io(std::io::ErrorKind::TimedOut.into()));
        assert!(!failed_before_auth(&timeout));
        let plugin =
            mysql_async::Error::Driver(DriverError::UnknownAuthPlugin { name: "x".into() });
        assert!(!failed_before_auth(&plugin));
        let no_tls = mysql_async::Error::Driver(DriverError::NoClientSslFlagFromServer);
        assert!(failed_before_auth(&no_tls));
    }
}
