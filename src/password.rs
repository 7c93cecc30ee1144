//! Password policy (docs/protocol.md 5.1) and password generation from an injected CSPRNG.
//!
//! [`PasswordPolicy::from_env`] reads AWS's variables once at start-up and rejects every invalid
//! combination there, for both engine families, so that [`PasswordPolicy::generate`] cannot fail.
//!
//! Every draw is exactly uniform: characters and shuffle positions come from
//! [`rand::distr::Uniform`], whose `sample` rejects the out-of-zone values (Lemire's method).
//! `choose`, `shuffle` and `random_range` are avoided on purpose: they go through
//! `sample_single`, which rand 0.10 leaves very slightly biased unless its `unbiased` feature is on.

use rand::CryptoRng;
use rand::distr::{Distribution, Uniform};

use crate::credentials::Password;
use crate::engine::Family;
use crate::env::Env;
use crate::error::Error;

const PASSWORD_LENGTH: &str = "PASSWORD_LENGTH";
const EXCLUDE_CHARACTERS: &str = "EXCLUDE_CHARACTERS";
const EXCLUDE_NUMBERS: &str = "EXCLUDE_NUMBERS";
const EXCLUDE_PUNCTUATION: &str = "EXCLUDE_PUNCTUATION";
const EXCLUDE_UPPERCASE: &str = "EXCLUDE_UPPERCASE";
const EXCLUDE_LOWERCASE: &str = "EXCLUDE_LOWERCASE";
const REQUIRE_EACH_INCLUDED_TYPE: &str = "REQUIRE_EACH_INCLUDED_TYPE";

/// `PASSWORD_LENGTH` when unset.
const DEFAULT_LENGTH: u16 = 32;
/// The largest `PASSWORD_LENGTH` accepted, as in `GetRandomPassword`.
const MAX_LENGTH: u16 = 4096;
const LENGTH_RANGE: &str = "must be an integer from 1 to 4096";

const LOWERCASE: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
const UPPERCASE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGITS: &[u8] = b"0123456789";
/// AWS's 32 punctuation characters (`GetRandomPassword`); space is not one of them.
const PUNCTUATION: &[u8] = b"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

/// Validated password policy, built from `PASSWORD_LENGTH`, `EXCLUDE_CHARACTERS`, `EXCLUDE_NUMBERS`,
/// `EXCLUDE_PUNCTUATION`, `EXCLUDE_UPPERCASE`, `EXCLUDE_LOWERCASE` and `REQUIRE_EACH_INCLUDED_TYPE`.
///
/// Every constructor validates against both engine families, so any value of this type generates
/// passwords for either family. `Debug` is safe to log: the policy holds no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// 1 to 4096.
    length: u16,
    /// `None`: the family's default set; `Some("")`: no exclusions.
    exclude_characters: Option<String>,
    exclude_numbers: bool,
    exclude_punctuation: bool,
    exclude_uppercase: bool,
    exclude_lowercase: bool,
    require_each_included_type: bool,
}

impl Default for PasswordPolicy {
    /// The policy with every variable unset: 32 characters from all four classes, one of each at
    /// least, without the family's default excluded characters.
    fn default() -> Self {
        PasswordPolicy {
            length: DEFAULT_LENGTH,
            exclude_characters: None,
            exclude_numbers: false,
            exclude_punctuation: false,
            exclude_uppercase: false,
            exclude_lowercase: false,
            require_each_included_type: true,
        }
    }
}

