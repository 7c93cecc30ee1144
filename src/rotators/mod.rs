//! Database engines and the rotators that change passwords on them.

use std::fmt;

/// A database engine as named by the secret's `engine` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Engine {
    /// `postgres`
    Postgres,
    /// `aurora-postgresql`
    AuroraPostgres,
    /// `mysql`
    Mysql,
    /// `aurora-mysql`
    AuroraMysql,
    /// `mariadb`
    Mariadb,
}

/// Engines that share a wire protocol and SQL dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// PostgreSQL and Aurora PostgreSQL.
    Postgres,
    /// MySQL, Aurora MySQL and MariaDB.
    Mysql,
}

impl Engine {
    /// Every accepted `engine` value, for error messages.
    pub const ACCEPTED: &'static str = "postgres, aurora-postgresql, mysql, aurora-mysql, mariadb";

    /// Parses the exact, case-sensitive `engine` value.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "postgres" => Some(Engine::Postgres),
            "aurora-postgresql" => Some(Engine::AuroraPostgres),
            "mysql" => Some(Engine::Mysql),
            "aurora-mysql" => Some(Engine::AuroraMysql),
            "mariadb" => Some(Engine::Mariadb),
            _ => None,
        }
    }

    /// The `engine` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Postgres => "postgres",
            Engine::AuroraPostgres => "aurora-postgresql",
            Engine::Mysql => "mysql",
            Engine::AuroraMysql => "aurora-mysql",
            Engine::Mariadb => "mariadb",
        }
    }

    /// The port used when the secret has none.
    pub fn default_port(self) -> u16 {
        match self.family() {
            Family::Postgres => 5432,
            Family::Mysql => 3306,
        }
    }

    /// The protocol family.
    pub fn family(self) -> Family {
        match self {
            Engine::Postgres | Engine::AuroraPostgres => Family::Postgres,
            Engine::Mysql | Engine::AuroraMysql | Engine::Mariadb => Family::Mysql,
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

pub mod mysql;
pub mod postgres;

use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::config::{Config, TlsMode};
use crate::credentials::{DbSecret, Password, SslSetting};
use crate::error::Error;
use crate::event::Step;
use crate::tls::TlsRoots;

/// The time a step may spend on database work: each connection attempt gets the configured timeout,
/// capped at what is left of the invocation minus a safety margin.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    end: Option<Instant>,
    connect_timeout: Duration,
}

impl Deadline {
    /// Time kept back from the invocation deadline, to report an error instead of being killed.
    pub const SAFETY_MARGIN: Duration = Duration::from_millis(1000);
    /// Below this, an attempt is not worth starting.
    pub const MIN_ATTEMPT: Duration = Duration::from_millis(200);
    /// Bound on a query when the invocation has no deadline (tests, manual runs).
    pub const UNBOUNDED_QUERY_TIMEOUT: Duration = Duration::from_secs(30);

    /// A deadline at `end` (`None`: no invocation deadline).
    pub fn new(end: Option<Instant>, connect_timeout: Duration) -> Self {
        Deadline {
            end,
            connect_timeout,
        }
    }

    /// Deadlines below this (September 2001) are not epoch times: 0 when none is given, and local
    /// emulators such as `cargo lambda watch` send a fixed relative value (600000).
    const EARLIEST_EPOCH_MILLIS: u64 = 1_000_000_000_000;

    /// From the Lambda context's deadline, in milliseconds since the Unix epoch. A value that cannot
    /// be an epoch time means no deadline: each attempt is then bounded by the connect timeout.
    pub fn from_epoch_millis(deadline_ms: u64, connect_timeout: Duration) -> Self {
        if deadline_ms < Self::EARLIEST_EPOCH_MILLIS {
            return Deadline::new(None, connect_timeout);
        }
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let left = Duration::from_millis(deadline_ms.saturating_sub(now_ms));
        Deadline::new(Some(Instant::now() + left), connect_timeout)
    }

    fn usable(&self) -> Option<Duration> {
        self.end.map(|end| {
            end.saturating_duration_since(Instant::now())
                .saturating_sub(Self::SAFETY_MARGIN)
        })
    }

    fn budget(&self, cap: Duration, step: &Step, attempt: &str) -> Result<Duration, Error> {
        match self.usable() {
            None => Ok(cap),
            Some(left) if left < Self::MIN_ATTEMPT => Err(Error::DeadlineExceeded {
                step: step.clone(),
                attempt: attempt.to_owned(),
            }),
            Some(left) => Ok(left.min(cap)),
        }
    }

    /// The timeout for the next connection attempt, or `DeadlineExceeded` naming it.
    pub fn connect_timeout(&self, step: &Step, attempt: &str) -> Result<Duration, Error> {
        self.budget(self.connect_timeout, step, attempt)
    }

    /// The timeout for the next statement, or `DeadlineExceeded` naming it.
    pub fn query_timeout(&self, step: &Step, attempt: &str) -> Result<Duration, Error> {
        self.budget(Self::UNBOUNDED_QUERY_TIMEOUT, step, attempt)
    }
}

/// Who is acting, for errors and logs, and how much time is left.
#[derive(Debug, Clone, Copy)]
pub struct StepContext<'a> {
    /// Secret ARN or name.
    pub secret_id: &'a str,
    /// The running step.
    pub step: &'a Step,
    /// The invocation's time budget.
    pub deadline: Deadline,
}

