//! The privilege invariant on PostgreSQL (docs/protocol.md 5.12), checked in the master's
//! transaction before it changes anything, and again before it commits.
//!
//! - **Adding `_clone`** onto an existing clone: the clone may have nothing the original lacks:
//!   no power-granting role attribute; no role it may use, become or grant beyond what the
//!   original may (membership is followed through every level with `pg_has_role`, so a role
//!   reached through another counts, and `ADMIN OPTION`, `INHERIT` and, from PostgreSQL 16, `SET`
//!   are compared); no object it owns or holds privileges on, no row-security policy naming it,
//!   in any database (`pg_shdepend`, shared by the cluster); no superuser-only setting attached to
//!   it (`ALTER ROLE … SET`) that the original lacks.
//! - **Nobody else controls the clone** it adds `_clone` onto: it must already be able to act as
//!   the original (a member with `USAGE` and `SET`), as this function makes it, and no role but
//!   the master may be its member or hold `ADMIN OPTION` on it.
//! - **Removing `_clone`**: the clone must already be able to become the original (`SET ROLE`,
//!   which also carries the original's attributes) and, since `SET ROLE` does not carry it, hold
//!   `REPLICATION` if the original does. The original must exist.

use tokio_postgres::Transaction;

use super::session::statement_code;
use crate::deadline::StepContext;
use crate::engine::Engine;
use crate::error::{CloneFindings, Error};
use crate::rotators::driver::database_error;
use crate::rotators::{Handover, privilege_gap};

/// Role attributes that grant power, as errors name them, in `pg_roles`' column order below.
const ATTRIBUTES: [&str; 5] = [
    "SUPERUSER",
    "CREATEROLE",
    "CREATEDB",
    "REPLICATION",
    "BYPASSRLS",
];

/// What the checks are called in errors.
const CHECKING: &str = "comparing the privileges of the user and its clone";

/// A role as the checks need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Role {
    oid: u32,
    /// [`ATTRIBUTES`], in order.
    attributes: [bool; 5],
}

/// What one role may do with another: use its privileges (`USAGE`, inherited), become it (`SET
/// ROLE`), grant it to others (`ADMIN OPTION`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Power {
    usage: bool,
    set: bool,
    admin: bool,
}

impl Power {
    /// Whether `other` may do at least as much: inherited privileges are matched by inheriting
    /// them or by becoming the role.
    fn within(self, other: Power) -> bool {
        (!self.usage || other.usage || other.set)
            && (!self.set || other.set)
            && (!self.admin || other.admin)
    }
}

/// A role the clone reaches, with what the clone and the original may do with it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reach {
    role: String,
    clone: Power,
    original: Power,
}

/// Everything the append check compares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Facts {
    clone_attributes: [bool; 5],
    original_attributes: [bool; 5],
    reach: Vec<Reach>,
    /// `pg_shdepend` types (`o` owner, `a` privileges, `r` policy, …) and counts for the clone.
    dependencies: Vec<(String, i64)>,
    /// Superuser-only parameters set on the clone and not on the original.
    settings: Vec<String>,
}

/// The queries, in the master's transaction.
struct Catalog<'a> {
    transaction: &'a Transaction<'a>,
    engine: Engine,
}

