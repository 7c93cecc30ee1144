//! Read-only checks of the alternating-users path, for an audit: what the next rotation's
//! privilege check (docs/protocol.md 5.12) would refuse, found by the same comparison, without
//! changing anything.

use std::future::Future;

use super::{Account, Rotator, Rotators, Session, mysql, postgres, redis, unsupported_strategy};
use crate::deadline::StepContext;
use crate::error::Error;

/// A [`Rotator`] that can also audit the alternate account without changing it.
pub trait CloneAudit: Rotator {
    /// As the master session, what handing `pending_user` (the current account's user or its
    /// `_clone`) over would give beyond `current`: privilege, role, attribute and object names,
    /// never values. Empty when the next rotation's check would pass.
    fn audit_clone(
        &self,
        master: &mut Self::Session,
        current: &Account,
        pending_user: &str,
        ctx: &StepContext<'_>,
    ) -> impl Future<Output = Result<Vec<String>, Error>>;
}

impl CloneAudit for Rotators {
    async fn audit_clone(
        &self,
        master: &mut Session,
        current: &Account,
        pending_user: &str,
        ctx: &StepContext<'_>,
    ) -> Result<Vec<String>, Error> {
        match master {
            Session::Postgres(s) => postgres::audit_clone(s, current, pending_user, ctx).await,
            Session::Mysql(s) => mysql::audit_clone(s, current, pending_user, ctx).await,
            // Redis has no alternating-users path, hence no clone to compare.
            Session::Redis(_) => Err(unsupported_strategy(ctx, redis::ALTERNATING_UNSUPPORTED)),
        }
    }
}
