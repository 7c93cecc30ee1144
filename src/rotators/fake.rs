//! An in-memory database for unit tests, beside the roles it plays: users and their passwords
//! (and second passwords, for dual passwords) on the hosts it serves, every login recorded, every
//! change recorded, and the failures a test may ask for. One fake serves the rotation's and the
//! doctor's tests.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::ops::Deref;
use std::rc::Rc;

use super::{
    Account, Added, CloneManagement, Connect, DualMaster, DualOwn, OwnPassword, Session, UserApis,
};
use crate::cache_user::fake::FakeCacheUsers;
use crate::credentials::{Login, Password};
use crate::deadline::StepContext;
use crate::engine::{Engine, Family};
use crate::error::{CloneFindings, Error, PrivilegeGap, Shortfall, ShortfallKind};

/// The host every fake user is on, unless [`Db::other_hosts`] says more.
pub(crate) const HOST: &str = "db.internal";

/// What the database holds and what was done to it.
#[derive(Debug, Default)]
pub(crate) struct Db {
    pub(crate) users: RefCell<HashMap<String, String>>,
    /// Second passwords (dual-password strategy), by user.
    pub(crate) second: RefCell<HashMap<String, String>>,
    /// Every login: user and whether it succeeded.
    pub(crate) logins: RefCell<Vec<(String, bool)>>,
    /// Every credential a connection was attempted with.
    pub(crate) connected: RefCell<Vec<Login>>,
    /// Users whose password changed, in order.
    pub(crate) changes: RefCell<Vec<String>>,
    /// Password statements fail (`SQLSTATE 42501`).
    pub(crate) fail_set: Cell<bool>,
    /// Models MySQL's `PASSWORD REQUIRE CURRENT`: a user changing its own password must name the
    /// password it has now (`REPLACE`), else error 3891.
    pub(crate) require_current: Cell<bool>,
    /// The password each own-password change named as the one it replaces.
    pub(crate) replaced: RefCell<Vec<String>>,
    /// The account every login is authenticated as, when the server maps logins to another
    /// account (an anonymous or proxied one); never the master's.
    pub(crate) authenticated_as: RefCell<Option<String>>,
    /// Hosts other than [`HOST`] that serve the same users (RDS replicas and readers).
    pub(crate) other_hosts: RefCell<Vec<String>>,
    /// Ports of the served hosts where nothing answers as this database.
    pub(crate) closed_ports: RefCell<Vec<u16>>,
    /// Hosts that never answer: a login there is [`Error::Unanswered`].
    pub(crate) silent_hosts: RefCell<Vec<String>>,
    /// What an audit of the alternate account finds.
    pub(crate) drift: RefCell<CloneFindings>,
    /// What the preflight's privilege checks find: the user's own (`OwnPassword`,
    /// `Deprecated`) and the master's (`MasterPrivilege`). The change they concern fails with
    /// `SQLSTATE 42501` as long as one is there, as a server refuses what a role may not do.
    pub(crate) shortfalls: RefCell<Vec<Shortfall>>,
    /// Users that stop logging in after so many more successful logins.
    pub(crate) logins_left: RefCell<BTreeMap<String, usize>>,
    /// The ElastiCache and MemoryDB users, beside the database.
    pub(crate) cache_users: FakeCacheUsers,
}

/// The connector: a handle on the one [`Db`].
#[derive(Debug, Default, Clone)]
pub(crate) struct FakeDb(Rc<Db>);

impl Deref for FakeDb {
    type Target = Db;
    fn deref(&self) -> &Db {
        &self.0
    }
}

impl FakeDb {
    /// A database with `user` and its `password`.
    pub(crate) fn with_user(user: &str, password: &str) -> Self {
        let db = FakeDb::default();
        db.accepts(user, password);
        db
    }

    /// Gives `user` the password `password`.
    pub(crate) fn accepts(&self, user: &str, password: &str) {
        self.users.borrow_mut().insert(user.into(), password.into());
    }

    /// `user`'s password.
    pub(crate) fn password_of(&self, user: &str) -> Option<String> {
        self.users.borrow().get(user).cloned()
    }

    /// Whether `login` reaches this database at all.
    fn serves(&self, login: &Login) -> bool {
        (login.host() == HOST || self.other_hosts.borrow().iter().any(|h| h == login.host()))
            && !self.closed_ports.borrow().contains(&login.port())
    }