impl Catalog<'_> {
    fn failed(&self, e: &tokio_postgres::Error) -> Error {
        database_error(self.engine, CHECKING, statement_code(e))
    }

    async fn role(&self, name: &str) -> Result<Option<Role>, Error> {
        let row = self
            .transaction
            .query_opt(
                "SELECT oid, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls \
                 FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) $1",
                &[&name],
            )
            .await
            .map_err(|e| self.failed(&e))?;
        Ok(row.map(|row| Role {
            oid: row.get(0),
            attributes: std::array::from_fn(|i| row.get(i + 1)),
        }))
    }

    /// The privilege that means "may `SET ROLE`": `SET` from PostgreSQL 16, where membership
    /// alone may confer nothing; `MEMBER` before.
    async fn set_privilege(&self) -> Result<&'static str, Error> {
        let version: i32 = self
            .transaction
            .query_one(
                "SELECT pg_catalog.current_setting('server_version_num')::pg_catalog.int4",
                &[],
            )
            .await
            .map_err(|e| self.failed(&e))?
            .get(0);
        Ok(if version >= 160_000 { "SET" } else { "MEMBER" })
    }

    /// Every role `of` is a member of, directly or not, with what `of` and `other` may do with it.
    async fn reach(&self, of: u32, other: u32) -> Result<Vec<Reach>, Error> {
        let set = self.set_privilege().await?;
        let query = format!(
            "SELECT r.rolname::pg_catalog.text, \
             pg_catalog.pg_has_role($1::pg_catalog.oid, r.oid, 'USAGE'), \
             pg_catalog.pg_has_role($1::pg_catalog.oid, r.oid, '{set}'), \
             pg_catalog.pg_has_role($1::pg_catalog.oid, r.oid, 'MEMBER WITH ADMIN OPTION'), \
             pg_catalog.pg_has_role($2::pg_catalog.oid, r.oid, 'USAGE'), \
             pg_catalog.pg_has_role($2::pg_catalog.oid, r.oid, '{set}'), \
             pg_catalog.pg_has_role($2::pg_catalog.oid, r.oid, 'MEMBER WITH ADMIN OPTION') \
             FROM pg_catalog.pg_roles r \
             WHERE r.oid OPERATOR(pg_catalog.<>) $1::pg_catalog.oid \
             AND pg_catalog.pg_has_role($1::pg_catalog.oid, r.oid, 'MEMBER') ORDER BY 1"
        );
        let rows = self
            .transaction
            .query(&query, &[&of, &other])
            .await
            .map_err(|e| self.failed(&e))?;
        Ok(rows
            .iter()
            .map(|row| Reach {
                role: row.get(0),
                clone: Power {
                    usage: row.get(1),
                    set: row.get(2),
                    admin: row.get(3),
                },
                original: Power {
                    usage: row.get(4),
                    set: row.get(5),
                    admin: row.get(6),
                },
            })
            .collect())
    }

    /// What depends on the role in any database: objects it owns, privileges granted to it,
    /// policies naming it.
    async fn dependencies(&self, role: u32) -> Result<Vec<(String, i64)>, Error> {
        let rows = self
            .transaction
            .query(
                "SELECT deptype::pg_catalog.text, pg_catalog.count(*) FROM pg_catalog.pg_shdepend \
                 WHERE refclassid OPERATOR(pg_catalog.=) \
                 'pg_catalog.pg_authid'::pg_catalog.regclass::pg_catalog.oid \
                 AND refobjid OPERATOR(pg_catalog.=) $1::pg_catalog.oid \
                 GROUP BY 1 ORDER BY 1",
                &[&role],
            )
            .await
            .map_err(|e| self.failed(&e))?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    /// Roles other than the session's (the master's) that are members of `role` or hold `ADMIN
    /// OPTION` on it: they can act as it, or reset its password (from PostgreSQL 16, the
    /// `CREATEROLE` role that created it keeps `ADMIN OPTION` on it).
    async fn controllers(&self, role: u32) -> Result<Vec<String>, Error> {
        let rows = self
            .transaction
            .query(
                "SELECT r.rolname::pg_catalog.text, m.admin_option \
                 FROM pg_catalog.pg_auth_members m \
                 JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) m.member \
                 WHERE m.roleid OPERATOR(pg_catalog.=) $1::pg_catalog.oid \
                 AND m.member OPERATOR(pg_catalog.<>) (SELECT u.oid FROM pg_catalog.pg_roles u \
                   WHERE u.rolname OPERATOR(pg_catalog.=) SESSION_USER) \
                 ORDER BY 1",
                &[&role],
            )
            .await
            .map_err(|e| self.failed(&e))?;
        Ok(rows
            .iter()
            .map(|row| {
                let name: String = row.get(0);
                if row.get::<_, bool>(1) {
                    format!("role {name} holds ADMIN OPTION on it (it can reset its password)")
                } else {
                    format!("role {name} is a member of it")
                }
            })
            .collect())
    }

    /// Superuser-only parameters attached to `of` (`ALTER ROLE … SET`) that `other` does not
    /// have with the same value in the same database (or all): their names only.
    async fn settings(&self, of: u32, other: u32) -> Result<Vec<String>, Error> {
        let rows = self
            .transaction
            .query(
                "SELECT DISTINCT pg_catalog.lower(pg_catalog.split_part(c.setting, '=', 1)) \
                 FROM pg_catalog.pg_db_role_setting s, \
                 pg_catalog.unnest(s.setconfig) AS c(setting) \
                 WHERE s.setrole OPERATOR(pg_catalog.=) $1::pg_catalog.oid \
                 AND EXISTS (SELECT 1 FROM pg_catalog.pg_settings p \
                   WHERE p.name OPERATOR(pg_catalog.=) \
                   pg_catalog.lower(pg_catalog.split_part(c.setting, '=', 1)) \
                   AND p.context OPERATOR(pg_catalog.=) 'superuser') \
                 AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_db_role_setting o, \
                   pg_catalog.unnest(o.setconfig) AS oc(setting) \
                   WHERE o.setrole OPERATOR(pg_catalog.=) $2::pg_catalog.oid \
                   AND o.setdatabase OPERATOR(pg_catalog.=) \
                   ANY (ARRAY[0::pg_catalog.oid, s.setdatabase]) \
                   AND oc.setting OPERATOR(pg_catalog.=) c.setting) \
                 ORDER BY 1",
                &[&of, &other],
            )
            .await
            .map_err(|e| self.failed(&e))?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }
}

