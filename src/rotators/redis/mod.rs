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
use std::sync::{Arc, OnceLock};

use ::redis::{Value, cmd};
use tokio_rustls::TlsConnector;

pub use acl::password_hash;
pub use session::RedisSession;

use super::driver::{
    Transport, connect_per_tls_choice, database_error, database_error_hinted, may_use_tls,
};
use super::{Account, Connect, DualMaster, OwnPassword, Session};
use crate::credentials::{Login, Password};
use crate::deadline::StepContext;
use crate::engine::Engine;
use crate::error::{Error, Shortfall, ShortfallKind};
use crate::tls::LazyRoots;
use acl::{AclUser, PasswordChange};
use change::CHANGING;

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
    roots: LazyRoots,
    /// Built on the first verified-TLS login over the container's one rustls configuration.
    tls: Arc<OnceLock<TlsConnector>>,
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
    /// A connector verifying servers with `roots`' configuration, falling back and sending
    /// passwords as `transport` allows.
    pub(crate) fn new(roots: LazyRoots, transport: Transport) -> Self {
        RedisRotator {
            roots,
            tls: Arc::new(OnceLock::new()),
            transport,
        }
    }

    /// The TLS connector, made (and the trust roots loaded) on first use.
    fn tls(&self) -> &TlsConnector {
        self.tls
            .get_or_init(|| session::connector(self.roots.get().client_config()))
    }
}

impl Connect for RedisRotator {
    type Session = RedisSession;

    async fn connect(
        &self,
        login: &Login,
        attempt: &str,
        ctx: &StepContext<'_>,
    ) -> Result<RedisSession, Error> {
        let tls = may_use_tls(self.transport.mode, login).then(|| self.tls());
        connect_per_tls_choice(self.transport.mode, login, ctx, |use_tls| {
            RedisSession::open(
                tls.filter(|_| use_tls),
                login,
                self.transport.cleartext,
                attempt,
                ctx,
            )
        })
        .await
    }
}

impl Session for RedisSession {
    fn engine(&self) -> Engine {
        self.engine
    }

    fn account(&self) -> Account {
        Account {
            user: self.user.clone(),
            host: None,
        }
    }

    /// `PING`, answered `PONG`.
    async fn check(&mut self, ctx: &StepContext<'_>) -> Result<(), Error> {
        const TESTING: &str = "running the test command";
        match self.send(&cmd("PING"), ctx, TESTING).await? {
            Value::SimpleString(pong) if pong == "PONG" => Ok(()),
            _ => Err(database_error(
                self.engine,
                TESTING,
                "PING was not answered PONG",
            )),
        }
    }

    async fn close(self) {
        RedisSession::close(self).await;
    }
}

impl OwnPassword for RedisSession {
    /// Replaces every password of the logged-in user by `new` (see the module documentation).
    async fn set_own_password(
        &mut self,
        _: &Login,
        new: &Password,
        ctx: &StepContext<'_>,
    ) -> Result<(), Error> {
        let change = PasswordChange::single(&self.login_hash, &password_hash(new.expose()));
        let user = self.user.clone();
        change::apply(self, &user, &change, SINGLE_USER_DENIED, ctx).await
    }

    /// `ACL DRYRUN` of the change, as the user for itself.
    async fn own_password_shortfalls(
        &mut self,
        ctx: &StepContext<'_>,
    ) -> Result<Vec<Shortfall>, Error> {
        let user = self.user.clone();
        dry_run(
            self,
            &user,
            &user,
            ShortfallKind::OwnPassword,
            SINGLE_USER_DENIED,
            ctx,
        )
        .await
    }
}

