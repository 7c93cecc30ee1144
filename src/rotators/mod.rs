//! The rotators that change passwords on databases: the [`Rotator`] trait, one folder per engine
//! family, and [`Rotators`], which dispatches on the secret's engine.
//!
//! A family's folder holds its driver session, its SQL (or commands) and its strategies' paths;
//! `driver` holds the glue they share (TLS choice, bounded calls, error text, close timeout).

mod audit;
mod driver;
pub mod mysql;
pub mod postgres;
pub mod redis;

use std::future::Future;

use crate::config::Config;
use crate::credentials::{DbSecret, Password};
use crate::deadline::StepContext;
use crate::engine::{Family, is_clone_of};
use crate::error::{CloneFindings, Error, Mismatch, PrivilegeGap};
use crate::protocol::Stage;
use crate::tls::TlsRoots;
use driver::Transport;

pub use audit::CloneAudit;

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

    /// Changes the logged-in user's own password to `new` (single-user strategy). `login` is the
    /// credential that opened `session` (current's, or previous's after the fallback): its user
    /// is the one changed, and MySQL's `REPLACE` clause needs its password, never the pending one.
    fn set_own_password(
        &self,
        session: &mut Self::Session,
        login: &DbSecret,
        new: &Password,
        ctx: &StepContext<'_>,
    ) -> impl Future<Output = Result<(), Error>>;

    /// The account the session is logged in as, as the server names it (MySQL `user@host`; a
    /// PostgreSQL role has no host).
    fn account(&self, session: &Self::Session) -> Account;

    /// As the master (superuser) session, makes the database accept `pending`'s password for
    /// `pending`'s user, which is `account`'s user or its `_clone` (alternating-users strategy):
    /// creates the clone when missing and, every rotation, repairs it so that it holds the current
    /// account's privileges. `account` is the account `current` logged in as; where the engine
    /// can, the master proves that its server's account of that name accepts `current`'s
    /// password before anything changes.
    fn set_password_as_master(
        &self,
        master: &mut Self::Session,
        account: &Account,
        current: &DbSecret,
        pending: &DbSecret,
        ctx: &StepContext<'_>,
    ) -> impl Future<Output = Result<(), Error>>;

    /// Adds `pending`'s password to the logged-in account, beside `current`'s, with which the
    /// session logged in (dual-password strategy on engines whose users may do it themselves,
    /// [`DualMethod::OwnAccount`](crate::engine::DualMethod::OwnAccount)). The server keeps both.
    fn add_own_password(
        &self,
        session: &mut Self::Session,
        current: &DbSecret,
        pending: &DbSecret,
        ctx: &StepContext<'_>,
    ) -> impl Future<Output = Result<(), Error>>;

    /// As the master session, makes `account` (the account `current` logged in as) accept
    /// `current`'s and `pending`'s passwords and no other (dual-password strategy,
    /// [`DualMethod::Master`](crate::engine::DualMethod::Master)). Nothing else of the account
    /// changes.
    fn add_password_as_master(
        &self,
        master: &mut Self::Session,
        account: &Account,
        current: &DbSecret,
        pending: &DbSecret,
        ctx: &StepContext<'_>,
    ) -> impl Future<Output = Result<(), Error>>;

    /// Closes the session.
    fn close(&self, session: Self::Session) -> impl Future<Output = ()>;
}

/// The error of a strategy an engine does not serve, for a rotator reached despite the handler's
/// check (docs/protocol.md 5.13).
pub(crate) fn unsupported_strategy(ctx: &StepContext<'_>, problem: &str) -> Error {
    Error::invalid_secret(ctx.secret_id, Stage::Current, problem)
}

/// A database account as the server identifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// User (role) name.
    pub user: String,
    /// MySQL account host (`%`, `10.0.%`, `127.0.0.1`, …); `None` for PostgreSQL.
    pub host: Option<String>,
}

/// Which way an alternating-users rotation hands over (docs/protocol.md 5.12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Handover {
    /// Current `X`, pending `X_clone`: an existing clone must have nothing `X` lacks.
    Append,
    /// Current `X_clone`, pending `X`: the clone must already hold everything `X` holds.
    Strip,
}

