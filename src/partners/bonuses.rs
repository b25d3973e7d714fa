//! Bonuses: a one-off amount a partner earns by reaching a threshold in a
//! calendar period (`big_month`: 100 approved conversions in a month pays
//! 500.00 USD). Pure: the rules come from `[[tiers.bonuses]]`, the facts
//! from [`super::standing`], and [`decide`] records its reason.
//! [`super::award`] runs it in the tier round and records each bonus
//! once in the payout ledger.
//!
//! Periods are UTC calendar periods (months, ISO weeks from Monday,
//! quarters). A round counts the period holding its instant from the
//! period's start, and the period before in full: a threshold reached in
//! a period's last hours (after its last round) or by conversions approved
//! after it ended still pays, once.

use chrono::{DateTime, Datelike, Days, Months, NaiveDate};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::tiers::TierMetric;
use crate::model::PartnerStatus;

/// The calendar period a bonus counts over, in UTC.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum PeriodKind {
    /// Monday to Sunday (ISO weeks).
    Week,
    /// A calendar month.
    Month,
    /// January–March, April–June, July–September, October–December.
    Quarter,
}

impl PeriodKind {
    /// Its name in rules.
    pub fn name(self) -> &'static str {
        match self {
            PeriodKind::Week => "week",
            PeriodKind::Month => "month",
            PeriodKind::Quarter => "quarter",
        }
    }
}

/// One bonus rule, e.g. 500.00 USD once a partner has 100 approved
/// conversions in a month. Written as a table, or as
/// `name:metric:threshold:period:amount:currency` text
/// (`big_month:conversions:100:month:500.00:USD`), which fits an
/// environment variable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RuleForm")]
pub struct BonusRule {
    /// The rule's name: part of every bonus id, so `[A-Za-z0-9_.-]`, 1 to
    /// 64 characters.
    pub name: String,
    /// What the threshold counts (approved conversions, as for tiers).
    pub metric: TierMetric,
    /// At least this much in the period (a decimal string).
    pub threshold: Decimal,
    /// The calendar period counted.
    pub period: PeriodKind,
    /// What the bonus pays (a decimal string, at most 4 decimals).
    pub amount: Decimal,
    /// ISO 4217 code of `amount`.
    pub currency: String,
}

/// The ways a [`BonusRule`] may be written.
#[derive(Deserialize)]
#[serde(untagged)]
enum RuleForm {
    Table(RuleTable),
    Text(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleTable {
    name: String,
    metric: TierMetric,
    threshold: Decimal,
    period: PeriodKind,
    amount: Decimal,
    currency: String,
}

impl TryFrom<RuleForm> for BonusRule {
    type Error = String;

    fn try_from(form: RuleForm) -> Result<BonusRule, String> {
        let t = match form {
            RuleForm::Table(t) => t,
            RuleForm::Text(text) => {
                let bad = || {
                    format!(
                        "{text:?} is not name:metric:threshold:period:amount:currency \
                         (e.g. big_month:conversions:100:month:500.00:USD; metric conversions, \
                         revenue or payout; period week, month or quarter)"
                    )
                };
                let parts: Vec<&str> = text.split(':').map(str::trim).collect();
                let [name, metric, threshold, period, amount, currency] = parts[..] else {
                    return Err(bad());
                };
                RuleTable {
                    name: name.to_string(),
                    metric: match metric {
                        "conversions" => TierMetric::Conversions,
                        "revenue" => TierMetric::Revenue,
                        "payout" => TierMetric::Payout,
                        _ => return Err(bad()),
                    },
                    threshold: threshold.parse().map_err(|_| bad())?,
                    period: match period {
                        "week" => PeriodKind::Week,
                        "month" => PeriodKind::Month,
                        "quarter" => PeriodKind::Quarter,
                        _ => return Err(bad()),
                    },
                    amount: amount.parse().map_err(|_| bad())?,
                    currency: currency.to_string(),
                }
            }
        };
        Ok(BonusRule {
            name: t.name,
            metric: t.metric,
            threshold: t.threshold,
            period: t.period,
            amount: t.amount,
            currency: t.currency,
        })
    }
}

/// Whether `name` may name a rule: it is part of bonus ids and of the
/// `name:...` text form, so no `:`, `,` or spaces.
pub fn valid_rule_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// One calendar period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    /// Its first day.
    pub start: NaiveDate,
    /// The day after its last.
    pub end: NaiveDate,
    /// How reasons name it: `2026-03`, `2026-W10`, `2026-Q1`.
    pub label: String,
}

impl Period {
    /// Its first instant, Unix seconds.
    pub fn start_secs(&self) -> i64 {
        midnight(self.start)
    }

