//! The four steps (docs/protocol.md section 3), after the guard.

use std::cell::Cell;

use tracing::{info, warn};

use super::preflight::Preflight;
use super::{Guarded, Plan, Scope, use_then_close};
use crate::credentials::{DbSecret, Password, SslSetting};
use crate::engine::{Engine, Family, Method};
use crate::error::Error;
use crate::event::RotationEvent;
use crate::protocol::{Stage, Step, Strategy};
use crate::rds::RdsApi;
use crate::rotators::{Rotator, Session};
use crate::secrets::{SecretDescription, SecretStore};

/// Source of new passwords: the configured policy over the OS-seeded CSPRNG in production,
/// anything deterministic in tests.
pub type PasswordSource<'a> = &'a dyn Fn(Family) -> Password;

/// One invocation's rotation step.
pub struct Rotation<'a, S, R, A> {
    /// The container's state and the step's context.
    pub scope: Scope<'a, S, R, A>,
    /// The validated event.
    pub event: &'a RotationEvent,
    /// Where new passwords come from.
    pub passwords: PasswordSource<'a>,
    /// Engine and strategy of the secret the step read, for metrics.
    pub seen: Cell<Option<(Engine, Strategy)>>,
}

impl<S: SecretStore, R: Rotator, A: RdsApi> Rotation<'_, S, R, A> {
    fn token(&self) -> &str {
        &self.event.token
    }

    /// The guard, then the step.
    pub async fn run(&self) -> Result<(), Error> {
        let description = match self.scope.guard(self.token()).await? {
            Guarded::AlreadyCurrent => return Ok(()),
            Guarded::Pending(description) => description,
        };
        match &self.event.step {
            Step::CreateSecret => self.create_secret().await,
            Step::SetSecret => self.set_secret().await,
            Step::TestSecret => self.test_secret().await,
            Step::FinishSecret => self.finish_secret(&description).await,
            Step::Audit | Step::Other(_) => Err(Error::InvalidStep {
                secret_id: self.scope.secret_id().to_owned(),
                step: self.event.step.to_string(),
            }),
        }
    }

    /// Reads the version at `stage` (the token's for `AWSPENDING`), noting what it is for
    /// metrics.
    pub(super) async fn read(&self, stage: Stage) -> Result<DbSecret, Error> {
        let version = (stage == Stage::Pending).then(|| self.token());
        let secret = self.scope.read(stage, version).await?;
        self.note(&secret);
        Ok(secret)
    }

    fn note(&self, secret: &DbSecret) {
        let strategy = Plan::strategy(secret, &self.scope.app.config);
        self.seen.set(Some((secret.engine(), strategy)));
    }

    fn warn_on_unrecognised_ssl(secret: &DbSecret, stage: Stage) {
        if secret.ssl() == SslSetting::Unrecognised {
            warn!(%stage, field = "ssl", "unrecognised `ssl` value; TLS_MODE decides");
        }
    }

    /// createSecret: stores a copy of the current secret with a new password (and, for
    /// alternating users, the other user) as `AWSPENDING` under the token, unless that version
    /// already has a value.
    async fn create_secret(&self) -> Result<(), Error> {
        let scope = &self.scope;
        let current = self.read(Stage::Current).await?;
        if scope
            .read_if_exists(Stage::Pending, Some(self.token()))
            .await?
            .is_some()
        {
            scope.app.written.note(scope.secret_id(), self.token());
            info!("AWSPENDING version already has a value; nothing to do");
            return Ok(());
        }
        let plan = Plan::of(scope.secret_id(), &current, &scope.app.config)?;
        let mut pending = current.with_password((self.passwords)(current.engine().family()));
        if let Some(other) = &plan.other_user {
            pending = pending.with_username(other.clone());
        }
        scope
            .app
            .store
            .put_pending(
                scope.secret_id(),
                self.token(),
                &pending.to_json(),
                self.event.rotation_token.as_deref(),
                &scope.ctx,
            )
            .await?;
        scope.app.written.note(scope.secret_id(), self.token());
        info!(stage = %Stage::Pending, strategy = plan.strategy.as_str(), "new version created");
        Ok(())
    }

    /// setSecret: makes the database accept the pending credential, as the plan says.
    async fn set_secret(&self) -> Result<(), Error> {
        let current = self.read(Stage::Current).await?;
        let pending = self.read(Stage::Pending).await?;
        Self::warn_on_unrecognised_ssl(&pending, Stage::Pending);
        // Before any database work.
        let plan = Plan::of(self.scope.secret_id(), &current, &self.scope.app.config)?;
        match plan.method {
            Method::OwnPassword => self.set_secret_single_user(&current, &pending).await,
            Method::MasterClone => self.set_secret_alternating(&plan, &current, &pending).await,
            Method::DualOwn | Method::DualMaster => {
                self.set_secret_dual(&plan, &current, &pending).await
            }
        }
    }

    /// testSecret: logs in with the pending credential and runs a trivial query. On the
    /// configuration test (a pending version holding the current credential, which no
    /// createSecret wrote) it then runs the preflight, failing with `PreflightFailed` on what
    /// the next rotation would fail on. Never writes.
    async fn test_secret(&self) -> Result<(), Error> {
        let scope = &self.scope;
        let pending = self.read(Stage::Pending).await?;
        Self::warn_on_unrecognised_ssl(&pending, Stage::Pending);
        let Some(session) = scope
            .login(&pending.login(), "login with pending secret")
            .await?
        else {
            return Err(scope.login_failed(scope.secret_id(), "pending"));
        };
        use_then_close(session, async |session| session.check(&scope.ctx).await).await?;
        info!("pending secret logs in");
        if !self.is_configuration_test(&pending).await? {
            return Ok(());
        }
        info!("the pending version holds the current credential: a configuration test");
        let preflight = Preflight::run(scope, &pending).await?;
        preflight.into_result(scope.secret_id())
    }

    /// Whether the pending version holds the current credential, as the service stages it for
    /// `RotateSecret` with `RotateImmediately=false`: a version this container's createSecret
    /// wrote is not; otherwise `AWSCURRENT` is read and compared (user, password, host, port).
    async fn is_configuration_test(&self, pending: &DbSecret) -> Result<bool, Error> {
        let scope = &self.scope;
        if scope.app.written.contains(scope.secret_id(), self.token()) {
            return Ok(false);
        }
        let Some(current) = scope.read_if_exists(Stage::Current, None).await? else {
            return Ok(false);
        };
        Ok(current.username() == pending.username()
            && current.password() == pending.password()
            && current.host() == pending.host()
            && current.port() == pending.port())
    }

    /// finishSecret: moves `AWSCURRENT` to the token in one call, using the guard's description.
    async fn finish_secret(&self, description: &SecretDescription) -> Result<(), Error> {
        let scope = &self.scope;
        let Some(current) = description.version_with(Stage::Current) else {
            return Err(Error::NoCurrentVersion {
                secret_id: scope.secret_id().to_owned(),
            });
        };
        if current == self.token() {
            info!("version already staged AWSCURRENT; nothing to do");
            return Ok(());
        }
        scope
            .app
            .store
            .promote(scope.secret_id(), self.token(), current, &scope.ctx)
            .await?;
        info!(stage = %Stage::Current, previous_version = current, "version promoted");
        Ok(())
    }
}
