//! The dual-password strategy on the MySQL family (docs/protocol.md 5.13): one account, two
//! passwords, the new one added beside the current one.
//!
//! - **MySQL 8.0.14+, as the user**: `ALTER USER CURRENT_USER() IDENTIFIED BY <new> REPLACE
//!   <current> RETAIN CURRENT PASSWORD`. The server keeps the primary password it replaces as the
//!   secondary one, dropping the older secondary. `REPLACE` makes the statement a compare-and-set:
//!   the server runs it only while current is still the primary password. Without it, the
//!   statement repeated after a lost reply would retain the new password as its own secondary and
//!   push current out; with it, the repeat fails with error 3891 ([`Added::NotPrimary`]), and the
//!   rotation then checks that the pending password logs in (the change was made) rather than
//!   trusting the failure.
//!   `RETAIN CURRENT PASSWORD` on one's own account needs `APPLICATION_PASSWORD_ADMIN`, which the
//!   error names when it is missing (1227).
//! - **MariaDB 10.4+, as the master**: `ALTER USER <account> IDENTIFIED VIA <plugin> USING
//!   '<new>' OR <plugin> USING '<current>'`, both values computed client-side (`auth_plugin`), so
//!   no plaintext reaches the server's logs. The statement lists every method the account keeps,
//!   so repeating it changes nothing. The account's methods are read from `mysql.global_priv`
//!   first: every one must use a plugin whose value the function can compute, else the step is
//!   refused naming the plugin before any change (a `unix_socket` or PAM method would otherwise
//!   be dropped). The account's other settings (grants, `REQUIRE`, limits, locks) are not part
//!   of the statement and stay as they are.
//!
//! No MySQL 8 server runs in the test stack: the MySQL statements are unit-tested against a
//! scripted fake of the session ([`Statements`]).

use std::time::Duration;

use mysql_async::prelude::Queryable;
use tracing::info;

use super::auth_plugin::PasswordPlugin;
use super::methods::{Method, any_accepts};
use super::privileges::Privileges;
use super::quote::account_sql;
use super::session::{MySession, ServerSession, error_code, server_error_number};
use crate::credentials::Password;
use crate::deadline::StepContext;
use crate::engine::Engine;
use crate::error::{Error, Shortfall, ShortfallKind};
use crate::protocol::Stage;
use crate::rotators::driver::{MAY_HAVE_APPLIED, bounded, database_error, database_error_hinted};
use crate::rotators::{Account, Added, not_on_the_masters_server};

/// What the change is called in errors.
const ADDING: &str = "adding the pending password beside the current one";

/// `ER_SPECIFIC_ACCESS_DENIED_ERROR`: here, `APPLICATION_PASSWORD_ADMIN` is missing.
const ER_SPECIFIC_ACCESS_DENIED: u16 = 1227;
/// `ER_PARSE_ERROR`: the server predates the statement's syntax.
const ER_PARSE_ERROR: u16 = 1064;
/// `ER_INCORRECT_CURRENT_PASSWORD` (MySQL 8.0.13+): `REPLACE` names a password that is not the
/// primary one.
const ER_INCORRECT_CURRENT_PASSWORD: u16 = 3891;
/// `ER_NOT_VALID_PASSWORD`: a password validation plugin refused the value.
const ER_NOT_VALID_PASSWORD: u16 = 1819;

/// A statement's failure: the server's error number when it answered, and the code text kept
/// for the error (number and SQLSTATE, or the transport description; never the message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Failed {
    pub(super) number: Option<u16>,
    pub(super) code: String,
}

/// Where the dual-password statements run: a session under a timeout, or a fake in tests.
pub(super) trait Statements {
    /// Runs `statement`, which contains passwords: never log it.
    async fn execute(&mut self, statement: &str) -> Result<(), Failed>;
}

/// A session whose statements each run within `timeout`.
struct Timed<'a> {
    session: &'a mut MySession,
    timeout: Duration,
}

impl Statements for Timed<'_> {
    async fn execute(&mut self, statement: &str) -> Result<(), Failed> {
        let run = async {
            self.session
                .conn
                .query_drop(statement)
                .await
                .map_err(|e| Failed {
                    number: server_error_number(&e),
                    code: error_code(&e),
                })
        };
        bounded(self.timeout, run, |timed_out| Failed {
            number: None,
            code: format!("{timed_out}; {MAY_HAVE_APPLIED}"),
        })
        .await
    }
}

