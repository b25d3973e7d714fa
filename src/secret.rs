//! Comparing a presented secret with a stored one without telling, by the
//! time taken, how much of a guess was right.

use subtle::ConstantTimeEq;

/// True when `given` is `expected`, compared in constant time for equal
/// lengths; an empty `expected` matches nothing (a secret never set).
pub fn matches(given: &str, expected: &str) -> bool {
    !expected.is_empty()
        && given.len() == expected.len()
        && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn matches() {
        for (given, expected, ok) in [
            ("tok-abc", "tok-abc", true),
            ("tok-abd", "tok-abc", false),
            ("tok-ab", "tok-abc", false),
            ("", "", false),
            ("x", "", false),
        ] {
            assert_eq!(
                super::matches(given, expected),
                ok,
                "{given:?} {expected:?}"
            );
        }
    }
}
