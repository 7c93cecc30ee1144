//! PostgreSQL and Aurora PostgreSQL (docs/protocol.md 5.6 and 5.8), over `tokio-postgres`.
//!
//! Passwords are sent as client-computed SCRAM-SHA-256 verifiers, so the plaintext never reaches the
//! server's logs or `pg_stat_activity`. `ALTER ROLE` is a utility statement and cannot take bound
//! parameters: the role name and the verifier are escaped client-side.
//!
//! # Layout
//!
//! - `session`: opening a session, what is kept of a driver error;
//! - `master`: the alternating-users path, as named steps;
//! - `invariant`: the privilege invariant of that path, from the catalogs.

mod cleartext;
mod invariant;
mod master;
mod session;

use std::sync::Arc;

use postgres_protocol::escape::{escape_identifier, escape_literal};
use tokio_postgres_rustls::MakeRustlsConnect;

pub use session::PgSession;

pub(crate) use master::audit_clone;

use super::driver::{
    CLOSE_TIMEOUT, MAY_HAVE_APPLIED, Transport, bounded, connect_per_tls_choice, database_error,
};
use super::{Account, Rotator, unsupported_strategy};
use crate::credentials::{DbSecret, Password};
use crate::deadline::StepContext;
use crate::error::Error;
use session::{describe, statement_code};

/// Why PostgreSQL cannot rotate with two passwords, and what to use instead.
const DUAL_UNSUPPORTED: &str = "strategy dual-password is not supported for PostgreSQL, which \
     keeps one password per role; use alternating-users for rotation without downtime";

/// The PostgreSQL rotator: TLS configuration shared by every connection.
#[derive(Clone)]
pub(crate) struct PostgresRotator {
    /// Built once: each connection clones it (an `Arc`), never the rustls configuration.
    tls: MakeRustlsConnect,
    transport: Transport,
}

impl std::fmt::Debug for PostgresRotator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresRotator")
            .field("transport", &self.transport)
            .finish_non_exhaustive()
    }
}

impl PostgresRotator {
    /// A rotator verifying servers with `tls`, falling back and sending passwords as
    /// `transport` allows.
    pub(crate) fn new(tls: Arc<rustls::ClientConfig>, transport: Transport) -> Self {
        PostgresRotator {
            tls: MakeRustlsConnect::new((*tls).clone()),
            transport,
        }
    }
}

impl Rotator for PostgresRotator {
    type Session = PgSession;

    async fn connect(
        &self,
        creds: &DbSecret,
        attempt: &str,
        ctx: &StepContext<'_>,
    ) -> Result<PgSession, Error> {
        connect_per_tls_choice(self.transport.mode, creds, ctx, |tls| {
            PgSession::open(
                &self.tls,
                creds,
                tls,
                self.transport.cleartext,
                attempt,
                ctx,
            )
        })
        .await
    }

    async fn check(&self, session: &mut PgSession, ctx: &StepContext<'_>) -> Result<(), Error> {
        const TESTING: &str = "running the test query";
        let timeout = ctx.query_timeout("test query")?;
        let engine = session.engine;
        let query = async {
            session
                .client
                .simple_query("SELECT pg_catalog.now()")
                .await
                .map_err(|e| database_error(engine, TESTING, describe(&e)))
        };
        bounded(timeout, query, |timed_out| {
            database_error(engine, TESTING, timed_out)
        })
        .await
        .map(drop)
    }

    async fn set_own_password(
        &self,
        session: &mut PgSession,
        login: &DbSecret,
        new: &Password,
        ctx: &StepContext<'_>,
    ) -> Result<(), Error> {
        const SETTING: &str = "setting the password";
        let timeout = ctx.query_timeout("ALTER ROLE")?;
        let verifier = postgres_protocol::password::scram_sha_256(new.expose().as_bytes());
        // Contains the verifier, not the password; still never logged.
        let statement = format!(
            "ALTER ROLE {} PASSWORD {}",
            escape_identifier(login.username()),
            escape_literal(&verifier)
        );
        let engine = session.engine;
        let change = async {
            session
                .client
                .batch_execute(&statement)
                .await
                .map_err(|e| database_error(engine, SETTING, statement_code(&e)))
        };
        bounded(timeout, change, |timed_out| {
            database_error(engine, SETTING, format!("{timed_out}; {MAY_HAVE_APPLIED}"))
        })
        .await
    }

    fn account(&self, session: &PgSession) -> Account {
        Account {
            user: session.user.clone(),
            host: None,
        }
    }

    /// As the master: see the `master` module for the steps.
    /// The current secret's password is not read: PostgreSQL gives the master no way to check
    /// a password, so the handler proves the current secret on the master's server by logging
    /// in there (docs/protocol.md 5.12).
    async fn set_password_as_master(
        &self,
        master: &mut PgSession,
        account: &Account,
        _: &DbSecret,
        pending: &DbSecret,
        ctx: &StepContext<'_>,
    ) -> Result<(), Error> {
        master::set_password_as_master(master, account, pending, ctx).await
    }

    /// PostgreSQL keeps one password per role: the handler refuses the dual-password strategy
    /// before any database work, and so does this.
    async fn add_own_password(
        &self,
        _: &mut PgSession,
        _: &DbSecret,
        _: &DbSecret,
        ctx: &StepContext<'_>,
    ) -> Result<(), Error> {
        Err(unsupported_strategy(ctx, DUAL_UNSUPPORTED))
    }

    /// See [`PostgresRotator::add_own_password`].
    async fn add_password_as_master(
        &self,
        _: &mut PgSession,
        _: &Account,
        _: &DbSecret,
        _: &DbSecret,
        ctx: &StepContext<'_>,
    ) -> Result<(), Error> {
        Err(unsupported_strategy(ctx, DUAL_UNSUPPORTED))
    }

    async fn close(&self, session: PgSession) {
        let PgSession {
            client,
            mut connection,
            ..
        } = session;
        drop(client);
        // Dropping the client sends Terminate; wait briefly so the server sees a clean close. A
        // connection still waiting for an answer (a statement that timed out) never finishes:
        // stop it rather than leave it running in the warm container.
        if tokio::time::timeout(CLOSE_TIMEOUT, &mut connection)
            .await
            .is_err()
        {
            connection.abort();
        }
    }
}
