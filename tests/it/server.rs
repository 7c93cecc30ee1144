//! One interface over the stack's database servers, so single-user tests run on every engine.

use serde_json::{Value, json};

use crate::mysql_support::{
    MyStack, MyUser, auth_string, mariadb_admin_secret, mariadb_secret, my_admin_run, my_login,
    my_run_as, my_stack,
};
use crate::support::{PgUser, Stack, pg_admin, pg_client, pg_login, pg_secret, stack, unique};
use postgres_protocol::escape::escape_identifier;

/// A database server of the local stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// PostgreSQL cluster A (TLS with the test CA, plaintext accepted too).
    Postgres,
    /// MariaDB (TLS with the test CA).
    Mariadb,
}

/// A user created on a [`Server`].
pub enum TestUser {
    Pg(PgUser),
    My(MyUser),
}

/// The stacks a test needs: always the common one (emulator, CA), plus the server's.
pub struct Stacks {
    pub common: &'static Stack,
    pub my: Option<&'static MyStack>,
}

impl Server {
    /// The stacks, or `None` when a needed one is missing (skipped outside CI, failure in CI).
    pub fn stacks(self) -> Option<Stacks> {
        let common = stack()?;
        let my = match self {
            Server::Postgres => None,
            Server::Mariadb => Some(my_stack()?),
        };
        Some(Stacks { common, my })
    }

    /// The error code of a rejected password: SQLSTATE 28P01, or MariaDB error 1045.
    pub fn rejected(self) -> &'static str {
        match self {
            Server::Postgres => "28P01",
            Server::Mariadb => "1045",
        }
    }
}

impl Stacks {
    fn my(&self) -> &'static MyStack {
        self.my.expect("a MariaDB stack")
    }

    /// Creates a login user (`name@'%'` on MariaDB), replacing one an interrupted run left behind.
    pub async fn create_user(&self, server: Server, name: &str, password: &str) -> TestUser {
        match server {
            Server::Postgres => {
                PgUser {
                    name: name.to_owned(),
                    port: self.common.pg_port,
                }
                .drop(self.common)
                .await
            }
            Server::Mariadb => crate::mysql_support::drop_user(self.my(), name, "%").await,
        }
        match server {
            Server::Postgres => {
                TestUser::Pg(PgUser::create(self.common, self.common.pg_port, name, password).await)
            }
            Server::Mariadb => {
                TestUser::My(MyUser::create(self.my(), name, "%", password, "").await)
            }
        }
    }

    /// A secret for `name`, with keys that must survive verbatim (a string port included).
    pub fn secret(&self, server: Server, name: &str, password: &str) -> Value {
        match server {
            Server::Postgres => pg_secret(self.common, self.common.pg_port, name, password),
            Server::Mariadb => {
                let mut secret = mariadb_secret(self.my(), name, password);
                secret["port"] = json!(self.my().port.to_string());
                secret["nested"] = json!({"list": [1, "two", null], "flag": true});
                secret
            }
        }
    }

    /// Logs in directly over verified TLS; `Err` carries the SQLSTATE or error number.
    pub async fn login(&self, server: Server, name: &str, password: &str) -> Result<(), String> {
        match server {
            Server::Postgres => pg_login(self.common, self.common.pg_port, name, password).await,
            Server::Mariadb => my_login(self.my(), name, password, true)
                .await
                .map_err(|code| code.to_string()),
        }
    }
}

/// A table only the users it was granted to may read.
pub struct Table {
    /// `schema.table` or `` `db`.`table` ``, ready for SQL.
    pub sql: String,
    /// What to drop afterwards.
    drop: String,
}

impl Stacks {
    /// The master (superuser) secret of the server.
    pub fn master_secret(&self, server: Server) -> Value {
        match server {
            Server::Postgres => json!({
                "engine": "postgres",
                "host": self.common.pg_host,
                "port": self.common.pg_port,
                "username": self.common.pg_admin_user,
                "password": self.common.pg_admin_password,
            }),
            Server::Mariadb => mariadb_admin_secret(self.my()),
        }
    }

    /// The longest user name whose clone name the engine still accepts.
    pub fn clone_limit(&self, server: Server) -> usize {
        match server {
            Server::Postgres => 63,
            Server::Mariadb => 80,
        }
    }

    async fn admin_run(&self, server: Server, sql: &str) {
        match server {
            Server::Postgres => pg_admin(self.common, self.common.pg_port)
                .await
                .batch_execute(sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}")),
            Server::Mariadb => {
                for statement in sql.split(';').filter(|s| !s.trim().is_empty()) {
                    my_admin_run(self.my(), statement).await;
                }
            }
        }
    }

