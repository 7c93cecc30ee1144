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
use acl::{AclUser, PasswordChange, Persistence};
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

/// Whether `actor`, this session's user, may run the change on `target`, without running it:
/// each command the change would send (`ACL SETUSER <target>`, and where the server keeps an ACL
/// file or does not say, `MULTI`, `ACL SAVE` and `EXEC`: see the `change` module) asked of `ACL
/// DRYRUN <actor> …` (Redis 7+). Where the session may not run `ACL DRYRUN` itself (an account
/// granted `+acl|setuser` but not `+acl|dryrun`, or none of them), the commands are queued in a
/// transaction that is then discarded ([`queued_probe`]). A server that can do neither is no
/// finding: the rotation's own `NOPERM` would name the permission.
async fn dry_run(
    session: &mut RedisSession,
    actor: &str,
    target: &str,
    kind: ShortfallKind,
    denied: &str,
    ctx: &StepContext<'_>,
) -> Result<Vec<Shortfall>, Error> {
    const ASKING: &str = "asking the server whether the change is allowed (ACL DRYRUN)";
    let saved = change::persistence(session, ctx).await? != Persistence::InMemory;
    let mut commands = vec![vec!["ACL", "SETUSER", target, "on"]];
    if saved {
        commands.extend([vec!["MULTI"], vec!["ACL", "SAVE"], vec!["EXEC"]]);
    }
    let mut found = Vec::new();
    for command in &commands {
        let mut dry = cmd("ACL");
        dry.arg("DRYRUN").arg(actor).arg(command.as_slice());
        match session.send(&dry, ctx, ASKING).await {
            Ok(Value::Okay) => {}
            Ok(Value::SimpleString(ok)) if ok == "OK" => {}
            Ok(_) => found.push(lacking(kind, actor, target, command, denied)),
            Err(e @ Error::DeadlineExceeded { .. }) => return Err(e),
            Err(e) => {
                tracing::info!(error = %e, "ACL DRYRUN is not available; asking with a discarded transaction");
                return queued_probe(session, actor, target, saved, kind, denied, ctx).await;
            }
        }
    }
    Ok(found)
}

/// [`dry_run`] without `ACL DRYRUN`: `MULTI`, the change's `ACL` commands queued, `DISCARD`. The
/// server checks a command's permission when it queues it and refuses it with `NOPERM`, and a
/// discarded transaction runs nothing, so nothing changes. `EXEC`'s permission is not checked.
async fn queued_probe(
    session: &mut RedisSession,
    actor: &str,
    target: &str,
    saved: bool,
    kind: ShortfallKind,
    denied: &str,
    ctx: &StepContext<'_>,
) -> Result<Vec<Shortfall>, Error> {
    const ASKING: &str =
        "asking the server whether the change is allowed (a discarded transaction)";
    let refused = |e: &Error| matches!(e, Error::Database { code, .. } if code == "NOPERM");
    match session.send(&cmd("MULTI"), ctx, ASKING).await {
        Ok(_) => {}
        Err(e @ Error::DeadlineExceeded { .. }) => return Err(e),
        Err(e) if refused(&e) && saved => {
            return Ok(vec![lacking(kind, actor, target, &["MULTI"], denied)]);
        }
        Err(e) => {
            tracing::info!(error = %e, "the permission to change the password is not checked");
            return Ok(Vec::new());
        }
    }
    let mut commands = vec![vec!["ACL", "SETUSER", target, "on"]];
    if saved {
        commands.push(vec!["ACL", "SAVE"]);
    }
    let mut found = Vec::new();
    let mut outcome = Ok(());
    for command in &commands {
        let mut queued = cmd(command[0]);
        queued.arg(&command[1..]);
        match session.send(&queued, ctx, ASKING).await {
            Ok(_) => {}
            Err(e) if refused(&e) => found.push(lacking(kind, actor, target, command, denied)),
            Err(e) => {
                outcome = Err(e);
                break;
            }
        }
    }
    // Nothing queued runs; a session that may not even discard is closed after the check.
    let _ = session.send(&cmd("DISCARD"), ctx, ASKING).await;
    match outcome {
        Ok(()) => Ok(found),
        Err(e @ Error::DeadlineExceeded { .. }) => Err(e),
        Err(e) => {
            tracing::info!(error = %e, "the permission to change the password is not fully checked");
            Ok(found)
        }
    }
}

/// `actor` may not run `command` (of a change of `target`).
fn lacking(
    kind: ShortfallKind,
    actor: &str,
    target: &str,
    command: &[&str],
    denied: &str,
) -> Shortfall {
    let missing = match command {
        ["ACL", "SETUSER", ..] => format!("permission to run ACL SETUSER on {target}"),
        _ => format!("permission to run {}", command.join(" ")),
    };
    Shortfall {
        kind,
        account: actor.to_owned(),
        missing,
        hint: Some(denied.to_owned()),
    }
}
