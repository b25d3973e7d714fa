//! Performance tiers: which tier a partner's recent results earn, and when
//! it moves there. Pure: the facts come from [`super::standing`], the
//! rules from `[tiers]`, and the decision records its reason.
//!
//! Promotion is at once (the partner earned it today); demotion only once
//! the partner has stayed below its tier for the whole grace period, so a
//! slow fortnight does not cost a gold partner its rate. A tier the rules
//! do not name (set by hand, such as `vip`) is the operator's: the rules
//! leave it alone.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// What a tier's threshold is counted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TierMetric {
    /// Approved conversions.
    Conversions,
    /// Approved conversions' amounts.
    Revenue,
    /// Approved conversions' payouts.
    Payout,
}

impl TierMetric {
    /// Its name in rules and reasons.
    pub fn name(self) -> &'static str {
        match self {
            TierMetric::Conversions => "conversions",
            TierMetric::Revenue => "revenue",
            TierMetric::Payout => "payout",
        }
    }
}

/// One tier and what earns it, e.g. `gold` at 50 conversions in 90 days.
/// Written as a table, or as `name:metric:threshold:window_days` text
/// (`gold:conversions:50:90`), which fits an environment variable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "LevelForm")]
pub struct TierLevel {
    /// The tier's name, as `payout_by_tier` rules name it.
    pub name: String,
    /// What the threshold counts.
    pub metric: TierMetric,
    /// At least this much (a decimal string: `"50"`, `"2500.00"`).
    pub threshold: Decimal,
    /// Over the trailing days, today included.
    pub window_days: u32,
}

/// The ways a [`TierLevel`] may be written.
#[derive(Deserialize)]
#[serde(untagged)]
enum LevelForm {
    Table(LevelTable),
    Text(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LevelTable {
    name: String,
    metric: TierMetric,
    threshold: Decimal,
    window_days: u32,
}

impl TryFrom<LevelForm> for TierLevel {
    type Error = String;

    fn try_from(form: LevelForm) -> Result<TierLevel, String> {
        let t = match form {
            LevelForm::Table(t) => t,
            LevelForm::Text(text) => {
                let bad = || {
                    format!(
                        "{text:?} is not name:metric:threshold:window_days \
                         (e.g. gold:conversions:50:90; metric conversions, revenue or payout)"
                    )
                };
                let parts: Vec<&str> = text.split(':').map(str::trim).collect();
                let [name, metric, threshold, window] = parts[..] else {
                    return Err(bad());
                };
                LevelTable {
                    name: name.to_string(),
                    metric: match metric {
                        "conversions" => TierMetric::Conversions,
                        "revenue" => TierMetric::Revenue,
                        "payout" => TierMetric::Payout,
                        _ => return Err(bad()),
                    },
                    threshold: threshold.parse().map_err(|_| bad())?,
                    window_days: window.parse().map_err(|_| bad())?,
                }
            }
        };
        Ok(TierLevel {
            name: t.name,
            metric: t.metric,
            threshold: t.threshold,
            window_days: t.window_days,
        })
    }
}

/// A partner's results over each window the rules use.
pub trait Facts {
    /// `metric` over the trailing `window_days`.
    fn value(&self, metric: TierMetric, window_days: u32) -> Decimal;
}

/// The highest of `levels` (lowest first) whose threshold the facts meet,
/// with the reason; `None`: below them all.
pub fn earned<'a>(levels: &'a [TierLevel], facts: &dyn Facts) -> Option<(&'a TierLevel, String)> {
    levels.iter().rev().find_map(|l| {
        let v = facts.value(l.metric, l.window_days);
        (v >= l.threshold).then(|| {
            (
                l,
                format!(
                    "{v} {} in {} days >= {} ({})",
                    l.metric.name(),
                    l.window_days,
                    l.threshold,
                    l.name
                ),
            )
        })
    })
}

/// Where a partner stands before a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing<'a> {
    /// Its tier now (none: the base, below every level).
    pub tier: Option<&'a str>,
    /// Since when (Unix seconds) its results have been below its tier, if
    /// they are.
    pub below_since: Option<i64>,
}

