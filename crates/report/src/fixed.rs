//! Self-hosted fixed costs: each backend's catalog deployment priced by
//! `costfloor_core::cost::selfhost_cost` (as `plan` prices it) and prorated over the
//! report's period in exact integer arithmetic.

use costfloor_core::catalog::{Catalog, Ownership};
use costfloor_core::cost::selfhost_cost;
use costfloor_core::money::Money;

use crate::period::MS_PER_HOUR;
use crate::ReportError;

/// A gateway backend and the catalog deployment it names (`deployment = "…"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendDeployment {
    pub backend: String,
    pub deployment: String,
}

/// One self-hosted backend's fixed cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedCost {
    pub backend: String,
    /// The deployment's current catalog id (a former id in the config resolves to it).
    pub deployment: String,
    pub gpus: u32,
    pub ownership: Ownership,
    /// The deployment's monthly cost, as `plan` shows it.
    pub monthly: Money,
    /// `monthly × period ÷ month`, rounded to the pico-USD.
    pub period: Money,
}

/// A month as the catalog counts it (`hours_per_month`, 730 by default), in ms.
pub fn month_ms(catalog: &Catalog) -> i64 {
    (catalog.assumptions.hours_per_month * MS_PER_HOUR as f64).round() as i64
}

/// Prices every backend's deployment and prorates it over `period_ms`.
pub fn fixed_costs(
    catalog: &Catalog,
    backends: &[BackendDeployment],
    period_ms: i64,
) -> Result<Vec<FixedCost>, ReportError> {
    let month = i128::from(month_ms(catalog));
    backends
        .iter()
        .map(|b| {
            let deployment = catalog.deployment(&b.deployment).map_err(|source| {
                ReportError::UnknownDeployment {
                    backend: b.backend.clone(),
                    source: Box::new(source),
                }
            })?;
            let cost = selfhost_cost(catalog, deployment, deployment.gpus, deployment.ownership)
                .map_err(|source| ReportError::Cost {
                    backend: b.backend.clone(),
                    source: Box::new(source),
                })?;
            Ok(FixedCost {
                backend: b.backend.clone(),
                deployment: deployment.id.clone(),
                gpus: deployment.gpus,
                ownership: deployment.ownership,
                monthly: cost.total,
                period: cost.total.mul_ratio(i128::from(period_ms), month),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_is_24_of_730_hours_of_the_monthly_cost() {
        let catalog = Catalog::embedded().unwrap();
        let backends = [BackendDeployment {
            backend: "llama".to_string(),
            deployment: "llama-3.3-70b-4xa100".to_string(),
        }];
        let costs = fixed_costs(&catalog, &backends, 86_400_000).unwrap();
        // The seed deployment: 4 × $1,500 rental + $2,000 ops = $8,000 a month (the
        // article's figure, checked in cost.rs). A day: $8,000 × 24 / 730 =
        // $263.013698630136986… = 263,013,698,630,137 pico-USD rounded.
        assert_eq!(costs[0].monthly, Money::from_whole_usd(8_000));
        assert_eq!(costs[0].period, Money::from_pico_usd(263_013_698_630_137));
        let err = fixed_costs(
            &catalog,
            &[BackendDeployment {
                backend: "llama".to_string(),
                deployment: "llama-3.3-70b-4xa10".to_string(),
            }],
            1,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("backend `llama`.deployment") && err.contains("llama-3.3-70b-4xa100"),
            "{err}"
        );
    }
}