/// How one connection is secured, resolved from the secret's `ssl` key and `TLS_MODE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsChoice {
    /// Verified TLS, no fallback.
    Require,
    /// Plaintext.
    Disable,
    /// Verified TLS, then plaintext with a warning when TLS cannot be set up.
    Prefer,
}

impl TlsChoice {
    /// The choice for a secret's `ssl` setting under `mode`.
    pub fn resolve(ssl: SslSetting, mode: TlsMode) -> Self {
        match (ssl, mode) {
            (SslSetting::Require, _) => TlsChoice::Require,
            (SslSetting::Disable, _) => TlsChoice::Disable,
            (SslSetting::Unset | SslSetting::Unrecognised, TlsMode::VerifyFull) => {
                TlsChoice::Require
            }
            (SslSetting::Unset | SslSetting::Unrecognised, TlsMode::Prefer) => TlsChoice::Prefer,
        }
    }
}

/// Why one connection attempt failed, and whether `TLS_MODE=prefer` may retry it in plaintext.
pub(crate) struct Failure {
    pub(crate) error: Error,
    /// The server never got to authentication (no TLS, untrusted certificate, transport): a
    /// plaintext retry is allowed under `prefer`. Authentication failures and timeouts never retry.
    pub(crate) before_auth: bool,
}

/// Connects as the TLS choice for `creds` says: `attempt(true)` is a verified-TLS attempt,
/// `attempt(false)` a plaintext one. Under `prefer`, a TLS attempt that failed before
/// authentication is retried in plaintext, with a warning naming the secret and host.
pub(crate) async fn connect_per_tls_choice<T, Fut>(
    choice: TlsChoice,
    creds: &DbSecret,
    ctx: &StepContext<'_>,
    attempt: impl Fn(bool) -> Fut,
) -> Result<T, Error>
where
    Fut: Future<Output = Result<T, Failure>>,
{
    match choice {
        TlsChoice::Require => attempt(true).await,
        TlsChoice::Disable => attempt(false).await,
        TlsChoice::Prefer => match attempt(true).await {
            Err(Failure {
                error,
                before_auth: true,
            }) => {
                tracing::warn!(
                    secret_id = ctx.secret_id,
                    host = creds.host(),
                    error = %error,
                    "TLS connection failed; retrying in plaintext because TLS_MODE=prefer"
                );
                attempt(false).await
            }
            other => other,
        },
    }
    .map_err(|f| f.error)
}

/// What a database engine must do for a rotation. One implementation per protocol family, and
/// [`Rotators`] dispatching on the secret's engine.
pub trait Rotator {
    /// An authenticated connection.
    type Session;

    /// Connects and logs in with `creds` (host, port, user, password, database, TLS settings).
    /// `attempt` names the try for errors (`login with pending secret`). A failure is an error value;
    /// only [`Error::DeadlineExceeded`] means the caller must stop trying.
    fn connect(
        &self,
        creds: &DbSecret,
        attempt: &str,
        ctx: &StepContext<'_>,
    ) -> impl Future<Output = Result<Self::Session, Error>>;

    /// Runs a trivial query (`SELECT NOW()`), proving the session works.
    fn check(
        &self,
        session: &mut Self::Session,
        ctx: &StepContext<'_>,
    ) -> impl Future<Output = Result<(), Error>>;

    /// Changes the logged-in user's own password to `new` (single-user strategy).
    fn set_own_password(
        &self,
        session: &mut Self::Session,
        user: &DbSecret,
        new: &Password,
        ctx: &StepContext<'_>,
    ) -> impl Future<Output = Result<(), Error>>;