    /// Creates a table with one row and grants SELECT on it to `user` only.
    pub async fn grant_table(&self, server: Server, user: &str) -> Table {
        let name = unique("granted");
        let (sql, drop, setup) = match server {
            Server::Postgres => {
                let t = escape_identifier(&name);
                let u = escape_identifier(user);
                (
                    t.clone(),
                    format!("DROP TABLE IF EXISTS {t}"),
                    format!(
                        "CREATE TABLE {t} (v int); INSERT INTO {t} VALUES (42); GRANT SELECT ON {t} TO {u}"
                    ),
                )
            }
            Server::Mariadb => {
                let t = format!("`{name}`.`t`");
                let account = db_secret_rotator::rotators::mysql::account_sql(user, "%");
                (
                    t.clone(),
                    format!("DROP DATABASE IF EXISTS `{name}`"),
                    format!(
                        "CREATE DATABASE `{name}`; CREATE TABLE {t} (v int); INSERT INTO {t} VALUES (42); GRANT SELECT ON {t} TO {account}"
                    ),
                )
            }
        };
        self.admin_run(server, &setup).await;
        Table { sql, drop }
    }

    /// Whether `user` can read `table`; `Err` carries the server's code.
    pub async fn reads(
        &self,
        server: Server,
        table: &Table,
        user: &str,
        password: &str,
    ) -> Result<(), String> {
        let query = format!("SELECT v FROM {}", table.sql);
        match server {
            Server::Postgres => pg_client(self.common, user, password)
                .await
                .simple_query(&query)
                .await
                .map(|_| ())
                .map_err(|e| e.code().map(|c| c.code().to_owned()).unwrap_or_default()),
            Server::Mariadb => my_run_as(self.my(), user, password, &query)
                .await
                .map_err(|code| code.to_string()),
        }
    }

    pub async fn drop_table(&self, server: Server, table: Table) {
        self.admin_run(server, &table.drop).await;
    }

    /// Whether a user (`name@'%'` on MariaDB) exists.
    pub async fn user_exists(&self, server: Server, name: &str) -> bool {
        match server {
            Server::Postgres => pg_admin(self.common, self.common.pg_port)
                .await
                .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&name])
                .await
                .unwrap()
                .is_some(),
            Server::Mariadb => auth_string(self.my(), name, "%").await.is_some(),
        }
    }

    /// Drops a user the function created (the clone), with whatever it owns.
    pub async fn drop_user(&self, server: Server, name: &str) {
        match server {
            Server::Postgres => {
                let r = escape_identifier(name);
                let _ = pg_admin(self.common, self.common.pg_port)
                    .await
                    .batch_execute(&format!("DROP OWNED BY {r}; DROP ROLE {r}"))
                    .await;
            }
            Server::Mariadb => crate::mysql_support::drop_user(self.my(), name, "%").await,
        }
    }
}

impl TestUser {
    pub fn name(&self) -> &str {
        match self {
            TestUser::Pg(u) => &u.name,
            TestUser::My(u) => &u.name,
        }
    }

    /// Sets the password behind the function's back.
    pub async fn set_password(&self, stacks: &Stacks, password: &str) {
        match self {
            TestUser::Pg(u) => u.set_password(stacks.common, password).await,
            TestUser::My(u) => u.set_password(stacks.my(), password).await,
        }
    }

    /// The stored verifier or hash: unchanged means no password statement ran.
    pub async fn verifier(&self, stacks: &Stacks) -> String {
        match self {
            TestUser::Pg(u) => u.verifier(stacks.common).await,
            TestUser::My(u) => u.auth_string(stacks.my()).await,
        }
    }

    pub async fn drop(self, stacks: &Stacks) {
        match self {
            TestUser::Pg(u) => u.drop(stacks.common).await,
            TestUser::My(u) => u.drop(stacks.my()).await,
        }
    }
}

/// Returns from the test when the server's stack is missing (outside CI).
macro_rules! require_server {
    ($server:expr) => {
        match $server.stacks() {
            Some(stacks) => stacks,
            None => return,
        }
    };
}
pub(crate) use require_server;

/// Runs a test body `async fn name(server: Server)` once per server, as `name::postgres` and
/// `name::mariadb`.
macro_rules! on_every_server {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn postgres() {
                    super::$name($crate::server::Server::Postgres).await
                }
                #[tokio::test]
                async fn mariadb() {
                    super::$name($crate::server::Server::Mariadb).await
                }
            }
        )*
    };
}
pub(crate) use on_every_server;
