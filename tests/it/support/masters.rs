//! Master users shaped like the ones RDS creates, beside the stack's superusers.
//!
//! - PostgreSQL: RDS's master is no superuser. It has `CREATEROLE CREATEDB LOGIN` and is a member
//!   of `rds_superuser`, a group role with a few predefined roles. [`PgMaster::rds_like`] makes
//!   such a role, member of [`PG_RDS_GROUP`] (created once, idempotently). From PostgreSQL 16 it
//!   holds `ADMIN OPTION` only on the roles it created itself ([`PgMaster::create_role`]).
//! - MariaDB: RDS's master has no `SUPER` and no `FILE`; `rdsadmin` grants it the global
//!   privileges of [`MARIADB_RDS_PRIVILEGES`] `WITH GRANT OPTION`. [`MyMaster::rds_like`] makes
//!   such an account; [`MyMaster::with_privileges`] one with any other list.
//!
//! Each master's secret is a classic master secret (`host` included) on the stack's server.

use postgres_protocol::escape::{escape_identifier, escape_literal};
use serde_json::{Value, json};

use super::mariadb::{MyUser, mariadb_secret, my_admin_run};
use super::postgres::{PgUser, pg_admin, pg_client};
use super::{Stack, fixture_password, unique};

/// The group role standing for RDS's `rds_superuser`.
pub const PG_RDS_GROUP: &str = "dsr_rds_superuser";

/// The global privileges RDS for MariaDB gives its master user, all `WITH GRANT OPTION`.
pub const MARIADB_RDS_PRIVILEGES: &[&str] = &[
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "CREATE",
    "DROP",
    "RELOAD",
    "PROCESS",
    "REFERENCES",
    "INDEX",
    "ALTER",
    "SHOW DATABASES",
    "CREATE TEMPORARY TABLES",
    "LOCK TABLES",
    "EXECUTE",
    "REPLICATION SLAVE",
    "REPLICATION CLIENT",
    "CREATE VIEW",
    "SHOW VIEW",
    "CREATE ROUTINE",
    "ALTER ROUTINE",
    "CREATE USER",
    "EVENT",
    "TRIGGER",
];

/// [`MARIADB_RDS_PRIVILEGES`] without `left_out`.
pub fn mariadb_rds_privileges_without(left_out: &[&str]) -> Vec<&'static str> {
    MARIADB_RDS_PRIVILEGES
        .iter()
        .copied()
        .filter(|p| !left_out.contains(p))
        .collect()
}

/// A PostgreSQL master role that is not a superuser.
pub struct PgMaster {
    pub name: String,
    pub password: String,
}

impl PgMaster {
    /// A master shaped like RDS's: `LOGIN CREATEROLE CREATEDB`, member of [`PG_RDS_GROUP`].
    pub async fn rds_like(stack: &Stack) -> Self {
        Self::with_attributes(stack, "CREATEROLE CREATEDB").await
    }

    /// A login role with `attributes` (`CREATEROLE CREATEDB`, `CREATEDB`, …), member of
    /// [`PG_RDS_GROUP`].
    pub async fn with_attributes(stack: &Stack, attributes: &str) -> Self {
        let admin = pg_admin(stack, stack.pg_port).await;
        // Concurrent tests may race to create the group: the loser's error is caught.
        admin
            .batch_execute(&format!(
                "DO $$ BEGIN \
                   CREATE ROLE {group} NOLOGIN; \
                   GRANT pg_monitor, pg_signal_backend TO {group}; \
                 EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; \
                 END $$",
                group = PG_RDS_GROUP
            ))
            .await
            .expect("the rds_superuser-like group");
        let name = unique("rdsmaster");
        let password = fixture_password();
        admin
            .batch_execute(&format!(
                "CREATE ROLE {n} LOGIN {attributes} PASSWORD {p}; GRANT {group} TO {n}",
                n = escape_identifier(&name),
                p = escape_literal(&password),
                group = PG_RDS_GROUP,
            ))
            .await
            .expect("CREATE ROLE master");
        PgMaster { name, password }
    }

    /// The master secret (its own database: `postgres`).
    pub fn secret(&self, stack: &Stack) -> Value {
        json!({
            "engine": "postgres",
            "host": stack.pg_host,
            "port": stack.pg_port,
            "username": self.name,
            "password": self.password,
            "dbname": "postgres",
        })
    }

    /// Runs `sql` as the master.
    pub async fn run(&self, stack: &Stack, sql: &str) {
        pg_client(stack, &self.name, &self.password)
            .await
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("as the master: {sql}: {e}"));
    }

    /// Creates the login role `name` as the master (from PostgreSQL 16 the master then holds
    /// `ADMIN OPTION` on it, as its creator).
    pub async fn create_role(&self, stack: &Stack, name: &str, password: &str) -> PgUser {
        self.run(
            stack,
            &format!(
                "CREATE ROLE {} LOGIN PASSWORD {}",
                escape_identifier(name),
                escape_literal(password)
            ),
        )
        .await;
        PgUser {
            name: name.to_owned(),
            port: stack.pg_port,
        }
    }
}

/// A MariaDB master account (`name@'%'`).
pub struct MyMaster {
    pub user: MyUser,
    pub password: String,
}

impl MyMaster {
    /// A master shaped like RDS's: [`MARIADB_RDS_PRIVILEGES`] on `*.*` `WITH GRANT OPTION`.
    pub async fn rds_like(stack: &Stack) -> Self {
        Self::with_privileges(stack, MARIADB_RDS_PRIVILEGES, true).await
    }

    /// A master with `privileges` on `*.*`, with or without the grant option.
    pub async fn with_privileges(stack: &Stack, privileges: &[&str], grant_option: bool) -> Self {
        let name = unique("rdsmaster");
        let password = fixture_password();
        let user = MyUser::create(stack, &name, "%", &password, "").await;
        let option = if grant_option {
            " WITH GRANT OPTION"
        } else {
            ""
        };
        my_admin_run(
            stack,
            &format!(
                "GRANT {} ON *.* TO {}{option}",
                privileges.join(", "),
                user.sql()
            ),
        )
        .await;
        MyMaster { user, password }
    }

    /// `` `name`@`%` ``.
    pub fn sql(&self) -> String {
        self.user.sql()
    }

    /// The master secret.
    pub fn secret(&self, stack: &Stack) -> Value {
        mariadb_secret(stack, &self.user.name, &self.password)
    }

    pub async fn drop(self, stack: &Stack) {
        self.user.drop(stack).await;
    }
}
