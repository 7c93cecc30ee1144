//! Host names as the RDS proofs compare them.

pub(super) use crate::credentials::same_host;

/// `host` without its trailing dot.
fn absolute(host: &str) -> &str {
    host.strip_suffix('.').unwrap_or(host)
}

/// What an RDS endpoint's name says about the endpoint. Only a hint of what to ask RDS: the
/// answer proves, never the name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Shape<'a> {
    /// The first label: the instance or cluster identifier.
    pub(super) identifier: &'a str,
    /// A cluster endpoint (`<cluster>.cluster-…`, `cluster-ro-…`, `cluster-custom-…`) rather
    /// than an instance's.
    pub(super) cluster: bool,
}

/// The shape of an RDS endpoint (`<id>.<hash>.<region>.rds.<domain>`, or `<id>.cluster-<hash>…`
/// for a cluster's), or `None` for any other name: RDS never gives such a name as an endpoint,
/// so there is nothing to ask it.
pub(super) fn rds_shape(host: &str) -> Option<Shape<'_>> {
    let labels: Vec<&str> = absolute(host).split('.').collect();
    if labels.len() < 5 || !labels[3].eq_ignore_ascii_case("rds") || labels[1].is_empty() {
        return None;
    }
    let identifier = labels[0];
    valid_identifier(identifier).then(|| Shape {
        identifier,
        cluster: labels[1]
            .get(..8)
            .is_some_and(|p| p.eq_ignore_ascii_case("cluster-")),
    })
}

/// RDS's rules for instance and cluster identifiers: 1 to 63 letters, digits and hyphens, a
/// letter first, no hyphen last, no two hyphens in a row.
pub(super) fn valid_identifier(id: &str) -> bool {
    let bytes = id.as_bytes();
    (1..=63).contains(&bytes.len())
        && bytes[0].is_ascii_alphabetic()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        && !id.ends_with('-')
        && !id.contains("--")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_compare_as_dns_names_and_nothing_more() {
        let endpoint = "db-1.abcdefghij.us-east-1.rds.amazonaws.com";
        for same in [
            endpoint,
            "DB-1.AbCdEfGhIj.US-EAST-1.rds.amazonaws.com",
            "db-1.abcdefghij.us-east-1.rds.amazonaws.com.",
        ] {
            assert!(same_host(same, endpoint), "{same}");
            assert!(same_host(endpoint, same), "{same}");
        }
        for other in [
            "db-1.abcdefghij.us-east-1.rds.amazonaws.com..",
            "db-1.abcdefghij.us-east-1.rds.amazonaws.com.evil.example",
            "evil-db-1.abcdefghij.us-east-1.rds.amazonaws.com",
            " db-1.abcdefghij.us-east-1.rds.amazonaws.com",
            "db-1.abcdefghij.us-east-1.rds.amazonaws.com:5432",
            "db\u{2010}1.abcdefghij.us-east-1.rds.amazonaws.com",
            "",
        ] {
            assert!(!same_host(other, endpoint), "{other}");
        }
        assert!(!same_host("", ""));
        assert!(!same_host(".", ""));
    }

    #[test]
    fn only_rds_shaped_names_are_worth_asking_about() {
        let shape = |h| rds_shape(h).map(|s| (s.identifier, s.cluster));
        assert_eq!(
            shape("db-1.abcdefghij.us-east-1.rds.amazonaws.com"),
            Some(("db-1", false))
        );
        assert_eq!(
            shape("app.cluster-abcdefghij.eu-west-1.rds.amazonaws.com."),
            Some(("app", true))
        );
        assert_eq!(
            shape("app.CLUSTER-RO-abcdefghij.cn-north-1.rds.amazonaws.com.cn"),
            Some(("app", true))
        );
        for not in [
            "localhost",
            "127.0.0.1",
            "db.internal",
            "db-1.abcdefghij.us-east-1.example.com",
            "1db.abcdefghij.us-east-1.rds.amazonaws.com",
            "db-.abcdefghij.us-east-1.rds.amazonaws.com",
            "d--b.abcdefghij.us-east-1.rds.amazonaws.com",
            "d_b.abcdefghij.us-east-1.rds.amazonaws.com",
            "arn:aws:rds:us-east-1:1:db:x.a.us-east-1.rds.amazonaws.com",
            ".abcdefghij.us-east-1.rds.amazonaws.com",
            "db..us-east-1.rds.amazonaws.com",
        ] {
            assert_eq!(shape(not), None, "{not}");
        }
        assert!(valid_identifier(&"a".repeat(63)));
        assert!(!valid_identifier(&"a".repeat(64)));
    }
}