impl PasswordPolicy {
    /// Reads the policy variables of `env` (the process environment in `main`, a map in tests) by
    /// the reference's rules ([`crate::env`]); an unset variable takes the reference's default.
    ///
    /// Returns the policy and warnings for boolean values that are not one of `true`, `1`, `y`,
    /// `yes`, `false`, `0`, `n`, `no` (case-insensitive); such values read as false, as in the
    /// reference. Warnings name the variable and quote the value, which is not secret.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the variable when `PASSWORD_LENGTH` is not an integer from 1 to 4096
    /// (an empty value included), when the exclusions leave no character class, or when
    /// `PASSWORD_LENGTH` is below the number of classes `REQUIRE_EACH_INCLUDED_TYPE` requires.
    pub fn from_env(env: &Env) -> Result<(Self, Vec<String>), Error> {
        let length = match env.aws(PASSWORD_LENGTH) {
            None => DEFAULT_LENGTH,
            Some(value) => parse_length(value)?,
        };
        let mut warnings = Vec::new();
        let mut flag = |variable: &str, default: bool| env.flag(variable, default, &mut warnings);
        let policy = PasswordPolicy {
            length,
            exclude_characters: env.aws(EXCLUDE_CHARACTERS).map(str::to_owned),
            exclude_numbers: flag(EXCLUDE_NUMBERS, false),
            exclude_punctuation: flag(EXCLUDE_PUNCTUATION, false),
            exclude_uppercase: flag(EXCLUDE_UPPERCASE, false),
            exclude_lowercase: flag(EXCLUDE_LOWERCASE, false),
            require_each_included_type: flag(REQUIRE_EACH_INCLUDED_TYPE, true),
        }
        .validated()?;
        Ok((policy, warnings))
    }

    /// The password length in characters (1 to 4096).
    pub fn length(&self) -> u16 {
        self.length
    }

    /// Generates a password for an engine of `family`, whose `EXCLUDE_CHARACTERS` default applies
    /// when the variable is unset.
    ///
    /// `rng` must be a cryptographically secure generator (the bound is rand 0.10's [`CryptoRng`]):
    /// `rand::rng()` in production, a seeded `rand::rngs::StdRng` in tests. With
    /// `REQUIRE_EACH_INCLUDED_TYPE`, one character is drawn from each remaining class, the rest from
    /// all of them, and the result is shuffled; otherwise every character is drawn from all of them.
    pub fn generate<R: CryptoRng + ?Sized>(&self, family: Family, rng: &mut R) -> Password {
        let classes = self.classes(family);
        let all: Vec<u8> = classes.concat();
        let length = usize::from(self.length);
        let mut chars = Vec::with_capacity(length);
        if self.require_each_included_type {
            chars.extend(
                classes
                    .iter()
                    .map(|class| class[uniform_index(class.len(), rng)]),
            );
        }
        let any = uniform_below(all.len());
        while chars.len() < length {
            chars.push(all[any.sample(rng)]);
        }
        if self.require_each_included_type {
            shuffle(&mut chars, rng);
        }
        Password::new(chars.iter().map(|&c| char::from(c)).collect::<String>())
    }

    /// The character classes left for `family` after every exclusion, empty ones dropped.
    fn classes(&self, family: Family) -> Vec<Vec<u8>> {
        let chosen = match &self.exclude_characters {
            Some(set) => set.as_str(),
            None => family.default_excluded_characters(),
        };
        let excluded = format!("{chosen}{}", family.refused_characters());
        [
            (LOWERCASE, self.exclude_lowercase),
            (UPPERCASE, self.exclude_uppercase),
            (DIGITS, self.exclude_numbers),
            (PUNCTUATION, self.exclude_punctuation),
        ]
        .into_iter()
        .filter(|&(_, flagged)| !flagged)
        .map(|(class, _)| {
            class
                .iter()
                .copied()
                .filter(|&c| !excluded.contains(char::from(c)))
                .collect::<Vec<u8>>()
        })
        .filter(|class| !class.is_empty())
        .collect()
    }