/// MySQL's statement: the new password, `current` as the compare-and-set `REPLACE`, and the
/// current password retained as the secondary one. Contains passwords: never log it.
fn retain_statement(server: &ServerSession, new: &str, current: &str) -> String {
    format!(
        "ALTER USER CURRENT_USER() IDENTIFIED BY {} REPLACE {} RETAIN CURRENT PASSWORD",
        server.literal(new),
        server.literal(current)
    )
}

/// Runs MySQL's statement; the errors name what the account lacks.
async fn retain_current(
    db: &mut impl Statements,
    server: &ServerSession,
    engine: Engine,
    new: &Password,
    current: &Password,
) -> Result<Added, Error> {
    let statement = retain_statement(server, new.expose(), current.expose());
    let Failed { number, code } = match db.execute(&statement).await {
        Ok(()) => return Ok(Added::Now),
        Err(failed) => failed,
    };
    let hint = match number {
        Some(ER_INCORRECT_CURRENT_PASSWORD) => return Ok(Added::NotPrimary(code)),
        Some(ER_SPECIFIC_ACCESS_DENIED) => APPLICATION_PASSWORD_ADMIN_HINT,
        Some(ER_PARSE_ERROR) => "RETAIN CURRENT PASSWORD needs MySQL 8.0.14 or later",
        _ => return Err(database_error(engine, ADDING, code)),
    };
    Err(database_error_hinted(engine, ADDING, code, hint))
}

/// What an account lacking `APPLICATION_PASSWORD_ADMIN` is told.
const APPLICATION_PASSWORD_ADMIN_HINT: &str = "RETAIN CURRENT PASSWORD on one's own account needs \
    the APPLICATION_PASSWORD_ADMIN privilege: GRANT APPLICATION_PASSWORD_ADMIN ON *.* TO the account";

/// MySQL: the user adds its own second password (see the module documentation). When current is
/// no longer the primary password the statement did nothing; the caller tells a lost reply from
/// a password changed outside the rotation by logging in with the pending one.
pub(super) async fn add_own_password(
    session: &mut MySession,
    current: &Password,
    pending: &Password,
    ctx: &StepContext<'_>,
) -> Result<Added, Error> {
    refuse_mariadb(session, ctx)?;
    let (engine, server) = (session.engine, session.server);
    let timeout = ctx.query_timeout(ADDING)?;
    let mut db = Timed { session, timeout };
    retain_current(&mut db, &server, engine, pending, current).await
}

/// A MariaDB server reached through `engine: mysql`: its accounts get a second password from the
/// master.
fn refuse_mariadb(session: &MySession, ctx: &StepContext<'_>) -> Result<(), Error> {
    if session.server.mariadb {
        return Err(Error::invalid_secret(
            ctx.secret_id,
            Stage::Current,
            "field `engine` names MySQL but the server is MariaDB, whose accounts get a second \
             password from the master: set `engine` to mariadb and add `masterarn`",
        ));
    }
    Ok(())
}

/// What a MySQL account lacks to keep two passwords itself (docs/protocol.md 5.15): verified TLS
/// for the statement, and `APPLICATION_PASSWORD_ADMIN`, read from its own `SHOW GRANTS`; and a
/// deprecated plugin, reported.
pub(super) async fn own_shortfalls(
    session: &mut MySession,
    ctx: &StepContext<'_>,
) -> Result<Vec<Shortfall>, Error> {
    refuse_mariadb(session, ctx)?;
    const CHECKING: &str = "reading the account's grants";
    let engine = session.engine;
    let timeout = ctx.query_timeout(CHECKING)?;
    let read = async {
        session
            .conn
            .query::<String, _>("SHOW GRANTS")
            .await
            .map_err(|e| database_error(engine, CHECKING, error_code(&e)))
    };
    let grants = bounded(timeout, read, |t| database_error(engine, CHECKING, t)).await?;
    let mut found = Vec::new();
    let lacks = |missing: &str, hint: &str| Shortfall {
        kind: ShortfallKind::OwnPassword,
        account: session.account_name(),
        missing: missing.to_owned(),
        hint: Some(hint.to_owned()),
    };
    if !grants_application_password_admin(&grants) {
        found.push(lacks(
            "APPLICATION_PASSWORD_ADMIN",
            APPLICATION_PASSWORD_ADMIN_HINT,
        ));
    }
    if session.may_send_password(ADDING).is_err() {
        found.push(lacks(
            "verified TLS: MySQL's password statement carries the password",
            "set `ssl: true` in the secret, or ALLOW_CLEARTEXT_PASSWORDS=on to accept the risk",
        ));
    }
    found.extend(super::own::deprecated_plugin(session, ctx).await?);
    Ok(found)
}