impl DualMaster for RedisSession {
    /// As the master: adds the pending password's hash to `account`'s user and removes every
    /// hash but current's and the pending one's (see the module documentation).
    async fn add_password_as_master(
        &mut self,
        account: &Account,
        current: &Password,
        pending: &Password,
        ctx: &StepContext<'_>,
    ) -> Result<(), Error> {
        let user = acl_user_holding(self, account, current, ctx).await?;
        let change = PasswordChange::dual(
            &user,
            &password_hash(current.expose()),
            &password_hash(pending.expose()),
        );
        change::apply(self, &account.user, &change, MASTER_DENIED, ctx).await
    }

    /// The user must exist, have passwords and hold current's; `ACL DRYRUN` of the change as
    /// the master.
    async fn dual_master_shortfalls(
        &mut self,
        account: &Account,
        current: &Password,
        ctx: &StepContext<'_>,
    ) -> Result<Vec<Shortfall>, Error> {
        if let Err(e) = acl_user_holding(self, account, current, ctx).await {
            if let Error::DeadlineExceeded { .. } = e {
                return Err(e);
            }
            return Ok(vec![Shortfall {
                kind: ShortfallKind::Master,
                account: account.user.clone(),
                missing: e.to_string(),
                hint: None,
            }]);
        }
        let master = self.user.clone();
        dry_run(
            self,
            &master,
            &account.user,
            ShortfallKind::MasterPrivilege,
            MASTER_DENIED,
            ctx,
        )
        .await
    }
}

/// `account`'s ACL user, which must hold `current`'s password and may not be `nopass`.
async fn acl_user_holding(
    master: &mut RedisSession,
    account: &Account,
    current: &Password,
    ctx: &StepContext<'_>,
) -> Result<AclUser, Error> {
    const READING: &str = "reading the ACL user";
    let engine = master.engine;
    let mut getuser = cmd("ACL");
    getuser.arg("GETUSER").arg(&account.user);
    let answer = master.send(&getuser, ctx, READING).await?;
    let user = AclUser::from_value(&answer)
        .ok_or_else(|| database_error(engine, READING, "no such ACL user"))?;
    if user.nopass() {
        return Err(database_error_hinted(
            engine,
            CHANGING,
            "the user is nopass and accepts any password, so no rotation can revoke one",
            "give it a password (ACL SETUSER <user> resetpass >…) and store that in the secret",
        ));
    }
    if !user.passwords.contains(&password_hash(current.expose())) {
        // Current logged in a moment ago: its password changed meanwhile. Removing the other
        // hashes now could leave no password that any secret holds.
        return Err(database_error(
            engine,
            CHANGING,
            "the current secret's password is no longer one of the user's passwords",
        ));
    }
    Ok(user)
}

/// Whether `actor` may run the change on `target`, without running it: `ACL DRYRUN <actor> ACL
/// SETUSER <target> …` (Redis 7+). A server that cannot dry-run, or a session that may not ask,
/// is no finding: the rotation's own `NOPERM` would name the permission.
async fn dry_run(
    session: &mut RedisSession,
    actor: &str,
    target: &str,
    kind: ShortfallKind,
    denied: &str,
    ctx: &StepContext<'_>,
) -> Result<Vec<Shortfall>, Error> {
    const ASKING: &str = "asking the server whether the change is allowed (ACL DRYRUN)";
    let mut dry = cmd("ACL");
    dry.arg("DRYRUN")
        .arg(actor)
        .arg("ACL")
        .arg("SETUSER")
        .arg(target)
        .arg("on");
    let answer = match session.send(&dry, ctx, ASKING).await {
        Ok(answer) => answer,
        Err(e @ Error::DeadlineExceeded { .. }) => return Err(e),
        Err(e) => {
            tracing::info!(error = %e, "ACL DRYRUN is not available; the permission is not checked");
            return Ok(Vec::new());
        }
    };
    Ok(match answer {
        Value::Okay => Vec::new(),
        Value::SimpleString(ok) if ok == "OK" => Vec::new(),
        _ => vec![Shortfall {
            kind,
            account: actor.to_owned(),
            missing: format!("permission to run ACL SETUSER on {target}"),
            hint: Some(denied.to_owned()),
        }],
    })
}