/// What to do with one partner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierDecision {
    /// Its tier after the decision.
    pub tier: Option<String>,
    /// Since when it has been below that tier (kept while in grace).
    pub below_since: Option<i64>,
    /// `Some` when the tier changes.
    pub change: Option<TierChangeKind>,
    /// Why, in words: the facts and the rule.
    pub reason: String,
}

/// Which way a tier moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TierChangeKind {
    /// Up, at once.
    Promotion,
    /// Down, after the grace period.
    Demotion,
}

/// Decides a partner's tier from where it stands and what `levels`
/// (lowest first) say its `facts` earn, at `now` (Unix seconds), with
/// demotions held back `grace_days`.
pub fn decide(
    levels: &[TierLevel],
    standing: &Standing<'_>,
    facts: &dyn Facts,
    now: i64,
    grace_days: u32,
) -> TierDecision {
    let rank = |name: Option<&str>| match name {
        None => Some(0),
        Some(n) => levels.iter().position(|l| l.name == n).map(|i| i + 1),
    };
    let keep = |below_since, reason: String| TierDecision {
        tier: standing.tier.map(str::to_string),
        below_since,
        change: None,
        reason,
    };
    let Some(current) = rank(standing.tier) else {
        return keep(
            None,
            format!(
                "tier {:?} is not one of the rules' tiers: set by hand, left alone",
                standing.tier.unwrap_or_default()
            ),
        );
    };
    let (target, why) = match earned(levels, facts) {
        Some((l, why)) => (rank(Some(&l.name)).unwrap_or(0), why),
        None => (0, "below every tier's threshold".to_string()),
    };
    let name = |r: usize| (r > 0).then(|| levels[r - 1].name.clone());
    if target > current {
        return TierDecision {
            tier: name(target),
            below_since: None,
            change: Some(TierChangeKind::Promotion),
            reason: format!("promotion: {why}"),
        };
    }
    if target == current {
        return keep(None, format!("stays: {why}"));
    }
    let since = standing.below_since.unwrap_or(now);
    let grace_ends = since + i64::from(grace_days) * 86_400;
    if now >= grace_ends {
        TierDecision {
            tier: name(target),
            below_since: None,
            change: Some(TierChangeKind::Demotion),
            reason: format!(
                "demotion: {why}, below {} for {} days (grace {grace_days})",
                standing.tier.unwrap_or_default(),
                (now - since) / 86_400
            ),
        }
    } else {
        keep(
            Some(since),
            format!(
                "in grace: {why}; demoted after {} days below (grace {grace_days}) unless results recover",
                (grace_ends - now + 86_399) / 86_400
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::str::FromStr;

    struct Table(HashMap<(TierMetric, u32), Decimal>);

    impl Facts for Table {
        fn value(&self, metric: TierMetric, window_days: u32) -> Decimal {
            self.0
                .get(&(metric, window_days))
                .copied()
                .unwrap_or_default()
        }
    }

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn levels() -> Vec<TierLevel> {
        vec![
            TierLevel {
                name: "silver".into(),
                metric: TierMetric::Conversions,
                threshold: d("10"),
                window_days: 30,
            },
            TierLevel {
                name: "gold".into(),
                metric: TierMetric::Conversions,
                threshold: d("50"),
                window_days: 90,
            },
            TierLevel {
                name: "platinum".into(),
                metric: TierMetric::Revenue,
                threshold: d("10000.00"),
                window_days: 90,
            },
        ]
    }

    const DAY: i64 = 86_400;
    const NOW: i64 = 1_780_000_000;

    #[test]
    fn the_table() {
        use TierChangeKind::{Demotion, Promotion};
        // (case, tier, below_since, conv 30d, conv 90d, revenue 90d) ->
        // (tier, below_since, change, reason starts with)
        #[allow(clippy::type_complexity)]
        let cases: &[(
            &str,
            Option<&str>,
            Option<i64>,
            &str,
            &str,
            &str,
            (Option<&str>, Option<i64>, Option<TierChangeKind>, &str),
        )] = &[
            (
                "new partner, nothing yet",
                None,
                None,
                "0",
                "0",
                "0",
                (None, None, None, "stays: below every"),
            ),
            (
                "reaches silver",
                None,
                None,
                "10",
                "10",
                "0",
                (
                    Some("silver"),
                    None,
                    Some(Promotion),
                    "promotion: 10 conversions in 30 days >= 10 (silver)",
                ),
            ),
            (
                "skips to gold at once",
                None,
                None,
                "60",
                "60",
                "0",
                (
                    Some("gold"),
                    None,
                    Some(Promotion),
                    "promotion: 60 conversions in 90 days >= 50 (gold)",
                ),
            ),
            (
                "revenue beats counts",
                Some("silver"),
                None,
                "1",
                "1",
                "10000.00",
                (
                    Some("platinum"),
                    None,
                    Some(Promotion),
                    "promotion: 10000.00 revenue",
                ),
            ),
            (
                "one short of silver",
                None,
                None,
                "9",
                "9",
                "9999.99",
                (None, None, None, "stays: below every"),
            ),
            (
                "gold holds",
                Some("gold"),
                Some(NOW - 5 * DAY),
                "0",
                "50",
                "0",
                (Some("gold"), None, None, "stays: 50 conversions in 90 days"),
            ),
            (
                "gold slips: grace starts",
                Some("gold"),
                None,
                "12",
                "49",
                "0",
                (
                    Some("gold"),
                    Some(NOW),
                    None,
                    "in grace: 12 conversions in 30 days >= 10 (silver)",
                ),
            ),
            (
                "still in grace",
                Some("gold"),
                Some(NOW - 29 * DAY),
                "12",
                "49",
                "0",
                (Some("gold"), Some(NOW - 29 * DAY), None, "in grace"),
            ),
            (
                "grace over: down one",
                Some("gold"),
                Some(NOW - 30 * DAY),
                "12",
                "49",
                "0",
                (
                    Some("silver"),
                    None,
                    Some(Demotion),
                    "demotion: 12 conversions in 30 days >= 10 (silver), below gold for 30 days",
                ),
            ),
            (
                "grace over: down to base",
                Some("gold"),
                Some(NOW - 40 * DAY),
                "0",
                "3",
                "0",
                (None, None, Some(Demotion), "demotion: below every"),
            ),
            (
                "recovers in grace",
                Some("gold"),
                Some(NOW - 20 * DAY),
                "0",
                "55",
                "0",
                (Some("gold"), None, None, "stays"),
            ),
            (
                "promoted out of grace",
                Some("silver"),
                Some(NOW - 20 * DAY),
                "0",
                "55",
                "0",
                (Some("gold"), None, Some(Promotion), "promotion"),
            ),
            (
                "hand-set tier",
                Some("vip"),
                None,
                "0",
                "0",
                "0",
                (
                    Some("vip"),
                    None,
                    None,
                    "tier \"vip\" is not one of the rules' tiers",
                ),
            ),
        ];
        for (case, tier, below, c30, c90, r90, (want_tier, want_below, want_change, want_reason)) in
            cases
        {
            let facts = Table(HashMap::from([
                ((TierMetric::Conversions, 30), d(c30)),
                ((TierMetric::Conversions, 90), d(c90)),
                ((TierMetric::Revenue, 90), d(r90)),
            ]));
            let standing = Standing {
                tier: *tier,
                below_since: *below,
            };
            let got = decide(&levels(), &standing, &facts, NOW, 30);
            assert_eq!(got.tier.as_deref(), *want_tier, "{case}: {got:?}");
            assert_eq!(got.below_since, *want_below, "{case}: {got:?}");
            assert_eq!(got.change, *want_change, "{case}: {got:?}");
            assert!(
                got.reason.starts_with(want_reason),
                "{case}: {}",
                got.reason
            );
        }
    }

    #[test]
    fn a_second_run_on_the_same_facts_changes_nothing() {
        let facts = Table(HashMap::from([((TierMetric::Conversions, 90), d("70"))]));
        let first = decide(
            &levels(),
            &Standing {
                tier: None,
                below_since: None,
            },
            &facts,
            NOW,
            30,
        );
        assert_eq!(first.change, Some(TierChangeKind::Promotion));
        let again = Standing {
            tier: first.tier.as_deref(),
            below_since: first.below_since,
        };
        let second = decide(&levels(), &again, &facts, NOW, 30);
        assert_eq!(
            (second.change, second.tier.as_deref()),
            (None, Some("gold"))
        );
    }
}
