//! The database side of a rotation, split by role, and the engines that play them.
//!
//! Connecting is one role ([`Connect`]); what a session can do is others, one per way of changing
//! a password: [`OwnPassword`] (single user), [`CloneManagement`] (alternating users, as the
//! master), [`DualOwn`] and [`DualMaster`] (dual passwords, by the user or by the master), over
//! the base [`Session`]. An engine's session implements the roles its engine serves
//! ([`Engine::support`](crate::engine::Engine::support)), and nothing else: no stub. [`Engines`]
//! connects to any engine and gives an [`AnySession`], which dispatches each role to the engine's
//! session, and answers a role the engine lacks with the capability table's refusal. A wrapper
//! (a test's redirection) overrides [`Connect`] alone.
//!
//! A family's folder holds its driver session, its SQL (or commands) and its strategies' paths;
//! `driver` holds the glue they share (TLS choice, bounded calls, error text, close timeout).

mod any;
mod driver;
#[cfg(test)]
pub(crate) mod fake;
pub mod mysql;
pub mod postgres;
pub mod redis;

use std::future::Future;

use crate::credentials::{Login, Password};
use crate::deadline::StepContext;
use crate::engine::{Engine, is_clone_of};
use crate::error::{CloneFindings, Error, Mismatch, PrivilegeGap, Shortfall};
use crate::protocol::{Stage, Strategy};

pub use any::{AnySession, Engines};

/// Opens sessions: the one role a wrapper overrides.
pub trait Connect {
    /// An authenticated connection.
    type Session: Session;

    /// Connects and logs in with `login`. `attempt` names the try for errors (`login with
    /// pending secret`). A server that refuses the credential is [`Error::Refused`]; one that does
    /// not answer in time [`Error::Unanswered`]; running out of the invocation's time
    /// [`Error::DeadlineExceeded`].
    fn connect(
        &self,
        login: &Login,
        attempt: &str,
        ctx: &StepContext<'_>,
    ) -> impl Future<Output = Result<Self::Session, Error>>;
}

/// What every session does.
pub trait Session: Sized {
    /// The engine of the login that opened it.
    fn engine(&self) -> Engine;

    /// The account the server authenticated, as it names it (MySQL `user@host`; a PostgreSQL
    /// role or Redis user has no host).
    fn account(&self) -> Account;

    /// Runs a trivial query (`SELECT NOW()`, `PING`), proving the session works.
    fn check(&mut self, ctx: &StepContext<'_>) -> impl Future<Output = Result<(), Error>>;

    /// Closes the session.
    fn close(self) -> impl Future<Output = ()>;
}

/// Single user: the logged-in user changes its own password.
pub trait OwnPassword: Session {
    /// Changes the logged-in user's password to `new`. `login` is the credential that opened the
    /// session (current's, or previous's after the fallback): its user is the one changed, and
    /// MySQL's `REPLACE` clause needs its password, never the pending one.
    fn set_own_password(
        &mut self,
        login: &Login,
        new: &Password,
        ctx: &StepContext<'_>,
    ) -> impl Future<Output = Result<(), Error>>;

    /// What the user lacks to change its own password this way, found without changing it
    /// (docs/protocol.md 5.15).
    fn own_password_shortfalls(
        &mut self,
        ctx: &StepContext<'_>,
    ) -> impl Future<Output = Result<Vec<Shortfall>, Error>>;
}

/// Alternating users, as the master.
pub trait CloneManagement: Session {
    /// Makes the database accept `pending`'s password for `pending`'s user, which is `account`'s
    /// user or its `_clone`: creates the clone when missing and, every rotation, repairs it so
    /// that it holds the current account's privileges. `account` is the account `current` logged
    /// in as; where the engine can, the master proves that its server's account of that name
    /// accepts `current`'s password before anything changes.
    fn set_password_as_master(
        &mut self,
        account: &Account,
        current: &Login,
        pending: &Login,
        ctx: &StepContext<'_>,
    ) -> impl Future<Output = Result<(), Error>>;

    /// What stands in the way of handing `pending_user` (`account`'s user or its clone) over
    /// (docs/protocol.md 5.12), read-only.
    fn audit_clone(
        &mut self,
        account: &Account,
        pending_user: &str,
        ctx: &StepContext<'_>,
    ) -> impl Future<Output = Result<CloneFindings, Error>>;

    /// What the master lacks to create or update `pending_user` for `account`, found without
    /// changing anything (docs/protocol.md 5.15).
    fn master_shortfalls(
        &mut self,
        account: &Account,
        pending_user: &str,
        ctx: &StepContext<'_>,
    ) -> impl Future<Output = Result<Vec<Shortfall>, Error>>;
}

/// What adding one's own second password came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Added {
    /// The new password is the primary one, current's the secondary one.
    Now,
    /// Current's password is no longer the primary one: the change was made before (its reply
    /// lost), or the password was changed outside the rotation. The caller tells which by
    /// logging in with the pending password; the server's code is kept for the error.
    NotPrimary(String),
}

/// Dual passwords, by the user itself (MySQL 8).
pub trait DualOwn: Session {
    /// Makes `pending` the primary password and keeps `current`, with which the session logged
    /// in, as the secondary one.
    fn add_own_password(
        &mut self,
        current: &Password,
        pending: &Password,
        ctx: &StepContext<'_>,
    ) -> impl Future<Output = Result<Added, Error>>;

    /// What the user lacks to keep two passwords itself (docs/protocol.md 5.15).
    fn dual_own_shortfalls(
        &mut self,
        ctx: &StepContext<'_>,
    ) -> impl Future<Output = Result<Vec<Shortfall>, Error>>;
}

/// Dual passwords, written by the master (MariaDB, Redis).
pub trait DualMaster: Session {
    /// Makes `account` (the account `current` logged in as) accept `current`'s and `pending`'s
    /// passwords and no other; nothing else of the account changes.
    fn add_password_as_master(
        &mut self,
        account: &Account,
        current: &Password,
        pending: &Password,
        ctx: &StepContext<'_>,
    ) -> impl Future<Output = Result<(), Error>>;

    /// What the master lacks to do so, found without changing anything (docs/protocol.md 5.15).
    fn dual_master_shortfalls(
        &mut self,
        account: &Account,
        current: &Password,
        ctx: &StepContext<'_>,
    ) -> impl Future<Output = Result<Vec<Shortfall>, Error>>;
}

/// A connector whose sessions play every role: what the rotation and the doctor are generic over.
pub trait Rotator: Connect<Session: OwnPassword + CloneManagement + DualOwn + DualMaster> {}

impl<T> Rotator for T
where
    T: Connect,
    T::Session: OwnPassword + CloneManagement + DualOwn + DualMaster,
{
}

/// The error of a role an engine does not play: the capability table's refusal of `strategy`.
pub(crate) fn unsupported(engine: Engine, strategy: Strategy, ctx: &StepContext<'_>) -> Error {
    Error::invalid_secret(
        ctx.secret_id,
        Stage::Current,
        engine
            .refusal(strategy)
            .unwrap_or_else(|| format!("strategy {strategy} is served otherwise on {engine}")),
    )
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

    /// The original account and its clone, for this handover from `current` to `target`.
    pub(crate) fn roles<'a>(self, current: &'a Account, target: &'a str) -> (&'a str, &'a str) {
        match self {
            Handover::Append => (current.user.as_str(), target),
            Handover::Strip => (target, current.user.as_str()),
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