/// Whether `SHOW GRANTS` lines give `APPLICATION_PASSWORD_ADMIN` (by name, or all privileges on
/// `*.*`).
fn grants_application_password_admin(lines: &[String]) -> bool {
    lines.iter().any(|line| {
        let line = line.to_ascii_uppercase();
        line.starts_with("GRANT ")
            && (line.contains("APPLICATION_PASSWORD_ADMIN")
                || (line.contains("ALL PRIVILEGES ON *.*")))
    })
}

/// MariaDB's statement: both values under `plugin`, the new one first. Contains values derived
/// from passwords: never log it.
fn or_statement(
    server: &ServerSession,
    account: &str,
    plugin: PasswordPlugin,
    new: &Password,
    current: &Password,
) -> String {
    let method = |password: &Password| {
        format!(
            "{} USING {}",
            plugin.name(),
            server.literal(&plugin.stored_value(password.expose()))
        )
    };
    format!(
        "ALTER USER {account} IDENTIFIED VIA {} OR {}",
        method(new),
        method(current)
    )
}

/// The plugin the new methods use: the account's first method's. `Err` names the first plugin
/// whose value cannot be computed.
fn choose_plugin(methods: &[Method]) -> Result<PasswordPlugin, &str> {
    let mut plugins = methods
        .iter()
        .map(|method| method.computable().ok_or(method.plugin.as_str()));
    let first = plugins.next().unwrap_or(Ok(PasswordPlugin::Native))?;
    plugins.try_for_each(|plugin| plugin.map(drop))?;
    Ok(first)
}

/// Reads the account's methods on the master's server, requires that one of them accepts
/// `current`'s password (the account is the one `current` logged in as, not a namesake on
/// another server: docs/protocol.md 5.12), and picks the plugin, or refuses naming it.
async fn account_plugin(
    master: &mut MySession,
    account: &Account,
    host: &str,
    current: &Password,
    ctx: &StepContext<'_>,
) -> Result<PasswordPlugin, Error> {
    let engine = master.engine;
    let methods = super::master::methods_of(master, &account.user, host)
        .await?
        .ok_or_else(|| not_on_the_masters_server(ctx, &account.user, host))?;
    let plugin = choose_plugin(&methods).map_err(|plugin| {
        database_error(
            engine,
            ADDING,
            format!(
                "the account authenticates with the plugin `{plugin}`, whose stored value the \
                 function cannot compute (it computes {}); the account is left unchanged",
                PasswordPlugin::SUPPORTED
            ),
        )
    })?;
    if any_accepts(&methods, current.expose()) != Some(true) {
        return Err(not_on_the_masters_server(ctx, &account.user, host));
    }
    Ok(plugin)
}

/// MariaDB: as the master, makes `account` accept `pending`'s and `current`'s passwords and no
/// other (see the module documentation).
pub(super) async fn add_password_as_master(
    master: &mut MySession,
    account: &Account,
    current: &Password,
    pending: &Password,
    ctx: &StepContext<'_>,
) -> Result<(), Error> {
    let engine = master.engine;
    let host = mariadb_account_host(master, account, ctx)?;
    let timeout = ctx.query_timeout(ADDING)?;
    let work = async {
        let plugin = account_plugin(master, account, host, current, ctx).await?;
        let statement = or_statement(
            &master.server,
            &account_sql(&account.user, host),
            plugin,
            pending,
            current,
        );
        let mut db = Timed {
            session: master,
            timeout,
        };
        match db.execute(&statement).await {
            Ok(()) => Ok(plugin),
            Err(Failed { number, code }) => Err(match number {
                Some(ER_PARSE_ERROR) => database_error_hinted(
                    engine,
                    ADDING,
                    code,
                    "authentication methods joined by OR need MariaDB 10.4 or later",
                ),
                Some(ER_NOT_VALID_PASSWORD) => database_error_hinted(
                    engine,
                    ADDING,
                    code,
                    "a password validation plugin refuses computed values while \
                     strict_password_validation is ON",
                ),
                _ => database_error(engine, ADDING, code),
            }),
        }
    };
    let plugin = bounded(timeout, work, |timed_out| {
        database_error(engine, ADDING, format!("{timed_out}; {MAY_HAVE_APPLIED}"))
    })
    .await?;
    info!(
        user = account.user,
        host,
        plugin = plugin.name(),
        "pending password added beside the current one"
    );
    Ok(())
}

