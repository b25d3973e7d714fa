//! `GET /partner/v1/stats` and `GET /partner/v1/conversions[/{id}]`: the
//! admin's stats engine and conversions ledger with the partner filter
//! forced to the caller. Naming another partner (or another partner's
//! link) answers `404`, as for any of its ids; conversions leave out what
//! only the merchant may see (the customer id).

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::{Extension, Json};
use serde::Serialize;
use utoipa::ToSchema;

use super::{Caller, PartnerState};
use crate::catalog::StoreError;
use crate::events::Money;
use crate::http::admin::conversions::ledger::Stored;
use crate::http::admin::conversions::models::{ConversionView, ListQuery};
use crate::http::admin::conversions::params::ListFilter;
use crate::http::admin::entities::ItemsPage;
use crate::http::admin::stats::{StatsAnswer, StatsQuery};
use crate::http::admin::{ApiError, ErrorBody};
use crate::model::Link;

/// A conversion as its partner sees it: the admin's view without the
/// merchant's customer id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PartnerConversion {
    /// The conversion's id, the same in every version.
    pub conversion_id: String,
    /// When the conversion was first recorded.
    pub ts: String,
    /// The attributed click's id, or empty.
    pub click_id: String,
    /// When that click happened; null without a click.
    pub click_ts: Option<String>,
    /// The partner credited: always the caller.
    pub partner_id: u64,
    /// The offer converted.
    pub offer_id: u64,
    /// The click's link, or 0.
    pub link_id: u64,
    /// The merchant's order id, or empty.
    pub order_id: String,
    /// The merchant's event name.
    pub event: String,
    /// The order amount, in `currency`.
    #[schema(value_type = String, example = "20.0000")]
    pub amount: Money,
    /// ISO 4217 code of `amount`.
    pub currency: String,
    /// What the partner earns, in `payout_currency`.
    #[schema(value_type = String, example = "5.0000")]
    pub payout: Money,
    /// ISO 4217 code of `payout`.
    pub payout_currency: String,
    /// approved, pending, duplicate, rejected or reversed.
    pub status: String,
    /// Why that status.
    pub reason: String,
    /// `click`, `customer` or `deal`.
    pub attribution: String,
    /// Which payout rule set `payout`, or empty.
    pub payout_rule: String,
    /// The partner's own deal that credited it (`attribution` `deal`), or
    /// 0. (Whose click the deal won over is the merchant's to know.)
    pub deal_id: u64,
    /// `pixel` or `postback`.
    pub source: String,
    /// 1 when recorded, one more for every status change.
    pub version: u64,
}

impl From<ConversionView> for PartnerConversion {
    fn from(v: ConversionView) -> PartnerConversion {
        // Spelled out field by field, no `..`: a field added to the admin
        // view must be decided on here, not shown by default.
        let ConversionView {
            conversion_id,
            ts,
            click_id,
            click_ts,
            partner_id,
            offer_id,
            link_id,
            order_id,
            event,
            amount,
            currency,
            payout,
            payout_currency,
            status,
            reason,
            customer_id: _,
            attribution,
            payout_rule,
            deal_id,
            displaced_partner_id: _,
            source,
            version,
        } = v;
        PartnerConversion {
            conversion_id,
            ts,
            click_id,
            click_ts,
            partner_id,
            offer_id,
            link_id,
            order_id,
            event,
            amount,
            currency,
            payout,
            payout_currency,
            status,
            reason,
            attribution,
            payout_rule,
            deal_id,
            source,
            version,
        }
    }
}

/// A conversion's current state and how it got there.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PartnerConversionDetail {
    /// The latest version.
    #[serde(flatten)]
    pub latest: PartnerConversion,
    /// Every version, oldest first; the last is `latest`.
    pub history: Vec<PartnerConversion>,
}

