//! Rotation set-ups on every engine and strategy, as the configuration test, the doctor and a real
//! rotation see them: the accounts a set-up involves (watched for changes, dropped afterwards),
//! its secret in the emulator, and what a successful rotation must leave logging in.

use serde_json::{Value, json};

use super::mariadb::{MyUser, drop_user, my_login};
use super::masters::{MyMaster, PgMaster};
use super::postgres::{PgUser, pg_admin, pg_login};
use super::preflight::{my_state, pg_state, redis_state};
use super::redis::{RedisUser, acl, redis_admin_secret, redis_login, redis_secret};
use super::{RedisStack, Stack, create_secret, fixture_password, redis_stack, unique};

/// How a secret rotates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    SingleUser,
    AlternatingUsers,
    DualPassword,
}

impl Strategy {
    pub fn name(self) -> &'static str {
        match self {
            Strategy::SingleUser => "single-user",
            Strategy::AlternatingUsers => "alternating-users",
            Strategy::DualPassword => "dual-password",
        }
    }
}

/// The accounts of a set-up, in the order they are dropped (clones first, masters last).
#[derive(Debug, Clone)]
pub enum Accounts {
    Pg(Vec<String>),
    /// `user@'%'`.
    My(Vec<String>),
    Redis(Vec<String>),
}

impl Accounts {
    /// What the database holds for them.
    pub async fn state(&self, stack: &Stack) -> Vec<String> {
        match self {
            Accounts::Pg(roles) => {
                let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
                pg_state(stack, &roles).await
            }
            Accounts::My(users) => {
                let accounts: Vec<(&str, &str)> = users.iter().map(|u| (u.as_str(), "%")).collect();
                my_state(stack, &accounts).await
            }
            Accounts::Redis(users) => {
                let (_, redis) = redis_stack().expect("the stack's Redis");
                let users: Vec<&str> = users.iter().map(String::as_str).collect();
                redis_state(stack, redis, &users).await
            }
        }
    }

    /// Drops them all, in order.
    pub async fn drop(&self, stack: &Stack) {
        match self {
            Accounts::Pg(roles) => {
                let admin = pg_admin(stack, stack.pg_port).await;
                for role in roles {
                    let r = postgres_protocol::escape::escape_identifier(role);
                    let _ = admin
                        .batch_execute(&format!("DROP OWNED BY {r}; DROP ROLE IF EXISTS {r}"))
                        .await;
                }
            }
            Accounts::My(users) => {
                for user in users {
                    drop_user(stack, user, "%").await;
                }
            }
            Accounts::Redis(users) => {
                let (_, redis) = redis_stack().expect("the stack's Redis");
                for user in users {
                    acl(stack, redis, &["DELUSER", user]).await;
                }
            }
        }
    }
}

/// A secret to rotate and the accounts behind it.
pub struct Setup {
    pub name: String,
    pub arn: String,
    pub secret: Value,
    pub strategy: Strategy,
    pub accounts: Accounts,
}

impl Setup {
    /// Whether `user` logs in with `password` on the set-up's server; `Err` carries the code.
    pub async fn login(&self, stack: &Stack, user: &str, password: &str) -> Result<(), String> {
        match &self.accounts {
            Accounts::Pg(_) => pg_login(stack, stack.pg_port, user, password).await,
            Accounts::My(_) => my_login(stack, user, password, true)
                .await
                .map_err(|code| code.to_string()),
            Accounts::Redis(_) => {
                let (_, redis) = redis_stack().expect("the stack's Redis");
                redis_login(stack, redis, user, password).await
            }
        }
    }

    /// The code a refused password gets.
    pub fn refused(&self) -> &'static str {
        match &self.accounts {
            Accounts::Pg(_) => "28P01",
            Accounts::My(_) => "1045",
            Accounts::Redis(_) => "WRONGPASS",
        }
    }

    /// What the database holds for the set-up's accounts.
    pub async fn state(&self, stack: &Stack) -> Vec<String> {
        self.accounts.state(stack).await
    }

    pub async fn drop(self, stack: &Stack) {
        self.accounts.drop(stack).await;
    }
}

fn with_strategy(mut secret: Value, strategy: Strategy, masterarn: Option<&str>) -> Value {
    secret["rotation_strategy"] = json!(strategy.name());
    if let Some(arn) = masterarn {
        secret["masterarn"] = json!(arn);
    }
    secret
}

