-- Every version of one conversion, oldest first, from the never-collapsed
-- history table: its history, whose last row is its current state.
-- GET and PATCH /api/v1/conversions/{conversion_id}.
-- LIMIT 1 BY version: a claim taken over from an attempt killed before its
-- answer may have written version 1 twice; it is one version.
-- params: String
SELECT
    conversion_id, ts, click_id, click_ts, link_id, partner_id, offer_id,
    order_id, event, amount, currency, payout, payout_currency, status,
    reason, customer_id, attribution, payout_rule, deal_id,
    displaced_partner_id, source, ip, version
FROM {database}.conversion_history
WHERE conversion_id = ?
ORDER BY version
LIMIT 1 BY version