/// The host of `account` on a MariaDB master, whose accounts take their second password from it;
/// a server that is not MariaDB is refused.
fn mariadb_account_host<'a>(
    master: &MySession,
    account: &'a Account,
    ctx: &StepContext<'_>,
) -> Result<&'a str, Error> {
    if !master.server.mariadb {
        return Err(Error::invalid_secret(
            ctx.secret_id,
            Stage::Current,
            "field `engine` is mariadb but the server is not MariaDB; for MySQL 8 set `engine` to \
             mysql, whose users keep their own second password",
        ));
    }
    account
        .host
        .as_deref()
        .ok_or_else(|| database_error(master.engine, ADDING, "the account has no host"))
}

/// What the MariaDB master lacks to write the account's passwords, found without changing
/// anything (docs/protocol.md 5.15): `CREATE USER` (which `ALTER USER` needs), an account whose
/// methods it can compute and which accepts the current password.
pub(super) async fn master_shortfalls(
    master: &mut MySession,
    account: &Account,
    current: &Password,
    ctx: &StepContext<'_>,
) -> Result<Vec<Shortfall>, Error> {
    const CHECKING: &str = "reading what the master may do";
    let engine = master.engine;
    let host = mariadb_account_host(master, account, ctx)?;
    let timeout = ctx.query_timeout(CHECKING)?;
    let master_name = master.account_name();
    let work = async {
        let lines: Vec<String> = master
            .conn
            .query("SHOW GRANTS")
            .await
            .map_err(|e| database_error(engine, CHECKING, error_code(&e)))?;
        let user = master.account.user.clone();
        let master_host = master.account.host.clone().unwrap_or_default();
        let held = Privileges::from_show_grants(&lines, &user, &master_host)
            .map_err(|problem| database_error(engine, CHECKING, problem))?;
        let mut found = Vec::new();
        if !held.holds_global("CREATE USER") {
            found.push(Shortfall {
                kind: ShortfallKind::MasterPrivilege,
                account: master_name.clone(),
                missing: "CREATE USER ON *.*, which ALTER USER needs".to_owned(),
                hint: Some(format!("GRANT CREATE USER ON *.* TO {master_name}")),
            });
        }
        match account_plugin(master, account, host, current, ctx).await {
            Ok(_) => {}
            Err(e @ Error::DeadlineExceeded { .. }) => return Err(e),
            Err(e) => found.push(Shortfall {
                kind: ShortfallKind::Master,
                account: format!("{}@{host}", account.user),
                missing: e.to_string(),
                hint: None,
            }),
        }
        Ok(found)
    };
    bounded(timeout, work, |timed_out| {
        database_error(engine, CHECKING, timed_out)
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    /// A session that records statements and answers from a script.
    #[derive(Default)]
    struct Scripted {
        answers: VecDeque<Result<(), Failed>>,
        seen: Vec<String>,
    }

    impl Statements for Scripted {
        async fn execute(&mut self, statement: &str) -> Result<(), Failed> {
            self.seen.push(statement.to_owned());
            self.answers.pop_front().unwrap_or(Ok(()))
        }
    }

    fn server_error(number: u16, state: &str) -> Result<(), Failed> {
        Err(Failed {
            number: Some(number),
            code: format!("error {number} ({state})"),
        })
    }

    const NEW: &str = "n3w'pw\\\"";
    const CURRENT: &str = "cur'pw\\";

    fn mysql8() -> ServerSession {
        ServerSession::from_row("STRICT_TRANS_TABLES", "8.0.36")
    }

    async fn run(answers: Vec<Result<(), Failed>>) -> (Result<Added, Error>, Vec<String>) {
        let mut db = Scripted {
            answers: answers.into(),
            seen: Vec::new(),
        };
        let result = retain_current(
            &mut db,
            &mysql8(),
            Engine::Mysql,
            &Password::new(NEW),
            &Password::new(CURRENT),
        )
        .await;
        (result, db.seen)
    }

    #[tokio::test]
    async fn mysql_retains_current_with_one_conditional_statement() {
        let (result, seen) = run(vec![Ok(())]).await;
        assert_eq!(result.unwrap(), Added::Now);
        assert_eq!(
            seen,
            [
                r#"ALTER USER CURRENT_USER() IDENTIFIED BY 'n3w\'pw\\\"' REPLACE 'cur\'pw\\' RETAIN CURRENT PASSWORD"#
            ]
        );
        // The session's sql_mode decides the quoting.
        let nbe = ServerSession::from_row("NO_BACKSLASH_ESCAPES", "8.4.0");
        assert_eq!(
            retain_statement(&nbe, NEW, CURRENT),
            r#"ALTER USER CURRENT_USER() IDENTIFIED BY 'n3w''pw\"' REPLACE 'cur''pw\' RETAIN CURRENT PASSWORD"#
        );
    }

    #[tokio::test]
    async fn a_repeat_is_told_apart_by_the_server_never_retried() {
        let (result, seen) = run(vec![server_error(3891, "HY000")]).await;
        assert_eq!(
            result.unwrap(),
            Added::NotPrimary("error 3891 (HY000)".into())
        );
        assert_eq!(seen.len(), 1, "never a second statement: {seen:?}");
    }

    #[test]
    fn application_password_admin_is_read_from_show_grants() {
        let grants = |lines: &[&str]| {
            grants_application_password_admin(
                &lines.iter().map(|l| (*l).to_owned()).collect::<Vec<_>>(),
            )
        };
        assert!(grants(&[
            "GRANT USAGE ON *.* TO `app`@`%`",
            "GRANT APPLICATION_PASSWORD_ADMIN ON *.* TO `app`@`%`"
        ]));
        assert!(grants(&["GRANT ALL PRIVILEGES ON *.* TO `admin`@`%`"]));
        assert!(!grants(&[
            "GRANT USAGE ON *.* TO `app`@`%`",
            "GRANT ALL PRIVILEGES ON `orders`.* TO `app`@`%`"
        ]));
    }

    #[tokio::test]
    async fn refusals_name_what_the_account_lacks_without_passwords() {
        for (answer, needle) in [
            (server_error(1227, "42000"), "APPLICATION_PASSWORD_ADMIN"),
            (server_error(1064, "42000"), "MySQL 8.0.14 or later"),
            (server_error(1045, "28000"), "error 1045 (28000)"),
            (
                Err(Failed {
                    number: None,
                    code: "timed out after 1s".into(),
                }),
                "timed out",
            ),
        ] {
            let (result, seen) = run(vec![answer]).await;
            let e = result.unwrap_err();
            let shown = format!("{e} {e:?}");
            assert_eq!(e.error_type(), "DatabaseError");
            assert!(shown.contains(needle), "{shown}");
            assert!(!shown.contains("pw"), "{shown}");
            assert_eq!(seen.len(), 1);
        }
    }

    #[test]
    fn mariadb_lists_both_values_under_the_accounts_plugin() {
        let server = ServerSession::from_row("STRICT_TRANS_TABLES", "10.11.6-MariaDB");
        let statement = or_statement(
            &server,
            &account_sql("app", "10.0.%"),
            PasswordPlugin::Native,
            &Password::new("b"),
            &Password::new("a"),
        );
        assert_eq!(
            statement,
            "ALTER USER `app`@`10.0.%` IDENTIFIED VIA \
             mysql_native_password USING '*F33AE6DD04EF4C7C1D3105568E7FB7C1EE16C937' OR \
             mysql_native_password USING '*667F407DE7C6AD07358FA38DAED7828A72014B4E'"
        );
        let statement = or_statement(
            &server,
            &account_sql("app", "%"),
            PasswordPlugin::Ed25519,
            &Password::new(NEW),
            &Password::new(CURRENT),
        );
        assert!(
            statement.starts_with("ALTER USER `app`@`%` IDENTIFIED VIA ed25519 USING '")
                && statement.contains("' OR ed25519 USING '"),
            "{statement}"
        );
        assert!(!statement.contains("pw"), "no plaintext: {statement}");
    }

    #[test]
    fn other_plugins_are_refused_by_name() {
        let names = |list: &[&str]| {
            list.iter()
                .map(|plugin| Method {
                    plugin: (*plugin).to_owned(),
                    value: String::new(),
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            choose_plugin(&names(&["ed25519", "mysql_native_password"])),
            Ok(PasswordPlugin::Ed25519)
        );
        assert_eq!(
            choose_plugin(&names(&["mysql_native_password"])),
            Ok(PasswordPlugin::Native)
        );
        assert_eq!(
            choose_plugin(&names(&["unix_socket", "mysql_native_password"])),
            Err("unix_socket")
        );
        assert_eq!(
            choose_plugin(&names(&["mysql_native_password", "pam"])),
            Err("pam")
        );
    }
}
