//! What every AWS client of the function shares: one call helper ([`retry`]) that runs a call's
//! attempts under the step's deadline, retrying throttling and transient failures with
//! full-jitter backoff. Secrets Manager (`crate::secrets`) and RDS (`crate::rds`) go through it,
//! so a call to either fails with `DeadlineExceeded` naming it instead of outliving the
//! invocation.

pub(crate) mod retry;

pub use retry::RetryPolicy;
