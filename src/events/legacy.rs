//! Records written by earlier formats, still in a spool after an upgrade:
//! decoded into today's rows, the columns they lacked at their defaults.
//!
//! Format 1: conversions without `deal_id` and `displaced_partner_id`
//! (0 now: no deal credited, no click displaced). Its other rows are
//! today's.

use serde::{Deserialize, Serialize};

use super::{ClickRow, ConversionRow, DecodeError, Event, Money, OrphanRow, PostbackDeliveryRow};

/// Format 1's leading byte.
pub(super) const V1: u8 = 1;

/// [`Event`] as format 1 wrote it: the same variants in the same order.
#[derive(Serialize, Deserialize)]
enum EventV1<'a> {
    #[serde(borrow)]
    Click(ClickRow<'a>),
    #[serde(borrow)]
    Orphan(OrphanRow<'a>),
    #[serde(borrow)]
    Conversion(ConversionRowV1<'a>),
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

/// Decodes a format 1 record, after its version byte.
pub(super) fn decode_v1(rest: &[u8]) -> Result<Event<'_>, DecodeError> {
    let old: EventV1<'_> =
        postcard::from_bytes(rest).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    Ok(match old {
        EventV1::Click(c) => Event::Click(c),
        EventV1::Orphan(o) => Event::Orphan(o),
        EventV1::Delivery(d) => Event::Delivery(d),
        EventV1::Conversion(c) => Event::Conversion(ConversionRow {
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
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{EventKind, FORMAT_VERSION};

    /// A conversion recorded by format 1 before an upgrade ships after it,
    /// with no deal and no displaced partner.
    #[test]
    fn format_1_conversions_still_decode() {
        let today = crate::events::tests::conversion();
        let old = EventV1::Conversion(ConversionRowV1 {
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
            source: today.source,
            ip: today.ip,
            version: today.version,
        });
        let mut bytes = vec![V1];
        bytes.extend(postcard::to_allocvec(&old).expect("rows encode"));
        assert_eq!(Event::kind(&bytes).unwrap(), EventKind::Conversion);
        assert_eq!(Event::decode(&bytes).unwrap(), Event::Conversion(today));
        // And today's encoding is not format 1's.
        let mut now = Vec::new();
        Event::Conversion(crate::events::tests::conversion()).encode(&mut now);
        assert_eq!(now[0], FORMAT_VERSION);
        assert_ne!(now.len(), bytes.len());
    }
}