/// The partner's clicks and conversions, as `GET /api/v1/stats` answers
/// them with `partner_id` set to this partner (the same parameters; a
/// `partner_id` other than the caller's, or a `link_id` of another
/// partner, answers `404`).
#[utoipa::path(get, path = "/partner/v1/stats", tag = "reports", params(StatsQuery),
    responses(
        (status = 200, description = "a page of rows (CSV with `format=csv` or `Accept: text/csv`; \
            its next cursor in `X-Next-Cursor`)", body = StatsAnswer,
            headers(("x-stats-source" = String, description = "rollup or raw"))),
        (status = 400, description = "an invalid parameter (named)", body = ErrorBody),
        (status = 401, description = "missing, unknown or revoked key", body = ErrorBody),
        (status = 403, description = "the partner is not active", body = ErrorBody),
        (status = 404, description = "partner_id or link_id names another partner's (named)", body = ErrorBody),
        (status = 429, description = "the key is over its rate (Retry-After)", body = ErrorBody),
        (status = 503, description = "clickhouse or redis unavailable", body = ErrorBody),
    ), security(("partner_key" = [])))]
pub async fn get_stats(
    State(s): State<Arc<PartnerState>>,
    Extension(caller): Extension<Caller>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let me = caller.partner_id();
    let (query, links) = force_partner(q.as_deref().unwrap_or(""), me)?;
    let catalog = s.catalog()?;
    for id in links {
        match catalog.get::<Link>(id).await {
            Ok(l) if l.partner_id == me => {}
            Ok(_) | Err(StoreError::NotFound(_)) => {
                return Err(ApiError::not_found(
                    format!("no link with id {id}"),
                    Some("link_id"),
                ))
            }
            Err(e) => return Err(e.into()),
        }
    }
    crate::http::admin::stats::respond(&s.stats, &query, &headers).await
}

/// The stats query string with `partner_id` set to `me` alone, and the
/// link ids it filters on (to check they are `me`'s). A `partner_id`
/// naming anyone else is `404`; one that is not a number, `400`.
fn force_partner(query: &str, me: u64) -> Result<(String, Vec<u64>), ApiError> {
    let mut out = form_urlencoded::Serializer::new(String::new());
    let mut links = Vec::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "partner_id" => {
                for item in v.split(',').map(str::trim).filter(|i| !i.is_empty()) {
                    let id: u64 = item.parse().map_err(|_| {
                        ApiError::invalid("partner_id", format!("{item:?} is not a whole number"))
                    })?;
                    if id != me {
                        return Err(ApiError::not_found(
                            format!("no partner with id {id}"),
                            Some("partner_id"),
                        ));
                    }
                }
                // Dropped: set once below, whatever was given.
                continue;
            }
            "link_id" => links.extend(
                v.split(',')
                    .map(str::trim)
                    .filter_map(|i| i.parse::<u64>().ok()),
            ),
            _ => {}
        }
        out.append_pair(&k, &v);
    }
    out.append_pair("partner_id", &me.to_string());
    Ok((out.finish(), links))
}

/// The partner's conversions, each in its latest state, oldest first (the
/// admin listing's parameters; a `partner_id` other than the caller's
/// answers `404`).
#[utoipa::path(get, path = "/partner/v1/conversions", tag = "reports", params(ListQuery),
    responses(
        (status = 200, description = "a page of conversions, each its latest version", body = ItemsPage<PartnerConversion>),
        (status = 400, description = "an invalid query parameter (named)", body = ErrorBody),
        (status = 401, description = "missing, unknown or revoked key", body = ErrorBody),
        (status = 403, description = "the partner is not active", body = ErrorBody),
        (status = 404, description = "partner_id names another partner", body = ErrorBody),
        (status = 429, description = "the key is over its rate (Retry-After)", body = ErrorBody),
        (status = 503, description = "clickhouse unavailable", body = ErrorBody),
    ), security(("partner_key" = [])))]
