//! Applying a password change to an ACL user so that it lasts as long as the server's users do
//! (docs/protocol.md 5.13).
//!
//! - **ACL file** (or not known): `MULTI`, `ACL SETUSER`, `ACL SAVE`, `EXEC`. The server runs the
//!   two commands together or not at all: a command it refuses while queueing (`NOPERM`) aborts
//!   the transaction, and a connection lost before `EXEC` discards it. So a change that logs in
//!   is also saved, and a retried step that finds the pending password logging in has nothing
//!   left to do. When the save itself fails, the change is undone and the step fails.
//! - **No ACL file**: `ACL SETUSER` alone, and a warning that the change lives in memory only.
//!
//! `ACL SETUSER` applies all its rules or none, so a change never half-happens.

use ::redis::{Cmd, Value, cmd};
use tracing::{info, warn};

use super::acl::{PasswordChange, Persistence};
use super::session::{RedisSession, value_error_code};
use crate::deadline::StepContext;
use crate::error::Error;
use crate::rotators::driver::database_error;

/// What the change is called in errors.
pub(super) const CHANGING: &str = "changing the ACL user's passwords";

/// `ACL SETUSER <user> <rules>`. Carries password hashes: never log it.
fn setuser(user: &str, rules: &[String]) -> Cmd {
    let mut setuser = cmd("ACL");
    setuser.arg("SETUSER").arg(user).arg(rules);
    setuser
}

/// How the server keeps its users; a refused or unreadable `CONFIG GET` is
/// [`Persistence::Unknown`].
pub(super) async fn persistence(
    session: &mut RedisSession,
    ctx: &StepContext<'_>,
) -> Result<Persistence, Error> {
    let mut config = cmd("CONFIG");
    config.arg("GET").arg("aclfile");
    match session
        .send(&config, ctx, "reading the aclfile setting")
        .await
    {
        Ok(answer) => Ok(Persistence::from_config(&answer).unwrap_or(Persistence::Unknown)),
        Err(e @ Error::DeadlineExceeded { .. }) => Err(e),
        Err(_) => Ok(Persistence::Unknown),
    }
}

/// Applies `change` to `user` and makes it last (see the module documentation). `denied` is
/// added to the error when the account may not run the commands (`NOPERM`).
pub(super) async fn apply(
    session: &mut RedisSession,
    user: &str,
    change: &PasswordChange,
    denied: &'static str,
    ctx: &StepContext<'_>,
) -> Result<(), Error> {
    let engine = session.engine;
    let hinted = |e: Error| match e {
        Error::Database { code, .. } if code == "NOPERM" => {
            database_error(engine, CHANGING, format!("NOPERM; {denied}"))
        }
        other => other,
    };
    let persistence = persistence(session, ctx).await?;
    if persistence == Persistence::InMemory {
        session
            .send(&setuser(user, &change.rules), ctx, CHANGING)
            .await
            .map_err(hinted)?;
        warn!(
            user,
            "the server keeps its users without an ACL file: the new password lives in memory \
             and does not survive a restart unless the configuration is rewritten (CONFIG REWRITE)"
        );
        return Ok(());
    }
    transaction(session, user, change, ctx)
        .await
        .map_err(hinted)?;
    info!(user, ?persistence, "ACL user's passwords changed and saved");
    Ok(())
}

/// `ACL SETUSER` and `ACL SAVE` in one transaction; the change undone when the save fails.
async fn transaction(
    session: &mut RedisSession,
    user: &str,
    change: &PasswordChange,
    ctx: &StepContext<'_>,
) -> Result<(), Error> {
    let engine = session.engine;
    session.send(&cmd("MULTI"), ctx, CHANGING).await?;
    let mut save = cmd("ACL");
    save.arg("SAVE");
    let mut queued = session
        .send(&setuser(user, &change.rules), ctx, CHANGING)
        .await;
    if queued.is_ok() {
        queued = session.send(&save, ctx, "saving the ACL file").await;
    }
    if let Err(refused) = queued {
        // Nothing ran: a refused command aborts the transaction, which DISCARD closes.
        let _ = session.send(&cmd("DISCARD"), ctx, CHANGING).await;
        return Err(refused);
    }
    let answer = session.send(&cmd("EXEC"), ctx, CHANGING).await?;
    let results = match &answer {
        Value::Array(results) if results.len() == 2 => results,
        _ => return Err(database_error(engine, CHANGING, "unexpected EXEC answer")),
    };
    if let Some(code) = value_error_code(&results[0]) {
        // The rules were refused as a whole; the save wrote the unchanged users.
        return Err(database_error(engine, CHANGING, code));
    }
    let Some(code) = value_error_code(&results[1]) else {
        return Ok(());
    };
    let code = code.to_owned();
    let undone = match change.undo.is_empty() {
        true => Ok(Value::Okay),
        false => {
            session
                .send(&setuser(user, &change.undo), ctx, CHANGING)
                .await
        }
    };
    Err(database_error(
        engine,
        "saving the ACL file",
        match undone {
            Ok(_) => format!("{code}; the password change was undone"),
            Err(e) => {
                format!("{code}; the password change is in memory only and undoing it failed ({e})")
            }
        },
    ))
}
