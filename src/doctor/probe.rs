//! What the doctor asks of the databases, and no more: log in, say as whom, close, and audit the
//! alternate account. Every [`CloneAudit`] rotator does it; tests give a fake.

use std::future::Future;

use crate::credentials::DbSecret;
use crate::deadline::StepContext;
use crate::error::{CloneFindings, Error};
use crate::rotators::{Account, CloneAudit};

/// The database side of an audit: read-only.
pub trait Probe {
    /// An authenticated connection.
    type Session;

    /// Connects and logs in with `creds`, as the function would ([`crate::rotators::Rotator::connect`]).
    fn connect(
        &self,
        creds: &DbSecret,
        attempt: &str,
        ctx: &StepContext<'_>,
    ) -> impl Future<Output = Result<Self::Session, Error>>;

    /// The account the session is logged in as.
    fn account(&self, session: &Self::Session) -> Account;

    /// Closes the session.
    fn close(&self, session: Self::Session) -> impl Future<Output = ()>;

    /// As the master session, what the next rotation's privilege check would find
    /// ([`CloneAudit::audit_clone`]).
    fn audit_clone(
        &self,
        master: &mut Self::Session,
        current: &Account,
        pending_user: &str,
        ctx: &StepContext<'_>,
    ) -> impl Future<Output = Result<CloneFindings, Error>>;
}

impl<R: CloneAudit> Probe for R {
    type Session = R::Session;

    fn connect(
        &self,
        creds: &DbSecret,
        attempt: &str,
        ctx: &StepContext<'_>,
    ) -> impl Future<Output = Result<Self::Session, Error>> {
        crate::rotators::Rotator::connect(self, creds, attempt, ctx)
    }

    fn account(&self, session: &Self::Session) -> Account {
        crate::rotators::Rotator::account(self, session)
    }

    fn close(&self, session: Self::Session) -> impl Future<Output = ()> {
        crate::rotators::Rotator::close(self, session)
    }

    fn audit_clone(
        &self,
        master: &mut Self::Session,
        current: &Account,
        pending_user: &str,
        ctx: &StepContext<'_>,
    ) -> impl Future<Output = Result<CloneFindings, Error>> {
        CloneAudit::audit_clone(self, master, current, pending_user, ctx)
    }
}
