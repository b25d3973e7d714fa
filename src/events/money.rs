//! [`Money`]: an amount as ClickHouse's `Decimal(18, 4)` holds it, exact.
//!
//! RowBinary sends a `Decimal(18, 4)` as the value times 10^4 in a
//! little-endian `i64`; [`Money`] is that integer, so no float ever touches
//! an amount on its way from the intake through the log into ClickHouse.

use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Decimal places of every money column.
pub const MONEY_SCALE: u32 = 4;

/// The largest scaled value `Decimal(18, 4)` holds: 18 nines.
const MAX_SCALED: i128 = 999_999_999_999_999_999;

/// An amount with exactly four decimal places, stored as ten-thousandths.
///
/// Serialized as the scaled `i64` for binary formats (RowBinary, the
/// segment log) and as a decimal string (`"12.5000"`) for human-readable
/// ones (the rejected files' JSON).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(i64);

/// Why a decimal is not a [`Money`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// More than four significant decimal places.
    #[error("amount {0} has more than 4 decimal places")]
    TooPrecise(Decimal),
    /// Beyond ±99,999,999,999,999.9999.
    #[error("amount {0} is out of range for Decimal(18, 4)")]
    OutOfRange(Decimal),
}

impl Money {
    /// Zero.
    pub const ZERO: Money = Money(0);

    /// The amount `scaled` ten-thousandths (`12_500` is 1.25); `None` when
    /// `Decimal(18, 4)` cannot hold it.
    pub const fn from_scaled(scaled: i64) -> Option<Money> {
        if (scaled as i128) > MAX_SCALED || (scaled as i128) < -MAX_SCALED {
            None
        } else {
            Some(Money(scaled))
        }
    }

    /// The amount in ten-thousandths.
    pub const fn scaled(self) -> i64 {
        self.0
    }

    /// `d` exactly, refusing what would need rounding (trailing zeros do
    /// not count: `1.50000` is fine) or what the column cannot hold.
    pub fn from_decimal(d: Decimal) -> Result<Money, MoneyError> {
        let mut exact = d.normalize();
        if exact.scale() > MONEY_SCALE {
            return Err(MoneyError::TooPrecise(d));
        }
        exact.rescale(MONEY_SCALE);
        let scaled = exact.mantissa();
        if !(-MAX_SCALED..=MAX_SCALED).contains(&scaled) {
            return Err(MoneyError::OutOfRange(d));
        }
        // The range check above bounds it well within i64.
        Ok(Money(scaled as i64))
    }

    /// The amount as a decimal with four places.
    pub fn to_decimal(self) -> Decimal {
        Decimal::new(self.0, MONEY_SCALE)
    }
}

/// Money as answers write it: at least two decimals, no trailing zeros
/// beyond them (`5.00`, `12.50`, `0.1234`).
pub fn money_text(d: Decimal) -> String {
    let mut n = d.normalize();
    if n.scale() < 2 {
        n.rescale(2);
    }
    n.to_string()
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.to_decimal(), f)
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            serializer.serialize_i64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Money, D::Error> {
        use serde::de::Error;
        if deserializer.is_human_readable() {
            let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
            let d: Decimal = text.parse().map_err(D::Error::custom)?;
            Money::from_decimal(d).map_err(D::Error::custom)
        } else {
            let scaled = i64::deserialize(deserializer)?;
            Money::from_scaled(scaled)
                .ok_or_else(|| D::Error::custom(format!("scaled amount {scaled} out of range")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<i64, ()>) {
        let d: Decimal = input.parse().unwrap();
        assert_eq!(
            Money::from_decimal(d).map(Money::scaled).map_err(|_| ()),
            expected,
            "{input}"
        );
    }

    #[test]
    fn decimals_convert_exactly_or_not_at_all() {
        check("0", Ok(0));
        check("1.25", Ok(12_500));
        check("-0.0001", Ok(-1));
        check("1.50000", Ok(15_000));
        check("0.00001", Err(()));
        check("12.34567", Err(()));
        check("99999999999999.9999", Ok(999_999_999_999_999_999));
        check("-99999999999999.9999", Ok(-999_999_999_999_999_999));
        check("100000000000000", Err(()));
    }

    #[test]
    fn text_and_binary_forms() {
        let m = Money::from_scaled(125_000).unwrap();
        assert_eq!(m.to_string(), "12.5000");
        assert_eq!(serde_json::to_string(&m).unwrap(), "\"12.5000\"");
        assert_eq!(serde_json::from_str::<Money>("\"12.5\"").unwrap(), m);
        let bytes = postcard::to_stdvec(&m).unwrap();
        assert_eq!(postcard::from_bytes::<Money>(&bytes).unwrap(), m);
        assert!(serde_json::from_str::<Money>("\"1.00001\"").is_err());
        assert_eq!(Money::from_scaled(i64::MAX), None);
    }
}
