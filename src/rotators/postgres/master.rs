//! The alternating-users path, as the master (docs/protocol.md 5.8), in one transaction of named
//! steps: [check what the master may do](preflight::powers) (5.15), naming a missing privilege
//! with its grant; [enforce the privilege invariant](invariant::enforce) (5.12) before anything
//! changes;
//! [set the pending user's password](set_role_password) (creating the clone on the first
//! rotation); [repair the clone](repair_clone): `LOGIN`, membership in the original role, and
//! `SET role` to the original, so that objects it creates belong to the original; enforce the
//! invariant again, so that nothing granted by anyone meanwhile is handed over; commit.

use postgres_protocol::escape::{escape_identifier, escape_literal};
use tokio_postgres::Transaction;

use super::session::{PgSession, statement_code};
use super::{invariant, preflight};
use crate::credentials::{Login, Password};
use crate::deadline::StepContext;
use crate::engine::Engine;
use crate::error::{CloneFindings, Error, Shortfall};
use crate::rotators::driver::{AUDITING, bounded, database_error, database_error_hinted};
use crate::rotators::{Account, Handover};

/// What the whole change is called in errors.
const CHANGING: &str = "creating or updating the alternate user";

/// Makes the database accept `pending`'s password for its user, which is `current`'s user or
/// its clone, and repairs the clone; bounded by one statement budget of `ctx`.
pub(super) async fn set_password_as_master(
    master: &mut PgSession,
    current: &Account,
    pending: &Login,
    ctx: &StepContext<'_>,
) -> Result<(), Error> {
    let engine = master.engine;
    let target = pending.username();
    let handover = Handover::between(current, target, ctx)?;
    let (original, clone) = handover.roles(current, target);
    let timeout = ctx.query_timeout(CHANGING)?;
    let work = async {
        let transaction = master
            .client
            .transaction()
            .await
            .map_err(|e| failed(engine, "starting a transaction", &e))?;
        let powers = preflight::powers(&transaction, engine, original, clone).await?;
        let shortfalls = powers.shortfalls(original, clone);
        if !shortfalls.is_empty() {
            return Err(lacking(engine, &powers.master, &shortfalls));
        }
        invariant::enforce(&transaction, engine, ctx, handover, original, clone).await?;
        let created = set_role_password(&transaction, engine, target, pending.password()).await?;
        repair_clone(&transaction, engine, original, clone).await?;
        invariant::enforce(&transaction, engine, ctx, handover, original, clone).await?;
        transaction
            .commit()
            .await
            .map_err(|e| failed(engine, "committing", &e))?;
        Ok(created)
    };
    let created = bounded(timeout, work, |timed_out| {
        database_error(
            engine,
            CHANGING,
            format!("{timed_out}; the transaction may or may not have been committed"),
        )
    })
    .await?;
    tracing::info!(user = target, created, "alternate user updated");
    Ok(())
}

/// What the next rotation's privilege check would refuse, without changing anything: the
/// invariant (5.12) for handing `pending_user` (`current`'s user or its clone) over, checked in a
/// read-only transaction of the master's session that is rolled back. Empty when it holds.
pub(super) async fn audit_clone(
    master: &mut PgSession,
    current: &Account,
    pending_user: &str,
    ctx: &StepContext<'_>,
) -> Result<CloneFindings, Error> {
    let engine = master.engine;
    let handover = Handover::between(current, pending_user, ctx)?;
    let (original, clone) = handover.roles(current, pending_user);
    let timeout = ctx.query_timeout(AUDITING)?;
    let work = async {
        let transaction = master
            .client
            .build_transaction()
            .read_only(true)
            .start()
            .await
            .map_err(|e| failed(engine, "starting a read-only transaction", &e))?;
        let findings = invariant::findings(&transaction, engine, handover, original, clone).await?;
        transaction
            .rollback()
            .await
            .map_err(|e| failed(engine, "ending the read-only transaction", &e))?;
        Ok(findings)
    };
    bounded(timeout, work, |timed_out| {
        database_error(engine, AUDITING, timed_out)
    })
    .await
}

/// The error naming what the master lacks, with the grants that give it; nothing has been
/// changed when it is returned.
fn lacking(engine: Engine, master: &str, shortfalls: &[Shortfall]) -> Error {
    let missing: Vec<&str> = shortfalls.iter().map(|s| s.missing.as_str()).collect();
    let hints: Vec<&str> = shortfalls
        .iter()
        .filter_map(|s| s.hint.as_deref())
        .collect();
    database_error_hinted(
        engine,
        CHANGING,
        format!(
            "the master {master} lacks {}; nothing was changed",
            missing.join(", ")
        ),
        hints.join("; "),
    )
}

fn failed(engine: Engine, action: &'static str, e: &tokio_postgres::Error) -> Error {
    if e.code() == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) {
        // The check above should have named it; a privilege revoked meanwhile still gets a hint.
        return database_error_hinted(
            engine,
            action,
            statement_code(e),
            "the master lacks a privilege on one of the roles: CREATEROLE, and from PostgreSQL 16 \
             ADMIN OPTION on each (GRANT <role> TO <master> WITH ADMIN OPTION)",
        );
    }
    database_error(engine, action, statement_code(e))
}

/// `ALTER ROLE … WITH LOGIN PASSWORD <verifier>`, or `CREATE ROLE` when `target` does not exist
/// (the clone, on the first rotation). Returns whether the role was created.
async fn set_role_password(
    transaction: &Transaction<'_>,
    engine: Engine,
    target: &str,
    password: &Password,
) -> Result<bool, Error> {
    let exists = transaction
        .query_opt(
            "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) $1",
            &[&target],
        )
        .await
        .map_err(|e| failed(engine, "looking up the user", &e))?
        .is_some();
    let verifier = postgres_protocol::password::scram_sha_256(password.expose().as_bytes());
    // Contains the verifier, not the password; still never logged.
    let statement = format!(
        "{} ROLE {} WITH LOGIN PASSWORD {}",
        if exists { "ALTER" } else { "CREATE" },
        escape_identifier(target),
        escape_literal(&verifier)
    );
    transaction
        .batch_execute(&statement)
        .await
        .map_err(|e| failed(engine, "setting the password", &e))?;
    Ok(!exists)
}

/// Every rotation: the clone logs in, is a member of the original, and acts as the original by
/// default.
async fn repair_clone(
    transaction: &Transaction<'_>,
    engine: Engine,
    original: &str,
    clone: &str,
) -> Result<(), Error> {
    let repair = format!(
        "GRANT {original_id} TO {clone_id}; \
         ALTER ROLE {clone_id} WITH LOGIN; \
         ALTER ROLE {clone_id} SET role = {original_literal}",
        original_id = escape_identifier(original),
        clone_id = escape_identifier(clone),
        original_literal = escape_literal(original),
    );
    transaction
        .batch_execute(&repair)
        .await
        .map_err(|e| failed(engine, "repairing the alternate user", &e))
}
