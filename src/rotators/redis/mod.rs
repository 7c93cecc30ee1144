//! Redis and Valkey ACL users (engine `redis`, docs/protocol.md 5.13), over the `redis` crate.
//!
//! - **Connection.** The crate speaks the protocol over a stream this module opens: TCP to
//!   `host`, then TLS through `tokio-rustls` with the same rustls configuration, trust roots
//!   (system, Amazon RDS, `TLS_EXTRA_CA_FILE`) and `ssl` / `TLS_MODE` rules as the SQL engines,
//!   `tls_server_name` included. The crate's own TLS features stay off, so the binary keeps one
//!   TLS stack. The login is `AUTH <username> <password>`; `testSecret` sends `PING`.
//! - **Dual password**, as the master: `ACL GETUSER`, then one `ACL SETUSER <user> #<new>
//!   !<other>…` that adds the new password's SHA-256 and removes every hash but current's and
//!   the new one's, saved in the same transaction when the server has an ACL file (`change`). The
//!   user's other rules are never written. A `nopass` user is refused: it accepts any password,
//!   so no rotation could revoke one.
//! - **Single user**, where the account may run `ACL SETUSER` on itself: `resetpass #<new>`,
//!   saved the same way. Without that permission the error says the strategy needs a master.
//! - **Alternating users** are refused: the ACL user holds two passwords itself, so a `_clone`
//!   would add a second identity whose rules must be kept equal to the original's at every
//!   rotation, for no gain over `dual-password`.
//! - ACLs are not replicated: the node rotated is the secret's `host`.
//!
//! # Layout
//!
//! - `session`: opening a session, sending commands, what is kept of an error;
//! - `acl`: password hashes, `ACL GETUSER` answers, each strategy's rules, the `aclfile` setting;
//! - `change`: applying and saving a change.

mod acl;
mod change;
mod session;

use std::fmt;
use std::sync::Arc;

use ::redis::{Value, cmd};
use tokio_rustls::TlsConnector;

pub use acl::password_hash;
pub use session::RedisSession;

use super::driver::{Transport, connect_per_tls_choice, database_error};
use super::{Account, Rotator, unsupported_strategy};
use crate::credentials::{DbSecret, Password};
use crate::deadline::StepContext;
use crate::error::Error;
use acl::{AclUser, PasswordChange};
use change::CHANGING;

/// Why Redis secrets do not rotate with alternating users, and what to use instead.
pub(crate) const ALTERNATING_UNSUPPORTED: &str = "strategy alternating-users is not supported for Redis, \
     whose ACL users hold several passwords: use dual-password for rotation without downtime";

/// Why a Redis user does not add its own second password.
const OWN_SECOND_PASSWORD: &str = "a Redis user gets its second password from the master: the \
     dual-password strategy needs `masterarn`";

/// What a single-user account lacks when the server says `NOPERM`.
const SINGLE_USER_DENIED: &str = "single-user rotation on Redis needs an account that may run \
     ACL SETUSER and ACL SAVE (or CONFIG GET) on itself; otherwise use dual-password with a \
     `masterarn`";

/// What the master lacks when the server says `NOPERM`.
const MASTER_DENIED: &str =
    "the master needs ACL GETUSER, ACL SETUSER and ACL SAVE (or CONFIG GET)";

/// The Redis rotator: the TLS connector shared by every connection.
#[derive(Clone)]
pub(crate) struct RedisRotator {
    tls: TlsConnector,
    transport: Transport,
}

impl fmt::Debug for RedisRotator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRotator")
            .field("transport", &self.transport)
            .finish_non_exhaustive()
    }
}

impl RedisRotator {
    /// A rotator verifying servers with `tls`, falling back and sending passwords as
    /// `transport` allows.
    pub(crate) fn new(tls: Arc<rustls::ClientConfig>, transport: Transport) -> Self {
        RedisRotator {
            tls: session::connector(tls),
            transport,
        }
    }
}

impl Rotator for RedisRotator {
    type Session = RedisSession;

    async fn connect(
        &self,
        creds: &DbSecret,
        attempt: &str,
        ctx: &StepContext<'_>,
    ) -> Result<RedisSession, Error> {
        connect_per_tls_choice(self.transport.mode, creds, ctx, |tls| {
            RedisSession::open(
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

    /// `PING`, answered `PONG`.
    async fn check(&self, session: &mut RedisSession, ctx: &StepContext<'_>) -> Result<(), Error> {
        const TESTING: &str = "running the test command";
        match session.send(&cmd("PING"), ctx, TESTING).await? {
            Value::SimpleString(pong) if pong == "PONG" => Ok(()),
            _ => Err(database_error(
                session.engine,
                TESTING,
                "PING was not answered PONG",
            )),
        }
    }

    /// Replaces every password of the logged-in user by `new` (see the module documentation).
    async fn set_own_password(
        &self,
        session: &mut RedisSession,
        _: &DbSecret,
        new: &Password,
        ctx: &StepContext<'_>,
    ) -> Result<(), Error> {
        let change = PasswordChange::single(&session.login_hash, &password_hash(new.expose()));
        let user = session.user.clone();
        change::apply(session, &user, &change, SINGLE_USER_DENIED, ctx).await
    }

    fn account(&self, session: &RedisSession) -> Account {
        Account {
            user: session.user.clone(),
            host: None,
        }
    }

    async fn set_password_as_master(
        &self,
        _: &mut RedisSession,
        _: &Account,
        _: &DbSecret,
        _: &DbSecret,
        ctx: &StepContext<'_>,
    ) -> Result<(), Error> {
        Err(unsupported_strategy(ctx, ALTERNATING_UNSUPPORTED))
    }

    async fn add_own_password(
        &self,
        _: &mut RedisSession,
        _: &DbSecret,
        _: &DbSecret,
        ctx: &StepContext<'_>,
    ) -> Result<(), Error> {
        Err(unsupported_strategy(ctx, OWN_SECOND_PASSWORD))
    }

    /// As the master: adds the pending password's hash to `account`'s user and removes every
    /// hash but current's and the pending one's (see the module documentation).
    async fn add_password_as_master(
        &self,
        master: &mut RedisSession,
        account: &Account,
        current: &DbSecret,
        pending: &DbSecret,
        ctx: &StepContext<'_>,
    ) -> Result<(), Error> {
        const READING: &str = "reading the ACL user";
        let engine = master.engine;
        let mut getuser = cmd("ACL");
        getuser.arg("GETUSER").arg(&account.user);
        let answer = master.send(&getuser, ctx, READING).await?;
        let user = AclUser::from_value(&answer)
            .ok_or_else(|| database_error(engine, READING, "no such ACL user"))?;
        if user.nopass() {
            return Err(database_error(
                engine,
                CHANGING,
                "the user is nopass and accepts any password, so no rotation can revoke one; \
                 give it a password (ACL SETUSER <user> resetpass >…) and store that in the secret",
            ));
        }
        let current_hash = password_hash(current.password().expose());
        if !user.passwords.contains(&current_hash) {
            // Current logged in a moment ago: its password changed meanwhile. Removing the other
            // hashes now could leave no password that any secret holds.
            return Err(database_error(
                engine,
                CHANGING,
                "the current secret's password is no longer one of the user's passwords",
            ));
        }
        let change = PasswordChange::dual(
            &user,
            &current_hash,
            &password_hash(pending.password().expose()),
        );
        change::apply(master, &account.user, &change, MASTER_DENIED, ctx).await
    }

    async fn close(&self, session: RedisSession) {
        session.close().await;
    }
}
