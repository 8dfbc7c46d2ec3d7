//! Amounts in base units: unsigned 128-bit integers written as plain decimal strings.
//!
//! Nothing that could be read two ways is accepted: no sign, no decimal point, no exponent, no
//! leading zero, no whitespace, and never zero. The string form is therefore canonical: an
//! amount has exactly one accepted spelling, and [`Amount`]'s `Display` produces it.

use std::{fmt, str::FromStr};

/// Most digits a `u128` has (`u128::MAX` is 39 digits long).
pub const MAX_DIGITS: usize = 39;

/// An amount of base units (wei, satoshi, sun, lamport, …), never zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(u128);

/// Why an amount was refused; each variant is one rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AmountError {
    /// The string is empty.
    #[error("amount is empty; write the amount in base units as decimal digits, e.g. `1500000`")]
    Empty,
    /// The value is zero.
    #[error("amount must be greater than zero")]
    Zero,
    /// A character other than `0`-`9` (sign, point, exponent, space, …).
    #[error(
        "amount must be plain decimal digits in base units (no sign, decimal point, exponent, \
         separators or spaces); found {0:?}"
    )]
    InvalidCharacter(char),
    /// The digits start with `0`.
    #[error("amount must not have leading zeros")]
    LeadingZero,
    /// More digits than any `u128` has.
    #[error("amount has {0} digits; at most {MAX_DIGITS} are allowed (unsigned 128-bit)")]
    TooManyDigits(usize),
    /// 39 digits, but larger than `u128::MAX`.
    #[error("amount is larger than the unsigned 128-bit maximum {}", u128::MAX)]
    Overflow,
}

impl Amount {
    /// Parses a canonical decimal amount in base units.
    pub fn parse(s: &str) -> Result<Amount, AmountError> {
        if s.is_empty() {
            return Err(AmountError::Empty);
        }
        if let Some(c) = s.chars().find(|c| !c.is_ascii_digit()) {
            return Err(AmountError::InvalidCharacter(c));
        }
        if s.bytes().all(|b| b == b'0') {
            return Err(AmountError::Zero);
        }
        if s.starts_with('0') {
            return Err(AmountError::LeadingZero);
        }
        if s.len() > MAX_DIGITS {
            return Err(AmountError::TooManyDigits(s.len()));
        }
        // Only ASCII digits, no sign, at most 39 of them: the one way `u128::from_str` can still
        // fail is a value above `u128::MAX`.
        s.parse::<u128>()
            .map(Amount)
            .map_err(|_| AmountError::Overflow)
    }

    /// An amount from an integer; zero is refused.
    pub fn new(v: u128) -> Result<Amount, AmountError> {
        if v == 0 {
            Err(AmountError::Zero)
        } else {
            Ok(Amount(v))
        }
    }

    /// The value in base units.
    pub fn get(self) -> u128 {
        self.0
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for Amount {
    type Err = AmountError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Amounts travel in documents as decimal strings (JSON numbers lose precision above 2^53).
impl serde::Serialize for Amount {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for Amount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Amount::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_canonical_amounts() {
        assert_eq!(Amount::parse("1").unwrap().get(), 1);
        assert_eq!(
            Amount::parse("1000000000000000000").unwrap().get(),
            10u128.pow(18)
        );
        assert_eq!(
            Amount::parse(&u128::MAX.to_string()).unwrap().get(),
            u128::MAX
        );
        assert_eq!("42".parse::<Amount>().unwrap(), Amount::new(42).unwrap());
        assert_eq!(
            Amount::new(u128::MAX).unwrap().to_string(),
            u128::MAX.to_string()
        );
    }

    #[test]
    fn refuses_everything_ambiguous_with_the_rule_that_failed() {
        use AmountError::*;
        for (s, e) in [
            ("", Empty),
            ("0", Zero),
            ("000", Zero),
            ("-1", InvalidCharacter('-')),
            ("+1", InvalidCharacter('+')),
            ("1.0", InvalidCharacter('.')),
            ("1e18", InvalidCharacter('e')),
            ("1E18", InvalidCharacter('E')),
            (" 1", InvalidCharacter(' ')),
            ("1 ", InvalidCharacter(' ')),
            ("1_000", InvalidCharacter('_')),
            ("1,000", InvalidCharacter(',')),
            ("0x10", InvalidCharacter('x')),
            ("١", InvalidCharacter('١')),
            ("01", LeadingZero),
            ("0000000000000000000000000000000000000000001", LeadingZero),
            ("340282366920938463463374607431768211456", Overflow),
            ("999999999999999999999999999999999999999", Overflow),
            (
                "1000000000000000000000000000000000000000",
                TooManyDigits(40),
            ),
        ] {
            assert_eq!(Amount::parse(s), Err(e), "{s:?}");
        }
        assert_eq!(Amount::new(0), Err(Zero));
    }

    #[test]
    fn messages_say_what_to_do() {
        let m = Amount::parse("1.5").unwrap_err().to_string();
        assert!(m.contains("base units") && m.contains("'.'"), "{m}");
        let m = Amount::parse(&"9".repeat(40)).unwrap_err().to_string();
        assert!(m.contains("40 digits") && m.contains("39"), "{m}");
    }
}