/// Enforces the invariant for handing `original`'s clone `clone` over in `handover`'s
/// direction: `Err` ([`Error::PrivilegeMismatch`]) names both roles and what stands in the way.
pub(super) async fn enforce(
    transaction: &Transaction<'_>,
    engine: Engine,
    ctx: &StepContext<'_>,
    handover: Handover,
    original: &str,
    clone: &str,
) -> Result<(), Error> {
    let findings = findings(transaction, engine, handover, original, clone).await?;
    if findings.is_empty() {
        return Ok(());
    }
    let (given, current) = match handover {
        Handover::Append => (clone, original),
        Handover::Strip => (original, clone),
    };
    Err(privilege_gap(
        ctx,
        given.to_owned(),
        current.to_owned(),
        findings,
    ))
}

/// What stands in the way of handing the account over in `handover`'s direction: empty when the
/// invariant holds. Reads the catalogs only.
///
/// Adding `_clone` onto an existing clone, beyond what it may do that the original may not: it
/// must already be able to act as the original (`USAGE` and `SET` on it), as this function makes
/// it, so that handing it over gives nobody anything new; and no role but the master may be its
/// member or administrator. A new clone is created inside the master's transaction, where
/// nobody else can log in as it before it commits.
pub(super) async fn findings(
    transaction: &Transaction<'_>,
    engine: Engine,
    handover: Handover,
    original: &str,
    clone: &str,
) -> Result<CloneFindings, Error> {
    let catalog = Catalog {
        transaction,
        engine,
    };
    match handover {
        Handover::Append => {
            let Some(clone_role) = catalog.role(clone).await? else {
                return Ok(CloneFindings::default());
            };
            let Some(original_role) = catalog.role(original).await? else {
                return Err(database_error(
                    engine,
                    CHECKING,
                    "the current user has no role",
                ));
            };
            let facts = Facts {
                clone_attributes: clone_role.attributes,
                original_attributes: original_role.attributes,
                reach: catalog.reach(clone_role.oid, original_role.oid).await?,
                dependencies: catalog.dependencies(clone_role.oid).await?,
                settings: catalog.settings(clone_role.oid, original_role.oid).await?,
            };
            Ok(CloneFindings {
                excess: append_excess(&facts, original),
                missing: append_missing(&facts, original),
                controllers: catalog.controllers(clone_role.oid).await?,
            })
        }
        Handover::Strip => match (catalog.role(original).await?, catalog.role(clone).await?) {
            (Some(original_role), Some(clone_role)) => {
                let reach = catalog.reach(clone_role.oid, original_role.oid).await?;
                let power = reach
                    .iter()
                    .find(|r| r.role == original)
                    .map(|r| r.clone)
                    .unwrap_or_default();
                Ok(CloneFindings {
                    excess: strip_excess(
                        power,
                        clone_role.attributes,
                        original_role.attributes,
                        original,
                    ),
                    ..CloneFindings::default()
                })
            }
            _ => Ok(CloneFindings {
                excess: vec![format!(
                    "the role {original} itself, which does not exist, so the clone cannot be \
                     shown to hold its privileges"
                )],
                ..CloneFindings::default()
            }),
        },
    }
}

/// What an existing clone lacks to act as `original` as this function makes it: empty when it
/// may use and become the original.
fn append_missing(facts: &Facts, original: &str) -> Vec<String> {
    let power = facts
        .reach
        .iter()
        .find(|r| r.role == original)
        .map(|r| r.clone)
        .unwrap_or_default();
    if power.usage && power.set {
        Vec::new()
    } else {
        vec![format!(
            "membership in role {original} with its privileges (GRANT {original} TO the clone)"
        )]
    }
}

/// Attributes set in `a` and not in `b`.
fn extra_attributes(a: [bool; 5], b: [bool; 5]) -> impl Iterator<Item = String> {
    ATTRIBUTES
        .into_iter()
        .zip(a.into_iter().zip(b))
        .filter(|(_, (a, b))| *a && !*b)
        .map(|(name, _)| format!("role attribute {name}"))
}

