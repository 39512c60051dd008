//! Exact money: integer pico-USD amounts and integer per-token prices.
//!
//! A price of `p` USD per million tokens is `p × 10⁶` micro-USD per MTok, which is
//! the same number as pico-USD per token. So `tokens × price` is an exact integer in
//! pico-USD, and sums of costs never touch floating point. Floats appear only when a
//! figure is shown to a person or serialised for JSON output.

use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Mul, Sub};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

const PICO_PER_USD: i128 = 1_000_000_000_000;
const PICO_PER_NANO: i128 = 1_000;

/// An amount of money in pico-USD (10⁻¹² USD).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(i128);

impl Money {
    pub const ZERO: Money = Money(0);

    pub const fn from_pico_usd(pico: i128) -> Money {
        Money(pico)
    }

    pub const fn from_whole_usd(usd: i64) -> Money {
        Money(usd as i128 * PICO_PER_USD)
    }

    pub const fn from_nano_usd(nano: i64) -> Money {
        Money(nano as i128 * PICO_PER_NANO)
    }

    /// Parses a decimal USD figure given as a float in a config file (e.g. `1500.0`,
    /// `2.05`). Rounds to the nearest micro-USD: catalog and config values never carry
    /// more precision than that, so this is a conversion, not an accumulation.
    pub fn from_usd_f64(usd: f64) -> Money {
        let micro = (usd * 1e6).round() as i128;
        Money(micro * 1_000_000)
    }

    pub const fn pico_usd(self) -> i128 {
        self.0
    }

    /// Rounded half away from zero to whole nano-USD, the ledger's unit.
    pub fn nano_usd(self) -> i64 {
        let rounded = if self.0 >= 0 {
            (self.0 + PICO_PER_NANO / 2) / PICO_PER_NANO
        } else {
            (self.0 - PICO_PER_NANO / 2) / PICO_PER_NANO
        };
        rounded.clamp(i64::MIN as i128, i64::MAX as i128) as i64
    }

    /// For display and JSON only.
    pub fn usd_f64(self) -> f64 {
        self.0 as f64 / PICO_PER_USD as f64
    }

    /// Rounded to whole cents, for display.
    pub fn cents(self) -> i128 {
        let half = PICO_PER_USD / 200;
        if self.0 >= 0 {
            (self.0 + half) / (PICO_PER_USD / 100)
        } else {
            (self.0 - half) / (PICO_PER_USD / 100)
        }
    }

    /// `self × numerator ÷ denominator`, rounded to the nearest pico-USD.
    pub fn mul_ratio(self, numerator: i128, denominator: i128) -> Money {
        if denominator == 0 {
            return Money::ZERO;
        }
        let product = self.0 * numerator;
        let quotient = product / denominator;
        let remainder = product % denominator;
        let rounded = if 2 * remainder.abs() >= denominator.abs() {
            quotient + product.signum() * denominator.signum()
        } else {
            quotient
        };
        Money(rounded)
    }

    pub fn max(self, other: Money) -> Money {
        if self >= other {
            self
        } else {
            other
        }
    }
}

impl Add for Money {
    type Output = Money;
    fn add(self, rhs: Money) -> Money {
        Money(self.0 + rhs.0)
    }
}

impl AddAssign for Money {
    fn add_assign(&mut self, rhs: Money) {
        self.0 += rhs.0;
    }
}

impl Sub for Money {
    type Output = Money;
    fn sub(self, rhs: Money) -> Money {
        Money(self.0 - rhs.0)
    }
}

impl Mul<i128> for Money {
    type Output = Money;
    fn mul(self, rhs: i128) -> Money {
        Money(self.0 * rhs)
    }
}

impl Sum for Money {
    fn sum<I: Iterator<Item = Money>>(iter: I) -> Money {
        iter.fold(Money::ZERO, Add::add)
    }
}

/// `$12,345.67`: thousands separators, two decimals.
impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cents = self.cents();
        let sign = if cents < 0 { "-" } else { "" };
        let cents = cents.abs();
        let whole = group_thousands(&(cents / 100).to_string());
        write!(f, "{sign}${whole}.{:02}", cents % 100)
    }
}

impl Money {
    /// Dollars to the micro-dollar below $1 (`$0.021340`, for the small sums of an eval
    /// or a shadow cap), to the cent with thousands separators from $1 up.
    pub fn fine(self) -> String {
        let nano = self.nano_usd();
        if nano.unsigned_abs() >= 1_000_000_000 {
            return self.to_string();
        }
        let sign = if nano < 0 { "-" } else { "" };
        let micro = (nano.unsigned_abs() + 500) / 1000;
        format!("{sign}${}.{:06}", micro / 1_000_000, micro % 1_000_000)
    }
}

