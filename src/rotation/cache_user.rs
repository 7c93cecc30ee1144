//! The four steps for ElastiCache and MemoryDB users (engines `elasticache`, `memorydb`;
//! docs/protocol.md 5.16): their passwords change through the service's API, which holds up to
//! two, so the strategy is dual-password natively (single-user when the secret asks for it).
//!
//! - createSecret: the user the secret names exists, is called the secret's `username` and
//!   authenticates by password; then the pending version, a copy with a new password the
//!   services accept (16–128 printable characters, none of `,` `"` `/` `@`).
//! - setSecret: pending names current's user (and data plane); when the secret names a data
//!   plane (`host`), current must `AUTH` first, as a database's current must log in, and a
//!   refused current with pending logging in is a retry after success; with dual passwords,
//!   pending `AUTH`ing too once the user is `active` means an earlier attempt's list is in
//!   place, and nothing is sent again. Then the user's password list becomes
//!   `[pending, current]` (or `[pending]`), sent to an `active` user, waiting for one within the
//!   invocation's time.
//! - testSecret: waits for the user to be `active` again (the change reached every node), then
//!   `AUTH`s with pending where there is a data plane. On the configuration test, the preflight
//!   first: what it finds fails the step with `PreflightFailed`.
//! - finishSecret is every engine's.

use std::time::Duration;

use tracing::info;

use super::{Rotation, Scope};
use crate::cache_user::{
    CacheUserApi, CacheUserSecret, Finding, Holding, PasswordSet, SetOutcome, password_problem,
    preflight, set_passwords, wait_active,
};
use crate::credentials::Login;
use crate::engine::Family;
use crate::error::{Error, Shortfall, ShortfallKind};
use crate::protocol::{Stage, Strategy};
use crate::rds::RdsApi;
use crate::rotators::{Rotator, Session, UserApis};
use crate::secrets::SecretStore;

/// How long a user may stay `modifying` before the preflight reports it stuck, when nothing
/// says how long a rotation may take.
pub const MODIFYING_WINDOW: Duration = Duration::from_secs(2 * 3600);

