//! A page of stats as the API answers it: JSON (`{"rows": [...],
//! "next_cursor", "source"}`) or CSV (a header line, then a line per row).
//!
//! Fields of a row: the group keys in `group_by` order (ids as numbers,
//! `day` and `week` as `YYYY-MM-DD` local dates, `week` its Monday, `month`
//! as `YYYY-MM`, `hour` as RFC 3339 with the zone's offset, attributes as
//! text), then the metrics asked for. Counts are numbers; money, `cr` and
//! `epc` are decimal strings with 4 places (never floats); `cr` and `epc`
//! are null (empty in CSV) without clicks.

use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Serialize, Serializer};

use super::request::{Dimension, Metric};
use super::time::format_instant;
use super::{StatsPage, StatsRow};

/// One value of a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    /// A count or an id.
    Number(u64),
    /// Text this API wrote (dates, decimals).
    Plain(String),
    /// Text from clicks (sub-ids, user agent parts): guarded in CSV.
    Text(String),
    /// No value.
    Null,
}

/// A row's fields in answer order.
pub struct Fields(pub Vec<(&'static str, Cell)>);

/// The fields of each row of `page`.
pub fn rows(page: &StatsPage) -> Vec<Fields> {
    page.rows.iter().map(|r| fields(page, r)).collect()
}

fn fields(page: &StatsPage, row: &StatsRow) -> Fields {
    let req = &page.request;
    let mut out = Vec::with_capacity(req.group_by.len() + req.metrics.len());
    for (d, text) in req.group_by.iter().zip(&row.keys) {
        let cell = match d {
            Dimension::Partner | Dimension::Offer | Dimension::Link => text
                .parse()
                .map_or_else(|_| Cell::Plain(text.clone()), Cell::Number),
            Dimension::Day | Dimension::Week => Cell::Plain(text.clone()),
            Dimension::Month => Cell::Plain(text.get(..7).unwrap_or(text).to_string()),
            Dimension::Hour => Cell::Plain(
                text.parse()
                    .map_or_else(|_| text.clone(), |s| format_instant(s, req.tz)),
            ),
            _ => Cell::Text(text.clone()),
        };
        out.push((d.field(), cell));
    }
    for m in &req.metrics {
        let cell = match m {
            Metric::Clicks => Cell::Number(row.clicks),
            Metric::UniqueClicks => Cell::Number(row.unique_clicks),
            Metric::BotClicks => Cell::Number(row.bot_clicks),
            Metric::RateLimitedClicks => Cell::Number(row.rate_limited_clicks),
            Metric::Conversions => Cell::Number(row.conversions),
            Metric::Pending => Cell::Number(row.pending),
            Metric::Rejected => Cell::Number(row.rejected),
            Metric::Reversed => Cell::Number(row.reversed),
            Metric::Revenue => Cell::Plain(decimal(row.revenue)),
            Metric::Payout => Cell::Plain(decimal(row.payout)),
            Metric::Cr if row.clicks == 0 => Cell::Null,
            Metric::Cr => Cell::Plain(decimal(row.cr as i64)),
            Metric::Epc if row.clicks == 0 => Cell::Null,
            Metric::Epc => Cell::Plain(decimal(row.epc)),
        };
        out.push((m.name(), cell));
    }
    Fields(out)
}

/// Ten-thousandths as a decimal with 4 places (`12.5000`).
fn decimal(scaled: i64) -> String {
    // Not `Money`: a sum of many may be beyond one Decimal(18, 4) value.
    rust_decimal::Decimal::new(scaled, crate::events::money::MONEY_SCALE).to_string()
}

impl Serialize for Fields {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (name, cell) in &self.0 {
            match cell {
                Cell::Number(n) => map.serialize_entry(name, n)?,
                Cell::Plain(t) | Cell::Text(t) => map.serialize_entry(name, t)?,
                Cell::Null => map.serialize_entry(name, &())?,
            }
        }
        map.end()
    }
}

/// The JSON answer.
pub struct JsonPage<'a>(pub &'a StatsPage);

impl Serialize for JsonPage<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut page = s.serialize_struct("StatsPage", 4)?;
        page.serialize_field("rows", &rows(self.0))?;
        page.serialize_field("next_cursor", &self.0.next_cursor)?;
        page.serialize_field("source", self.0.plan.name())?;
        page.serialize_field("conversions_source", self.0.conversions_plan.name())?;
        page.end()
    }
}

