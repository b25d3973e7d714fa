-- Partner payments (POST /api/v1/partners/{id}/payouts), one row per
-- payment_id however often a row was inserted, in the table's column
-- order (src/payments/store.rs reads them by position).
-- Binds: partner filter on (1/0) and partner_id.
-- params: UInt8, UInt64
SELECT
    payment_id,
    any(partner_id),
    any(currency),
    any(paid_through),
    any(amount),
    any(payable),
    any(paid_before),
    any(ts),
    any(note)
FROM {database}.partner_payments
WHERE (? = 0 OR partner_id = ?)
GROUP BY payment_id
