//! MySQL, Aurora MySQL and MariaDB (docs/protocol.md 5.7 and 5.8), over `mysql_async`.
//!
//! - **TLS.** mysql_async builds its own rustls configuration from certificates, so the rotator
//!   hands it the same trust roots as PostgreSQL ([`TlsRoots::certificates`]: system, Amazon RDS,
//!   `TLS_EXTRA_CA_FILE`) and switches its built-in webpki roots off, so both engines trust exactly
//!   the same CAs. `tls_server_name` becomes mysql_async's hostname override, which is the name sent
//!   as SNI and verified against the certificate (the chain is still verified); TCP still goes to
//!   `host`.
//! - **Literals.** The password statements take no `?` placeholder: MariaDB 10.11 answers 1064 to
//!   `ALTER USER … IDENTIFIED BY ?`, `CREATE USER … IDENTIFIED BY ?` and `SET PASSWORD =
//!   PASSWORD(?)` (an integration test proves it), and MySQL's grammar also wants a string literal
//!   there. Passwords are therefore escaped client-side by [`quote_literal`] for the session's
//!   `sql_mode`, read when the session opens.
//! - **Own password.** MySQL: `ALTER USER CURRENT_USER() IDENTIFIED BY …` (plus `REPLACE …` under
//!   `PASSWORD REQUIRE CURRENT`). MariaDB: `SET PASSWORD = PASSWORD(…)`, because MariaDB refuses
//!   `ALTER USER CURRENT_USER()` (error 1227) to users without `CREATE USER`. Both address exactly
//!   the account the server authenticated.
//! - **Accounts** are written as backtick identifiers (`` `user`@`host` ``, backticks doubled),
//!   which no `sql_mode` changes. The host always comes from the server (`CURRENT_USER()`, split at
//!   the last `@`), never assumed `'%'`.
//! - **Dual password** (docs/protocol.md 5.13): MySQL 8 users retain their current password as
//!   they set the new one; MariaDB accounts get both from the master, as authentication methods
//!   joined by `OR`, with values computed client-side. See `dual`.
//! - **Alternating users.** The clone is `<clone>@<current account's host>`. Before and after
//!   the master changes it, the privilege invariant is enforced by comparing both accounts'
//!   `SHOW GRANTS`. Every rotation replays the current account's `SHOW GRANTS` onto it and copies
//!   its `REQUIRE` setting from its `mysql.user` row (`ssl_type`, `ssl_cipher`, `x509_issuer`,
//!   `x509_subject`: a table in MySQL, a view in MariaDB 10.4+, read with bound parameters rather
//!   than by parsing `SHOW CREATE USER`, whose MySQL 8 output carries a binary password hash).
//! - **Errors.** A statement failure keeps only the server's error number and SQLSTATE (the message
//!   echoes the statement near the error, and with it a password or grant text). A login failure
//!   keeps the number and SQLSTATE, or the driver's transport/TLS description, which carries no
//!   credential.
//!
//! # Layout
//!
//! - `session`: opening a session, running statements, what is kept of a driver error;
//! - `quote`: literals for the session's `sql_mode`, and account names;
//! - `lexer` and `grants`: `SHOW GRANTS` lines, tokenised and rewritten for another account;
//! - `privileges`: what an account may do, from its `SHOW GRANTS`, compared with another's;
//! - `tls_requirement`: an account's `REQUIRE` setting;
//! - `master`: the alternating-users path, as named steps;
//! - `dual` and `auth_plugin`: the dual-password paths, and the values MariaDB's password plugins
//!   store.

mod auth_plugin;
mod dual;
mod grants;
mod lexer;
mod master;
mod methods;
mod privileges;
mod quote;
mod session;
mod tls_requirement;

use std::fmt;

use mysql_async::SslOpts;
use mysql_async::prelude::Queryable;

pub use auth_plugin::PasswordPlugin;
pub(crate) use master::audit_clone;
pub use quote::{account_sql, quote_literal};
pub use session::MySession;

use super::driver::{
    CLEARTEXT_REFUSED, CLOSE_TIMEOUT, MAY_HAVE_APPLIED, Transport, bounded, connect_per_tls_choice,
    database_error,
};
use super::{Account, Rotator};
use crate::credentials::{DbSecret, Password};
use crate::deadline::StepContext;
use crate::error::Error;
use crate::tls::TlsRoots;
use session::{error_code, server_error_number};