    /// The instant it ends (exclusive), Unix seconds.
    pub fn end_secs(&self) -> i64 {
        midnight(self.end)
    }
}

/// Midnight UTC of `day`, Unix seconds.
fn midnight(day: NaiveDate) -> i64 {
    day.and_hms_opt(0, 0, 0)
        .map_or(0, |t| t.and_utc().timestamp())
}

/// The `kind` period holding `at` (Unix seconds, UTC).
pub fn period_of(kind: PeriodKind, at: i64) -> Period {
    let day = DateTime::from_timestamp(at, 0).map_or(NaiveDate::MIN, |t| t.date_naive());
    // Every `with_day(1)` and month arithmetic below stays inside chrono's
    // range for any u32 instant; MIN/MAX only guard the impossible.
    let first_of = |y: i32, m: u32| NaiveDate::from_ymd_opt(y, m, 1).unwrap_or(NaiveDate::MIN);
    let plus_months = |d: NaiveDate, n: u32| {
        d.checked_add_months(Months::new(n))
            .unwrap_or(NaiveDate::MAX)
    };
    match kind {
        PeriodKind::Week => {
            let back = u64::from(day.weekday().num_days_from_monday());
            let start = day.checked_sub_days(Days::new(back)).unwrap_or(day);
            let week = start.iso_week();
            Period {
                start,
                end: start
                    .checked_add_days(Days::new(7))
                    .unwrap_or(NaiveDate::MAX),
                label: format!("{}-W{:02}", week.year(), week.week()),
            }
        }
        PeriodKind::Month => {
            let start = first_of(day.year(), day.month());
            Period {
                start,
                end: plus_months(start, 1),
                label: format!("{}-{:02}", day.year(), day.month()),
            }
        }
        PeriodKind::Quarter => {
            let q = (day.month() - 1) / 3;
            let start = first_of(day.year(), q * 3 + 1);
            Period {
                start,
                end: plus_months(start, 3),
                label: format!("{}-Q{}", day.year(), q + 1),
            }
        }
    }
}

/// A period and how far into it a round counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// The period.
    pub period: Period,
    /// The end of what is counted (exclusive, Unix seconds): the round's
    /// instant, or the period's end once it is over.
    pub until: i64,
}

/// What a round as of `at` counts for `kind`: the period before `at`'s in
/// full, then `at`'s own from its start to `at`.
pub fn windows(kind: PeriodKind, at: i64) -> [Window; 2] {
    let current = period_of(kind, at);
    let previous = period_of(kind, current.start_secs() - 1);
    [
        Window {
            until: previous.end_secs(),
            period: previous,
        },
        Window {
            period: current,
            until: at,
        },
    ]
}

/// The id of the bonus `rule` pays `partner` for the period starting
/// `start`: the same on every node and in every round, so the ledger
/// holds it once.
pub fn bonus_id(rule: &str, partner: u64, start: NaiveDate) -> String {
    format!("{rule}:{partner}:{start}")
}

/// One rule's verdict for one partner and period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BonusDecision {
    /// Whether the bonus is earned.
    pub earned: bool,
    /// Why, in words: the facts and the rule.
    pub reason: String,
}

