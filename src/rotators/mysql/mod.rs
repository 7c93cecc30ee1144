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

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

pub use auth_plugin::PasswordPlugin;
use mysql_async::{Opts, OptsBuilder, SslOpts};
pub use quote::{account_sql, quote_literal};
pub use session::MySession;

use super::driver::{CLOSE_TIMEOUT, Transport, connect_per_tls_choice, may_use_tls};
use super::{Account, Added, CloneManagement, Connect, DualMaster, DualOwn, OwnPassword, Session};
use crate::credentials::{Login, Password};
use crate::deadline::StepContext;
use crate::engine::Engine;
use crate::error::{CloneFindings, Error, Shortfall};
use crate::tls::{LazyRoots, TlsRoots};

/// The MySQL-family connector: trust roots shared by every connection.
#[derive(Clone)]
pub(crate) struct MysqlRotator {
    roots: LazyRoots,
    /// Made on the first verified-TLS login.
    tls: Arc<OnceLock<MysqlTls>>,
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
    pub(crate) fn new(roots: LazyRoots, transport: Transport) -> Self {
        // mysql_async builds its rustls configuration with `ClientConfig::builder()`, which needs a
        // process-wide provider. rustls picks aws-lc-rs by itself while it is the only provider
        // compiled in; installing it explicitly keeps that true if another provider ever enters
        // the dependency tree. An `Err` only means one is installed already.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        MysqlRotator {
            roots,
            tls: Arc::new(OnceLock::new()),
            transport,
        }
    }

    /// The TLS set-up, made (and the trust roots loaded) on first use.
    fn tls(&self) -> &MysqlTls {
        self.tls
            .get_or_init(|| MysqlTls::new(ssl_opts(self.roots.get())))
    }
}

/// mysql_async's TLS options trusting exactly `roots`: DER buffers (its `PathOrBuf` is not
/// exported by name, hence the inference), which the driver parses into its own root store when it
/// builds its TLS connector, with webpki's built-in roots off.
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

/// One TLS configuration per container for mysql_async, as PostgreSQL and Redis share theirs.
///
/// mysql_async builds its rustls configuration (a root store from every certificate of
/// [`SslOpts`], then `ClientConfig` and verifier: about 3.5 M instructions with our 262 roots) the
/// first time a connection needs it, and caches it in the connection options: the cache (an
/// `Arc`'d cell beside the `SslOpts`) is shared by every clone of an `Opts` and by
/// [`OptsBuilder::from_opts`], and only [`OptsBuilder::ssl_opts`] starts a new one. So every login
/// starts from a template `Opts` that carries the `SslOpts`, and sets its host, port, user,
/// password and database over it: the first verified-TLS login builds the configuration, the
/// others reuse it (and its TLS session cache). The driver takes no prebuilt `ClientConfig`;
/// this is its own public API, with its verification (docs/benchmarks.md, "At the floor on
/// a 128 MB function").
///
/// `tls_server_name` lives in `SslOpts` (`with_danger_tls_hostname_override`), so each name gets
/// a template of its own; the few most recent are kept.
pub(crate) struct MysqlTls {
    ssl: SslOpts,
    /// Most recently used first.
    templates: Mutex<VecDeque<(Option<String>, Opts)>>,
}

impl MysqlTls {
    /// Templates kept: one per `tls_server_name` (and one for none), each with its own root store
    /// once used.
    const NAMES: usize = 4;

    fn new(ssl: SslOpts) -> Self {
        MysqlTls {
            ssl,
            templates: Mutex::new(VecDeque::with_capacity(Self::NAMES)),
        }
    }

    /// Options to connect with verified TLS, `name` (a valid `tls_server_name`) being verified
    /// and sent as SNI instead of the host: a template whose TLS configuration, once built, every
    /// login with the same name shares. Its user, password, host and port are unset.
    pub(super) fn template(&self, name: Option<&str>) -> Opts {
        let mut templates = self
            .templates
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(at) = templates.iter().position(|(n, _)| n.as_deref() == name) {
            let entry = templates.remove(at).expect("a position found above");
            let opts = entry.1.clone();
            templates.push_front(entry);
            return opts;
        }
        // Despite its name this keeps full verification: the chain is checked and the
        // certificate must match this name, which is also sent as SNI.
        let ssl = self
            .ssl
            .clone()
            .with_danger_tls_hostname_override(name.map(str::to_owned));
        let opts = Opts::from(OptsBuilder::default().ssl_opts(ssl));
        templates.truncate(Self::NAMES - 1);
        templates.push_front((name.map(str::to_owned), opts.clone()));
        opts
    }
}

impl Connect for MysqlRotator {
    type Session = MySession;

    async fn connect(
        &self,
        login: &Login,
        attempt: &str,
        ctx: &StepContext<'_>,
    ) -> Result<MySession, Error> {
        let tls = may_use_tls(self.transport.mode, login).then(|| self.tls());
        connect_per_tls_choice(self.transport.mode, login, ctx, |use_tls| {
            MySession::open(
                tls.filter(|_| use_tls),
                login,
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
