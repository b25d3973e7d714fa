//! The `clicks` row as shipped: the recorded click plus what is derived
//! from it off the redirect path (operating system, browser, the daily
//! visitor hash). The log keeps [`ClickRow`] as the redirect wrote it; the
//! shipper adds these columns when it builds the INSERT.

use clickhouse::Row;
use serde::Serialize;

use super::ClickRow;

/// One row of the `clicks` table, in its column order (RowBinary is
/// positional).
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize)]
pub struct ShippedClick<'a> {
    /// Signed click id.
    pub click_id: &'a str,
    /// Unix seconds.
    pub ts: u32,
    /// Link code.
    pub code: &'a str,
    /// Link id.
    pub link_id: u64,
    /// Partner id.
    pub partner_id: u64,
    /// Offer id.
    pub offer_id: u64,
    /// Affiliate sub-id 1.
    pub sub1: &'a str,
    /// Affiliate sub-id 2.
    pub sub2: &'a str,
    /// Affiliate sub-id 3.
    pub sub3: &'a str,
    /// Affiliate sub-id 4.
    pub sub4: &'a str,
    /// Affiliate sub-id 5.
    pub sub5: &'a str,
    /// Client IP as text.
    pub ip: &'a str,
    /// User agent.
    pub user_agent: &'a str,
    /// Referer.
    pub referer: &'a str,
    /// 1 for a bot or preview.
    pub is_bot: u8,
    /// 1 when over the per-IP rate limit.
    pub is_rate_limited: u8,
    /// ISO 3166 country code, or empty.
    pub country: &'a str,
    /// mobile, tablet, desktop, bot or unknown.
    pub device: &'a str,
    /// Operating system family from the user agent, or empty.
    pub os: &'a str,
    /// Browser family from the user agent, or empty.
    pub browser: &'a str,
    /// Keyed hash of IP and user agent under the day's key (unique
    /// clicks); 0 when unknown.
    pub visitor: u64,
    /// The node that took the click.
    pub node: &'a str,
}

impl<'a> From<ClickRow<'a>> for ShippedClick<'a> {
    /// The click with nothing derived yet.
    fn from(c: ClickRow<'a>) -> Self {
        ShippedClick {
            click_id: c.click_id,
            ts: c.ts,
            code: c.code,
            link_id: c.link_id,
            partner_id: c.partner_id,
            offer_id: c.offer_id,
            sub1: c.sub1,
            sub2: c.sub2,
            sub3: c.sub3,
            sub4: c.sub4,
            sub5: c.sub5,
            ip: c.ip,
            user_agent: c.user_agent,
            referer: c.referer,
            is_bot: c.is_bot,
            is_rate_limited: c.is_rate_limited,
            country: c.country,
            device: c.device,
            os: "",
            browser: "",
            visitor: 0,
            node: c.node,
        }
    }
}
