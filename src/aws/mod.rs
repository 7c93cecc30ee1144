//! What every AWS client of the function shares: one call helper ([`retry`]) that runs a call's
//! attempts under the step's deadline, retrying throttling and transient failures with
//! full-jitter backoff. Secrets Manager (`crate::secrets`), RDS (`crate::rds`) and the
//! ElastiCache and MemoryDB user APIs (`crate::cache_user`) go through it, so a call to any of
//! them fails with `DeadlineExceeded` naming it instead of outliving the invocation.

pub(crate) mod retry;

pub use retry::RetryPolicy;
