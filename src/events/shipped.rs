//! The `clicks` row as shipped: the recorded click plus what is derived
//! from it off the redirect path (country, device, operating system,
//! browser, the daily visitor hash; see [`crate::enrich`]). The log keeps
//! [`ClickRow`] as the redirect wrote it; the shipper adds these columns
//! when it builds the INSERT.

use clickhouse::Row;
use serde::Serialize;

use super::ClickRow;
use crate::enrich::{ClickFacts, Enriched};

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

impl<'a> ShippedClick<'a> {
    /// The row to insert: `click` with what enrichment derived, and
    /// without its IP unless `store_ip`.
    pub fn enriched(click: ClickRow<'a>, with: &'a Enriched, store_ip: bool) -> Self {
        ShippedClick {
            ip: if store_ip { click.ip } else { "" },
            country: with.country(click.country),
            device: with.device(click.device),
            os: with.os(),
            browser: with.browser(),
            visitor: with.visitor(),
            ..ShippedClick::from(click)
        }
    }
}

impl<'a> From<&ClickRow<'a>> for ClickFacts<'a> {
    /// What enrichment reads of a click.
    fn from(c: &ClickRow<'a>) -> Self {
        ClickFacts {
            ts: c.ts,
            ip: c.ip,
            user_agent: c.user_agent,
            country: c.country,
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enrich::agent::{tests::shared, AgentCache};
    use crate::enrich::visitor::{day_of, DayKey, DayKeys};
    use crate::enrich::Enricher;
    use crate::metrics::Metrics;

    const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
    const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36";

    fn click<'a>(ua: &'a str, device: &'a str, country: &'a str) -> ClickRow<'a> {
        ClickRow {
            ip: "203.0.113.7",
            user_agent: ua,
            device,
            country,
            ..crate::events::tests::click()
        }
    }

    /// (ip, country, device, os, browser) of `c` as shipped; its visitor.
    fn check(store_ip: bool, c: ClickRow<'_>, expected: [&str; 5]) {
        let key = DayKey::from_hex(&"01".repeat(32)).unwrap();
        let visitor = key.visitor(c.ip, c.user_agent);
        let metrics = Metrics::new();
        let mut e = Enricher::with_parts(
            None,
            Some(AgentCache::new(shared(), 16)),
            DayKeys::fixed([(day_of(c.ts), key)]),
            store_ip,
            &metrics,
        );
        let with = e.enrich(ClickFacts::from(&c));
        let row = ShippedClick::enriched(c.clone(), &with, e.store_ip());
        assert_eq!(
            [row.ip, row.country, row.device, row.os, row.browser],
            expected,
            "{c:?}"
        );
        assert_eq!(row.visitor, visitor, "hashed before the IP goes");
        assert_eq!(
            (row.click_id, row.sub3, row.node),
            (c.click_id, c.sub3, c.node),
            "the rest as recorded"
        );
    }

    #[test]
    fn enriched_rows() {
        let ip = "203.0.113.7";
        let cases = [
            (
                true,
                click(IPHONE, "mobile", ""),
                [ip, "", "mobile", "iOS", "Mobile Safari"],
            ),
            (
                false,
                click(IPHONE, "mobile", "FR"),
                ["", "FR", "mobile", "iOS", "Mobile Safari"],
            ),
            (
                true,
                click(CHROME, "bot", ""),
                [ip, "", "bot", "Windows", "Chrome"],
            ),
            (
                true,
                click(IPHONE, "desktop", ""),
                [ip, "", "mobile", "iOS", "Mobile Safari"],
            ),
        ];
        for (store_ip, c, expected) in cases {
            check(store_ip, c, expected);
        }
    }

    #[test]
    fn without_enrichment_the_click_ships_as_recorded() {
        let mut e = Enricher::off();
        let c = click(IPHONE, "desktop", "");
        let with = e.enrich(ClickFacts::from(&c));
        let row = ShippedClick::enriched(c.clone(), &with, e.store_ip());
        assert_eq!(row, ShippedClick::from(c));
    }
}
