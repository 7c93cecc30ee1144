//! The master secret, resolved as setSecret resolves it (docs/protocol.md section 3, steps 5 to
//! 7, and 5.14), for setSecret, the configuration test and the doctor alike:
//!
//! 1. `masterarn` must be one of `MASTER_SECRET_ARNS` when the deployment lists them, before it
//!    is read;
//! 2. its `AWSCURRENT` value; without `host`, an RDS-managed master secret located through its
//!    tag and the RDS API, which always connects with verified TLS to RDS's endpoint;
//! 3. the same engine family as the rotated secret;
//! 4. the same endpoint (host as a DNS name, and port) as the rotated secret, or one RDS proves
//!    is the same database; then the current credential logs in at the master's endpoint too.
//!
//! [`Scope::locate_master`] does 1 to 4 without logging in (the doctor without `--login`);
//! [`Scope::master`] adds the login of 4; [`Scope::master_session`] logs the master in.

use tracing::info;

use super::{Scope, endpoint};
use crate::credentials::{DbSecret, Login};
use crate::error::Error;
use crate::protocol::Stage;
use crate::rds::{Database, RdsApi};
use crate::rotators::{Connect, Session};
use crate::secrets::SecretStore;

/// A master secret ready to log in, and where it acts.
#[derive(Debug, Clone)]
pub struct Master {
    /// Its ARN (the rotated secret's `masterarn`).
    pub arn: String,
    /// Its credential, at the endpoint it acts on.
    pub login: Login,
    /// The RDS database it acts on, when RDS manages it or proved a relation.
    pub database: Option<Database>,
    /// RDS had to prove that the rotated secret's endpoint serves this master's database: the
    /// current credential must then log in at the master's endpoint too.
    pub elsewhere: bool,
}

impl<S: SecretStore, R: Connect, A: RdsApi> Scope<'_, S, R, A> {
    /// Steps 1 to 4 of the module documentation, without logging in.
    pub async fn locate_master(
        &self,
        current: &DbSecret,
        masterarn: &str,
    ) -> Result<Master, Error> {
        self.require_configured_master(masterarn)?;
        let (master, mut database) = self.master_secret(masterarn, current).await?;
        let elsewhere = !master.same_endpoint(&current.login());
        if elsewhere {
            database = Some(
                self.prove_same_database(current, &master, database, masterarn)
                    .await?,
            );
        }
        Ok(Master {
            arn: masterarn.to_owned(),
            login: master,
            database,
            elsewhere,
        })
    }

    /// [`Self::locate_master`], and, when RDS related the endpoints, the current credential
    /// logged in at the master's: current is proven on the server the master acts on.
    pub async fn master(&self, current: &DbSecret, masterarn: &str) -> Result<Master, Error> {
        let master = self.locate_master(current, masterarn).await?;
        if master.elsewhere {
            let at_master = current.login().at_endpoint_of(&master.login);
            let attempt = "login with current secret at the master's endpoint";
            let Some(session) = self.login(&at_master, attempt).await? else {
                self.app.rds.forget(masterarn);
                return Err(self.mismatch(
                    "host",
                    &endpoint(&current.login()),
                    "a host of the master's database, where the current secret logs in, such as",
                    &endpoint(&master.login),
                ));
            };
            session.close().await;
        }
        Ok(master)
    }

    /// Logs the master in, on its endpoint and in its own database.
    pub async fn master_session(&self, master: &Master) -> Result<R::Session, Error> {
        let Some(session) = self
            .login(&master.login, "login with master secret")
            .await?
        else {
            // An RDS-managed master's endpoint may have changed: ask RDS again next time.
            self.app.rds.forget(&master.arn);
            return Err(self.login_failed(&master.arn, "master"));
        };
        Ok(session)
    }

    /// Refuses a `masterarn` outside `MASTER_SECRET_ARNS`, when the deployment lists its master
    /// secrets, before it is read: the function's role may read other applications' secrets,
    /// which an application secret must not be able to name as its master.
    fn require_configured_master(&self, masterarn: &str) -> Result<(), Error> {
        match &self.app.config.master_secret_arns {
            Some(allowed) if !allowed.iter().any(|arn| arn == masterarn) => Err(self.mismatch(
                "master secret",
                masterarn,
                "one of MASTER_SECRET_ARNS",
                &allowed.join(", "),
            )),
            _ => Ok(()),
        }
    }

    /// The master secret's `AWSCURRENT` value as a login, of `current`'s engine family, and the
    /// RDS database it acts on when RDS manages it. A master without `host` takes its engine,
    /// endpoint and port from RDS when its tags say RDS manages it, and connects with verified
    /// TLS to that endpoint; without such tags it fails naming `host`. A master with `host` is
    /// used as it is, taking `current`'s engine when it names none. Either connects to its own
    /// database, never the rotated secret's.
    async fn master_secret(
        &self,
        masterarn: &str,
        current: &DbSecret,
    ) -> Result<(Login, Option<Database>), Error> {
        let text = self
            .app
            .store
            .get(masterarn, Stage::Current, None, &self.ctx)
            .await?;
        let mut located = None;
        if DbSecret::lacks_host(&text) {
            located = self
                .app
                .rds
                .managed_master(&self.app.store, masterarn, &self.ctx)
                .await?;
        }
        let (master, database) = match located {
            Some(managed) => (
                DbSecret::parse_at(masterarn, Stage::Current, &text, &managed.endpoint)?
                    .login()
                    .with_verified_tls(),
                Some(managed.database),
            ),
            None => (
                DbSecret::parse_with_engine(masterarn, Stage::Current, &text, current.engine())?
                    .login(),
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
    /// endpoint (host and port) is the master's database, a read replica of its instance, or
    /// the reader endpoint or an instance of its cluster, each at the port RDS gives it; the
    /// master then acts on its own endpoint. Anything else is refused.
    async fn prove_same_database(
        &self,
        current: &DbSecret,
        master: &Login,
        database: Option<Database>,
        masterarn: &str,
    ) -> Result<Database, Error> {
        let rds = &self.app.rds;
        let database = match database {
            Some(database) => Some(database),
            None => {
                rds.database_at(master.host(), master.port(), &self.ctx)
                    .await?
            }
        };
        let relation = match &database {
            Some(database) => {
                rds.relation(current.host(), current.port(), database, &self.ctx)
                    .await?
            }
            None => None,
        };
        let (Some(database), Some(relation)) = (database, relation) else {
            rds.forget(masterarn);
            let expected = format!(
                "{} or an RDS read replica or Aurora reader of it",
                endpoint(master)
            );
            return Err(self.mismatch(
                "host",
                &endpoint(&current.login()),
                "master host",
                &expected,
            ));
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
        Ok(database)
    }
}