/// Whether a partner of `status` whose `value` of `rule.metric` in
/// `period` (so far) is as given earns `rule`'s bonus.
pub fn decide(
    rule: &BonusRule,
    status: PartnerStatus,
    value: Decimal,
    period: &Period,
) -> BonusDecision {
    let facts = format!("{value} {} in {}", rule.metric.name(), period.label);
    if value < rule.threshold {
        return BonusDecision {
            earned: false,
            reason: format!("{facts} < {} ({})", rule.threshold, rule.name),
        };
    }
    if status != PartnerStatus::Active {
        // A suspended partner is not paid on its own say; should it be
        // reinstated within the next period, the next round pays it.
        return BonusDecision {
            earned: false,
            reason: format!(
                "{facts} >= {} ({}), but the partner is {status}: no bonus",
                rule.threshold, rule.name
            ),
        };
    }
    BonusDecision {
        earned: true,
        reason: format!("{facts} >= {} ({})", rule.threshold, rule.name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn at(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp()
    }

    fn rule(metric: TierMetric, threshold: &str) -> BonusRule {
        BonusRule {
            name: "big_month".into(),
            metric,
            threshold: d(threshold),
            period: PeriodKind::Month,
            amount: d("500.00"),
            currency: "USD".into(),
        }
    }

    #[test]
    fn periods() {
        use PeriodKind::*;
        // (kind, instant) -> (start, end, label)
        let cases = [
            (
                Month,
                "2026-03-15T10:00:00Z",
                ("2026-03-01", "2026-04-01", "2026-03"),
            ),
            (
                Month,
                "2026-03-01T00:00:00Z",
                ("2026-03-01", "2026-04-01", "2026-03"),
            ),
            (
                Month,
                "2026-02-28T23:59:59Z",
                ("2026-02-01", "2026-03-01", "2026-02"),
            ),
            (
                Month,
                "2025-12-31T23:59:59Z",
                ("2025-12-01", "2026-01-01", "2025-12"),
            ),
            (
                Month,
                "2024-02-29T12:00:00Z",
                ("2024-02-01", "2024-03-01", "2024-02"),
            ),
            // 2026-03-04 is a Wednesday; its week began Monday the 2nd.
            (
                Week,
                "2026-03-04T08:00:00Z",
                ("2026-03-02", "2026-03-09", "2026-W10"),
            ),
            (
                Week,
                "2026-03-02T00:00:00Z",
                ("2026-03-02", "2026-03-09", "2026-W10"),
            ),
            (
                Week,
                "2026-03-08T23:59:59Z",
                ("2026-03-02", "2026-03-09", "2026-W10"),
            ),
            // A week across New Year belongs to its ISO week-year.
            (
                Week,
                "2026-01-01T12:00:00Z",
                ("2025-12-29", "2026-01-05", "2026-W01"),
            ),
            (
                Quarter,
                "2026-03-31T23:59:59Z",
                ("2026-01-01", "2026-04-01", "2026-Q1"),
            ),
            (
                Quarter,
                "2026-04-01T00:00:00Z",
                ("2026-04-01", "2026-07-01", "2026-Q2"),
            ),
            (
                Quarter,
                "2026-11-30T00:00:00Z",
                ("2026-10-01", "2027-01-01", "2026-Q4"),
            ),
        ];
        for (kind, instant, (start, end, label)) in cases {
            let p = period_of(kind, at(instant));
            assert_eq!(
                (p.start, p.end, p.label.as_str()),
                (day(start), day(end), label),
                "{kind:?} {instant}"
            );
            assert!(p.start_secs() <= at(instant) && at(instant) < p.end_secs());
        }
    }

    #[test]
    fn a_round_counts_the_previous_period_whole_and_its_own_so_far() {
        let now = at("2026-04-02T09:30:00Z");
        let [prev, cur] = windows(PeriodKind::Month, now);
        assert_eq!(
            (prev.period.label.as_str(), prev.until),
            ("2026-03", at("2026-04-01T00:00:00Z"))
        );
        assert_eq!(prev.period.start_secs(), at("2026-03-01T00:00:00Z"));
        assert_eq!((cur.period.label.as_str(), cur.until), ("2026-04", now));
        let [prev, cur] = windows(PeriodKind::Quarter, at("2026-01-01T00:00:00Z"));
        assert_eq!(
            (prev.period.label.as_str(), cur.period.label.as_str()),
            ("2025-Q4", "2026-Q1")
        );
    }

    #[test]
    fn bonus_ids_are_the_rule_partner_and_period_start() {
        assert_eq!(
            bonus_id("big_month", 7, day("2026-03-01")),
            "big_month:7:2026-03-01"
        );
    }

    #[test]
    fn the_table() {
        use PartnerStatus::*;
        use TierMetric::*;
        let march = period_of(PeriodKind::Month, at("2026-03-20T00:00:00Z"));
        // (case, metric, threshold, status, value) -> (earned, reason)
        let cases = [
            ("reaches it", Conversions, "100", Active, "100", (true, "100 conversions in 2026-03 >= 100 (big_month)")),
            ("goes past it", Conversions, "100", Active, "130", (true, "130 conversions in 2026-03 >= 100 (big_month)")),
            ("one short", Conversions, "100", Active, "99", (false, "99 conversions in 2026-03 < 100 (big_month)")),
            ("nothing yet", Conversions, "100", Active, "0", (false, "0 conversions in 2026-03 < 100 (big_month)")),
            ("revenue, to the cent", Revenue, "10000.00", Active, "10000.00", (true, "10000.00 revenue in 2026-03 >= 10000.00 (big_month)")),
            ("revenue, a cent short", Revenue, "10000.00", Active, "9999.99", (false, "9999.99 revenue in 2026-03 < 10000.00 (big_month)")),
            ("payout", Payout, "250", Active, "250.0000", (true, "250.0000 payout in 2026-03 >= 250 (big_month)")),
            ("suspended", Conversions, "100", Suspended, "120", (false, "120 conversions in 2026-03 >= 100 (big_month), but the partner is suspended: no bonus")),
            ("applied", Conversions, "100", Applied, "120", (false, "120 conversions in 2026-03 >= 100 (big_month), but the partner is applied: no bonus")),
            ("suspended and short", Conversions, "100", Suspended, "5", (false, "5 conversions in 2026-03 < 100 (big_month)")),
        ];
        for (case, metric, threshold, status, value, (earned, reason)) in cases {
            let got = decide(&rule(metric, threshold), status, d(value), &march);
            assert_eq!(
                (got.earned, got.reason.as_str()),
                (earned, reason),
                "{case}"
            );
        }
    }

    #[test]
    fn rules_read_as_tables_or_text() {
        let text: BonusRule = serde_json::from_value(serde_json::json!(
            "big_month:conversions:100:month:500.00:USD"
        ))
        .unwrap();
        assert_eq!(text, rule(TierMetric::Conversions, "100"));
        let table: BonusRule = serde_json::from_value(serde_json::json!({
            "name": "big_month", "metric": "conversions", "threshold": "100",
            "period": "month", "amount": "500.00", "currency": "USD"
        }))
        .unwrap();
        assert_eq!(table, text);
        for bad in [
            "big_month:conversions:100:month:500.00",
            "big_month:sales:100:month:500.00:USD",
            "big_month:conversions:100:year:500.00:USD",
            "big_month:conversions:lots:month:500.00:USD",
            "big_month:conversions:100:month:five:USD",
        ] {
            let e = serde_json::from_value::<BonusRule>(serde_json::json!(bad));
            assert!(e.is_err(), "{bad}");
        }
    }

    #[test]
    fn rule_names() {
        for (name, ok) in [
            ("big_month", true),
            ("q1-2026.top", true),
            ("", false),
            ("big month", false),
            ("a:b", false),
            ("a,b", false),
            (&"x".repeat(65) as &str, false),
        ] {
            assert_eq!(valid_rule_name(name), ok, "{name:?}");
        }
    }
}