/// A PostgreSQL role and its secret under `strategy`, mastered by `master` when given
/// (`masterarn` left out otherwise), the role created by that master when `created_by_master`,
/// else by the stack's admin.
pub async fn pg_setup(
    stack: &Stack,
    client: &aws_sdk_secretsmanager::Client,
    strategy: Strategy,
    master: Option<&PgMaster>,
    created_by_master: bool,
) -> Setup {
    let name = unique("pf");
    let password = fixture_password();
    let mut roles = vec![format!("{name}_clone"), name.clone()];
    match (master, created_by_master) {
        (Some(m), true) => {
            m.create_role(stack, &name, &password).await;
        }
        _ => {
            PgUser::create(stack, stack.pg_port, &name, &password).await;
        }
    }
    let masterarn = match master {
        None => None,
        Some(m) => {
            roles.push(m.name.clone());
            Some(create_secret(client, &m.secret(stack)).await)
        }
    };
    let secret = with_strategy(
        super::pg_secret(stack, stack.pg_port, &name, &password),
        strategy,
        masterarn.as_deref(),
    );
    let arn = create_secret(client, &secret).await;
    Setup {
        name,
        arn,
        secret,
        strategy,
        accounts: Accounts::Pg(roles),
    }
}

/// A MariaDB account (`name@'%'`, `SELECT` on a table of a database of its own) and its secret under
/// `strategy`, mastered by `master` where the strategy needs one.
pub async fn my_setup(
    stack: &Stack,
    client: &aws_sdk_secretsmanager::Client,
    strategy: Strategy,
    master: Option<&MyMaster>,
) -> Setup {
    let name = unique("pf");
    let password = fixture_password();
    MyUser::create(stack, &name, "%", &password, "").await;
    let db = format!("{name}_db");
    stack
        .admin_run(
            super::Server::Mariadb,
            &format!(
                "CREATE DATABASE `{db}`; CREATE TABLE `{db}`.`t` (v int); \
                 GRANT SELECT ON `{db}`.`t` TO {}",
                db_secret_rotator::rotators::mysql::account_sql(&name, "%")
            ),
        )
        .await;
    let mut users = vec![format!("{name}_clone"), name.clone()];
    let masterarn = match master {
        Some(m) => {
            users.push(m.user.name.clone());
            Some(create_secret(client, &m.secret(stack)).await)
        }
        None => None,
    };
    let secret = with_strategy(
        stack.secret(super::Server::Mariadb, &name, &password),
        strategy,
        masterarn.as_deref(),
    );
    let arn = create_secret(client, &secret).await;
    Setup {
        name,
        arn,
        secret,
        strategy,
        accounts: Accounts::My(users),
    }
}

/// Drops the database [`my_setup`] made for `setup`.
pub async fn my_drop_database(stack: &Stack, setup: &Setup) {
    stack
        .admin_run(
            super::Server::Mariadb,
            &format!("DROP DATABASE IF EXISTS `{}_db`", setup.name),
        )
        .await;
}

/// Rules of a Redis user that may change its own password and save it (single user).
pub const REDIS_SELF_RULES: &[&str] = &[
    "~app:*",
    "-@all",
    "+ping",
    "+acl|setuser",
    "+acl|save",
    "+multi",
    "+exec",
    "+discard",
];

/// A Redis ACL user with `rules` and its secret under `strategy` (TLS port); the master, where
/// one is named, is the stack's admin.
pub async fn redis_setup(
    stack: &Stack,
    redis: &RedisStack,
    client: &aws_sdk_secretsmanager::Client,
    strategy: Strategy,
    rules: &[&str],
) -> Setup {
    let name = unique("pf");
    let password = fixture_password();
    RedisUser::create(stack, redis, &name, &password, rules).await;
    // Saved now: any test's ACL SAVE would save it meanwhile, changing the file under a test
    // that compares it.
    acl(stack, redis, &["SAVE"]).await;
    let masterarn = match strategy {
        Strategy::SingleUser => None,
        _ => Some(create_secret(client, &redis_admin_secret(redis)).await),
    };
    let secret = with_strategy(
        redis_secret(redis, &name, &password),
        strategy,
        masterarn.as_deref(),
    );
    let arn = create_secret(client, &secret).await;
    Setup {
        name: name.clone(),
        arn,
        secret,
        strategy,
        accounts: Accounts::Redis(vec![name]),
    }
}