/// The CSV answer: a header line naming the fields, a line per row, CRLF
/// line ends (RFC 4180). A field holding a comma, quote or line break is
/// quoted. Text from clicks that a spreadsheet would run as a formula
/// (starting with `=`, `+`, `-`, `@`, tab or CR) gets a leading `'`.
pub fn csv(page: &StatsPage) -> String {
    let req = &page.request;
    let header: Vec<&str> = req
        .group_by
        .iter()
        .map(|d| d.field())
        .chain(req.metrics.iter().map(|m| m.name()))
        .collect();
    let mut out = header.join(",");
    out.push_str("\r\n");
    for Fields(row) in rows(page) {
        let line: Vec<String> = row.iter().map(|(_, c)| csv_field(c)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

fn csv_field(cell: &Cell) -> String {
    let text = match cell {
        Cell::Number(n) => return n.to_string(),
        Cell::Null => return String::new(),
        Cell::Plain(t) => t.clone(),
        Cell::Text(t) if t.starts_with(['=', '+', '-', '@', '\t', '\r']) => format!("'{t}"),
        Cell::Text(t) => t.clone(),
    };
    if text.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StatsConfig;
    use crate::stats::{Plan, StatsRequest};

    fn page(query: &str, rows: Vec<StatsRow>) -> StatsPage {
        let request = StatsRequest::parse(query, &StatsConfig::default(), 1_768_000_000).unwrap();
        StatsPage {
            request,
            plan: Plan::Links,
            conversions_plan: crate::stats::ConversionsPlan::Rollup,
            rows,
            next_cursor: None,
        }
    }

    fn row(keys: &[&str], clicks: u64, conversions: u64, payout: i64) -> StatsRow {
        StatsRow {
            keys: keys.iter().map(|k| k.to_string()).collect(),
            clicks,
            unique_clicks: clicks / 2,
            bot_clicks: 1,
            rate_limited_clicks: 0,
            conversions,
            pending: 0,
            rejected: 0,
            reversed: 0,
            revenue: payout * 10,
            payout,
            cr: if clicks == 0 {
                0
            } else {
                (conversions * 20_000 + clicks) / (clicks * 2)
            },
            epc: if clicks == 0 {
                0
            } else {
                (payout * 2 + clicks as i64) / (clicks as i64 * 2)
            },
        }
    }

    fn check(query: &str, rows: Vec<StatsRow>, json: serde_json::Value, csv_text: &str) {
        let p = page(query, rows);
        assert_eq!(
            serde_json::to_value(JsonPage(&p)).unwrap()["rows"],
            json,
            "{query}"
        );
        assert_eq!(csv(&p), csv_text, "{query}");
    }

    #[test]
    fn rows_render_keys_then_metrics() {
        check(
            "group_by=partner,hour,month&metrics=clicks,payout,cr,epc&tz=Asia/Kathmandu",
            vec![
                row(&["7", "1768414500", "2026-01-01"], 3, 1, 50_000),
                row(&["8", "1768414500", "2026-01-01"], 0, 1, 50_000),
            ],
            serde_json::json!([
                {"partner_id": 7, "hour": "2026-01-15T00:00:00+05:45", "month": "2026-01",
                 "clicks": 3, "payout": "5.0000", "cr": "0.3333", "epc": "1.6667"},
                {"partner_id": 8, "hour": "2026-01-15T00:00:00+05:45", "month": "2026-01",
                 "clicks": 0, "payout": "5.0000", "cr": null, "epc": null},
            ]),
            "partner_id,hour,month,clicks,payout,cr,epc\r\n\
             7,2026-01-15T00:00:00+05:45,2026-01,3,5.0000,0.3333,1.6667\r\n\
             8,2026-01-15T00:00:00+05:45,2026-01,0,5.0000,,\r\n",
        );
        check(
            "group_by=sub1,country&metrics=conversions",
            vec![
                row(&["=HYPERLINK(\"x\")", "DE"], 1, 1, 0),
                row(&["a,b", ""], 1, 0, 0),
            ],
            serde_json::json!([
                {"sub1": "=HYPERLINK(\"x\")", "country": "DE", "conversions": 1},
                {"sub1": "a,b", "country": "", "conversions": 0},
            ]),
            "sub1,country,conversions\r\n\"'=HYPERLINK(\"\"x\"\")\",DE,1\r\n\"a,b\",,0\r\n",
        );
        check(
            "metrics=revenue",
            vec![row(&[], 0, 0, -12_345)],
            serde_json::json!([{"revenue": "-12.3450"}]),
            "revenue\r\n-12.3450\r\n",
        );
    }
}