/// Inserts `,` every three digits from the right: `1234567` → `1,234,567`.
pub fn group_thousands(digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, ch) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// A per-token price: micro-USD per million tokens, i.e. pico-USD per token.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct UsdPerMtok(i128);

impl UsdPerMtok {
    pub const ZERO: UsdPerMtok = UsdPerMtok(0);

    pub fn from_usd_f64(usd_per_mtok: f64) -> UsdPerMtok {
        UsdPerMtok((usd_per_mtok * 1e6).round() as i128)
    }

    pub const fn from_micro_usd(micro_usd_per_mtok: i128) -> UsdPerMtok {
        UsdPerMtok(micro_usd_per_mtok)
    }

    pub const fn micro_usd(self) -> i128 {
        self.0
    }

    /// Exact cost of `tokens` tokens.
    pub fn cost(self, tokens: u64) -> Money {
        Money(self.0 * tokens as i128)
    }

    pub fn usd_f64(self) -> f64 {
        self.0 as f64 / 1e6
    }

    /// This price scaled by `numerator / denominator` (e.g. a batch discount), rounded.
    pub fn scaled(self, numerator: i128, denominator: i128) -> UsdPerMtok {
        UsdPerMtok(Money(self.0).mul_ratio(numerator, denominator).0)
    }
}

impl<'de> Deserialize<'de> for UsdPerMtok {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = f64::deserialize(deserializer)?;
        if !value.is_finite() || value < 0.0 {
            return Err(serde::de::Error::custom(format!(
                "price {value} is not allowed: expected a finite number >= 0 (USD per million tokens)"
            )));
        }
        Ok(UsdPerMtok::from_usd_f64(value))
    }
}

/// Money in JSON output: USD as a number (display only; never summed again).
impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.usd_f64())
    }
}

impl Serialize for UsdPerMtok {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.usd_f64())
    }
}

/// Money in a config file: a finite, non-negative USD figure.
impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = f64::deserialize(deserializer)?;
        if !value.is_finite() || value < 0.0 {
            return Err(serde::de::Error::custom(format!(
                "amount {value} is not allowed: expected a finite number of USD >= 0"
            )));
        }
        Ok(Money::from_usd_f64(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_costs_are_exact() {
        // Haiku 4.5 input at $1.00/MTok: 10B tokens cost exactly $10,000 (the default Scenario 1).
        let haiku_in = UsdPerMtok::from_usd_f64(1.00);
        assert_eq!(haiku_in.cost(10_000_000_000), Money::from_whole_usd(10_000));
        // $0.10/MTok cache read: one token is 0.1 micro-USD = 100 nano-USD, no rounding.
        let cache_read = UsdPerMtok::from_usd_f64(0.10);
        assert_eq!(cache_read.cost(1).nano_usd(), 100);
        // Summing a million one-token costs gives exactly $0.10, unlike a float sum.
        let total: Money = (0..1_000_000).map(|_| cache_read.cost(1)).sum();
        assert_eq!(total, Money::from_pico_usd(100_000_000_000));
    }

    #[test]
    fn display_groups_thousands() {
        assert_eq!(Money::from_whole_usd(144_000).to_string(), "$144,000.00");
        assert_eq!(Money::from_usd_f64(-1234.5).to_string(), "-$1,234.50");
        assert_eq!(Money::from_usd_f64(0.004).to_string(), "$0.00");
        assert_eq!(group_thousands("1000000"), "1,000,000");
        // Small sums to the micro-dollar (rounded half up from nano-USD), large to the cent.
        assert_eq!(Money::from_nano_usd(21_295_400).fine(), "$0.021295");
        assert_eq!(Money::from_nano_usd(500).fine(), "$0.000001");
        assert_eq!(Money::from_nano_usd(-1_500).fine(), "-$0.000002");
        assert_eq!(Money::from_whole_usd(16_666).fine(), "$16,666.00");
        assert_eq!(Money::from_whole_usd(50).fine(), "$50.00");
        assert_eq!(group_thousands("999"), "999");
    }

    #[test]
    fn ratios_round_to_nearest() {
        let m = Money::from_pico_usd(10);
        assert_eq!(m.mul_ratio(1, 3), Money::from_pico_usd(3));
        assert_eq!(m.mul_ratio(2, 3), Money::from_pico_usd(7));
        assert_eq!(UsdPerMtok::from_usd_f64(5.0).scaled(1, 2).usd_f64(), 2.5);
    }
}
