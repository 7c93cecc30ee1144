//! What the master may do to the original role and its clone, read from the catalogs before it
//! does anything (docs/protocol.md 5.15): `CREATEROLE`, and from PostgreSQL 16 the `ADMIN OPTION`
//! that `GRANT <original> TO <clone>`, `ALTER ROLE … PASSWORD` and `ALTER ROLE … SET role` need
//! on each role. A `CREATEROLE` role has it on the roles it created itself and on no others: a
//! role made by another administrator (a migration tool, Terraform) needs it granted. A superuser
//! needs nothing.
//!
//! setSecret runs the same check first, so that a missing privilege is named with its grant
//! rather than reported as SQLSTATE 42501 after the transaction started changing things.

use tokio_postgres::GenericClient;

use super::session::{PgSession, statement_code};
use crate::deadline::StepContext;
use crate::engine::Engine;
use crate::error::{Error, Shortfall, ShortfallKind};
use crate::rotators::driver::{bounded, database_error};
use crate::rotators::{Account, Handover};

/// What the check is called in errors.
const CHECKING: &str = "reading what the master may do";

/// PostgreSQL 16, from which `CREATEROLE` alone no longer lets a role manage others.
const ADMIN_OPTION_FROM: i32 = 160_000;

/// What the catalogs say of the master and the two roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Powers {
    pub(super) master: String,
    pub(super) superuser: bool,
    pub(super) createrole: bool,
    pub(super) version: i32,
    /// The original role is a superuser (`None`: it does not exist).
    pub(super) original_superuser: Option<bool>,
    /// The master holds `ADMIN OPTION` on the original (`None`: it does not exist).
    pub(super) admin_on_original: Option<bool>,
    /// The master holds `ADMIN OPTION` on the clone (`None`: it does not exist).
    pub(super) admin_on_clone: Option<bool>,
}

impl Powers {
    /// What the master lacks to manage `original` and `clone`, each with the statement that
    /// gives it.
    pub(super) fn shortfalls(&self, original: &str, clone: &str) -> Vec<Shortfall> {
        if self.superuser {
            return Vec::new();
        }
        let master = &self.master;
        let lacks = |missing: String, hint: String| Shortfall {
            kind: ShortfallKind::MasterPrivilege,
            account: master.clone(),
            missing,
            hint: Some(hint),
        };
        let mut found = Vec::new();
        if !self.createrole {
            found.push(lacks(
                "CREATEROLE".to_owned(),
                format!("as a superuser: ALTER ROLE {master} CREATEROLE"),
            ));
        }
        if self.original_superuser == Some(true) {
            found.push(lacks(
                format!("SUPERUSER, since role {original} is a superuser"),
                "rotate a superuser with a superuser master, or single user".to_owned(),
            ));
        }
        if self.version >= ADMIN_OPTION_FROM {
            for (role, admin) in [
                (original, self.admin_on_original),
                (clone, self.admin_on_clone),
            ] {
                if admin == Some(false) {
                    found.push(lacks(
                        format!("ADMIN OPTION on role {role}"),
                        format!(
                            "as its creator or a superuser: GRANT {role} TO {master} WITH ADMIN \
                             OPTION"
                        ),
                    ));
                }
            }
        }
        found
    }
}

/// Reads [`Powers`] in one round trip, on `client` (the master's session or its transaction).
pub(super) async fn powers(
    client: &impl GenericClient,
    engine: Engine,
    original: &str,
    clone: &str,
) -> Result<Powers, Error> {
    let row = client
        .query_one(
            "SELECT s.rolname::pg_catalog.text, s.rolsuper, s.rolcreaterole, \
             pg_catalog.current_setting('server_version_num')::pg_catalog.int4, \
             o.rolsuper, \
             pg_catalog.pg_has_role(s.oid, o.oid, 'MEMBER WITH ADMIN OPTION'), \
             pg_catalog.pg_has_role(s.oid, c.oid, 'MEMBER WITH ADMIN OPTION') \
             FROM pg_catalog.pg_roles s \
             LEFT JOIN pg_catalog.pg_roles o ON o.rolname OPERATOR(pg_catalog.=) $1 \
             LEFT JOIN pg_catalog.pg_roles c ON c.rolname OPERATOR(pg_catalog.=) $2 \
             WHERE s.rolname OPERATOR(pg_catalog.=) SESSION_USER",
            &[&original, &clone],
        )
        .await
        .map_err(|e| database_error(engine, CHECKING, statement_code(&e)))?;
    Ok(Powers {
        master: row.get(0),
        superuser: row.get(1),
        createrole: row.get(2),
        version: row.get(3),
        original_superuser: row.get(4),
        admin_on_original: row.get(5),
        admin_on_clone: row.get(6),
    })
}

/// [`Powers::shortfalls`] for handing `pending_user` (`current`'s user or its clone) over,
/// read-only.
pub(super) async fn master_shortfalls(
    master: &mut PgSession,
    current: &Account,
    pending_user: &str,
    ctx: &StepContext<'_>,
) -> Result<Vec<Shortfall>, Error> {
    let engine = master.engine;
    let handover = Handover::between(current, pending_user, ctx)?;
    let (original, clone) = handover.roles(current, pending_user);
    let timeout = ctx.query_timeout(CHECKING)?;
    let read = async {
        let powers = powers(&master.client, engine, original, clone).await?;
        Ok(powers.shortfalls(original, clone))
    };
    bounded(timeout, read, |timed_out| {
        database_error(engine, CHECKING, timed_out)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn powers(superuser: bool, createrole: bool, version: i32) -> Powers {
        Powers {
            master: "master".into(),
            superuser,
            createrole,
            version,
            original_superuser: Some(false),
            admin_on_original: Some(false),
            admin_on_clone: None,
        }
    }

    fn missing(powers: &Powers) -> Vec<String> {
        powers
            .shortfalls("app", "app_clone")
            .into_iter()
            .map(|s| s.missing)
            .collect()
    }

    #[test]
    fn a_superuser_lacks_nothing() {
        assert!(missing(&powers(true, false, 170_000)).is_empty());
    }

    #[test]
    fn before_16_createrole_is_enough() {
        assert!(missing(&powers(false, true, 150_010)).is_empty());
        assert_eq!(missing(&powers(false, false, 150_010)), ["CREATEROLE"]);
    }

    #[test]
    fn from_16_admin_option_on_each_existing_role() {
        let mut p = powers(false, true, 160_004);
        assert_eq!(missing(&p), ["ADMIN OPTION on role app"]);
        p.admin_on_original = Some(true);
        p.admin_on_clone = Some(false);
        assert_eq!(missing(&p), ["ADMIN OPTION on role app_clone"]);
        let hint = p.shortfalls("app", "app_clone")[0].hint.clone().unwrap();
        assert!(
            hint.contains("GRANT app_clone TO master WITH ADMIN OPTION"),
            "{hint}"
        );
        // A clone not made yet needs nothing: its creator gets ADMIN OPTION on it.
        p.admin_on_clone = None;
        assert!(missing(&p).is_empty());
    }

    #[test]
    fn a_superuser_original_needs_a_superuser_master() {
        let mut p = powers(false, true, 150_000);
        p.original_superuser = Some(true);
        assert_eq!(missing(&p), ["SUPERUSER, since role app is a superuser"]);
    }
}