    /// `self` if every family can generate from it, else the error naming the variable to change.
    fn validated(self) -> Result<Self, Error> {
        let mut required = 0;
        for family in Family::ALL {
            let classes = self.classes(family);
            if classes.is_empty() {
                return Err(self.nothing_left());
            }
            required = required.max(classes.len());
        }
        if self.require_each_included_type && usize::from(self.length) < required {
            return Err(config(
                PASSWORD_LENGTH,
                format!(
                    "must be at least {required} because REQUIRE_EACH_INCLUDED_TYPE requires one \
                     character from each of the {required} included character classes (it is {}); \
                     raise it or set REQUIRE_EACH_INCLUDED_TYPE to false",
                    self.length
                ),
            ));
        }
        Ok(self)
    }

    /// The error for exclusions that leave no class: the four flags when they exclude every class
    /// by themselves, else `EXCLUDE_CHARACTERS`, which emptied the classes they left in (the family
    /// defaults never empty punctuation, so it is set).
    fn nothing_left(&self) -> Error {
        if self.exclude_numbers
            && self.exclude_punctuation
            && self.exclude_uppercase
            && self.exclude_lowercase
        {
            config(
                EXCLUDE_LOWERCASE,
                "is true like EXCLUDE_NUMBERS, EXCLUDE_PUNCTUATION and EXCLUDE_UPPERCASE, which \
                 excludes every character class; set at least one of them to false"
                    .to_owned(),
            )
        } else {
            config(
                EXCLUDE_CHARACTERS,
                "removes every character that EXCLUDE_NUMBERS, EXCLUDE_PUNCTUATION, \
                 EXCLUDE_UPPERCASE and EXCLUDE_LOWERCASE leave in; allow at least one letter, digit \
                 or punctuation character"
                    .to_owned(),
            )
        }
    }
}

/// Parses `PASSWORD_LENGTH`; surrounding whitespace is allowed, as Python's `int()` allows it.
fn parse_length(value: &str) -> Result<u16, Error> {
    if value.is_empty() {
        return Err(config(
            PASSWORD_LENGTH,
            "is set but empty; set it to an integer from 1 to 4096, or unset it for the default \
             of 32"
                .to_owned(),
        ));
    }
    match value.trim().parse::<u16>() {
        Ok(length) if (1..=MAX_LENGTH).contains(&length) => Ok(length),
        _ => Err(config(
            PASSWORD_LENGTH,
            format!("{LENGTH_RANGE} (it is {value:?})"),
        )),
    }
}

fn config(variable: &'static str, problem: String) -> Error {
    Error::Config { variable, problem }
}

/// The exactly uniform distribution over `0..n`, for `n > 0`.
fn uniform_below(n: usize) -> Uniform<usize> {
    match Uniform::new(0, n) {
        Ok(uniform) => uniform,
        // Classes and their union are non-empty by validation, and the shuffle starts at 2.
        Err(_) => unreachable!("uniform range over an empty set"),
    }
}

/// One exactly uniform draw from `0..n`, for `n > 0`.
fn uniform_index<R: CryptoRng + ?Sized>(n: usize, rng: &mut R) -> usize {
    uniform_below(n).sample(rng)
}

