//! Records written by earlier formats, still in a spool after an upgrade:
//! decoded into today's rows, the columns they lacked at their defaults.
//!
//! Format 1: conversions without `deal_id` and `displaced_partner_id`
//! (0 now: no deal credited, no click displaced).
//! Format 2: conversions without `prev_status`, `prev_amount` and
//! `prev_payout` (empty and 0 now). That is right for a version 1; a later
//! version (a status change) recorded before the upgrade lacks the state
//! it replaces, and the shipper fills it from the version ClickHouse holds
//! (`shipper::prev`). Every other row of both formats is today's.

use serde::{Deserialize, Serialize};

use super::{ClickRow, ConversionRow, DecodeError, Event, Money, OrphanRow, PostbackDeliveryRow};

/// Format 1's leading byte.
pub(super) const V1: u8 = 1;

/// Format 2's leading byte.
pub(super) const V2: u8 = 2;

/// [`Event`] as formats 1 and 2 wrote it: the same variants in the same
/// order, with that format's conversion row `C`.
#[derive(Serialize, Deserialize)]
enum OldEvent<'a, C> {
    #[serde(borrow)]
    Click(ClickRow<'a>),
    #[serde(borrow)]
    Orphan(OrphanRow<'a>),
    Conversion(C),
    #[serde(borrow)]
    Delivery(PostbackDeliveryRow<'a>),
}

/// [`ConversionRow`] as format 1 wrote it, field for field.
#[derive(Serialize, Deserialize)]
struct ConversionRowV1<'a> {
    conversion_id: &'a str,
    ts: u32,
    click_id: &'a str,
    click_ts: u32,
    link_id: u64,
    partner_id: u64,
    offer_id: u64,
    order_id: &'a str,
    event: &'a str,
    amount: Money,
    currency: &'a str,
    payout: Money,
    payout_currency: &'a str,
    status: &'a str,
    reason: &'a str,
    customer_id: &'a str,
    attribution: &'a str,
    payout_rule: &'a str,
    source: &'a str,
    ip: &'a str,
    version: u64,
}

/// [`ConversionRow`] as format 2 wrote it, field for field.
#[derive(Serialize, Deserialize)]
struct ConversionRowV2<'a> {
    conversion_id: &'a str,
    ts: u32,
    click_id: &'a str,
    click_ts: u32,
    link_id: u64,
    partner_id: u64,
    offer_id: u64,
    order_id: &'a str,
    event: &'a str,
    amount: Money,
    currency: &'a str,
    payout: Money,
    payout_currency: &'a str,
    status: &'a str,
    reason: &'a str,
    customer_id: &'a str,
    attribution: &'a str,
    payout_rule: &'a str,
    deal_id: u64,
    displaced_partner_id: u64,
    source: &'a str,
    ip: &'a str,
    version: u64,
}

impl<'a> From<ConversionRowV1<'a>> for ConversionRowV2<'a> {
    fn from(c: ConversionRowV1<'a>) -> Self {
        ConversionRowV2 {
            conversion_id: c.conversion_id,
            ts: c.ts,
            click_id: c.click_id,
            click_ts: c.click_ts,
            link_id: c.link_id,
            partner_id: c.partner_id,
            offer_id: c.offer_id,
            order_id: c.order_id,
            event: c.event,
            amount: c.amount,
            currency: c.currency,
            payout: c.payout,
            payout_currency: c.payout_currency,
            status: c.status,
            reason: c.reason,
            customer_id: c.customer_id,
            attribution: c.attribution,
            payout_rule: c.payout_rule,
            deal_id: 0,
            displaced_partner_id: 0,
            source: c.source,
            ip: c.ip,
            version: c.version,
        }
    }
}

impl<'a> From<ConversionRowV2<'a>> for ConversionRow<'a> {
    fn from(c: ConversionRowV2<'a>) -> Self {
        ConversionRow {
            conversion_id: c.conversion_id,
            ts: c.ts,
            click_id: c.click_id,
            click_ts: c.click_ts,
            link_id: c.link_id,
            partner_id: c.partner_id,
            offer_id: c.offer_id,
            order_id: c.order_id,
            event: c.event,
            amount: c.amount,
            currency: c.currency,
            payout: c.payout,
            payout_currency: c.payout_currency,
            status: c.status,
            reason: c.reason,
            customer_id: c.customer_id,
            attribution: c.attribution,
            payout_rule: c.payout_rule,
            deal_id: c.deal_id,
            displaced_partner_id: c.displaced_partner_id,
            source: c.source,
            ip: c.ip,
            version: c.version,
            prev_status: "",
            prev_amount: Money::ZERO,
            prev_payout: Money::ZERO,
        }
    }
}

