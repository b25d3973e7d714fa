//! `GET /api/v1/tiers` (the rules) and `POST /api/v1/tiers/evaluate` (a
//! round now, or as of a past instant): performance tiers and bonuses on
//! demand. The decisions are [`crate::partners::tiers::decide`] and
//! [`crate::partners::bonuses::decide`], pure; their facts come from
//! ClickHouse.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ApiJson, ErrorBody};
use super::AdminState;
use crate::config::TiersConfig;
use crate::events::money::money_text;
use crate::partners::activity::{now_s, unix_seconds};
use crate::partners::bonuses::PeriodKind;
use crate::partners::promote::{evaluate, TierError, TierRound};
use crate::partners::standing::StandingReader;
use crate::partners::tiers::TierMetric;

/// What the tier routes read and decide by.
pub struct TierSettings {
    /// Partner standings from ClickHouse.
    pub reader: StandingReader,
    /// `[tiers]`.
    pub rules: TiersConfig,
}

/// One tier's rule.
#[derive(Debug, Serialize, ToSchema)]
pub struct TierRule {
    /// The tier.
    pub name: String,
    /// `conversions`, `revenue` or `payout` (approved conversions).
    pub metric: TierMetric,
    /// At least this much, a decimal string.
    pub threshold: String,
    /// Over the trailing days.
    pub window_days: u32,
}

/// One bonus rule.
#[derive(Debug, Serialize, ToSchema)]
pub struct BonusRuleView {
    /// The rule, part of every bonus id it pays.
    pub name: String,
    /// `conversions`, `revenue` or `payout` (approved conversions).
    pub metric: TierMetric,
    /// At least this much in the period, a decimal string.
    pub threshold: String,
    /// The UTC calendar period counted.
    pub period: PeriodKind,
    /// What the bonus pays, a decimal string.
    pub amount: String,
    /// ISO 4217 code of `amount`.
    pub currency: String,
}

/// The program's tier and bonus rules.
#[derive(Debug, Serialize, ToSchema)]
pub struct TierRules {
    /// Lowest first.
    pub levels: Vec<TierRule>,
    /// Bonuses, each paid once per partner and period.
    pub bonuses: Vec<BonusRuleView>,
    /// Days below its tier before a partner is demoted.
    pub grace_days: u32,
    /// Seconds between two automatic rounds.
    pub evaluate_interval_secs: u64,
}

/// `POST /api/v1/tiers/evaluate`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvaluateRequest {
    /// RFC 3339 instant to read standings as of (default now; not in the
    /// future): to replay a period, oldest first.
    pub at: Option<String>,
}

/// The tier and bonus rules (`[tiers]` in the configuration).
#[utoipa::path(get, path = "/api/v1/tiers", tag = "partners",
    responses(
        (status = 200, description = "the rules", body = TierRules),
        (status = 401, description = "missing or wrong bearer token", body = ErrorBody),
    ), security(("bearer" = [])))]
pub async fn get_tiers(State(s): State<Arc<AdminState>>) -> Json<TierRules> {
    let r = &s.tiers.rules;
    Json(TierRules {
        levels: r
            .levels
            .iter()
            .map(|l| TierRule {
                name: l.name.clone(),
                metric: l.metric,
                threshold: money_text(l.threshold),
                window_days: l.window_days,
            })
            .collect(),
        bonuses: r
            .bonuses
            .iter()
            .map(|b| BonusRuleView {
                name: b.name.clone(),
                metric: b.metric,
                threshold: b.threshold.to_string(),
                period: b.period,
                amount: money_text(b.amount),
                currency: b.currency.clone(),
            })
            .collect(),
        grace_days: r.grace_days,
        evaluate_interval_secs: r.evaluate_interval_secs,
    })
}

/// Evaluates every partner's tier now (or as of `at`): promotions at once,
/// demotions after the grace period, each change recorded in the partner's
/// `tier_history` with its reason. Then bonuses: each rule's metric over
/// the period holding `at` (from its start) and the period before (whole);
/// a bonus earned is recorded once in the payout ledger and listed in
/// `bonuses` by the one round that recorded it. Running it twice, or on
/// two nodes at once, changes nothing more and pays nothing twice.
#[utoipa::path(post, path = "/api/v1/tiers/evaluate", tag = "partners",
    request_body(content = EvaluateRequest, description = "optional; `{}` evaluates now"),
    responses(
        (status = 200, description = "what the round changed and the bonuses it recorded", body = TierRound),
        (status = 400, description = "a bad `at` (named in `field`)", body = ErrorBody),
        (status = 401, description = "missing or wrong bearer token", body = ErrorBody),
        (status = 503, description = "clickhouse or redis unavailable", body = ErrorBody),
    ), security(("bearer" = [])))]
pub async fn post_evaluate(
    State(s): State<Arc<AdminState>>,
    ApiJson(req): ApiJson<EvaluateRequest>,
) -> Result<Json<TierRound>, ApiError> {
    let now = now_s();
    let at = match req.at.as_deref() {
        None => now,
        Some(t) => {
            let secs = unix_seconds(t);
            if secs == 0 || humantime::parse_rfc3339_weak(t).is_err() {
                return Err(ApiError::invalid("at", "must be an RFC 3339 time"));
            }
            if secs > now {
                return Err(ApiError::invalid("at", "must not be in the future"));
            }
            secs
        }
    };
    let catalog = s.catalog()?;
    let round = evaluate(catalog, &s.tiers.reader, &s.payouts, &s.tiers.rules, at)
        .await
        .map_err(|e| match e {
            TierError::Standing(e) => {
                ApiError::unavailable(format!("clickhouse cannot read partner standings: {e}"))
            }
            TierError::Catalog(e) => ApiError::from(e),
            TierError::Bonus(e) => ApiError::unavailable(format!(
                "bonuses not awarded: {e}; tier changes stand, run it again"
            )),
        })?;
    Ok(Json(round))
}