impl Handover {
    /// The direction from the current user to the pending one, which must be its clone or its
    /// original; anything else is refused naming both.
    pub(crate) fn between(
        current: &Account,
        pending: &str,
        ctx: &StepContext<'_>,
    ) -> Result<Self, Error> {
        if is_clone_of(pending, &current.user) {
            Ok(Handover::Append)
        } else if is_clone_of(&current.user, pending) {
            Ok(Handover::Strip)
        } else {
            Err(Error::IdentityMismatch(Box::new(Mismatch {
                secret_id: ctx.secret_id.to_owned(),
                step: ctx.step.clone(),
                what: "user",
                found: pending.to_owned(),
                expected_role: "current user or clone",
                expected: current.user.clone(),
            })))
        }
    }
}

/// The error refusing to act, as the master, on `user@host` of the master's server, which does not
/// accept the current secret's password: the current secret logged in elsewhere (another port
/// of the same host, a look-alike server), so the master's account of that name is not its.
/// Nothing has been changed when it is returned.
pub(crate) fn not_on_the_masters_server(ctx: &StepContext<'_>, user: &str, host: &str) -> Error {
    Error::IdentityMismatch(Box::new(Mismatch {
        secret_id: ctx.secret_id.to_owned(),
        step: ctx.step.clone(),
        what: "account",
        found: format!("{user}@{host} on the master's server"),
        expected_role: "the account the current secret logged in as, which accepts",
        expected: "the current password".to_owned(),
    }))
}

/// The error refusing to hand over `given` to the holder of `current`, for `findings`; nothing has
/// been changed when it is returned.
pub(crate) fn privilege_gap(
    ctx: &StepContext<'_>,
    given: String,
    current: String,
    findings: CloneFindings,
) -> Error {
    Error::PrivilegeMismatch(Box::new(PrivilegeGap {
        secret_id: ctx.secret_id.to_owned(),
        step: ctx.step.clone(),
        given,
        current,
        findings,
    }))
}

/// An open session on any engine.
#[derive(Debug)]
pub enum Session {
    /// PostgreSQL or Aurora PostgreSQL.
    Postgres(postgres::PgSession),
    /// MySQL, Aurora MySQL or MariaDB.
    Mysql(mysql::MySession),
    /// Redis or Valkey.
    Redis(redis::RedisSession),
}

/// The rotators of every engine, built once per container, chosen by the secret's `engine`.
#[derive(Debug, Clone)]
pub struct Rotators {
    postgres: postgres::PostgresRotator,
    mysql: mysql::MysqlRotator,
    redis: redis::RedisRotator,
}

impl Rotators {
    /// Builds the rotators and loads the TLS trust roots (system, Amazon RDS, `TLS_EXTRA_CA_FILE`).
    pub fn new(config: &Config) -> Result<Self, Error> {
        let roots = TlsRoots::load(config.tls_extra_ca_file.as_deref())?;
        Ok(Self::with_roots(&roots, config))
    }

    /// Builds the rotators over given trust roots (tests trust exactly their own CA).
    pub fn with_roots(roots: &TlsRoots, config: &Config) -> Self {
        Rotators {
            postgres: postgres::PostgresRotator::new(roots.client_config(), Transport::of(config)),
            mysql: mysql::MysqlRotator::new(roots, Transport::of(config)),
            redis: redis::RedisRotator::new(roots.client_config(), Transport::of(config)),
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
            Family::Redis => self
                .redis
                .connect(creds, attempt, ctx)
                .await
                .map(Session::Redis),
        }
    }

    async fn check(&self, session: &mut Session, ctx: &StepContext<'_>) -> Result<(), Error> {
        match session {
            Session::Postgres(s) => self.postgres.check(s, ctx).await,
            Session::Mysql(s) => self.mysql.check(s, ctx).await,
            Session::Redis(s) => self.redis.check(s, ctx).await,
        }
    }

    async fn set_own_password(
        &self,
        session: &mut Session,
        login: &DbSecret,
        new: &Password,
        ctx: &StepContext<'_>,
    ) -> Result<(), Error> {
        match session {
            Session::Postgres(s) => self.postgres.set_own_password(s, login, new, ctx).await,
            Session::Mysql(s) => self.mysql.set_own_password(s, login, new, ctx).await,
            Session::Redis(s) => self.redis.set_own_password(s, login, new, ctx).await,
        }
    }