impl<S: SecretStore, R: Rotator, A: RdsApi> Rotation<'_, S, R, A> {
    /// Parses a cache user's secret read at `stage`, noting engine and strategy for metrics.
    fn cache_secret(&self, stage: Stage, text: &str) -> Result<CacheUserSecret, Error> {
        let secret = parse(&self.scope, stage, text)?;
        let strategy = secret.rotation_strategy().unwrap_or(Strategy::DualPassword);
        self.seen
            .set(Some((secret.service().as_engine(), strategy)));
        Ok(secret)
    }

    /// createSecret for a cache user.
    pub(super) async fn create_cache_user(&self, text: &str) -> Result<(), Error> {
        let scope = &self.scope;
        let current = self.cache_secret(Stage::Current, text)?;
        strategy(scope, &current)?;
        let token = &self.event.token;
        if scope
            .app
            .store
            .get_if_exists(scope.secret_id(), Stage::Pending, Some(token), &scope.ctx)
            .await?
            .is_some()
        {
            scope.app.written.note(scope.secret_id(), token);
            info!("AWSPENDING version already has a value; nothing to do");
            return Ok(());
        }
        described(scope, &current, Stage::Current).await?;
        let password = (self.passwords)(Family::CacheUser);
        if let Some(problem) = password_problem(&password) {
            return Err(Error::Config {
                variable: "PASSWORD_LENGTH",
                problem: format!(
                    "a new password {problem}: ElastiCache and MemoryDB need 16 to 128 characters"
                ),
            });
        }
        let pending = current.with_password(password);
        scope
            .app
            .store
            .put_pending(
                scope.secret_id(),
                token,
                &pending.to_json(),
                self.event.rotation_token.as_deref(),
                &scope.ctx,
            )
            .await?;
        scope.app.written.note(scope.secret_id(), token);
        info!(stage = %Stage::Pending, user = %current.user(), "new version created");
        Ok(())
    }

    /// setSecret for a cache user.
    pub(super) async fn set_cache_user(&self, text: &str) -> Result<(), Error> {
        let scope = &self.scope;
        let current = self.cache_secret(Stage::Current, text)?;
        let strategy = strategy(scope, &current)?;
        let pending_text = scope
            .read_text(Stage::Pending, Some(&self.event.token))
            .await?;
        let pending = parse(scope, Stage::Pending, &pending_text)?;
        current.check_same_user(&pending, &scope.ctx)?;
        let endpoint = same_endpoint(scope, &current, &pending)?;
        described(scope, &current, Stage::Current).await?;
        let passwords = match strategy {
            Strategy::SingleUser => PasswordSet::single(pending.password().clone()),
            _ => PasswordSet::dual(pending.password().clone(), current.password().clone()),
        };
        let mut holding = Holding::Unknown;
        if let Some(login) = endpoint {
            if !self.current_proven(&login, &pending).await? {
                info!("pending already logs in; nothing to do");
                return Ok(());
            }
            if passwords.len() == 2 {
                holding = self.pending_in_place(&login, &current, &pending).await?;
            }
        }
        let api = scope.app.rotators.user_api();
        let outcome = set_passwords(api, current.user(), &passwords, holding, &scope.ctx).await?;
        if outcome == SetOutcome::Sent {
            info!(user = %current.user(), passwords = passwords.len(), "passwords sent to the service");
        }
        Ok(())
    }

    /// On the data plane: `true` when current `AUTH`s (the holder of the secret owns the user,
    /// so the change may go ahead); `false` when the server refuses current and accepts pending
    /// (a retry after success); else `LoginFailed`.
    async fn current_proven(
        &self,
        login: &Login,
        pending: &CacheUserSecret,
    ) -> Result<bool, Error> {
        let scope = &self.scope;
        if self.auths(login, None, "login with current secret").await? {
            return Ok(true);
        }
        if self
            .auths(login, Some(pending), "login with pending secret")
            .await?
        {
            return Ok(false);
        }
        Err(scope.login_failed(scope.secret_id(), "current or pending"))
    }

    /// Whether the data plane at `login` accepts `login`'s user with `secret`'s password (or
    /// `login`'s own), closing the session; `Err` for anything but a refusal.
    async fn auths(
        &self,
        login: &Login,
        secret: Option<&CacheUserSecret>,
        attempt: &str,
    ) -> Result<bool, Error> {
        let login = match secret {
            Some(secret) => login.clone().with_password(secret.password().clone()),
            None => login.clone(),
        };
        match self.scope.login(&login, attempt).await? {
            Some(session) => {
                session.close().await;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Dual passwords with a data plane: whether the user already holds `[pending, current]`
    /// (a re-driven setSecret), so that nothing is sent and no new `modifying` period starts.
    /// Before the change the user holds `[current, previous]`, after it `[pending, current]`:
    /// two passwords either way. On the normal path `AWSPREVIOUS` still logs in, which settles it
    /// without a login that fails; only when it is refused (or there is none) is pending tried.
    async fn pending_in_place(
        &self,
        login: &Login,
        current: &CacheUserSecret,
        pending: &CacheUserSecret,
    ) -> Result<Holding, Error> {
        let scope = &self.scope;
        let user = wait_active(scope.app.rotators.user_api(), current.user(), &scope.ctx).await?;
        if user.password_count != Some(2) {
            return Ok(Holding::Unknown);
        }
        if let Some(previous) = self.previous_of(current).await? {
            if self
                .auths(login, Some(&previous), "login with previous secret")
                .await?
            {
                return Ok(Holding::Unknown);
            }
        }
        Ok(
            if self
                .auths(login, Some(pending), "login with pending secret")
                .await?
            {
                Holding::AllLogIn
            } else {
                Holding::Unknown
            },
        )
    }

    /// `AWSPREVIOUS`, when it names current's user; `None` when it is absent, unusable or
    /// another user's.
    async fn previous_of(
        &self,
        current: &CacheUserSecret,
    ) -> Result<Option<CacheUserSecret>, Error> {
        let scope = &self.scope;
        let Some(text) = scope
            .app
            .store
            .get_if_exists(scope.secret_id(), Stage::Previous, None, &scope.ctx)
            .await?
        else {
            return Ok(None);
        };
        Ok(parse(scope, Stage::Previous, &text)
            .ok()
            .filter(|previous| current.check_same_user(previous, &scope.ctx).is_ok()))
    }

    /// testSecret for a cache user: the user `active` again, pending `AUTH`ing where there is a
    /// data plane. On the configuration test the preflight runs first, so that what it finds (a
    /// user being deleted, one that does not authenticate by password or holds no password, one
    /// that does not exist) is reported as its verdict, `PreflightFailed`, rather than as the
    /// error of whichever later check meets it first.
    pub(super) async fn test_cache_user(&self, text: &str) -> Result<(), Error> {
        let scope = &self.scope;
        let pending = self.cache_secret(Stage::Pending, text)?;
        let api = scope.app.rotators.user_api();
        if self.is_cache_configuration_test(&pending).await? {
            info!("the pending version holds the current credential: a configuration test");
            let found = preflight(
                api,
                &pending,
                Stage::Pending,
                MODIFYING_WINDOW,
                None,
                &scope.ctx,
            )
            .await?;
            if !found.is_ready() {
                return Err(Error::PreflightFailed {
                    secret_id: scope.secret_id().to_owned(),
                    shortfalls: found.findings.into_iter().map(shortfall).collect(),
                });
            }
        }
        let user = wait_active(api, pending.user(), &scope.ctx).await?;
        pending.check_user(&user, Stage::Pending, &scope.ctx)?;
        if let Some(login) = pending.endpoint(scope.secret_id(), Stage::Pending)? {
            let Some(mut session) = scope.login(&login, "login with pending secret").await? else {
                return Err(scope.login_failed(scope.secret_id(), "pending"));
            };
            let checked = session.check(&scope.ctx).await;
            session.close().await;
            checked?;
        }
        info!(user = %pending.user(), "the user is active with the pending password");
        Ok(())
    }

    /// As for database secrets: a version this container wrote is a rotation's; otherwise one
    /// holding current's user and password is the configuration test's.
    async fn is_cache_configuration_test(&self, pending: &CacheUserSecret) -> Result<bool, Error> {
        let scope = &self.scope;
        if scope
            .app
            .written
            .contains(scope.secret_id(), &self.event.token)
        {
            return Ok(false);
        }
        let Some(text) = scope
            .app
            .store
            .get_if_exists(scope.secret_id(), Stage::Current, None, &scope.ctx)
            .await?
        else {
            return Ok(false);
        };
        let current = parse(scope, Stage::Current, &text)?;
        Ok(current.user() == pending.user()
            && current.username() == pending.username()
            && current.password() == pending.password())
    }
}

/// A cache user's secret read at `stage`, its user checked against where the function runs.
pub(crate) fn parse<S, R, A>(
    scope: &Scope<'_, S, R, A>,
    stage: Stage,
    text: &str,
) -> Result<CacheUserSecret, Error> {
    let secret_id = scope.ctx.secret_id;
    let home = scope.app.home_for(secret_id).ok_or_else(|| {
        Error::invalid_secret(
            secret_id,
            stage,
            "field `user_arn` cannot be checked: the function's account and Region are unknown \
             (invoke it with the secret's ARN)",
        )
    })?;
    CacheUserSecret::parse(secret_id, stage, text, &home)
}

/// The strategy of `secret`: its `rotation_strategy`, else dual-password (`ROTATION_STRATEGY`
/// is the database engines' default); refused as the capability table says.
pub(crate) fn strategy<S, R, A>(
    scope: &Scope<'_, S, R, A>,
    secret: &CacheUserSecret,
) -> Result<Strategy, Error> {
    let strategy = secret.rotation_strategy().unwrap_or(Strategy::DualPassword);
    let engine = secret.service().as_engine();
    match engine.support(strategy) {
        Ok(_) => Ok(strategy),
        Err(_) => Err(Error::invalid_secret(
            scope.ctx.secret_id,
            Stage::Current,
            engine.refusal(strategy).unwrap_or_default(),
        )),
    }
}

/// The user `secret` names, as the API describes it, checked: it exists, carries the secret's
/// `username`, authenticates by password.
async fn described<S, R: UserApis, A>(
    scope: &Scope<'_, S, R, A>,
    secret: &CacheUserSecret,
    stage: Stage,
) -> Result<(), Error> {
    let user = scope
        .app
        .rotators
        .user_api()
        .describe(secret.user(), &scope.ctx)
        .await?
        .ok_or_else(|| {
            secret
                .service()
                .user_not_found(&scope.ctx, "DescribeUsers", secret.user())
        })?;
    secret.check_user(&user, stage, &scope.ctx)
}

/// Current's data plane, which pending must name too (or neither): a forged pending version
/// cannot send a password to another server.
fn same_endpoint<S: SecretStore, R: Rotator, A>(
    scope: &Scope<'_, S, R, A>,
    current: &CacheUserSecret,
    pending: &CacheUserSecret,
) -> Result<Option<Login>, Error> {
    let secret_id = scope.ctx.secret_id;
    let theirs = pending.endpoint(secret_id, Stage::Pending)?;
    let ours = current.endpoint(secret_id, Stage::Current)?;
    let name = |login: &Option<Login>| {
        login
            .as_ref()
            .map_or_else(|| "(none)".to_owned(), super::endpoint)
    };
    let agree = match (&ours, &theirs) {
        (Some(a), Some(b)) => a.same_endpoint(b),
        (None, None) => true,
        _ => false,
    };
    if !agree {
        return Err(scope.mismatch("host", &name(&theirs), "current host", &name(&ours)));
    }
    Ok(ours)
}

/// The preflight's finding as the configuration test and the doctor report it.
pub(crate) fn shortfall(finding: Finding) -> Shortfall {
    let kind = match finding.check {
        "status" | "stuck-modifying" | "password-count" => ShortfallKind::UserState,
        _ => ShortfallKind::Secret,
    };
    Shortfall {
        kind,
        account: finding.account,
        missing: finding.missing,
        hint: Some(finding.hint),
    }
}
