//! [`Engines`]: every engine's connector, built once per container, chosen by the login's engine;
//! and [`AnySession`], which dispatches each role to the engine's session, answering a role the
//! engine does not play with the capability table's refusal.

use super::driver::Transport;
use super::{
    Account, Added, CloneManagement, Connect, DualMaster, DualOwn, OwnPassword, Session, UserApis,
    mysql, postgres, redis, unsupported,
};
use crate::cache_user::SdkCacheUsers;
use crate::config::Config;
use crate::credentials::{Login, Password};
use crate::deadline::StepContext;
use crate::engine::{Engine, Family};
use crate::error::{CloneFindings, Error, Shortfall};
use crate::protocol::Strategy;
use crate::tls::{LazyRoots, TlsRoots};

/// The connectors of every engine, built once per container over the same trust roots, which
/// are loaded when a database is first contacted over TLS.
#[derive(Debug, Clone)]
pub struct Engines {
    postgres: postgres::PostgresRotator,
    mysql: mysql::MysqlRotator,
    redis: redis::RedisRotator,
    /// The ElastiCache and MemoryDB clients, once the SDK is configured.
    users: Option<SdkCacheUsers>,
}

impl Engines {
    /// Builds the connectors over the TLS trust roots (system, Amazon RDS,
    /// `TLS_EXTRA_CA_FILE`), loaded on first use; the extra file is read and checked now.
    pub fn new(config: &Config) -> Result<Self, Error> {
        let roots = LazyRoots::new(
            &config.tls_system_store,
            config.tls_extra_ca_file.as_deref(),
        )?;
        Ok(Self::with_lazy_roots(&roots, config))
    }

    /// Builds the connectors over given trust roots (tests trust exactly their own CA).
    pub fn with_roots(roots: &TlsRoots, config: &Config) -> Self {
        Self::with_lazy_roots(&LazyRoots::loaded(roots.clone()), config)
    }

    /// Builds the connectors over `roots`, shared with whatever else holds them (the AWS SDK's
    /// HTTPS client): each engine makes its TLS connector when it first needs it.
    pub fn with_lazy_roots(roots: &LazyRoots, config: &Config) -> Self {
        let transport = Transport::of(config);
        Engines {
            postgres: postgres::PostgresRotator::new(roots.clone(), transport),
            mysql: mysql::MysqlRotator::new(roots.clone(), transport),
            redis: redis::RedisRotator::new(roots.clone(), transport),
            users: None,
        }
    }

    /// These connectors with the ElastiCache and MemoryDB clients (each built on its first
    /// call).
    pub fn with_cache_users(mut self, users: SdkCacheUsers) -> Self {
        self.users = Some(users);
        self
    }
}

impl UserApis for Engines {
    type Api = Option<SdkCacheUsers>;

    fn user_api(&self) -> &Option<SdkCacheUsers> {
        &self.users
    }
}

/// An open session on any engine.
#[derive(Debug)]
pub enum AnySession {
    /// PostgreSQL or Aurora PostgreSQL.
    Postgres(postgres::PgSession),
    /// MySQL, Aurora MySQL or MariaDB.
    Mysql(mysql::MySession),
    /// Redis or Valkey.
    Redis(redis::RedisSession),
}

impl Connect for Engines {
    type Session = AnySession;

    async fn connect(
        &self,
        login: &Login,
        attempt: &str,
        ctx: &StepContext<'_>,
    ) -> Result<AnySession, Error> {
        Ok(match login.engine().family() {
            Family::Postgres => {
                AnySession::Postgres(self.postgres.connect(login, attempt, ctx).await?)
            }
            Family::Mysql => AnySession::Mysql(self.mysql.connect(login, attempt, ctx).await?),
            // An ElastiCache or MemoryDB user's data plane speaks Redis.
            Family::Redis | Family::CacheUser => {
                AnySession::Redis(self.redis.connect(login, attempt, ctx).await?)
            }
        })
    }
}

impl Session for AnySession {
    fn engine(&self) -> Engine {
        match self {
            AnySession::Postgres(s) => s.engine(),
            AnySession::Mysql(s) => s.engine(),
            AnySession::Redis(s) => s.engine(),
        }
    }

    fn account(&self) -> Account {
        match self {
            AnySession::Postgres(s) => s.account(),
            AnySession::Mysql(s) => s.account(),
            AnySession::Redis(s) => s.account(),
        }
    }

    async fn check(&mut self, ctx: &StepContext<'_>) -> Result<(), Error> {
        match self {
            AnySession::Postgres(s) => s.check(ctx).await,
            AnySession::Mysql(s) => s.check(ctx).await,
            AnySession::Redis(s) => s.check(ctx).await,
        }
    }

