//! Single user on the MySQL family (docs/protocol.md 5.7): the logged-in account changes its own
//! password, whatever its host.
//!
//! - MySQL: `ALTER USER CURRENT_USER() IDENTIFIED BY …`; under `PASSWORD REQUIRE CURRENT` (error
//!   3892) again with `REPLACE <login's password>`: the credential that opened the session,
//!   current's or previous's, never the pending one (the server would answer 3891). The
//!   statement carries the password, so it needs verified TLS (or `ALLOW_CLEARTEXT_PASSWORDS`).
//! - MariaDB: `SET PASSWORD = '<value>'`, the value the account's plugin stores for the new
//!   password, computed client-side (the plugin is read from the account's own `SHOW CREATE
//!   USER`), so no plaintext reaches the server or its logs. MariaDB (10.11 included) refuses
//!   `ALTER USER CURRENT_USER()` with error 1227 unless the user holds `CREATE USER`, which
//!   application users do not.

use mysql_async::prelude::Queryable;

use super::auth_plugin::PasswordPlugin;
use super::methods;
use super::session::{MySession, error_code, server_error_number};
use crate::credentials::{Login, Password};
use crate::deadline::StepContext;
use crate::error::{Error, Shortfall, ShortfallKind};
use crate::rotators::driver::{MAY_HAVE_APPLIED, bounded, database_error};

/// `ER_MISSING_CURRENT_PASSWORD` (MySQL 8.0.13+): the account is under `PASSWORD REQUIRE CURRENT`,
/// so changing its own password needs `REPLACE <current password>`.
const ER_MISSING_CURRENT_PASSWORD: u16 = 3892;

/// What a password change is called in errors.
const SETTING_PASSWORD: &str = "setting the password";

/// What reading the account's methods is called in errors.
const READING: &str = "reading the account's authentication method";

/// Changes the password of exactly the account the server authenticated (see the module
/// documentation).
pub(super) async fn set_own_password(
    session: &mut MySession,
    login: &Login,
    new: &Password,
    ctx: &StepContext<'_>,
) -> Result<(), Error> {
    let timeout = ctx.query_timeout(SETTING_PASSWORD)?;
    let engine = session.engine;
    if session.server.mariadb {
        let plugin = own_plugin(session, ctx).await?.map_err(|problem| {
            database_error(
                engine,
                SETTING_PASSWORD,
                format!("{problem}; the account is left unchanged"),
            )
        })?;
        let statement = session
            .server
            .own_stored_value_statement(plugin, new.expose());
        return session.run(&statement, timeout, SETTING_PASSWORD).await;
    }
    session.may_send_password(SETTING_PASSWORD)?;
    let statement = session.server.own_password_statement(new.expose());
    // The driver's error is kept whole here: its number decides whether to retry.
    let first = bounded(
        timeout,
        async { Ok(session.conn.query_drop(&statement).await) },
        |t| database_error(engine, SETTING_PASSWORD, format!("{t}; {MAY_HAVE_APPLIED}")),
    )
    .await?;
    match first {
        Ok(()) => Ok(()),
        Err(e) if server_error_number(&e) == Some(ER_MISSING_CURRENT_PASSWORD) => {
            let timeout = ctx.query_timeout("ALTER USER … REPLACE")?;
            let statement = session
                .server
                .own_password_replacing(new.expose(), login.password().expose());
            session.run(&statement, timeout, SETTING_PASSWORD).await
        }
        Err(e) => Err(database_error(engine, SETTING_PASSWORD, error_code(&e))),
    }
}

/// What the account lacks to change its own password this way (docs/protocol.md 5.15).
pub(super) async fn shortfalls(
    session: &mut MySession,
    ctx: &StepContext<'_>,
) -> Result<Vec<Shortfall>, Error> {
    let account = session.account_name();
    let lacks = |kind, missing: String, hint: &str| Shortfall {
        kind,
        account: account.clone(),
        missing,
        hint: Some(hint.to_owned()),
    };
    if session.server.mariadb {
        return Ok(match own_plugin(session, ctx).await? {
            Ok(_) => Vec::new(),
            Err(problem) => vec![lacks(
                ShortfallKind::OwnPassword,
                problem,
                "give the account one mysql_native_password or ed25519 method",
            )],
        });
    }
    let mut found = Vec::new();
    if session.may_send_password(SETTING_PASSWORD).is_err() {
        found.push(lacks(
            ShortfallKind::OwnPassword,
            "verified TLS: MySQL's password statement carries the password".to_owned(),
            "set `ssl: true` in the secret, or ALLOW_CLEARTEXT_PASSWORDS=on to accept the risk",
        ));
    }
    found.extend(deprecated_plugin(session, ctx).await?);
    Ok(found)
}

/// MySQL: an account still on `mysql_native_password`, deprecated and disabled by default from
/// MySQL 8.4, is reported with a hint; it does not stop a rotation.
pub(super) async fn deprecated_plugin(
    session: &mut MySession,
    ctx: &StepContext<'_>,
) -> Result<Vec<Shortfall>, Error> {
    let methods = own_methods(session, ctx).await?;
    let native = methods
        .iter()
        .any(|m| m.plugin == PasswordPlugin::Native.name());
    Ok(native
        .then(|| Shortfall {
            kind: ShortfallKind::Deprecated,
            account: session.account_name(),
            missing: "a current authentication plugin: mysql_native_password is deprecated and \
                      disabled by default from MySQL 8.4"
                .to_owned(),
            hint: Some(
                "ALTER USER … IDENTIFIED WITH caching_sha2_password BY …, then store that \
                 password in the secret"
                    .to_owned(),
            ),
        })
        .into_iter()
        .collect())
}

/// The logged-in account's methods, from its own `SHOW CREATE USER CURRENT_USER()`, which needs
/// no privilege.
async fn own_methods(
    session: &mut MySession,
    ctx: &StepContext<'_>,
) -> Result<Vec<methods::Method>, Error> {
    let engine = session.engine;
    let timeout = ctx.query_timeout(READING)?;
    let read = async {
        session
            .conn
            .query_first::<String, _>("SHOW CREATE USER CURRENT_USER()")
            .await
            .map_err(|e| database_error(engine, READING, error_code(&e)))
    };
    let line = bounded(timeout, read, |t| database_error(engine, READING, t))
        .await?
        .ok_or_else(|| database_error(engine, READING, "SHOW CREATE USER returned no row"))?;
    methods::from_show_create_user(&line)
        .ok_or_else(|| database_error(engine, READING, "SHOW CREATE USER is not understood"))
}

/// The plugin of the logged-in MariaDB account's one method, when the function can compute what
/// it stores; else why not (another plugin, or several methods), before anything changes.
async fn own_plugin(
    session: &mut MySession,
    ctx: &StepContext<'_>,
) -> Result<Result<PasswordPlugin, String>, Error> {
    Ok(match own_methods(session, ctx).await?.as_slice() {
        [method] => method.computable().ok_or_else(|| {
            format!(
                "the account authenticates with the plugin `{}`, whose stored value the \
                 function cannot compute (it computes {})",
                method.plugin,
                PasswordPlugin::SUPPORTED
            )
        }),
        _ => Err(
            "the account has several authentication methods (a dual-password account): \
                  rotate it with the dual-password strategy, or give it one method"
                .to_owned(),
        ),
    })
}
