-- Conversions in their latest version (argMax: exact before merges, and a
-- version written twice by a claim takeover counts once), summed for the
-- payouts report and for payments (src/payments/store.rs): per partner,
-- offer, payout currency, status and UTC day, and whether the
-- conversion's time is inside the report's range. Only the statuses that
-- carry money (approved, pending, reversed); payouts in ten-thousandths
-- (money is never a float). A row recorded before payout_currency existed
-- has it empty: the sale's currency stands in. partner_id is the same in
-- every version, so it filters rows.
-- Binds: range from, to (unix seconds, to exclusive); partner filter on
-- (1/0) and partner_id.
-- params: UInt32, UInt32, UInt8, UInt64
SELECT
    partner,
    offer,
    cur,
    st,
    toDate(arrived, 'UTC') AS day,
    toUInt8(arrived >= toDateTime(?) AND arrived < toDateTime(?)) AS in_range,
    sum(payout_scaled) AS payout
FROM
(
    SELECT
        conversion_id,
        argMax(partner_id, version) AS partner,
        argMax(offer_id, version) AS offer,
        argMax(payout_currency, version) AS paid_in,
        argMax(currency, version) AS sold_in,
        if(paid_in = '', sold_in, paid_in) AS cur,
        argMax(status, version) AS st,
        argMax(ts, version) AS arrived,
        toInt64(argMax(payout, version) * 10000) AS payout_scaled
    FROM {database}.conversions
    WHERE (? = 0 OR partner_id = ?)
    GROUP BY conversion_id
)
WHERE partner != 0 AND st IN ('approved', 'pending', 'reversed')
GROUP BY partner, offer, cur, st, day, in_range