/// What an existing clone may do and `original` may not.
fn append_excess(facts: &Facts, original: &str) -> Vec<String> {
    let mut excess: Vec<String> =
        extra_attributes(facts.clone_attributes, facts.original_attributes).collect();
    for reach in &facts.reach {
        if reach.clone.within(reach.original) {
            continue;
        }
        let role = &reach.role;
        if reach.clone.admin && !reach.original.admin {
            excess.push(format!("ADMIN OPTION on role {role}"));
        }
        if role != original
            && !(Power {
                admin: false,
                ..reach.clone
            })
            .within(reach.original)
        {
            excess.push(format!("membership in role {role}"));
        }
    }
    for (kind, count) in &facts.dependencies {
        excess.push(match kind.as_str() {
            "o" => format!("ownership of {count} object(s)"),
            "a" => format!("privileges granted directly on {count} object(s)"),
            "r" => format!("{count} row-security polic(ies) naming it"),
            other => format!("{count} other dependencie(s) of type {other}"),
        });
    }
    excess.extend(
        facts
            .settings
            .iter()
            .map(|name| format!("superuser-only setting {name}")),
    );
    excess
}

/// What the original may do and the current clone may not.
fn strip_excess(
    clone_on_original: Power,
    clone: [bool; 5],
    original: [bool; 5],
    name: &str,
) -> Vec<String> {
    let mut excess = Vec::new();
    if !clone_on_original.set {
        excess.push(format!(
            "the privileges of role {name}, since the clone is not a member of it"
        ));
    }
    // SET ROLE carries every attribute but REPLICATION, which is the login role's.
    let replication = [false, false, false, original[3], false];
    excess.extend(extra_attributes(replication, clone));
    excess
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: Power = Power {
        usage: true,
        set: true,
        admin: false,
    };

    fn reach(role: &str, clone: Power, original: Power) -> Reach {
        Reach {
            role: role.to_owned(),
            clone,
            original,
        }
    }

    #[test]
    fn a_clone_made_by_this_function_has_nothing_more() {
        // Member of the original, which is in `readers`; owns nothing.
        let facts = Facts {
            reach: vec![reach("app", FULL, FULL), reach("readers", FULL, FULL)],
            ..Facts::default()
        };
        assert!(append_excess(&facts, "app").is_empty());
    }

    #[test]
    fn an_over_privileged_clone_is_described() {
        let facts = Facts {
            clone_attributes: [true, false, true, false, false],
            original_attributes: [false, false, true, false, false],
            reach: vec![
                reach(
                    "app",
                    Power {
                        admin: true,
                        ..FULL
                    },
                    FULL,
                ),
                reach("pg_read_all_data", FULL, Power::default()),
                // The original may become it: inheriting it is no more.
                reach(
                    "auditors",
                    FULL,
                    Power {
                        usage: false,
                        set: true,
                        admin: false,
                    },
                ),
                reach(
                    "granted",
                    Power {
                        admin: true,
                        ..FULL
                    },
                    FULL,
                ),
            ],
            dependencies: vec![("a".into(), 2), ("o".into(), 3)],
            settings: vec!["lo_compat_privileges".into()],
        };
        assert_eq!(
            append_excess(&facts, "app"),
            [
                "role attribute SUPERUSER",
                "ADMIN OPTION on role app",
                "membership in role pg_read_all_data",
                "ADMIN OPTION on role granted",
                "privileges granted directly on 2 object(s)",
                "ownership of 3 object(s)",
                "superuser-only setting lo_compat_privileges",
            ]
        );
    }

    #[test]
    fn powers_compare() {
        let usage = Power {
            usage: true,
            ..Power::default()
        };
        let set = Power {
            set: true,
            ..Power::default()
        };
        assert!(usage.within(set) && usage.within(FULL));
        assert!(!set.within(usage) && !FULL.within(usage));
        assert!(Power::default().within(Power::default()));
        assert!(
            !Power {
                admin: true,
                ..Power::default()
            }
            .within(FULL)
        );
    }

    #[test]
    fn the_clone_must_be_able_to_become_the_original() {
        let none = [false; 5];
        assert!(strip_excess(FULL, none, none, "app").is_empty());
        // SET ROLE carries SUPERUSER and the rest; not REPLICATION.
        let original = [true, true, true, true, true];
        assert_eq!(
            strip_excess(FULL, none, original, "app"),
            ["role attribute REPLICATION"]
        );
        assert_eq!(
            strip_excess(
                Power {
                    usage: true,
                    set: false,
                    admin: false
                },
                none,
                none,
                "app"
            ),
            ["the privileges of role app, since the clone is not a member of it"]
        );
    }
}