/// An old event with its conversion row made today's by `convert`.
fn decode_old<'a, C: Deserialize<'a>>(
    rest: &'a [u8],
    convert: impl FnOnce(C) -> ConversionRow<'a>,
) -> Result<Event<'a>, DecodeError> {
    let old: OldEvent<'a, C> =
        postcard::from_bytes(rest).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    Ok(match old {
        OldEvent::Click(c) => Event::Click(c),
        OldEvent::Orphan(o) => Event::Orphan(o),
        OldEvent::Delivery(d) => Event::Delivery(d),
        OldEvent::Conversion(c) => Event::Conversion(convert(c)),
    })
}

/// Decodes a format 1 record, after its version byte.
pub(super) fn decode_v1(rest: &[u8]) -> Result<Event<'_>, DecodeError> {
    decode_old(rest, |c: ConversionRowV1<'_>| {
        ConversionRowV2::from(c).into()
    })
}

/// Decodes a format 2 record, after its version byte.
pub(super) fn decode_v2(rest: &[u8]) -> Result<Event<'_>, DecodeError> {
    decode_old(rest, |c: ConversionRowV2<'_>| c.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{EventKind, FORMAT_VERSION};

    /// Today's test conversion as a later version, which format 3 records
    /// with the state it replaces.
    fn changed() -> ConversionRow<'static> {
        ConversionRow {
            version: 2,
            prev_status: "pending",
            prev_amount: Money::from_scaled(5).unwrap(),
            prev_payout: Money::from_scaled(7).unwrap(),
            ..crate::events::tests::conversion()
        }
    }

    fn v2(today: &ConversionRow<'static>) -> ConversionRowV2<'static> {
        ConversionRowV2 {
            conversion_id: today.conversion_id,
            ts: today.ts,
            click_id: today.click_id,
            click_ts: today.click_ts,
            link_id: today.link_id,
            partner_id: today.partner_id,
            offer_id: today.offer_id,
            order_id: today.order_id,
            event: today.event,
            amount: today.amount,
            currency: today.currency,
            payout: today.payout,
            payout_currency: today.payout_currency,
            status: today.status,
            reason: today.reason,
            customer_id: today.customer_id,
            attribution: today.attribution,
            payout_rule: today.payout_rule,
            deal_id: today.deal_id,
            displaced_partner_id: today.displaced_partner_id,
            source: today.source,
            ip: today.ip,
            version: today.version,
        }
    }

    fn encoded<C: Serialize>(version: u8, row: C) -> Vec<u8> {
        let mut bytes = vec![version];
        let event: OldEvent<'_, C> = OldEvent::Conversion(row);
        bytes.extend(postcard::to_allocvec(&event).expect("rows encode"));
        bytes
    }

    /// A conversion recorded by format 1 before an upgrade ships after it,
    /// with no deal, no displaced partner and no previous state.
    #[test]
    fn format_1_conversions_still_decode() {
        let today = changed();
        let old = v2(&today);
        let bytes = encoded(
            V1,
            ConversionRowV1 {
                conversion_id: old.conversion_id,
                ts: old.ts,
                click_id: old.click_id,
                click_ts: old.click_ts,
                link_id: old.link_id,
                partner_id: old.partner_id,
                offer_id: old.offer_id,
                order_id: old.order_id,
                event: old.event,
                amount: old.amount,
                currency: old.currency,
                payout: old.payout,
                payout_currency: old.payout_currency,
                status: old.status,
                reason: old.reason,
                customer_id: old.customer_id,
                attribution: old.attribution,
                payout_rule: old.payout_rule,
                source: old.source,
                ip: old.ip,
                version: old.version,
            },
        );
        let want = ConversionRow {
            deal_id: 0,
            displaced_partner_id: 0,
            prev_status: "",
            prev_amount: Money::ZERO,
            prev_payout: Money::ZERO,
            ..today
        };
        assert_eq!(Event::kind(&bytes).unwrap(), EventKind::Conversion);
        assert_eq!(Event::decode(&bytes).unwrap(), Event::Conversion(want));
    }

    /// A conversion recorded by format 2 keeps its deal and lacks only the
    /// previous state; today's encoding is neither old format.
    #[test]
    fn format_2_conversions_still_decode() {
        let today = ConversionRow {
            deal_id: 12,
            displaced_partner_id: 3,
            ..changed()
        };
        let bytes = encoded(V2, v2(&today));
        let want = ConversionRow {
            prev_status: "",
            prev_amount: Money::ZERO,
            prev_payout: Money::ZERO,
            ..today.clone()
        };
        assert_eq!(Event::kind(&bytes).unwrap(), EventKind::Conversion);
        assert_eq!(Event::decode(&bytes).unwrap(), Event::Conversion(want));
        let mut now = Vec::new();
        Event::Conversion(today).encode(&mut now);
        assert_eq!(now[0], FORMAT_VERSION);
        assert_ne!(now.len(), bytes.len());
    }
}
