//! An in-memory ElastiCache and MemoryDB for unit tests: users with their passwords (which the
//! real APIs never return; the tests read them as the data plane would check them), status
//! transitions, throttling, refusals and not-found, every call counted. Calls go through the
//! same deadline-bounded retry loop as the SDK's ([`api_call`]), so throttling is retried, and
//! counted in the step's tally, exactly as in production.

use std::cell::{Cell, RefCell};

use super::{
    AuthType, CacheUser, CacheUserApi, Change, PasswordSet, Service, UserArn, UserStatus, api_call,
};
use crate::aws::retry::{AttemptError, Kind};
use crate::credentials::Password;
use crate::deadline::StepContext;
use crate::error::Error;

/// The account and Region of the fake's users: `Home` of the tests.
pub(crate) const ACCOUNT: &str = "123456789012";
/// The Region of the fake's users.
pub(crate) const REGION: &str = "us-east-1";

/// The ARN of user `id` of `service` in the tests' account and Region.
pub(crate) fn arn(service: Service, id: &str) -> String {
    match service {
        Service::ElastiCache => format!("arn:aws:elasticache:{REGION}:{ACCOUNT}:user:{id}"),
        Service::MemoryDb => format!("arn:aws:memorydb:{REGION}:{ACCOUNT}:user/{id}"),
    }
}

/// One user, as the service holds it.
#[derive(Debug, Clone)]
pub(crate) struct FakeUser {
    /// What `DescribeUsers` reports (its status and count are kept up to date).
    pub(crate) user: CacheUser,
    /// The passwords the user holds, newest first.
    pub(crate) passwords: Vec<Password>,
    /// How many describes see `modifying` after a change before the user is `active` again.
    pub(crate) settle_after: u32,
    /// Describes left before the current change settles.
    pub(crate) settling: u32,
}

impl FakeUser {
    /// An active user `id` named `name`, with password authentication and `passwords`; a change
    /// settles after one describe.
    pub(crate) fn new(service: Service, id: &str, name: &str, passwords: &[&str]) -> Self {
        FakeUser {
            user: CacheUser {
                service,
                name: name.to_owned(),
                id: id.to_owned(),
                arn: Some(arn(service, id)),
                status: UserStatus::Active,
                authentication: AuthType::Password,
                password_count: Some(u32::try_from(passwords.len()).unwrap_or(u32::MAX)),
                engine: (service == Service::ElastiCache).then(|| "valkey".to_owned()),
                groups: vec!["app-group".to_owned()],
            },
            passwords: passwords.iter().map(|p| Password::new(*p)).collect(),
            settle_after: 1,
            settling: 0,
        }
    }

    /// The same user, `modifying` for the next `looks` describes.
    pub(crate) fn modifying_for(mut self, looks: u32) -> Self {
        self.user.status = UserStatus::Modifying;
        self.settling = looks;
        self
    }
}

/// The users of both services, and the calls made.
#[derive(Debug, Default)]
pub(crate) struct FakeCacheUsers {
    pub(crate) users: RefCell<Vec<FakeUser>>,
    /// Calls made, in order: `describe:<id>`, `set:<id>:<number of passwords>`.
    pub(crate) calls: RefCell<Vec<String>>,
    /// Attempts (of any call) still to be answered with `Throttling`.
    pub(crate) throttle: Cell<u32>,
    /// When set, every call fails with `AccessDenied`.
    pub(crate) denied: Cell<bool>,
    /// When set, the next password change finds that another change has just begun: it is
    /// refused (`InvalidUserState`) and the user is `modifying` for one describe.
    pub(crate) interfere: Cell<bool>,
}

impl FakeCacheUsers {
    /// A service holding `users`.
    pub(crate) fn with(users: Vec<FakeUser>) -> Self {
        FakeCacheUsers {
            users: RefCell::new(users),
            ..FakeCacheUsers::default()
        }
    }

    /// The passwords user `id` holds now, as the data plane would accept them.
    pub(crate) fn passwords(&self, id: &str) -> Vec<Password> {
        self.users
            .borrow()
            .iter()
            .find(|u| u.user.id == id)
            .map(|u| u.passwords.clone())
            .unwrap_or_default()
    }

    /// Whether `password` logs in as user `id` (an `AUTH` on the data plane).
    pub(crate) fn logs_in(&self, id: &str, password: &Password) -> bool {
        self.passwords(id).contains(password)
    }

    /// Calls made so far whose record starts with `prefix` (`describe`, `set`).
    pub(crate) fn count(&self, prefix: &str) -> usize {
        self.calls
            .borrow()
            .iter()
            .filter(|c| c.starts_with(prefix))
            .count()
    }

    /// One attempt's refusal, if the fake answers this one with a failure.
    fn refusal(&self) -> Option<AttemptError> {
        if self.denied.get() {
            return Some(AttemptError {
                kind: Kind::Fatal,
                code: Some("AccessDenied".to_owned()),
                label: "AccessDenied".to_owned(),
                detail: "AccessDenied: not authorized".to_owned(),
            });
        }
        let throttle = self.throttle.get();
        (throttle > 0).then(|| {
            self.throttle.set(throttle - 1);
            AttemptError {
                kind: Kind::Throttled,
                code: Some("Throttling".to_owned()),
                label: "Throttling".to_owned(),
                detail: "Throttling: Rate exceeded".to_owned(),
            }
        })
    }

    fn find(&self, user: &UserArn) -> Option<usize> {
        self.users
            .borrow()
            .iter()
            .position(|u| u.user.service == user.service() && u.user.id == user.id())
    }
}

impl CacheUserApi for FakeCacheUsers {
    async fn describe(
        &self,
        user: &UserArn,
        ctx: &StepContext<'_>,
    ) -> Result<Option<CacheUser>, Error> {
        self.calls
            .borrow_mut()
            .push(format!("describe:{}", user.id()));
        api_call(ctx, user, "DescribeUsers", &[], || async {
            if let Some(refusal) = self.refusal() {
                return Err(refusal);
            }
            let Some(i) = self.find(user) else {
                return Ok(None);
            };
            let mut users = self.users.borrow_mut();
            let found = &mut users[i];
            let seen = found.user.clone();
            if found.settling > 0 {
                found.settling -= 1;
                if found.settling == 0 {
                    found.user.status = UserStatus::Active;
                }
            }
            Ok(Some(seen))
        })
        .await
    }

    async fn set_passwords(
        &self,
        user: &UserArn,
        passwords: &PasswordSet,
        ctx: &StepContext<'_>,
    ) -> Result<Change, Error> {
        self.calls
            .borrow_mut()
            .push(format!("set:{}:{}", user.id(), passwords.len()));
        let exposed = passwords.exposed();
        let operation = user.service().modify_operation();
        api_call(ctx, user, operation, &exposed, || async {
            if let Some(refusal) = self.refusal() {
                return Err(refusal);
            }
            let Some(i) = self.find(user) else {
                return Ok(Change::NotFound);
            };
            let mut users = self.users.borrow_mut();
            let found = &mut users[i];
            if self.interfere.replace(false) {
                found.user.status = UserStatus::Modifying;
                found.settling = 1;
            }
            if found.user.status != UserStatus::Active {
                return Ok(Change::NotReady);
            }
            found.passwords = passwords.iter().cloned().collect();
            found.user.password_count = Some(u32::try_from(found.passwords.len()).unwrap_or(0));
            found.user.authentication = AuthType::Password;
            found.user.status = UserStatus::Modifying;
            found.settling = found.settle_after;
            Ok(Change::Accepted)
        })
        .await
    }
}
