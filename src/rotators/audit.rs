//! Read-only checks of the alternating-users path, for an audit: what the next rotation's
//! privilege check (docs/protocol.md 5.12) would refuse, found by the same comparison, without
//! changing anything.

use std::future::Future;

use super::{Account, Rotator, Rotators, Session, mysql, postgres, redis, unsupported_strategy};
use crate::deadline::StepContext;
use crate::error::{CloneFindings, Error};

/// A [`Rotator`] that can also audit the alternate account without changing it.
pub trait CloneAudit: Rotator {
    /// As the master session, what stands in the way of handing `pending_user` (the current
    /// account's user or its `_clone`) over: what it would give beyond `current`, what an existing
    /// clone lacks, who else controls it; names, never values. Empty when the next rotation's
    /// check would pass.
    fn audit_clone(
        &self,
        master: &mut Self::Session,
        current: &Account,
        pending_user: &str,
        ctx: &StepContext<'_>,
    ) -> impl Future<Output = Result<CloneFindings, Error>>;
}

impl CloneAudit for Rotators {
    async fn audit_clone(
        &self,
        master: &mut Session,
        current: &Account,
        pending_user: &str,
        ctx: &StepContext<'_>,
    ) -> Result<CloneFindings, Error> {
        match master {
            Session::Postgres(s) => postgres::audit_clone(s, current, pending_user, ctx).await,
            Session::Mysql(s) => mysql::audit_clone(s, current, pending_user, ctx).await,
            // Redis has no alternating-users path, hence no clone to compare.
            Session::Redis(_) => Err(unsupported_strategy(ctx, redis::ALTERNATING_UNSUPPORTED)),
        }
    }
}
