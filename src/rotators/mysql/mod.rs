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
//!   `PASSWORD REQUIRE CURRENT`), over verified TLS only. MariaDB: `SET PASSWORD = '<value>'`,
//!   the value the account's plugin stores, computed client-side, because MariaDB refuses `ALTER
//!   USER CURRENT_USER()` (error 1227) to users without `CREATE USER`. Both address exactly the
//!   account the server authenticated. See `own`.
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
//! - `own`: the single-user path;
//! - `methods`: an account's authentication methods, and whether one accepts a password;
//! - `master`: the alternating-users path, as named steps, and what the master needs for it;
//! - `dual` and `auth_plugin`: the dual-password paths, and the values MariaDB's password plugins
//!   store.

mod auth_plugin;
mod dual;
mod grants;
mod lexer;
mod master;
mod methods;
mod own;
mod privileges;
mod quote;
mod session;
mod tls_requirement;

use std::fmt;

pub use auth_plugin::PasswordPlugin;
use mysql_async::SslOpts;
pub use quote::{account_sql, quote_literal};
pub use session::MySession;

use super::driver::{CLOSE_TIMEOUT, Transport, connect_per_tls_choice};
use super::{Account, Added, CloneManagement, Connect, DualMaster, DualOwn, OwnPassword, Session};
use crate::credentials::{Login, Password};
use crate::deadline::StepContext;
use crate::engine::Engine;
use crate::error::{CloneFindings, Error, Shortfall};
use crate::tls::TlsRoots;

/// The MySQL-family connector: trust roots shared by every connection.
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
    /// A connector trusting exactly `roots` (mysql_async's built-in webpki roots are switched
    /// off), falling back and sending passwords as `transport` allows.
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

impl Connect for MysqlRotator {
    type Session = MySession;

    async fn connect(
        &self,
        login: &Login,
        attempt: &str,
        ctx: &StepContext<'_>,
    ) -> Result<MySession, Error> {
        connect_per_tls_choice(self.transport.mode, login, ctx, |tls| {
            MySession::open(
                &self.ssl,
                login,
                tls,
                self.transport.cleartext,
                attempt,
                ctx,
            )
        })
        .await
    }
}

impl Session for MySession {
    fn engine(&self) -> Engine {
        self.engine
    }

    fn account(&self) -> Account {
        self.account.clone()
    }

    async fn check(&mut self, ctx: &StepContext<'_>) -> Result<(), Error> {
        let timeout = ctx.query_timeout("test query")?;
        self.run("SELECT NOW()", timeout, "running the test query")
            .await
    }

    async fn close(self) {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.conn.disconnect()).await;
    }
}

impl OwnPassword for MySession {
    /// See the `own` module.
    async fn set_own_password(
        &mut self,
        login: &Login,
        new: &Password,
        ctx: &StepContext<'_>,
    ) -> Result<(), Error> {
        own::set_own_password(self, login, new, ctx).await
    }

    async fn own_password_shortfalls(
        &mut self,
        ctx: &StepContext<'_>,
    ) -> Result<Vec<Shortfall>, Error> {
        own::shortfalls(self, ctx).await
    }
}

impl CloneManagement for MySession {
    /// As the master: see the `master` module for the steps.
    async fn set_password_as_master(
        &mut self,
        account: &Account,
        current: &Login,
        pending: &Login,
        ctx: &StepContext<'_>,
    ) -> Result<(), Error> {
        if !self.server.mariadb {
            self.may_send_password("creating or updating the alternate user")?;
        }
        master::set_password_as_master(self, account, current, pending, ctx).await
    }

    async fn audit_clone(
        &mut self,
        account: &Account,
        pending_user: &str,
        ctx: &StepContext<'_>,
    ) -> Result<CloneFindings, Error> {
        master::audit_clone(self, account, pending_user, ctx).await
    }

    async fn master_shortfalls(
        &mut self,
        account: &Account,
        pending_user: &str,
        ctx: &StepContext<'_>,
    ) -> Result<Vec<Shortfall>, Error> {
        master::master_shortfalls(self, account, pending_user, ctx).await
    }
}

impl DualOwn for MySession {
    /// MySQL 8: see the `dual` module.
    async fn add_own_password(
        &mut self,
        current: &Password,
        pending: &Password,
        ctx: &StepContext<'_>,
    ) -> Result<Added, Error> {
        self.may_send_password("adding the pending password beside the current one")?;
        dual::add_own_password(self, current, pending, ctx).await
    }

    async fn dual_own_shortfalls(
        &mut self,
        ctx: &StepContext<'_>,
    ) -> Result<Vec<Shortfall>, Error> {
        dual::own_shortfalls(self, ctx).await
    }
}

impl DualMaster for MySession {
    /// MariaDB: see the `dual` module.
    async fn add_password_as_master(
        &mut self,
        account: &Account,
        current: &Password,
        pending: &Password,
        ctx: &StepContext<'_>,
    ) -> Result<(), Error> {
        dual::add_password_as_master(self, account, current, pending, ctx).await
    }

    async fn dual_master_shortfalls(
        &mut self,
        account: &Account,
        current: &Password,
        ctx: &StepContext<'_>,
    ) -> Result<Vec<Shortfall>, Error> {
        dual::master_shortfalls(self, account, current, ctx).await
    }
}
