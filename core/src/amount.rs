//! Amounts in base units: unsigned 128-bit integers written as plain decimal strings. Nothing
//! that could be read two ways is accepted: no sign, no point, no exponent, no leading zero,
//! no whitespace, and never zero.

use std::{fmt, str::FromStr};

/// Most digits a u128 has.
const MAX_DIGITS: usize = 39;

/// An amount of base units, never zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(u128);

/// Why an amount string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AmountError {
    /// Empty string.
    #[error("amount is empty; write the amount in base units as decimal digits")]
    Empty,
    /// Zero.
    #[error("amount must be greater than zero")]
    Zero,
    /// A character other than 0-9 (sign, point, exponent, space, …).
    #[error("amount must be decimal digits only, in base units (no sign, point, exponent or spaces); found `{0}`")]
    InvalidCharacter(char),
    /// Leading zero.
    #[error("amount must not have leading zeros")]
    LeadingZero,
    /// Does not fit in 128 bits.
    #[error("amount does not fit in an unsigned 128-bit integer")]
    Overflow,
}

impl Amount {
    /// Parses a canonical decimal amount.
    pub fn parse(s: &str) -> Result<Amount, AmountError> {
        if s.is_empty() {
            return Err(AmountError::Empty);
        }
        if let Some(c) = s.chars().find(|c| !c.is_ascii_digit()) {
            return Err(AmountError::InvalidCharacter(c));
        }
        if s == "0" || s.bytes().all(|b| b == b'0') {
            return Err(AmountError::Zero);
        }
        if s.starts_with('0') {
            return Err(AmountError::LeadingZero);
        }
        if s.len() > MAX_DIGITS {
            return Err(AmountError::Overflow);
        }
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
    }

    #[test]
    fn refuses_everything_ambiguous() {
        use AmountError::*;
        for (s, e) in [
            ("", Empty),
            ("0", Zero),
            ("000", Zero),
            ("-1", InvalidCharacter('-')),
            ("+1", InvalidCharacter('+')),
            ("1.0", InvalidCharacter('.')),
            ("1e18", InvalidCharacter('e')),
            (" 1", InvalidCharacter(' ')),
            ("1 ", InvalidCharacter(' ')),
            ("0x10", InvalidCharacter('x')),
            ("01", LeadingZero),
            ("١", InvalidCharacter('١')),
            ("340282366920938463463374607431768211456", Overflow),
            ("1000000000000000000000000000000000000000", Overflow),
            ("99999999999999999999999999999999999999999999", Overflow),
        ] {
            assert_eq!(Amount::parse(s), Err(e), "{s:?}");
        }
        assert_eq!(Amount::new(0), Err(Zero));
    }
}