    /// Whether `login`'s password is one of its user's, counting the login against
    /// [`Db::logins_left`].
    fn accepts_password(&self, login: &Login) -> bool {
        if login.engine().family() == Family::CacheUser {
            // The data plane of an ElastiCache or MemoryDB user: `AUTH` by its name.
            let users = self.cache_users.users.borrow();
            return users.iter().any(|u| {
                u.user.name == login.username() && u.passwords.contains(login.password())
            });
        }
        let holds = |passwords: &RefCell<HashMap<String, String>>| {
            passwords.borrow().get(login.username()).map(String::as_str)
                == Some(login.password().expose())
        };
        if !(holds(&self.users) || holds(&self.second)) {
            return false;
        }
        let mut left = self.logins_left.borrow_mut();
        match left.get_mut(login.username()) {
            Some(0) => false,
            Some(n) => {
                *n -= 1;
                true
            }
            None => true,
        }
    }
}

/// A session as one user.
#[derive(Debug)]
pub(crate) struct FakeSession {
    db: FakeDb,
    engine: Engine,
    pub(crate) user: String,
}

impl UserApis for FakeDb {
    type Api = FakeCacheUsers;

    fn user_api(&self) -> &FakeCacheUsers {
        &self.cache_users
    }
}

impl Connect for FakeDb {
    type Session = FakeSession;

    async fn connect(
        &self,
        login: &Login,
        _: &str,
        ctx: &StepContext<'_>,
    ) -> Result<FakeSession, Error> {
        let limit = ctx.connect_limit("login")?;
        self.connected.borrow_mut().push(login.clone());
        if self.silent_hosts.borrow().iter().any(|h| h == login.host()) {
            return Err(limit.unanswered(login.engine(), "connecting"));
        }
        let ok = self.serves(login) && self.accepts_password(login);
        self.logins.borrow_mut().push((login.username().into(), ok));
        if !ok {
            return Err(Error::Refused {
                engine: login.engine(),
                code: "SQLSTATE 28P01".into(),
            });
        }
        let mapped = self.authenticated_as.borrow().clone();
        Ok(FakeSession {
            db: self.clone(),
            engine: login.engine(),
            user: mapped
                .filter(|_| login.username() != "master")
                .unwrap_or_else(|| login.username().into()),
        })
    }
}

impl FakeSession {
    fn failure(&self, action: &'static str, code: &str) -> Error {
        Error::Database {
            engine: self.engine,
            action,
            code: code.into(),
            hint: None,
        }
    }

    /// The pending password becomes `user`'s, `current`'s is kept as the second one.
    fn keep_both(&self, user: &str, current: &Password, pending: &Password) {
        self.db
            .users
            .borrow_mut()
            .insert(user.to_owned(), pending.expose().into());
        self.db
            .second
            .borrow_mut()
            .insert(user.to_owned(), current.expose().into());
        self.db.changes.borrow_mut().push(user.to_owned());
    }

    fn as_master(&self, what: &str) {
        assert_eq!(self.user, "master", "only the master {what}");
    }

    /// The shortfalls of `kinds`.
    fn shortfalls(&self, kinds: &[ShortfallKind]) -> Vec<Shortfall> {
        let all = self.db.shortfalls.borrow();
        all.iter()
            .filter(|s| kinds.contains(&s.kind))
            .cloned()
            .collect()
    }

    /// Refuses the change `action` while a shortfall of `kind` stands.
    fn permitted(&self, kind: ShortfallKind, action: &'static str) -> Result<(), Error> {
        match self.shortfalls(&[kind]).first() {
            Some(shortfall) => Err(Error::Database {
                engine: self.engine,
                action,
                code: "SQLSTATE 42501".into(),
                hint: shortfall.hint.clone(),
            }),
            None => Ok(()),
        }
    }
}

impl Session for FakeSession {
    fn engine(&self) -> Engine {
        self.engine
    }

    fn account(&self) -> Account {
        Account {
            user: self.user.clone(),
            host: Some("%".into()),
        }
    }

    async fn check(&mut self, _: &StepContext<'_>) -> Result<(), Error> {
        Ok(())
    }

    async fn close(self) {}
}