/// `ER_MISSING_CURRENT_PASSWORD` (MySQL 8.0.13+): the account is under `PASSWORD REQUIRE CURRENT`,
/// so changing its own password needs `REPLACE <current password>`.
const ER_MISSING_CURRENT_PASSWORD: u16 = 3892;

/// What a password change is called in errors.
const SETTING_PASSWORD: &str = "setting the password";

/// The plugin of the logged-in MariaDB account's one authentication method, read from its own
/// `SHOW CREATE USER CURRENT_USER()` (which needs no privilege), when the function can compute
/// what it stores; else an error naming the plugin, or saying that the account has several
/// methods (dual-password's), before anything changes.
async fn own_plugin(
    session: &mut MySession,
    timeout: std::time::Duration,
) -> Result<PasswordPlugin, Error> {
    const READING: &str = "reading the account's authentication method";
    let engine = session.engine;
    let read = async {
        session
            .conn
            .query_first::<String, _>("SHOW CREATE USER CURRENT_USER()")
            .await
            .map_err(|e| database_error(engine, READING, error_code(&e)))
    };
    let line = bounded(timeout, read, |t| database_error(engine, READING, t))
        .await?
        .ok_or_else(|| database_error(engine, READING, "SHOW CREATE USER returned no row"))?;
    let methods = methods::from_show_create_user(&line)
        .ok_or_else(|| database_error(engine, READING, "SHOW CREATE USER is not understood"))?;
    match methods.as_slice() {
        [method] => method.computable().ok_or_else(|| {
            database_error(
                engine,
                SETTING_PASSWORD,
                format!(
                    "the account authenticates with the plugin `{}`, whose stored value the \
                     function cannot compute (it computes {}); the account is left unchanged",
                    method.plugin,
                    PasswordPlugin::SUPPORTED
                ),
            )
        }),
        _ => Err(database_error(
            engine,
            SETTING_PASSWORD,
            "the account has several authentication methods (a dual-password account): rotate \
             it with the dual-password strategy, or give it one method; the account is left \
             unchanged",
        )),
    }
}

/// The MySQL-family rotator: trust roots shared by every connection.
#[derive(Clone)]
pub(crate) struct MysqlRotator {
    ssl: SslOpts,
    roots: usize,
    transport: Transport,
}

impl fmt::Debug for MysqlRotator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MysqlRotator")
            .field("roots", &self.roots)
            .field("transport", &self.transport)
            .finish_non_exhaustive()
    }
}

impl MysqlRotator {
    /// A rotator trusting exactly `roots` (mysql_async's built-in webpki roots are switched off),
    /// falling back and sending passwords as `transport` allows.
    pub(crate) fn new(roots: &TlsRoots, transport: Transport) -> Self {
        // mysql_async builds its rustls configuration with `ClientConfig::builder()`, which needs a
        // process-wide provider. rustls picks aws-lc-rs by itself while it is the only provider
        // compiled in; installing it explicitly keeps that true if another provider ever enters
        // the dependency tree. An `Err` only means one is installed already.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        MysqlRotator {
            ssl: ssl_opts(roots),
            roots: roots.certificates().len(),
            transport,
        }
    }
}

/// mysql_async's TLS options trusting exactly `roots`: DER buffers (its `PathOrBuf` is not
/// exported by name, hence the inference), which the driver parses into its own root store for
/// each connection.
pub fn ssl_opts(roots: &TlsRoots) -> SslOpts {
    SslOpts::default()
        .with_root_certs(
            roots
                .certificates()
                .iter()
                .map(|cert| cert.as_ref().to_vec().into())
                .collect(),
        )
        .with_disable_built_in_roots(true)
}

impl MysqlRotator {
    /// Refuses a MySQL statement that carries a password on `session` unless the connection is
    /// verified TLS or `ALLOW_CLEARTEXT_PASSWORDS` allows it (docs/protocol.md 5.14). MariaDB's
    /// statements carry computed values instead and never need this.
    pub(super) fn may_send_password(
        &self,
        session: &MySession,
        action: &'static str,
    ) -> Result<(), Error> {
        if session.tls || self.transport.cleartext {
            Ok(())
        } else {
            Err(database_error(session.engine, action, CLEARTEXT_REFUSED))
        }
    }
}

impl Rotator for MysqlRotator {
    type Session = MySession;