    /// The account the session is logged in as, as the server names it (MySQL `user@host`; a
    /// PostgreSQL role has no host).
    fn account(&self, session: &Self::Session) -> Account;

    /// As the master (superuser) session, makes the database accept `pending`'s password for
    /// `pending`'s user, which is `current`'s user or its `_clone` (alternating-users strategy):
    /// creates the clone when missing and, every rotation, repairs it so that it holds the current
    /// account's privileges.
    fn set_password_as_master(
        &self,
        master: &mut Self::Session,
        current: &Account,
        pending: &DbSecret,
        ctx: &StepContext<'_>,
    ) -> impl Future<Output = Result<(), Error>>;

    /// Closes the session.
    fn close(&self, session: Self::Session) -> impl Future<Output = ()>;
}

/// A database account as the server identifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// User (role) name.
    pub user: String,
    /// MySQL account host (`%`, `10.0.%`, `127.0.0.1`, …); `None` for PostgreSQL.
    pub host: Option<String>,
}

/// The longest user name each engine accepts for a clone.
pub fn username_limit(engine: Engine, mysql_limit: usize) -> usize {
    match engine {
        Engine::Postgres | Engine::AuroraPostgres => 63,
        Engine::Mysql | Engine::AuroraMysql => mysql_limit,
        Engine::Mariadb => 80,
    }
}

/// The alternating-users partner of `username`: `_clone` appended, or stripped when present. Only
/// the lengthened name is checked against `limit`; `Err` carries the limit.
pub fn clone_name(username: &str, limit: usize) -> Result<String, usize> {
    match username.strip_suffix(CLONE_SUFFIX) {
        Some(original) if !original.is_empty() => Ok(original.to_owned()),
        _ => {
            let clone = format!("{username}{CLONE_SUFFIX}");
            if clone.chars().count() > limit {
                Err(limit)
            } else {
                Ok(clone)
            }
        }
    }
}

/// Suffix of the alternate user's name.
pub const CLONE_SUFFIX: &str = "_clone";

/// Of a user and its clone, the original (the name without `_clone`).
pub fn original_name<'a>(a: &'a str, b: &'a str) -> &'a str {
    if a.len() <= b.len() { a } else { b }
}

/// An open session on any engine.
#[derive(Debug)]
pub enum Session {
    /// PostgreSQL or Aurora PostgreSQL.
    Postgres(postgres::PgSession),
    /// MySQL, Aurora MySQL or MariaDB.
    Mysql(mysql::MySession),
}

/// The rotators of every engine, built once per container, chosen by the secret's `engine`.
#[derive(Debug, Clone)]
pub struct Rotators {
    postgres: postgres::PostgresRotator,
    mysql: mysql::MysqlRotator,
}

impl Rotators {
    /// Builds the rotators and loads the TLS trust roots (system, Amazon RDS, `TLS_EXTRA_CA_FILE`).
    pub fn new(config: &Config) -> Result<Self, Error> {
        let roots = TlsRoots::load(config.tls_extra_ca_file.as_deref())?;
        Ok(Self::with_roots(&roots, config))
    }

    /// Builds the rotators over given trust roots.
    pub fn with_roots(roots: &TlsRoots, config: &Config) -> Self {
        Rotators {
            postgres: postgres::PostgresRotator::new(roots.client_config(), config.tls_mode),
            mysql: mysql::MysqlRotator::new(roots, config.tls_mode),
        }
    }
}

impl Rotator for Rotators {
    type Session = Session;

    async fn connect(
        &self,
        creds: &DbSecret,
        attempt: &str,
        ctx: &StepContext<'_>,
    ) -> Result<Session, Error> {
        match creds.engine().family() {
            Family::Postgres => self
                .postgres
                .connect(creds, attempt, ctx)
                .await
                .map(Session::Postgres),
            Family::Mysql => self
                .mysql
                .connect(creds, attempt, ctx)
                .await
                .map(Session::Mysql),
        }
    }

    async fn check(&self, session: &mut Session, ctx: &StepContext<'_>) -> Result<(), Error> {
        match session {
            Session::Postgres(s) => self.postgres.check(s, ctx).await,
            Session::Mysql(s) => self.mysql.check(s, ctx).await,
        }
    }

    async fn set_own_password(
        &self,
        session: &mut Session,
        user: &DbSecret,
        new: &Password,
        ctx: &StepContext<'_>,
    ) -> Result<(), Error> {
        match session {
            Session::Postgres(s) => self.postgres.set_own_password(s, user, new, ctx).await,
            Session::Mysql(s) => self.mysql.set_own_password(s, user, new, ctx).await,
        }
    }

