//! The rotation handler: the guard of docs/protocol.md section 2, then one function per step.
//!
//! Generic over [`SecretStore`], [`Rotator`] and [`RdsApi`], so unit tests run the protocol against
//! in-memory fakes and integration tests against the emulator and real servers.

use std::cell::Cell;
use std::time::Instant;

use lambda_runtime::LambdaEvent;
use serde_json::Value;
use tracing::{Instrument, info, info_span, warn};

use crate::config::Config;
use crate::credentials::{DbSecret, Password, SslSetting};
use crate::deadline::{CallTally, Deadline, StepContext};
use crate::engine::{Engine, Family, clone_name};
use crate::error::{Error, Mismatch};
use crate::event::RotationEvent;
use crate::metrics::{Report, SecretKinds};
use crate::protocol::{Stage, Step, Strategy};
use crate::rds::{Database, Rds, RdsApi};
use crate::rotators::Rotator;
use crate::secrets::{SecretDescription, SecretStore};

/// Source of new passwords: the configured policy over the OS-seeded CSPRNG in production, anything
/// deterministic in tests.
pub type PasswordSource<'a> = &'a dyn Fn(Family) -> Password;

/// The Lambda entry point: validates the event, runs the guard and dispatches the step, then writes
/// the invocation's metrics line. `kinds` remembers, for the container's lifetime, the engine and
/// strategy of the secrets it has read, for the steps that read none; `rds` is only asked on the
/// alternating-users path, and remembers where RDS-managed master secrets are served.
pub async fn handle<S: SecretStore, R: Rotator, A: RdsApi>(
    event: LambdaEvent<Value>,
    store: &S,
    rotator: &R,
    rds: &Rds<A>,
    config: &Config,
    kinds: &SecretKinds,
) -> Result<(), Error> {
    let deadline = Deadline::from_epoch_millis(event.context.deadline, config.connect_timeout);
    let passwords = |family: Family| config.password_policy.generate(family, &mut rand::rng());
    let (result, mut report) = run_reporting(
        &event.payload,
        deadline,
        store,
        rotator,
        rds,
        config,
        &passwords,
    )
    .await;
    kinds.complete(&mut report);
    report.emit(&config.metrics);
    result
}

/// [`handle`] with the deadline and the password source given explicitly, without metrics.
pub async fn run<S: SecretStore, R: Rotator, A: RdsApi>(
    payload: &Value,
    deadline: Deadline,
    store: &S,
    rotator: &R,
    rds: &Rds<A>,
    config: &Config,
    passwords: PasswordSource<'_>,
) -> Result<(), Error> {
    run_reporting(payload, deadline, store, rotator, rds, config, passwords)
        .await
        .0
}

/// [`run`], also returning what the invocation did, for its metrics line.
pub(crate) async fn run_reporting<S: SecretStore, R: Rotator, A: RdsApi>(
    payload: &Value,
    deadline: Deadline,
    store: &S,
    rotator: &R,
    rds: &Rds<A>,
    config: &Config,
    passwords: PasswordSource<'_>,
) -> (Result<(), Error>, Report) {
    let started = Instant::now();
    let event = match RotationEvent::from_value(payload) {
        Ok(event) => event,
        Err(e) => {
            let report = Report {
                secret_id: None,
                step: "invalid".to_owned(),
                engine: None,
                strategy: None,
                duration: started.elapsed(),
                error_type: Some(e.error_type()),
                retries: 0,
                throttled: 0,
            };
            return (Err(e), report);
        }
    };
    let span = info_span!(
        "rotation",
        secret_id = %event.secret_id,
        step = %event.step,
        token = %event.token,
    );
    let tally = CallTally::default();
    let rotation = Rotation {
        event: &event,
        store,
        rotator,
        rds,
        config,
        ctx: StepContext {
            secret_id: &event.secret_id,
            step: &event.step,
            deadline,
            tally: &tally,
        },
        passwords,
        seen: Cell::new(None),
    };
    let result = rotation.guard_and_dispatch().instrument(span.clone()).await;
    if let Err(e) = &result {
        span.in_scope(|| warn!(error_type = e.error_type(), error = %e, "step failed"));
    }
    let (engine, strategy) = rotation.seen.get().unzip();
    let report = Report {
        secret_id: Some(event.secret_id.clone()),
        // An unknown step name is the caller's text: keep it out of metric dimensions.
        step: match &event.step {
            Step::Other(_) => "invalid".to_owned(),
            step => step.to_string(),
        },
        engine,
        strategy,
        duration: started.elapsed(),
        error_type: result.as_ref().err().map(Error::error_type),
        retries: tally.retries(),
        throttled: tally.throttled(),
    };
    (result, report)
}