    fn account(&self, session: &Session) -> Account {
        match session {
            Session::Postgres(s) => self.postgres.account(s),
            Session::Mysql(s) => self.mysql.account(s),
            Session::Redis(s) => self.redis.account(s),
        }
    }

    async fn set_password_as_master(
        &self,
        master: &mut Session,
        account: &Account,
        current: &DbSecret,
        pending: &DbSecret,
        ctx: &StepContext<'_>,
    ) -> Result<(), Error> {
        match master {
            Session::Postgres(s) => {
                self.postgres
                    .set_password_as_master(s, account, current, pending, ctx)
                    .await
            }
            Session::Mysql(s) => {
                self.mysql
                    .set_password_as_master(s, account, current, pending, ctx)
                    .await
            }
            Session::Redis(s) => {
                self.redis
                    .set_password_as_master(s, account, current, pending, ctx)
                    .await
            }
        }
    }

    async fn add_own_password(
        &self,
        session: &mut Session,
        current: &DbSecret,
        pending: &DbSecret,
        ctx: &StepContext<'_>,
    ) -> Result<(), Error> {
        match session {
            Session::Postgres(s) => {
                self.postgres
                    .add_own_password(s, current, pending, ctx)
                    .await
            }
            Session::Mysql(s) => self.mysql.add_own_password(s, current, pending, ctx).await,
            Session::Redis(s) => self.redis.add_own_password(s, current, pending, ctx).await,
        }
    }

    async fn add_password_as_master(
        &self,
        master: &mut Session,
        account: &Account,
        current: &DbSecret,
        pending: &DbSecret,
        ctx: &StepContext<'_>,
    ) -> Result<(), Error> {
        match master {
            Session::Postgres(s) => {
                self.postgres
                    .add_password_as_master(s, account, current, pending, ctx)
                    .await
            }
            Session::Mysql(s) => {
                self.mysql
                    .add_password_as_master(s, account, current, pending, ctx)
                    .await
            }
            Session::Redis(s) => {
                self.redis
                    .add_password_as_master(s, account, current, pending, ctx)
                    .await
            }
        }
    }

    async fn close(&self, session: Session) {
        match session {
            Session::Postgres(s) => self.postgres.close(s).await,
            Session::Mysql(s) => self.mysql.close(s).await,
            Session::Redis(s) => self.redis.close(s).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::deadline::{CallTally, Deadline};
    use crate::protocol::Step;

    #[test]
    fn handovers_and_their_refusal() {
        let tally = CallTally::default();
        let ctx = StepContext {
            secret_id: "arn:secret",
            step: &Step::SetSecret,
            deadline: Deadline::new(None, Duration::from_secs(5)),
            tally: &tally,
        };
        let account = |user: &str| Account {
            user: user.to_owned(),
            host: Some("%".to_owned()),
        };
        assert_eq!(
            Handover::between(&account("app"), "app_clone", &ctx).ok(),
            Some(Handover::Append)
        );
        assert_eq!(
            Handover::between(&account("app_clone"), "app", &ctx).ok(),
            Some(Handover::Strip)
        );
        // Anything else: the server authenticated another account than the secret names.
        let err = Handover::between(&account(""), "app_clone", &ctx).unwrap_err();
        assert_eq!(err.error_type(), "IdentityMismatch");

        let excess = (0..10).map(|i| format!("SELECT ON `db{i}`.*")).collect();
        let findings = CloneFindings {
            excess,
            ..CloneFindings::default()
        };
        let err = privilege_gap(&ctx, "app_clone@%".into(), "app@%".into(), findings);
        assert_eq!(err.error_type(), "IdentityMismatch");
        let message = err.to_string();
        assert!(
            message.starts_with(
                "secret arn:secret (setSecret): refusing to hand over the alternate user \
                 app_clone@%: it can do more than the current user app@%, which lacks \
                 SELECT ON `db0`.*; "
            ),
            "{message}"
        );
        assert!(
            message.ends_with("SELECT ON `db7`.*; and 2 more (nothing was changed)"),
            "{message}"
        );
    }
}
