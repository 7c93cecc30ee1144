//! One interface over the stack's database servers, so that tests run on every engine.

use db_secret_rotator::rotators::mysql::account_sql;
use postgres_protocol::escape::escape_identifier;
use serde_json::{Value, json};

use super::mariadb::{
    MyUser, auth_string, mariadb_admin_secret, mariadb_secret, my_admin_run, my_login, my_run_as,
};
use super::postgres::{PgUser, pg_admin, pg_client, pg_login, pg_secret};
use super::{Stack, unique};

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

impl Server {
    /// Both servers.
    pub const ALL: [Server; 2] = [Server::Postgres, Server::Mariadb];

    /// The server's address (host, port) on the stack.
    pub fn address(self, stack: &Stack) -> (String, u16) {
        match self {
            Server::Postgres => (stack.pg_host.clone(), stack.pg_port),
            Server::Mariadb => (stack.mariadb_host.clone(), stack.mariadb_port),
        }
    }

    /// The error code of a rejected password: SQLSTATE 28P01, or MariaDB error 1045.
    pub fn rejected(self) -> &'static str {
        match self {
            Server::Postgres => "28P01",
            Server::Mariadb => "1045",
        }
    }
}

impl Stack {
    /// Creates a login user (`name@'%'` on MariaDB), replacing one an interrupted run left behind.
    pub async fn create_user(&self, server: Server, name: &str, password: &str) -> TestUser {
        match server {
            Server::Postgres => {
                PgUser {
                    name: name.to_owned(),
                    port: self.pg_port,
                }
                .drop(self)
                .await
            }
            Server::Mariadb => super::mariadb::drop_user(self, name, "%").await,
        }
        match server {
            Server::Postgres => {
                TestUser::Pg(PgUser::create(self, self.pg_port, name, password).await)
            }
            Server::Mariadb => TestUser::My(MyUser::create(self, name, "%", password, "").await),
        }
    }

    /// A secret for `name`, with keys that must survive verbatim (a string port included).
    pub fn secret(&self, server: Server, name: &str, password: &str) -> Value {
        match server {
            Server::Postgres => pg_secret(self, self.pg_port, name, password),
            Server::Mariadb => {
                let mut secret = mariadb_secret(self, name, password);
                secret["port"] = json!(self.mariadb_port.to_string());
                secret["nested"] = json!({"list": [1, "two", null], "flag": true});
                secret
            }
        }
    }

    /// Logs in directly over verified TLS; `Err` carries the SQLSTATE or error number.
    pub async fn login(&self, server: Server, name: &str, password: &str) -> Result<(), String> {
        match server {
            Server::Postgres => pg_login(self, self.pg_port, name, password).await,
            Server::Mariadb => my_login(self, name, password, true)
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

impl Stack {
    /// The master (superuser) secret of the server.
    pub fn master_secret(&self, server: Server) -> Value {
        match server {
            Server::Postgres => json!({
                "engine": "postgres",
                "host": self.pg_host,
                "port": self.pg_port,
                "username": self.pg_admin_user,
                "password": self.pg_admin_password,
            }),
            Server::Mariadb => mariadb_admin_secret(self),
        }
    }

    /// An alternating-users secret for `name`, whose master secret is `masterarn`.
    pub fn alternating_secret(
        &self,
        server: Server,
        name: &str,
        password: &str,
        masterarn: &str,
    ) -> Value {
        let mut secret = self.secret(server, name, password);
        secret["masterarn"] = json!(masterarn);
        secret["rotation_strategy"] = json!("alternating-users");
        secret
    }

    /// The longest user name whose clone name the engine still accepts.
    pub fn clone_limit(&self, server: Server) -> usize {
        match server {
            Server::Postgres => 63,
            Server::Mariadb => 80,
        }
    }

    /// Runs `sql` as the server's admin (statements separated by `;`, none containing one).
    pub async fn admin_run(&self, server: Server, sql: &str) {
        match server {
            Server::Postgres => pg_admin(self, self.pg_port)
                .await
                .batch_execute(sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}")),
            Server::Mariadb => {
                for statement in sql.split(';').filter(|s| !s.trim().is_empty()) {
                    my_admin_run(self, statement).await;
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
                let account = account_sql(user, "%");
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
            Server::Postgres => pg_client(self, user, password)
                .await
                .simple_query(&query)
                .await
                .map(|_| ())
                .map_err(|e| e.code().map(|c| c.code().to_owned()).unwrap_or_default()),
            Server::Mariadb => my_run_as(self, user, password, &query)
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
            Server::Postgres => pg_admin(self, self.pg_port)
                .await
                .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&name])
                .await
                .unwrap()
                .is_some(),
            Server::Mariadb => auth_string(self, name, "%").await.is_some(),
        }
    }

    /// Drops a user the function created (the clone), with whatever it owns.
    pub async fn drop_user(&self, server: Server, name: &str) {
        match server {
            Server::Postgres => {
                let r = escape_identifier(name);
                let _ = pg_admin(self, self.pg_port)
                    .await
                    .batch_execute(&format!("DROP OWNED BY {r}; DROP ROLE {r}"))
                    .await;
            }
            Server::Mariadb => super::mariadb::drop_user(self, name, "%").await,
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
    pub async fn set_password(&self, stack: &Stack, password: &str) {
        match self {
            TestUser::Pg(u) => u.set_password(stack, password).await,
            TestUser::My(u) => u.set_password(stack, password).await,
        }
    }

    /// The stored verifier or hash: unchanged means no password statement ran.
    pub async fn verifier(&self, stack: &Stack) -> String {
        match self {
            TestUser::Pg(u) => u.verifier(stack).await,
            TestUser::My(u) => u.auth_string(stack).await,
        }
    }

    pub async fn drop(self, stack: &Stack) {
        match self {
            TestUser::Pg(u) => u.drop(stack).await,
            TestUser::My(u) => u.drop(stack).await,
        }
    }
}