/// One invocation's view of the rotation.
struct Rotation<'a, S, R, A> {
    event: &'a RotationEvent,
    store: &'a S,
    rotator: &'a R,
    rds: &'a Rds<A>,
    config: &'a Config,
    ctx: StepContext<'a>,
    passwords: PasswordSource<'a>,
    /// Engine and strategy of the secret the step read, for metrics.
    seen: Cell<Option<(Engine, Strategy)>>,
}

impl<S: SecretStore, R: Rotator, A: RdsApi> Rotation<'_, S, R, A> {
    fn secret_id(&self) -> &str {
        &self.event.secret_id
    }

    fn token(&self) -> &str {
        &self.event.token
    }

    async fn guard_and_dispatch(&self) -> Result<(), Error> {
        let description = self.store.describe(self.secret_id(), &self.ctx).await?;
        if description.rotation_enabled == Some(false) {
            return Err(Error::RotationDisabled {
                secret_id: self.secret_id().to_owned(),
            });
        }
        if description.stages(self.token()).is_none() {
            return Err(Error::UnknownVersion {
                secret_id: self.secret_id().to_owned(),
                token: self.token().to_owned(),
            });
        }
        if description.has_stage(self.token(), Stage::Current) {
            info!("version already staged AWSCURRENT; nothing to do");
            return Ok(());
        }
        if !description.has_stage(self.token(), Stage::Pending) {
            return Err(Error::NotPending {
                secret_id: self.secret_id().to_owned(),
                token: self.token().to_owned(),
            });
        }
        match &self.event.step {
            Step::CreateSecret => self.create_secret().await,
            Step::SetSecret => self.set_secret().await,
            Step::TestSecret => self.test_secret().await,
            Step::FinishSecret => self.finish_secret(&description).await,
            Step::Other(step) => Err(Error::InvalidStep {
                secret_id: self.secret_id().to_owned(),
                step: step.clone(),
            }),
        }
    }

    /// Reads and validates the version at `stage` (the token's version for `AWSPENDING`). Not
    /// found is an error.
    async fn read(&self, stage: Stage) -> Result<DbSecret, Error> {
        let version = (stage == Stage::Pending).then(|| self.token());
        let text = self
            .store
            .get(self.secret_id(), stage, version, &self.ctx)
            .await?;
        self.parse(stage, &text)
    }

    /// Like [`Self::read`], where the protocol expects that the version may be absent (the
    /// token's pending value in createSecret, `AWSPREVIOUS` in setSecret): `Ok(None)` then.
    async fn read_if_exists(&self, stage: Stage) -> Result<Option<DbSecret>, Error> {
        let version = (stage == Stage::Pending).then(|| self.token());
        let text = self
            .store
            .get_if_exists(self.secret_id(), stage, version, &self.ctx)
            .await?;
        text.map(|text| self.parse(stage, &text)).transpose()
    }

    /// Validates a version's value, noting its engine and strategy for metrics.
    fn parse(&self, stage: Stage, text: &str) -> Result<DbSecret, Error> {
        let secret = DbSecret::parse(self.secret_id(), stage, text)?;
        if stage != Stage::Previous {
            self.seen
                .set(Some((secret.engine(), self.strategy(&secret))));
        }
        Ok(secret)
    }

    fn strategy(&self, current: &DbSecret) -> Strategy {
        current.rotation_strategy().unwrap_or(self.config.strategy)
    }

    fn warn_on_unrecognised_ssl(&self, secret: &DbSecret, stage: Stage) {
        if secret.ssl() == SslSetting::Unrecognised {
            warn!(%stage, field = "ssl", "unrecognised `ssl` value; TLS_MODE decides");
        }
    }

    /// Logs in, or `Ok(None)` when the login fails for any reason but the deadline.
    async fn try_login(
        &self,
        creds: &DbSecret,
        attempt: &str,
    ) -> Result<Option<R::Session>, Error> {
        match self.rotator.connect(creds, attempt, &self.ctx).await {
            Ok(session) => Ok(Some(session)),
            Err(e @ Error::DeadlineExceeded { .. }) => Err(e),
            Err(e) => {
                info!(attempt, user = creds.username(), host = creds.host(), error = %e, "login failed");
                Ok(None)
            }
        }
    }

    fn login_failed(&self, secret_id: &str, tried: &'static str) -> Error {
        Error::LoginFailed {
            secret_id: secret_id.to_owned(),
            step: self.event.step.clone(),
            tried,
        }
    }

    /// Runs `work` on the session, then closes it whatever the outcome.
    async fn use_then_close(
        &self,
        mut session: R::Session,
        work: impl AsyncFnOnce(&mut R::Session) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let result = work(&mut session).await;
        self.rotator.close(session).await;
        result
    }

    fn mismatch(
        &self,
        what: &'static str,
        found: &str,
        expected_role: &'static str,
        expected: &str,
    ) -> Error {
        Error::IdentityMismatch(Box::new(Mismatch {
            secret_id: self.secret_id().to_owned(),
            step: self.event.step.clone(),
            what,
            found: found.to_owned(),
            expected_role,
            expected: expected.to_owned(),
        }))
    }

    /// Confused-deputy check: `pending` must name the same user and host (exact strings) as
    /// `other`, and the same port: a credential proven on one port must never decide what is
    /// done, or sent, on another (docs/protocol.md 5.14).
    fn require_same_account(
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
    fn require_same_endpoint(
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

    /// createSecret: stores a copy of the current secret with a new password as `AWSPENDING` under the
    /// token, unless that version already has a value.
    async fn create_secret(&self) -> Result<(), Error> {
        let current = self.read(Stage::Current).await?;
        if self.read_if_exists(Stage::Pending).await?.is_some() {
            info!("AWSPENDING version already has a value; nothing to do");
            return Ok(());
        }
        let strategy = self.strategy(&current);
        self.require_supported(&current, strategy)?;
        let mut pending = current.with_password((self.passwords)(current.engine().family()));
        if strategy == Strategy::AlternatingUsers {
            pending = pending.with_username(self.clone_name(&current)?);
        }
        self.store
            .put_pending(
                self.secret_id(),
                self.token(),
                &pending.to_json(),
                self.event.rotation_token.as_deref(),
                &self.ctx,
            )
            .await?;
        info!(stage = %Stage::Pending, strategy = strategy.as_str(), "new version created");
        Ok(())
    }

    /// The current secret's `masterarn`, required by `strategy` (alternating users, and dual
    /// passwords written by the master).
    fn masterarn<'s>(&self, current: &'s DbSecret, strategy: Strategy) -> Result<&'s str, Error> {
        current.masterarn().ok_or_else(|| {
            Error::invalid_secret(
                self.secret_id(),
                Stage::Current,
                format!(
                    "masterarn key is missing from secret JSON (required by the {strategy} strategy)"
                ),
            )
        })
    }

    /// The alternate user of `current`, within the engine's user-name limit.
    fn clone_name(&self, current: &DbSecret) -> Result<String, Error> {
        let limit = current
            .engine()
            .username_limit(self.config.mysql_username_limit);
        clone_name(current.username(), limit).map_err(|limit| {
            Error::invalid_secret(
                self.secret_id(),
                Stage::Current,
                format!(
                    "unable to clone user, username length with _clone appended would exceed {limit}"
                ),
            )
        })
    }

    /// setSecret: makes the database accept the pending credential.
    async fn set_secret(&self) -> Result<(), Error> {
        let current = self.read(Stage::Current).await?;
        let pending = self.read(Stage::Pending).await?;
        self.warn_on_unrecognised_ssl(&pending, Stage::Pending);
        let strategy = self.strategy(&current);
        // Before any database work.
        self.require_supported(&current, strategy)?;

        if let Some(session) = self
            .try_login(&pending, "login with pending secret")
            .await?
        {
            self.rotator.close(session).await;
            self.require_password_checked(&pending).await?;
            info!("pending secret already logs in; nothing to do");
            return Ok(());
        }
        match strategy {
            Strategy::SingleUser => self.set_secret_single_user(&current, &pending).await,
            Strategy::AlternatingUsers => self.set_secret_alternating(&current, &pending).await,
            Strategy::DualPassword => self.set_secret_dual(&current, &pending).await,
        }
    }

    /// setSecret for alternating users: the master (superuser) secret sets the password of the
    /// current user's alternate, after proving the current credential is genuine.
    async fn set_secret_alternating(
        &self,
        current: &DbSecret,
        pending: &DbSecret,
    ) -> Result<(), Error> {
        let masterarn = self.masterarn(current, Strategy::AlternatingUsers)?;
        let expected_user = self.clone_name(current)?;
        if pending.username() != expected_user {
            return Err(self.mismatch(
                "user",
                pending.username(),
                "current user or clone",
                current.username(),
            ));
        }
        self.require_same_endpoint(pending, current, "current host")?;
        // The current credential must work before anything changes: a forged secret cannot aim the
        // superuser at an account it does not own.
        let Some(session) = self.try_login(current, "login with current secret").await? else {
            return Err(self.login_failed(self.secret_id(), "current"));
        };
        let account = self.rotator.account(&session);
        self.rotator.close(session).await;

        let session = self.master_session(current, masterarn).await?;
        self.use_then_close(session, async |session| {
            self.rotator
                .set_password_as_master(session, &account, current, pending, &self.ctx)
                .await
        })
        .await?;
        info!(user = pending.username(), "password set by the master user");
        Ok(())
    }

    /// Logs in with the master secret named by `masterarn`, on the master's endpoint and in the
    /// master's own database (docs/protocol.md 5.14). A master at another endpoint than
    /// `current`'s (host and port) is used only when RDS proves that `current`'s endpoint serves
    /// the master's database, and the current credential then also logs in at the master's
    /// endpoint, so that it is proven on the server the master acts on.
    async fn master_session(
        &self,
        current: &DbSecret,
        masterarn: &str,
    ) -> Result<R::Session, Error> {
        self.require_configured_master(masterarn)?;
        let (master, database) = self.master_secret(masterarn, current).await?;
        if !master.same_endpoint(current) {
            self.prove_same_database(current, &master, database, masterarn)
                .await?;
            let at_master = current.at_endpoint_of(&master);
            let Some(session) = self
                .try_login(
                    &at_master,
                    "login with current secret at the master's endpoint",
                )
                .await?
            else {
                self.rds.forget(masterarn);
                return Err(self.mismatch(
                    "host",
                    &endpoint(current),
                    "a host of the master's database, where the current secret logs in, such as",
                    &endpoint(&master),
                ));
            };
            self.rotator.close(session).await;
        }
        let Some(session) = self.try_login(&master, "login with master secret").await? else {
            // An RDS-managed master's endpoint may have changed: ask RDS again next time.
            self.rds.forget(masterarn);
            return Err(self.login_failed(masterarn, "master"));
        };
        Ok(session)
    }

    /// Refuses a `masterarn` outside `MASTER_SECRET_ARNS`, when the deployment lists its master
    /// secrets, before it is read: the function's role may read other applications' secrets,
    /// which an application secret must not be able to name as its master.
    fn require_configured_master(&self, masterarn: &str) -> Result<(), Error> {
        match &self.config.master_secret_arns {
            Some(allowed) if !allowed.iter().any(|arn| arn == masterarn) => Err(self.mismatch(
                "master secret",
                masterarn,
                "one of MASTER_SECRET_ARNS",
                &allowed.join(", "),
            )),
            _ => Ok(()),
        }
    }

    /// The master secret `masterarn`'s `AWSCURRENT` value, of `current`'s engine family, and the
    /// RDS database it acts on when RDS manages it. A master without `host` takes its engine,
    /// endpoint and port from RDS when its tags say RDS manages it, and always connects with
    /// verified TLS to that endpoint (the rotated secret's TLS settings never apply to it);
    /// without such tags it fails naming `host`. A master with `host` is used as it is, taking
    /// `current`'s engine when it names none.
    async fn master_secret(
        &self,
        masterarn: &str,
        current: &DbSecret,
    ) -> Result<(DbSecret, Option<Database>), Error> {
        let text = self
            .store
            .get(masterarn, Stage::Current, None, &self.ctx)
            .await?;
        let mut located = None;
        if DbSecret::lacks_host(&text) {
            located = self
                .rds
                .managed_master(self.store, masterarn, &self.ctx)
                .await?;
        }
        let (master, database) = match located {
            Some(managed) => (
                DbSecret::parse_at(masterarn, Stage::Current, &text, &managed.endpoint)?
                    .with_verified_tls(),
                Some(managed.database),
            ),
            None => (
                DbSecret::parse_with_engine(masterarn, Stage::Current, &text, current.engine())?,
                None,
            ),
        };
        if master.engine().family() != current.engine().family() {
            return Err(Error::invalid_secret(
                masterarn,
                Stage::Current,
                format!(
                    "master secret engine {} is not of the same family as {}",
                    master.engine(),
                    current.engine()
                ),
            ));
        }
        Ok((master, database))
    }

    /// The master's endpoint is not `current`'s: accepted only when RDS proves that `current`'s
    /// endpoint (host and port) is the master's database, a read replica of its instance, or the
    /// reader endpoint or an instance of its cluster, each at the port RDS gives it; the master
    /// then acts on its own endpoint. Anything else is refused.
    async fn prove_same_database(
        &self,
        current: &DbSecret,
        master: &DbSecret,
        database: Option<Database>,
        masterarn: &str,
    ) -> Result<(), Error> {
        let database = match database {
            Some(database) => Some(database),
            None => {
                self.rds
                    .database_at(master.host(), master.port(), &self.ctx)
                    .await?
            }
        };
        let relation = match &database {
            Some(database) => {
                self.rds
                    .relation(current.host(), current.port(), database, &self.ctx)
                    .await?
            }
            None => None,
        };
        let (Some(database), Some(relation)) = (database, relation) else {
            self.rds.forget(masterarn);
            let expected = format!(
                "{} or an RDS read replica or Aurora reader of it",
                endpoint(master)
            );
            return Err(self.mismatch("host", &endpoint(current), "master host", &expected));
        };
        info!(
            current_host = current.host(),
            current_port = current.port(),
            master_host = master.host(),
            master_port = master.port(),
            master = %database,
            relation = relation.as_str(),
            "current endpoint proven to serve the master's database"
        );
        Ok(())
    }

    async fn set_secret_single_user(
        &self,
        current: &DbSecret,
        pending: &DbSecret,
    ) -> Result<(), Error> {
        self.require_same_account(pending, current, "current user", "current host")?;
        let previous;
        let (session, login) = match self.try_login(current, "login with current secret").await? {
            Some(session) => (session, current),
            None => match self.login_with_previous(current, pending).await? {
                Some((session, secret)) => {
                    previous = secret;
                    (session, &previous)
                }
                None => {
                    return Err(
                        self.login_failed(self.secret_id(), "previous, current, or pending")
                    );
                }
            },
        };
        // The credential that opened the session goes with it: MySQL's `REPLACE` needs its
        // password (docs/protocol.md 5.7).
        self.use_then_close(session, async |session| {
            self.rotator
                .set_own_password(session, login, pending.password(), &self.ctx)
                .await
        })
        .await?;
        info!(user = pending.username(), "password set");
        Ok(())
    }

    /// Falls back to `AWSPREVIOUS`, with current's TLS settings, when current no longer logs in (a
    /// rotation whose finishSecret never ran, or a password changed by hand). Returns the session
    /// and the credential that opened it.
    async fn login_with_previous(
        &self,
        current: &DbSecret,
        pending: &DbSecret,
    ) -> Result<Option<(R::Session, DbSecret)>, Error> {
        let previous = match self.read_if_exists(Stage::Previous).await {
            Ok(Some(previous)) => previous.with_tls_of(current),
            Ok(None) => return Ok(None),
            Err(e @ Error::InvalidSecret { .. }) => {
                warn!(error = %e, "ignoring unusable AWSPREVIOUS version");
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        self.require_same_account(pending, &previous, "previous valid user", "previous host")?;
        Ok(self
            .try_login(&previous, "login with previous secret")
            .await?
            .map(|session| (session, previous)))
    }

    /// testSecret: logs in with the pending credential and runs a trivial query. Never writes.
    async fn test_secret(&self) -> Result<(), Error> {
        let pending = self.read(Stage::Pending).await?;
        self.warn_on_unrecognised_ssl(&pending, Stage::Pending);
        let Some(session) = self
            .try_login(&pending, "login with pending secret")
            .await?
        else {
            return Err(self.login_failed(self.secret_id(), "pending"));
        };
        self.use_then_close(session, async |session| {
            self.rotator.check(session, &self.ctx).await
        })
        .await?;
        info!("pending secret logs in");
        Ok(())
    }

    /// finishSecret: moves `AWSCURRENT` to the token in one call, using the guard's description.
    async fn finish_secret(&self, description: &SecretDescription) -> Result<(), Error> {
        let Some(current) = description.version_with(Stage::Current) else {
            return Err(Error::NoCurrentVersion {
                secret_id: self.secret_id().to_owned(),
            });
        };
        if current == self.token() {
            info!("version already staged AWSCURRENT; nothing to do");
            return Ok(());
        }
        self.store
            .promote(self.secret_id(), self.token(), current, &self.ctx)
            .await?;
        info!(stage = %Stage::Current, previous_version = current, "version promoted");
        Ok(())
    }
}

/// `host:port`, for errors.
fn endpoint(secret: &DbSecret) -> String {
    format!("{}:{}", secret.host(), secret.port())
}

mod dual;
#[cfg(test)]
mod tests;