impl OwnPassword for FakeSession {
    async fn set_own_password(
        &mut self,
        login: &Login,
        new: &Password,
        _: &StepContext<'_>,
    ) -> Result<(), Error> {
        assert_eq!(
            self.user,
            login.username(),
            "a user may change only its own password"
        );
        if self.db.fail_set.get() {
            return Err(self.failure("setting the password", "SQLSTATE 42501"));
        }
        self.permitted(ShortfallKind::OwnPassword, "setting the password")?;
        let replaced = login.password().expose().to_owned();
        self.db.replaced.borrow_mut().push(replaced.clone());
        if self.db.require_current.get() && self.db.password_of(login.username()) != Some(replaced)
        {
            return Err(self.failure("setting the password", "error 3891 (HY000)"));
        }
        self.db
            .users
            .borrow_mut()
            .insert(login.username().into(), new.expose().into());
        self.db.changes.borrow_mut().push(login.username().into());
        Ok(())
    }

    async fn own_password_shortfalls(
        &mut self,
        _: &StepContext<'_>,
    ) -> Result<Vec<Shortfall>, Error> {
        Ok(self.shortfalls(&[ShortfallKind::OwnPassword, ShortfallKind::Deprecated]))
    }
}

impl CloneManagement for FakeSession {
    async fn set_password_as_master(
        &mut self,
        account: &Account,
        _: &Login,
        pending: &Login,
        ctx: &StepContext<'_>,
    ) -> Result<(), Error> {
        self.as_master("changes another user");
        assert_eq!(account.host.as_deref(), Some("%"));
        self.permitted(ShortfallKind::MasterPrivilege, "setting the password")?;
        let findings = self.db.drift.borrow().clone();
        if !findings.is_empty() {
            return Err(Error::PrivilegeMismatch(Box::new(PrivilegeGap {
                secret_id: ctx.secret_id.to_owned(),
                step: ctx.step.clone(),
                given: pending.username().to_owned(),
                current: account.user.clone(),
                findings,
            })));
        }
        self.db.users.borrow_mut().insert(
            pending.username().into(),
            pending.password().expose().into(),
        );
        self.db.changes.borrow_mut().push(pending.username().into());
        Ok(())
    }

    async fn audit_clone(
        &mut self,
        _: &Account,
        _: &str,
        _: &StepContext<'_>,
    ) -> Result<CloneFindings, Error> {
        self.as_master("audits the alternate user");
        Ok(self.db.drift.borrow().clone())
    }

    async fn master_shortfalls(
        &mut self,
        _: &Account,
        _: &str,
        _: &StepContext<'_>,
    ) -> Result<Vec<Shortfall>, Error> {
        self.as_master("checks its privileges");
        Ok(self.shortfalls(&[ShortfallKind::MasterPrivilege]))
    }
}

impl DualOwn for FakeSession {
    async fn add_own_password(
        &mut self,
        current: &Password,
        pending: &Password,
        _: &StepContext<'_>,
    ) -> Result<Added, Error> {
        self.permitted(ShortfallKind::OwnPassword, "adding a password")?;
        let user = self.user.clone();
        if self.db.password_of(&user).as_deref() != Some(current.expose()) {
            return Ok(Added::NotPrimary("error 3891 (HY000)".into()));
        }
        self.keep_both(&user, current, pending);
        Ok(Added::Now)
    }

    async fn dual_own_shortfalls(&mut self, _: &StepContext<'_>) -> Result<Vec<Shortfall>, Error> {
        Ok(self.shortfalls(&[ShortfallKind::OwnPassword, ShortfallKind::Deprecated]))
    }
}

impl DualMaster for FakeSession {
    async fn add_password_as_master(
        &mut self,
        account: &Account,
        current: &Password,
        pending: &Password,
        _: &StepContext<'_>,
    ) -> Result<(), Error> {
        self.as_master("writes both passwords");
        self.permitted(ShortfallKind::MasterPrivilege, "adding a password")?;
        self.keep_both(&account.user, current, pending);
        Ok(())
    }

    async fn dual_master_shortfalls(
        &mut self,
        _: &Account,
        _: &Password,
        _: &StepContext<'_>,
    ) -> Result<Vec<Shortfall>, Error> {
        self.as_master("checks its privileges");
        Ok(self.shortfalls(&[ShortfallKind::MasterPrivilege]))
    }
}