pub async fn list_conversions(
    State(s): State<Arc<PartnerState>>,
    Extension(caller): Extension<Caller>,
    RawQuery(q): RawQuery,
) -> Result<Json<ItemsPage<PartnerConversion>>, ApiError> {
    let me = caller.partner_id();
    let mut filter = ListFilter::parse(q.as_deref())?;
    if filter.partner_id.is_some_and(|p| p != me) {
        return Err(ApiError::not_found(
            format!("no partner with id {}", filter.partner_id.unwrap_or(0)),
            Some("partner_id"),
        ));
    }
    filter.partner_id = Some(me);
    let mut rows = s.conversions.page(&filter).await?;
    let next_cursor = if rows.len() as u64 > filter.limit {
        rows.truncate(filter.limit as usize);
        rows.last().map(|r| r.conversion_id.clone())
    } else {
        None
    };
    Ok(Json(ItemsPage {
        items: rows
            .into_iter()
            .filter(|r| r.partner_id == me)
            .map(|r| Stored::view(r).into())
            .collect(),
        next_cursor,
    }))
}

/// One of the partner's conversions: its latest state and its history.
#[utoipa::path(get, path = "/partner/v1/conversions/{conversion_id}", tag = "reports",
    params(("conversion_id" = String, Path, description = "conversion id")),
    responses(
        (status = 200, description = "the latest state, with every version in `history`", body = PartnerConversionDetail),
        (status = 401, description = "missing, unknown or revoked key", body = ErrorBody),
        (status = 403, description = "the partner is not active", body = ErrorBody),
        (status = 404, description = "no such conversion of this partner in clickhouse (yet)", body = ErrorBody),
        (status = 429, description = "the key is over its rate (Retry-After)", body = ErrorBody),
        (status = 503, description = "clickhouse unavailable", body = ErrorBody),
    ), security(("partner_key" = [])))]
pub async fn get_conversion(
    State(s): State<Arc<PartnerState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<PartnerConversionDetail>, ApiError> {
    let history: Vec<PartnerConversion> = s
        .conversions
        .versions(&id)
        .await?
        .into_iter()
        .map(|r| Stored::view(r).into())
        .collect();
    match history.last() {
        // Every version carries the credited partner (it never changes).
        Some(latest) if history.iter().all(|v| v.partner_id == caller.partner_id()) => {
            Ok(Json(PartnerConversionDetail {
                latest: latest.clone(),
                history,
            }))
        }
        _ => Err(ApiError::not_found(
            format!("no conversion with id {id:?} (one recorded in the last seconds may not be in clickhouse yet)"),
            Some("conversion_id"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `query` for partner 7 → the query passed on and the links to check,
    /// or the field of the error and its status.
    fn check(query: &str, expected: Result<(&str, Vec<u64>), (&str, u16)>) {
        let got = force_partner(query, 7).map_err(|e| {
            (
                e.detail.field.clone().unwrap_or_default(),
                e.status.as_u16(),
            )
        });
        let expected = expected
            .map(|(q, l)| (q.to_string(), l))
            .map_err(|(f, s)| (f.to_string(), s));
        assert_eq!(got, expected, "{query:?}");
    }

    #[test]
    fn the_partner_filter_is_forced() {
        check("", Ok(("partner_id=7", vec![])));
        check(
            "group_by=day&tz=Europe%2FBerlin",
            Ok(("group_by=day&tz=Europe%2FBerlin&partner_id=7", vec![])),
        );
        check("partner_id=7", Ok(("partner_id=7", vec![])));
        check("partner_id=7,7", Ok(("partner_id=7", vec![])));
        check(
            "link_id=3,4&offer_id=9",
            Ok(("link_id=3%2C4&offer_id=9&partner_id=7", vec![3, 4])),
        );
        // Another partner, alone or beside the caller: as unknown.
        check("partner_id=8", Err(("partner_id", 404)));
        check("partner_id=7,8", Err(("partner_id", 404)));
        check("partner_id=7&partner_id=8", Err(("partner_id", 404)));
        check("partner_id=x", Err(("partner_id", 400)));
    }
}
