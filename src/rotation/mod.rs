//! The rotation's domain, below its faces: the Lambda handler's four steps, the configuration test
//! on `testSecret`, and the doctor's audit all ask it the same questions and get the same answers.
//!
//! # Layout
//!
//! - [`Scope`] (here): what one step, or the audit of one secret, acts with: the container's
//!   [`App`] and the step's context; reading versions, logging in;
//! - `plan`: [`Plan`], decided once per secret: the strategy, how the engine carries it out
//!   ([`Engine::support`](crate::engine::Engine::support)), the master secret, the clone's name;
//! - `master`: the master secret resolved as setSecret resolves it, RDS proof included;
//! - `guard`: the guard of docs/protocol.md section 2;
//! - `steps`: the four steps; `single_user`, `alternating` and `dual`: setSecret per strategy;
//! - `preflight`: everything the next setSecret would need, checked without writing
//!   (docs/protocol.md 5.15).

mod alternating;
mod dual;
mod guard;
mod master;
mod plan;
mod preflight;
mod single_user;
mod steps;

use tracing::info;

use crate::app::App;
use crate::credentials::{DbSecret, Login};
use crate::deadline::StepContext;
use crate::error::{Error, Mismatch};
use crate::protocol::Stage;
use crate::rotators::{Connect, Session};
use crate::secrets::SecretStore;

pub use guard::Guarded;
pub use master::Master;
pub use plan::Plan;
pub use preflight::Preflight;
pub use steps::{PasswordSource, Rotation};

/// What one step, or the audit of one secret, acts with.
pub struct Scope<'a, S, R, A> {
    /// The container's state.
    pub app: &'a App<S, R, A>,
    /// Who is acting and how much time is left.
    pub ctx: StepContext<'a>,
}

impl<S, R, A> Clone for Scope<'_, S, R, A> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S, R, A> Copy for Scope<'_, S, R, A> {}

impl<'a, S: SecretStore, R: Connect, A> Scope<'a, S, R, A> {
    /// The secret this scope acts on.
    pub fn secret_id(&self) -> &'a str {
        self.ctx.secret_id
    }

    /// Reads and validates the version at `stage` (`version` for the token's). Not found is an
    /// error.
    pub async fn read(&self, stage: Stage, version: Option<&str>) -> Result<DbSecret, Error> {
        let text = self
            .app
            .store
            .get(self.secret_id(), stage, version, &self.ctx)
            .await?;
        DbSecret::parse(self.secret_id(), stage, &text)
    }

    /// Like [`Self::read`], where the protocol expects that the version may be absent: `Ok(None)`
    /// then.
    pub async fn read_if_exists(
        &self,
        stage: Stage,
        version: Option<&str>,
    ) -> Result<Option<DbSecret>, Error> {
        let text = self
            .app
            .store
            .get_if_exists(self.secret_id(), stage, version, &self.ctx)
            .await?;
        text.map(|text| DbSecret::parse(self.secret_id(), stage, &text))
            .transpose()
    }

    /// Logs in with `login`: `Ok(None)` when the server refuses the credential, which the caller
    /// may answer by trying another version. Any other failure (no answer in time, TLS, the
    /// network, the deadline) is an error: another version, at the same endpoint, would meet it
    /// too.
    pub async fn login(&self, login: &Login, attempt: &str) -> Result<Option<R::Session>, Error> {
        match self.app.rotators.connect(login, attempt, &self.ctx).await {
            Ok(session) => Ok(Some(session)),
            Err(e @ Error::Refused { .. }) => {
                info!(attempt, user = login.username(), host = login.host(), error = %e, "login refused");
                Ok(None)
            }
            Err(Error::Unanswered {
                engine,
                action,
                detail,
            }) => Err(Error::Unanswered {
                engine,
                action,
                detail: format!(
                    "{detail}; {} of secret {}, at {}",
                    self.ctx.step,
                    self.secret_id(),
                    endpoint(login)
                ),
            }),
            Err(e) => Err(e),
        }
    }

    /// An [`Error::IdentityMismatch`] of this step.
    pub fn mismatch(
        &self,
        what: &'static str,
        found: &str,
        expected_role: &'static str,
        expected: &str,
    ) -> Error {
        Error::IdentityMismatch(Box::new(Mismatch {
            secret_id: self.secret_id().to_owned(),
            step: self.ctx.step.clone(),
            what,
            found: found.to_owned(),
            expected_role,
            expected: expected.to_owned(),
        }))
    }

    /// An [`Error::LoginFailed`] of this step for `secret_id`, having tried `tried`.
    pub fn login_failed(&self, secret_id: &str, tried: &'static str) -> Error {
        Error::LoginFailed {
            secret_id: secret_id.to_owned(),
            step: self.ctx.step.clone(),
            tried,
        }
    }

    /// Confused-deputy check: `pending` must name the same user and host (exact strings) as
    /// `other`, and the same port: a credential proven on one port must never decide what is
    /// done, or sent, on another (docs/protocol.md 5.14).
    pub fn require_same_account(
        &self,
        pending: &DbSecret,
        other: &DbSecret,
        user_role: &'static str,
        host_role: &'static str,
    ) -> Result<(), Error> {
        if pending.username() != other.username() {
            return Err(self.mismatch("user", pending.username(), user_role, other.username()));
        }
        self.require_same_endpoint(pending, other, host_role)
    }

    /// `pending`'s host (exact string) and port must be `other`'s.
    pub fn require_same_endpoint(
        &self,
        pending: &DbSecret,
        other: &DbSecret,
        host_role: &'static str,
    ) -> Result<(), Error> {
        if pending.host() != other.host() {
            return Err(self.mismatch("host", pending.host(), host_role, other.host()));
        }
        if pending.port() != other.port() {
            return Err(self.mismatch(
                "port",
                &pending.port().to_string(),
                host_role,
                &other.port().to_string(),
            ));
        }
        Ok(())
    }
}

/// Runs `work` on `session`, then closes it whatever the outcome.
pub async fn use_then_close<T, Sn: Session>(
    mut session: Sn,
    work: impl AsyncFnOnce(&mut Sn) -> Result<T, Error>,
) -> Result<T, Error> {
    let result = work(&mut session).await;
    session.close().await;
    result
}

/// `host:port`, for errors.
pub(crate) fn endpoint(login: &Login) -> String {
    format!("{}:{}", login.host(), login.port())
}