/// Fisher–Yates (Durstenfeld) shuffle with exactly uniform draws.
fn shuffle<R: CryptoRng + ?Sized>(chars: &mut [u8], rng: &mut R) {
    for i in (1..chars.len()).rev() {
        chars.swap(i, uniform_index(i + 1, rng));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    const FAMILIES: [Family; 4] = Family::ALL;

    fn from_pairs(pairs: &[(&str, &str)]) -> Result<(PasswordPolicy, Vec<String>), Error> {
        PasswordPolicy::from_env(&Env::from_pairs(pairs))
    }

    fn policy(pairs: &[(&str, &str)]) -> PasswordPolicy {
        let (policy, warnings) = from_pairs(pairs).expect("valid policy");
        assert!(warnings.is_empty(), "unexpected warnings {warnings:?}");
        policy
    }

    /// The variable and problem of a configuration error.
    fn config_error(pairs: &[(&str, &str)]) -> (&'static str, String) {
        match from_pairs(pairs) {
            Err(Error::Config { variable, problem }) => (variable, problem),
            Err(other) => panic!("expected a configuration error for {pairs:?}, got {other:?}"),
            Ok((policy, _)) => panic!("expected an error for {pairs:?}, got {policy:?}"),
        }
    }

    fn generate(policy: &PasswordPolicy, family: Family, seed: u64) -> String {
        let mut rng = StdRng::seed_from_u64(seed);
        policy.generate(family, &mut rng).expose().to_owned()
    }

    /// Every character of `passwords` generated from seeds `0..count`.
    fn all_chars(policy: &PasswordPolicy, family: Family, count: u64) -> HashSet<char> {
        (0..count)
            .flat_map(|seed| generate(policy, family, seed).chars().collect::<Vec<_>>())
            .collect()
    }

    fn set(bytes: &[u8]) -> HashSet<char> {
        bytes.iter().map(|&b| char::from(b)).collect()
    }

    /// `chars` without what `family`'s servers refuse, which no setting lets in.
    fn without_refused(chars: HashSet<char>, family: Family) -> HashSet<char> {
        chars
            .into_iter()
            .filter(|c| !family.refused_characters().contains(*c))
            .collect()
    }

    #[test]
    fn cache_users_never_get_what_their_services_refuse() {
        let policy = policy(&[("EXCLUDE_CHARACTERS", "")]);
        let seen = all_chars(&policy, Family::CacheUser, 400);
        assert!(!seen.iter().any(|c| ",\"/@".contains(*c)), "{seen:?}");
        assert!(seen.contains(&':') && seen.contains(&'\''));
    }

    fn printable() -> HashSet<char> {
        ('!'..='~').collect()
    }

    #[test]
    fn unset_variables_give_the_default_policy() {
        let (policy, warnings) = from_pairs(&[]).expect("valid");
        assert_eq!(policy, PasswordPolicy::default());
        assert!(warnings.is_empty());
        assert_eq!(policy.length(), 32);
    }

    #[test]
    fn default_length_is_32_for_both_families() {
        let policy = PasswordPolicy::default();
        for family in FAMILIES {
            for seed in 0..50 {
                assert_eq!(generate(&policy, family, seed).len(), 32);
            }
        }
    }

    #[test]
    fn custom_lengths() {
        let one = policy(&[
            ("PASSWORD_LENGTH", "1"),
            ("REQUIRE_EACH_INCLUDED_TYPE", "false"),
        ]);
        let four = policy(&[("PASSWORD_LENGTH", "4")]);
        let max = policy(&[("PASSWORD_LENGTH", "4096")]);
        let padded = policy(&[("PASSWORD_LENGTH", " 40\n")]);
        for family in FAMILIES {
            for seed in 0..20 {
                assert_eq!(generate(&one, family, seed).len(), 1);
                assert_eq!(generate(&four, family, seed).len(), 4);
                assert_eq!(generate(&max, family, seed).len(), 4096);
                assert_eq!(generate(&padded, family, seed).len(), 40);
            }
        }
    }

    #[test]
    fn family_defaults_exclude_their_characters_and_nothing_else() {
        let policy = PasswordPolicy::default();
        for (family, excluded) in [
            (Family::Postgres, ":/@\"'\\"),
            (Family::Mysql, "/@\"'\\"),
            (Family::Redis, ":/@\"'\\"),
        ] {
            let expected: HashSet<char> = printable()
                .into_iter()
                .filter(|&c| !excluded.contains(c))
                .collect();
            // 400 × 32 draws over 88 or 89 characters: every allowed one shows up.
            assert_eq!(all_chars(&policy, family, 400), expected, "{family:?}");
        }
    }

    #[test]
    fn each_included_class_is_present_when_required() {
        for length in ["4", "5", "32"] {
            let policy = policy(&[("PASSWORD_LENGTH", length)]);
            for family in FAMILIES {
                for seed in 0..1000 {
                    let password = generate(&policy, family, seed);
                    for class in [LOWERCASE, UPPERCASE, DIGITS, PUNCTUATION] {
                        assert!(
                            password.bytes().any(|c| class.contains(&c)),
                            "seed {seed}, length {length}: a class is missing"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn empty_exclude_characters_allows_quote_and_backslash() {
        let policy = policy(&[("EXCLUDE_CHARACTERS", "")]);
        for family in FAMILIES {
            assert_eq!(
                all_chars(&policy, family, 400),
                without_refused(printable(), family)
            );
        }
    }

    #[test]
    fn exclude_characters_replaces_the_family_default() {
        let policy = policy(&[("EXCLUDE_CHARACTERS", "aB3%")]);
        let expected: HashSet<char> = printable()
            .into_iter()
            .filter(|c| !"aB3%".contains(*c))
            .collect();
        for family in FAMILIES {
            assert_eq!(
                all_chars(&policy, family, 400),
                without_refused(expected.clone(), family)
            );
        }
    }

    #[test]
    fn each_exclude_flag_removes_its_class() {
        for (variable, class) in [
            ("EXCLUDE_NUMBERS", DIGITS),
            ("EXCLUDE_PUNCTUATION", PUNCTUATION),
            ("EXCLUDE_UPPERCASE", UPPERCASE),
            ("EXCLUDE_LOWERCASE", LOWERCASE),
        ] {
            let policy = policy(&[(variable, "true"), ("EXCLUDE_CHARACTERS", "")]);
            let expected: HashSet<char> = printable().difference(&set(class)).copied().collect();
            for family in FAMILIES {
                assert_eq!(
                    all_chars(&policy, family, 400),
                    without_refused(expected.clone(), family),
                    "{variable}"
                );
            }
        }
    }

    #[test]
    fn flags_and_characters_combine() {
        let read = policy(&[
            ("EXCLUDE_NUMBERS", "1"),
            ("EXCLUDE_PUNCTUATION", "yes"),
            ("EXCLUDE_UPPERCASE", "Y"),
            ("EXCLUDE_CHARACTERS", "xyz"),
            ("PASSWORD_LENGTH", "64"),
        ]);
        assert_eq!(read.length(), 64);
        let expected: HashSet<char> = ('a'..='w').collect();
        assert_eq!(all_chars(&read, Family::Mysql, 100), expected);
        assert!(policy(&[("EXCLUDE_LOWERCASE", "TRUE")]).exclude_lowercase);
    }

    #[test]
    fn a_class_emptied_by_exclusions_counts_as_excluded() {
        // Three classes are left, so three characters suffice even with one of each required.
        let policy = policy(&[
            ("EXCLUDE_CHARACTERS", "0123456789"),
            ("PASSWORD_LENGTH", "3"),
        ]);
        for family in FAMILIES {
            for seed in 0..500 {
                let password = generate(&policy, family, seed);
                assert!(!password.bytes().any(|c| c.is_ascii_digit()));
                assert!(password.bytes().any(|c| c.is_ascii_lowercase()));
                assert!(password.bytes().any(|c| c.is_ascii_uppercase()));
                assert!(password.bytes().any(|c| c.is_ascii_punctuation()));
            }
        }
    }

    #[test]
    fn length_below_the_required_classes_is_an_error() {
        let (variable, problem) = config_error(&[("PASSWORD_LENGTH", "3")]);
        assert_eq!(variable, "PASSWORD_LENGTH");
        assert!(problem.contains("at least 4"), "{problem}");
        assert!(problem.contains("REQUIRE_EACH_INCLUDED_TYPE"), "{problem}");
        // Without the requirement, or with a class excluded, the same length is fine.
        policy(&[
            ("PASSWORD_LENGTH", "3"),
            ("REQUIRE_EACH_INCLUDED_TYPE", "false"),
        ]);
        policy(&[("PASSWORD_LENGTH", "3"), ("EXCLUDE_NUMBERS", "true")]);
    }

    #[test]
    fn every_class_excluded_is_an_error() {
        let flags = [
            ("EXCLUDE_NUMBERS", "true"),
            ("EXCLUDE_PUNCTUATION", "true"),
            ("EXCLUDE_UPPERCASE", "true"),
            ("EXCLUDE_LOWERCASE", "true"),
        ];
        let (variable, problem) = config_error(&flags);
        assert_eq!(variable, "EXCLUDE_LOWERCASE");
        let mut with_empty_set = flags.to_vec();
        with_empty_set.push(("EXCLUDE_CHARACTERS", ""));
        assert_eq!(config_error(&with_empty_set).0, "EXCLUDE_LOWERCASE");
        assert!(
            problem.contains("set at least one of them to false"),
            "{problem}"
        );

        let everything: String = printable().into_iter().collect();
        let (variable, _) = config_error(&[("EXCLUDE_CHARACTERS", &everything)]);
        assert_eq!(variable, "EXCLUDE_CHARACTERS");

        // Flags and characters together: only lowercase is left by the flags, and the set
        // removes it.
        let (variable, _) = config_error(&[
            ("EXCLUDE_NUMBERS", "true"),
            ("EXCLUDE_PUNCTUATION", "true"),
            ("EXCLUDE_UPPERCASE", "true"),
            ("EXCLUDE_CHARACTERS", "abcdefghijklmnopqrstuvwxyz"),
        ]);
        assert_eq!(variable, "EXCLUDE_CHARACTERS");
    }

    #[test]
    fn bad_lengths_are_errors() {
        for value in [
            "",
            " ",
            "abc",
            "0",
            "4097",
            "-1",
            "1.5",
            "32x",
            "65536",
            "99999999999",
        ] {
            let (variable, problem) = config_error(&[("PASSWORD_LENGTH", value)]);
            assert_eq!(variable, "PASSWORD_LENGTH", "{value:?}");
            assert!(problem.contains("an integer from 1 to 4096"), "{problem}");
        }
        let (_, problem) = config_error(&[("PASSWORD_LENGTH", "")]);
        assert!(problem.contains("set but empty"), "{problem}");
    }

    #[test]
    fn boolean_spellings() {
        let cases = [
            ("true", true, false),
            ("TRUE", true, false),
            ("True", true, false),
            ("1", true, false),
            ("y", true, false),
            ("Y", true, false),
            ("yes", true, false),
            ("YeS", true, false),
            ("false", false, false),
            ("FALSE", false, false),
            ("0", false, false),
            ("n", false, false),
            ("No", false, false),
            ("on", false, true),
            ("TRUE ", false, true),
            (" yes", false, true),
            ("", false, true),
            ("2", false, true),
            ("off", false, true),
        ];
        for (spelling, expected, warns) in cases {
            let (policy, warnings) = from_pairs(&[("EXCLUDE_NUMBERS", spelling)]).expect("valid");
            assert_eq!(policy.exclude_numbers, expected, "{spelling:?}");
            assert_eq!(
                warnings.len(),
                usize::from(warns),
                "{spelling:?}: {warnings:?}"
            );
            for warning in warnings {
                assert!(warning.contains("EXCLUDE_NUMBERS"), "{warning}");
                assert!(warning.contains(&format!("{spelling:?}")), "{warning}");
            }
        }
    }

    #[test]
    fn unrecognised_require_each_included_type_reads_as_false_with_a_warning() {
        let (policy, warnings) =
            from_pairs(&[("REQUIRE_EACH_INCLUDED_TYPE", "on")]).expect("valid");
        assert!(!policy.require_each_included_type);
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("REQUIRE_EACH_INCLUDED_TYPE"));
        assert!(warnings[0].contains("\"on\""));
    }

    #[test]
    fn warnings_are_reported_per_variable() {
        let (_, warnings) = from_pairs(&[
            ("EXCLUDE_UPPERCASE", "TRUE "),
            ("EXCLUDE_LOWERCASE", "on"),
            ("EXCLUDE_PUNCTUATION", "yes"),
        ])
        .expect("valid");
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings.iter().any(|w| w.contains("EXCLUDE_UPPERCASE")));
        assert!(warnings.iter().any(|w| w.contains("EXCLUDE_LOWERCASE")));
    }

    #[test]
    fn error_problems_are_lowercase_and_say_what_to_do() {
        let everything: String = printable().into_iter().collect();
        for pairs in [
            vec![("PASSWORD_LENGTH", "abc")],
            vec![("PASSWORD_LENGTH", "")],
            vec![("PASSWORD_LENGTH", "2")],
            vec![("EXCLUDE_CHARACTERS", everything.as_str())],
        ] {
            let (_, problem) = config_error(&pairs);
            assert!(
                problem.starts_with(|c: char| c.is_ascii_lowercase()),
                "{problem}"
            );
            assert!(!problem.ends_with('.'), "{problem}");
        }
    }

    /// Pearson's chi-square statistic of `counts` against a uniform distribution.
    fn chi_square(counts: &[u64]) -> f64 {
        let total: u64 = counts.iter().sum();
        let expected = total as f64 / counts.len() as f64;
        counts
            .iter()
            .map(|&n| (n as f64 - expected).powi(2) / expected)
            .sum()
    }

    #[test]
    fn characters_are_uniform() {
        // Digits only: a 10-character alphabet, 25 × 4096 = 102,400 draws.
        let policy = policy(&[
            ("EXCLUDE_PUNCTUATION", "true"),
            ("EXCLUDE_UPPERCASE", "true"),
            ("EXCLUDE_LOWERCASE", "true"),
            ("PASSWORD_LENGTH", "4096"),
        ]);
        let mut counts = [0_u64; 10];
        for seed in 0..25 {
            for c in generate(&policy, Family::Postgres, seed).bytes() {
                counts[usize::from(c - b'0')] += 1;
            }
        }
        // 9 degrees of freedom: the statistic exceeds 27.88 with probability 0.001.
        let statistic = chi_square(&counts);
        assert!(statistic < 27.88, "chi-square {statistic} for {counts:?}");

        // The same test catches a skewed generator.
        let mut skewed = counts;
        skewed[0] += 600;
        skewed[9] -= 600;
        assert!(chi_square(&skewed) > 27.88);
    }

    #[test]
    fn required_characters_are_shuffled_uniformly() {
        // Two one-character classes, `0` and `a`: "0a" and "a0" are equally likely.
        let policy = policy(&[
            ("EXCLUDE_PUNCTUATION", "true"),
            ("EXCLUDE_UPPERCASE", "true"),
            ("EXCLUDE_CHARACTERS", "123456789bcdefghijklmnopqrstuvwxyz"),
            ("PASSWORD_LENGTH", "2"),
        ]);
        let mut rng = StdRng::seed_from_u64(7);
        let digit_first = (0..10_000)
            .filter(|_| policy.generate(Family::Mysql, &mut rng).expose() == "0a")
            .count();
        // 10,000 fair coin flips: 5,000 ± 50 (σ); 4σ either side.
        assert!((4800..=5200).contains(&digit_first), "{digit_first}");
    }

    #[test]
    fn seeds_give_different_passwords_and_the_same_seed_the_same() {
        let policy = PasswordPolicy::default();
        let passwords: HashSet<String> = (0..200)
            .map(|seed| generate(&policy, Family::Postgres, seed))
            .collect();
        assert_eq!(passwords.len(), 200);
        assert_eq!(
            generate(&policy, Family::Postgres, 42),
            generate(&policy, Family::Postgres, 42)
        );
    }

    #[test]
    fn generates_from_the_thread_rng() {
        let password = PasswordPolicy::default().generate(Family::Postgres, &mut rand::rng());
        assert_eq!(password.expose().len(), 32);
        assert_eq!(format!("{password:?}"), "Password(<redacted>)");
    }
}
