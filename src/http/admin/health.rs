//! `GET /api/v1/partners/health`: how each partner is doing, so partner
//! managers notice the ones going quiet (the verdict is
//! [`crate::partners::health::judge`], pure; its facts come from ClickHouse).

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::AdminState;
use crate::events::money::money_text;
use crate::partners::activity::{now_s, ActivityReader};
use crate::partners::health::{HealthReason, HealthStatus};
use crate::partners::pause::all_partners;

/// What the health route reads and how it judges.
pub struct HealthSettings {
    /// Partner activity from ClickHouse.
    pub reader: ActivityReader,
    /// Days of silence that make a partner inactive (`health.inactive_days`).
    pub inactive_days: u32,
}

/// One partner's health.
#[derive(Debug, Serialize, ToSchema)]
pub struct PartnerHealth {
    /// The partner.
    pub partner_id: u64,
    /// Its name, for people reading the list.
    pub name: String,
    /// RFC 3339 time of its last billable click (not a bot's), or null.
    pub last_click_at: Option<String>,
    /// RFC 3339 time of its last approved or pending conversion, or null.
    pub last_conversion_at: Option<String>,
    /// Billable clicks in the last 30 days.
    pub clicks_30d: u64,
    /// Billable clicks in the 30 days before those.
    pub clicks_prev_30d: u64,
    /// Approved conversions in the last 30 days, in their latest state.
    pub conversions_30d: u64,
    /// Their payout, a decimal string in the offers' payout currency.
    pub payout_30d: String,
    /// `active`, `declining` or `inactive`.
    pub status: HealthStatus,
    /// Why: `ok`, `new`, `clicks_halved`, `no_recent_click`,
    /// `never_clicked`.
    pub reason: HealthReason,
}

/// The health of every partner.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthList {
    /// One per partner, by id.
    pub items: Vec<PartnerHealth>,
}

fn rfc3339(unix_s: u32) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::from(unix_s));
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Partner health of every partner in the program (active or suspended;
/// applicants and rejected ones are left out): last click and conversion,
/// 30-day clicks, conversions
/// and payout, and a status (`inactive`: no billable click for
/// `health.inactive_days`; `declining`: the last 30 days' clicks are under
/// half the 30 days before; else `active`) with its reason.
#[utoipa::path(get, path = "/api/v1/partners/health", tag = "partners",
    responses(
        (status = 200, description = "every partner's health, by id", body = HealthList),
        (status = 401, description = "missing or wrong bearer token", body = ErrorBody),
        (status = 503, description = "redis or clickhouse unavailable, or the catalog still loading", body = ErrorBody),
    ), security(("bearer" = [])))]
pub async fn partners_health(
    State(s): State<Arc<AdminState>>,
) -> Result<Json<HealthList>, ApiError> {
    let partners = all_partners(s.catalog()?).await?;
    let now = now_s();
    let activity = s.health.reader.read(now).await.map_err(|e| {
        tracing::warn!(error = %e, "partner activity unavailable");
        ApiError::unavailable("clickhouse is unavailable: partner activity cannot be read")
    })?;
    let items = partners
        .into_iter()
        // Applicants and rejected applicants are not in the program: no
        // health to judge. Suspended partners are, and may come back.
        .filter(|p| {
            matches!(
                p.status,
                crate::model::PartnerStatus::Active | crate::model::PartnerStatus::Suspended
            )
        })
        .map(|p| {
            let a = activity.get(&p.id).copied().unwrap_or_default();
            let (status, reason) = a.judge(&p.created_at, now, s.health.inactive_days);
            PartnerHealth {
                partner_id: p.id,
                name: p.name,
                last_click_at: a.last_click_s.map(rfc3339),
                last_conversion_at: a.last_conversion_s.map(rfc3339),
                clicks_30d: a.clicks_30d,
                clicks_prev_30d: a.clicks_prev_30d,
                conversions_30d: a.conversions_30d,
                payout_30d: money_text(a.payout_30d),
                status,
                reason,
            }
        })
        .collect();
    Ok(Json(HealthList { items }))
}