    async fn connect(
        &self,
        creds: &DbSecret,
        attempt: &str,
        ctx: &StepContext<'_>,
    ) -> Result<MySession, Error> {
        connect_per_tls_choice(self.transport.mode, creds, ctx, |tls| {
            MySession::open(&self.ssl, creds, tls, attempt, ctx)
        })
        .await
    }

    async fn check(&self, session: &mut MySession, ctx: &StepContext<'_>) -> Result<(), Error> {
        let timeout = ctx.query_timeout("test query")?;
        session
            .run("SELECT NOW()", timeout, "running the test query")
            .await
    }

    /// Changes the password of exactly the account the server authenticated, whatever its host:
    ///
    /// - MySQL: `ALTER USER CURRENT_USER() IDENTIFIED BY …`; under `PASSWORD REQUIRE CURRENT`
    ///   (error 3892) again with `REPLACE <login's password>`: the credential that opened the
    ///   session, current's or previous's, never the pending one (the server would answer 3891).
    ///   The statement carries the password, so it needs verified TLS (or
    ///   `ALLOW_CLEARTEXT_PASSWORDS`).
    /// - MariaDB: `SET PASSWORD = '<value>'`, the value the account's plugin stores for the new
    ///   password, computed client-side (the plugin is read from the account's own `SHOW CREATE
    ///   USER`), so no plaintext reaches the server or its logs. MariaDB (10.11 included) refuses
    ///   `ALTER USER CURRENT_USER()` with error 1227 unless the user holds `CREATE USER`, which
    ///   application users do not.
    async fn set_own_password(
        &self,
        session: &mut MySession,
        login: &DbSecret,
        new: &Password,
        ctx: &StepContext<'_>,
    ) -> Result<(), Error> {
        let timeout = ctx.query_timeout(SETTING_PASSWORD)?;
        let engine = session.engine;
        if session.server.mariadb {
            let plugin = own_plugin(session, timeout).await?;
            let statement = session
                .server
                .own_stored_value_statement(plugin, new.expose());
            return session.run(&statement, timeout, SETTING_PASSWORD).await;
        }
        self.may_send_password(session, SETTING_PASSWORD)?;
        let statement = session.server.own_password_statement(new.expose());
        // The driver's error is kept whole here: its number decides whether to retry.
        let first = bounded(
            timeout,
            async { Ok(session.conn.query_drop(&statement).await) },
            |t| database_error(engine, SETTING_PASSWORD, format!("{t}; {MAY_HAVE_APPLIED}")),
        )
        .await?;
        match first {
            Ok(()) => Ok(()),
            Err(e) if server_error_number(&e) == Some(ER_MISSING_CURRENT_PASSWORD) => {
                let timeout = ctx.query_timeout("ALTER USER … REPLACE")?;
                let statement = session
                    .server
                    .own_password_replacing(new.expose(), login.password().expose());
                session.run(&statement, timeout, SETTING_PASSWORD).await
            }
            Err(e) => Err(database_error(engine, SETTING_PASSWORD, error_code(&e))),
        }
    }

    fn account(&self, session: &MySession) -> Account {
        session.account.clone()
    }

    /// As the master: see the `master` module for the steps.
    async fn set_password_as_master(
        &self,
        master: &mut MySession,
        account: &Account,
        current: &DbSecret,
        pending: &DbSecret,
        ctx: &StepContext<'_>,
    ) -> Result<(), Error> {
        if !master.server.mariadb {
            self.may_send_password(master, "creating or updating the alternate user")?;
        }
        master::set_password_as_master(master, account, current, pending, ctx).await
    }

    /// MySQL 8: see the `dual` module.
    async fn add_own_password(
        &self,
        session: &mut MySession,
        current: &DbSecret,
        pending: &DbSecret,
        ctx: &StepContext<'_>,
    ) -> Result<(), Error> {
        self.may_send_password(
            session,
            "adding the pending password beside the current one",
        )?;
        dual::add_own_password(self, session, current, pending, ctx).await
    }

    /// MariaDB: see the `dual` module.
    async fn add_password_as_master(
        &self,
        master: &mut MySession,
        account: &Account,
        current: &DbSecret,
        pending: &DbSecret,
        ctx: &StepContext<'_>,
    ) -> Result<(), Error> {
        dual::add_password_as_master(master, account, current, pending, ctx).await
    }

    async fn close(&self, session: MySession) {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, session.conn.disconnect()).await;
    }
}
