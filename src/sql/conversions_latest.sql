-- One page of conversions, each in its latest version (the highest
-- `version` of its conversion_id), in conversion_id order: ids sort by
-- arrival time, and the last id of a page is the next page's cursor.
-- GET /api/v1/conversions. argMax, not FINAL: it is exact before merges,
-- and works on every engine the table may have.
-- ts, partner_id and offer_id are the same in every version, so they
-- filter rows; status changes between versions, so it filters the latest.
-- Binds: from, to (unix seconds, to exclusive); partner filter on (1/0)
-- and partner_id; offer filter on and offer_id; cursor (last id seen,
-- '' for the first page); status ('' for any) twice; rows to answer.
-- params: UInt32, UInt32, UInt8, UInt64, UInt8, UInt64, String, String, String, UInt64
SELECT
    conversion_id,
    argMax(ts, version),
    argMax(click_id, version),
    argMax(click_ts, version),
    argMax(link_id, version),
    argMax(partner_id, version),
    argMax(offer_id, version),
    argMax(order_id, version),
    argMax(event, version),
    argMax(amount, version),
    argMax(currency, version),
    argMax(payout, version),
    argMax(payout_currency, version),
    argMax(status, version),
    argMax(reason, version),
    argMax(customer_id, version),
    argMax(attribution, version),
    argMax(payout_rule, version),
    argMax(deal_id, version),
    argMax(displaced_partner_id, version),
    argMax(source, version),
    argMax(ip, version),
    max(version)
FROM {database}.conversions
WHERE ts >= toDateTime(?) AND ts < toDateTime(?)
  AND (? = 0 OR partner_id = ?)
  AND (? = 0 OR offer_id = ?)
  AND conversion_id > ?
GROUP BY conversion_id
HAVING ? = '' OR argMax(status, version) = ?
ORDER BY conversion_id
LIMIT ?