    fn account(&self, session: &Session) -> Account {
        match session {
            Session::Postgres(s) => self.postgres.account(s),
            Session::Mysql(s) => self.mysql.account(s),
        }
    }

    async fn set_password_as_master(
        &self,
        master: &mut Session,
        current: &Account,
        pending: &DbSecret,
        ctx: &StepContext<'_>,
    ) -> Result<(), Error> {
        match master {
            Session::Postgres(s) => {
                self.postgres
                    .set_password_as_master(s, current, pending, ctx)
                    .await
            }
            Session::Mysql(s) => {
                self.mysql
                    .set_password_as_master(s, current, pending, ctx)
                    .await
            }
        }
    }

    async fn close(&self, session: Session) {
        match session {
            Session::Postgres(s) => self.postgres.close(s).await,
            Session::Mysql(s) => self.mysql.close(s).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_caps_and_refuses() {
        let step = Step::SetSecret;
        let d = Deadline::new(None, Duration::from_secs(5));
        assert_eq!(
            d.connect_timeout(&step, "x").unwrap(),
            Duration::from_secs(5)
        );
        let d = Deadline::new(
            Some(Instant::now() + Duration::from_secs(3)),
            Duration::from_secs(5),
        );
        let t = d.connect_timeout(&step, "x").unwrap();
        assert!(
            t <= Duration::from_secs(2) && t > Duration::from_millis(1500),
            "{t:?}"
        );
        let d = Deadline::new(
            Some(Instant::now() + Duration::from_millis(1100)),
            Duration::from_secs(5),
        );
        let e = d
            .connect_timeout(&step, "login with current secret")
            .unwrap_err();
        assert_eq!(e.error_type(), "DeadlineExceeded");
        assert!(
            e.to_string().contains("setSecret")
                && e.to_string().contains("login with current secret")
        );
        let now_ms = u64::try_from(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        )
        .unwrap();
        assert!(
            Deadline::from_epoch_millis(now_ms + 500, Duration::from_secs(5))
                .connect_timeout(&step, "x")
                .is_err()
        );
        let t = Deadline::from_epoch_millis(now_ms + 4000, Duration::from_secs(5))
            .connect_timeout(&step, "x")
            .unwrap();
        assert!(
            t <= Duration::from_secs(3) && t > Duration::from_millis(2500),
            "{t:?}"
        );
        // Not epoch times: no deadline, the connect timeout alone.
        for not_epoch in [0, 1, 600_000] {
            assert_eq!(
                Deadline::from_epoch_millis(not_epoch, Duration::from_secs(5))
                    .connect_timeout(&step, "x")
                    .unwrap(),
                Duration::from_secs(5)
            );
        }
    }

    #[test]
    fn clone_names() {
        assert_eq!(clone_name("app", 63), Ok("app_clone".to_owned()));
        assert_eq!(clone_name("app_clone", 63), Ok("app".to_owned()));
        assert_eq!(clone_name("_clone", 63), Ok("_clone_clone".to_owned()));
        assert_eq!(
            clone_name("abcdefghij", 16),
            Ok("abcdefghij_clone".to_owned())
        );
        assert_eq!(clone_name("abcdefghijk", 16), Err(16));
        assert_eq!(clone_name(&"x".repeat(57), 63).map(|n| n.len()), Ok(63));
        assert_eq!(clone_name(&"x".repeat(58), 63), Err(63));
        assert_eq!(clone_name(&"x".repeat(80), 16), Err(16));
        assert_eq!(username_limit(Engine::Mariadb, 16), 80);
        assert_eq!(username_limit(Engine::AuroraMysql, 32), 32);
        assert_eq!(original_name("app_clone", "app"), "app");
    }

    #[test]
    fn tls_choice() {
        use SslSetting::*;
        assert_eq!(
            TlsChoice::resolve(Require, TlsMode::Prefer),
            TlsChoice::Require
        );
        assert_eq!(
            TlsChoice::resolve(Disable, TlsMode::VerifyFull),
            TlsChoice::Disable
        );
        assert_eq!(
            TlsChoice::resolve(Unset, TlsMode::VerifyFull),
            TlsChoice::Require
        );
        assert_eq!(
            TlsChoice::resolve(Unrecognised, TlsMode::Prefer),
            TlsChoice::Prefer
        );
    }
}