    async fn close(self) {
        match self {
            AnySession::Postgres(s) => s.close().await,
            AnySession::Mysql(s) => s.close().await,
            AnySession::Redis(s) => s.close().await,
        }
    }
}

impl OwnPassword for AnySession {
    async fn set_own_password(
        &mut self,
        login: &Login,
        new: &Password,
        ctx: &StepContext<'_>,
    ) -> Result<(), Error> {
        match self {
            AnySession::Postgres(s) => s.set_own_password(login, new, ctx).await,
            AnySession::Mysql(s) => s.set_own_password(login, new, ctx).await,
            AnySession::Redis(s) => s.set_own_password(login, new, ctx).await,
        }
    }

    async fn own_password_shortfalls(
        &mut self,
        ctx: &StepContext<'_>,
    ) -> Result<Vec<Shortfall>, Error> {
        match self {
            AnySession::Postgres(s) => s.own_password_shortfalls(ctx).await,
            AnySession::Mysql(s) => s.own_password_shortfalls(ctx).await,
            AnySession::Redis(s) => s.own_password_shortfalls(ctx).await,
        }
    }
}

impl CloneManagement for AnySession {
    async fn set_password_as_master(
        &mut self,
        account: &Account,
        current: &Login,
        pending: &Login,
        ctx: &StepContext<'_>,
    ) -> Result<(), Error> {
        match self {
            AnySession::Postgres(s) => {
                s.set_password_as_master(account, current, pending, ctx)
                    .await
            }
            AnySession::Mysql(s) => {
                s.set_password_as_master(account, current, pending, ctx)
                    .await
            }
            AnySession::Redis(s) => Err(unsupported(s.engine(), Strategy::AlternatingUsers, ctx)),
        }
    }

    async fn audit_clone(
        &mut self,
        account: &Account,
        pending_user: &str,
        ctx: &StepContext<'_>,
    ) -> Result<CloneFindings, Error> {
        match self {
            AnySession::Postgres(s) => s.audit_clone(account, pending_user, ctx).await,
            AnySession::Mysql(s) => s.audit_clone(account, pending_user, ctx).await,
            AnySession::Redis(s) => Err(unsupported(s.engine(), Strategy::AlternatingUsers, ctx)),
        }
    }

    async fn master_shortfalls(
        &mut self,
        account: &Account,
        pending_user: &str,
        ctx: &StepContext<'_>,
    ) -> Result<Vec<Shortfall>, Error> {
        match self {
            AnySession::Postgres(s) => s.master_shortfalls(account, pending_user, ctx).await,
            AnySession::Mysql(s) => s.master_shortfalls(account, pending_user, ctx).await,
            AnySession::Redis(s) => Err(unsupported(s.engine(), Strategy::AlternatingUsers, ctx)),
        }
    }
}

impl DualOwn for AnySession {
    async fn add_own_password(
        &mut self,
        current: &Password,
        pending: &Password,
        ctx: &StepContext<'_>,
    ) -> Result<Added, Error> {
        match self {
            AnySession::Mysql(s) => s.add_own_password(current, pending, ctx).await,
            other => Err(unsupported(other.engine(), Strategy::DualPassword, ctx)),
        }
    }

    async fn dual_own_shortfalls(
        &mut self,
        ctx: &StepContext<'_>,
    ) -> Result<Vec<Shortfall>, Error> {
        match self {
            AnySession::Mysql(s) => s.dual_own_shortfalls(ctx).await,
            other => Err(unsupported(other.engine(), Strategy::DualPassword, ctx)),
        }
    }
}

impl DualMaster for AnySession {
    async fn add_password_as_master(
        &mut self,
        account: &Account,
        current: &Password,
        pending: &Password,
        ctx: &StepContext<'_>,
    ) -> Result<(), Error> {
        match self {
            AnySession::Mysql(s) => {
                s.add_password_as_master(account, current, pending, ctx)
                    .await
            }
            AnySession::Redis(s) => {
                s.add_password_as_master(account, current, pending, ctx)
                    .await
            }
            AnySession::Postgres(s) => Err(unsupported(s.engine(), Strategy::DualPassword, ctx)),
        }
    }

    async fn dual_master_shortfalls(
        &mut self,
        account: &Account,
        current: &Password,
        ctx: &StepContext<'_>,
    ) -> Result<Vec<Shortfall>, Error> {
        match self {
            AnySession::Mysql(s) => s.dual_master_shortfalls(account, current, ctx).await,
            AnySession::Redis(s) => s.dual_master_shortfalls(account, current, ctx).await,
            AnySession::Postgres(s) => Err(unsupported(s.engine(), Strategy::DualPassword, ctx)),
        }
    }
}
