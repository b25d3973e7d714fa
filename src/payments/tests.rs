//! The money decision's tables: balances, and what a payment pays.

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::balance::*;

use Standing::{Approved as A, Pending as P, Reversed as R};

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

/// An earning: (partner, currency, standing, day, hold, in range, payout).
fn e(
    partner_id: u64,
    currency: &str,
    standing: Standing,
    day: &str,
    hold_days: u32,
    in_range: bool,
    payout: &str,
) -> Earning {
    Earning {
        source: Source::Conversion,
        partner_id,
        currency: currency.into(),
        standing,
        day: date(day),
        hold_days,
        in_range,
        payout: dec(payout),
    }
}

/// A payment: (partner, currency, paid through, amount).
fn p(partner_id: u64, currency: &str, through: &str, amount: &str) -> Payment {
    Payment {
        partner_id,
        currency: currency.into(),
        paid_through: date(through),
        amount: dec(amount),
    }
}

/// Each balance as one line: `partner currency: approved pending
/// reversed on_hold payable paid owed, paid_through` (`-` for none).
fn check(earnings: &[Earning], payments: &[Payment], through: &str, expected: &[&str]) {
    let n = |d: Decimal| d.normalize().to_string();
    let got: Vec<String> = balances(earnings, payments, date(through))
        .into_iter()
        .map(|b| {
            format!(
                "{} {}: {} {} {} {} {} {} {}, {}",
                b.partner_id,
                b.currency,
                n(b.approved),
                n(b.pending),
                n(b.reversed),
                n(b.on_hold),
                n(b.payable),
                n(b.paid),
                n(b.owed),
                b.paid_through.map_or("-".to_string(), |d| d.to_string()),
            )
        })
        .collect();
    assert_eq!(
        got, expected,
        "through {through}: {earnings:?} {payments:?}"
    );
}

#[test]
fn a_hold_ends_with_its_last_day() {
    // (day, hold, through) → payable
    let cases = [
        ("2026-01-01", 30, "2026-01-30", false),
        ("2026-01-01", 30, "2026-01-31", true),
        ("2026-01-31", 0, "2026-01-30", false),
        ("2026-01-31", 0, "2026-01-31", true),
        ("2026-02-27", 2, "2026-03-01", true),
        ("2026-02-28", 2, "2026-03-01", false),
        ("2024-02-28", 2, "2024-03-01", true),
        ("2026-01-01", 365, "2026-12-31", false),
        ("2026-01-01", 365, "2027-01-01", true),
    ];
    for (day, hold, through, expected) in cases {
        assert_eq!(
            released(date(day), hold, date(through)),
            expected,
            "{day} + {hold} through {through}"
        );
    }
}

#[test]
fn balances_by_partner_and_currency() {
    let through = "2026-03-31";
    // Nothing at all: no rows.
    check(&[], &[], through, &[]);
    // Approved outside the hold is payable, inside it on hold; pending
    // and reversed count only as activity in the range.
    check(
        &[
            e(1, "USD", A, "2026-02-01", 30, true, "5"),
            e(1, "USD", A, "2026-03-20", 30, true, "7"),
            e(1, "USD", P, "2026-02-01", 30, true, "1"),
            e(1, "USD", R, "2026-02-02", 30, true, "4"),
        ],
        &[],
        through,
        &["1 USD: 12 1 4 7 5 0 5, -"],
    );
    // Outside the range: no activity, but the balance counts every day.
    check(
        &[
            e(1, "USD", A, "2025-06-01", 30, false, "5"),
            e(1, "USD", P, "2025-06-01", 30, false, "1"),
            e(1, "USD", R, "2025-06-01", 30, false, "2"),
        ],
        &[],
        through,
        &["1 USD: 0 0 0 0 5 0 5, -"],
    );
    // Only pending or reversed outside the range: all zero, no row.
    check(
        &[e(1, "USD", P, "2025-06-01", 30, false, "1")],
        &[],
        through,
        &[],
    );
    // Each offer's own hold: 0 days pays the day after, 60 holds longer.
    check(
        &[
            e(1, "EUR", A, "2026-03-31", 0, true, "2"),
            e(1, "EUR", A, "2026-02-15", 60, true, "3"),
            e(1, "EUR", A, "2026-01-30", 60, true, "4"),
        ],
        &[],
        through,
        &["1 EUR: 9 0 0 3 6 0 6, -"],
    );
    // Two currencies and two partners stay apart, sorted.
    check(
        &[
            e(2, "USD", A, "2026-01-01", 30, true, "3"),
            e(1, "USD", A, "2026-01-01", 30, true, "5"),
            e(1, "EUR", A, "2026-01-01", 30, true, "10"),
        ],
        &[p(1, "USD", "2026-02-28", "5")],
        through,
        &[
            "1 EUR: 10 0 0 0 10 0 10, -",
            "1 USD: 5 0 0 0 5 5 0, 2026-02-28",
            "2 USD: 3 0 0 0 3 0 3, -",
        ],
    );
    // Paid, then one of the paid conversions reversed: payable drops,
    // paid stays, owed is negative (carried forward to the next payment).
    check(
        &[
            e(1, "USD", A, "2026-01-01", 30, true, "5"),
            e(1, "USD", R, "2026-01-02", 30, true, "7.5"),
        ],
        &[p(1, "USD", "2026-02-28", "12.5")],
        through,
        &["1 USD: 5 0 7.5 0 5 12.5 -7.5, 2026-02-28"],
    );
    // A payment with no earnings left at all still shows.
    check(
        &[],
        &[
            p(3, "USD", "2026-01-31", "2"),
            p(3, "USD", "2026-02-28", "1"),
        ],
        through,
        &["3 USD: 0 0 0 0 0 3 -3, 2026-02-28"],
    );
}

/// A bonus: (partner, currency, day earned, in range, amount).
fn bonus(partner_id: u64, currency: &str, day: &str, in_range: bool, amount: &str) -> Earning {
    Earning {
        source: Source::Bonus,
        ..e(partner_id, currency, A, day, 0, in_range, amount)
    }
}

#[test]
fn bonuses_count_once_with_no_hold() {
    let through = "2026-03-31";
    // (earnings, payments) -> `bonuses approved on_hold payable paid owed`
    let cases: Vec<(&str, Vec<Earning>, Vec<Payment>, &str)> = vec![
        (
            "earned through the day: payable at once",
            vec![bonus(1, "USD", "2026-03-31", true, "500")],
            vec![],
            "500 0 0 500 0 500",
        ),
        (
            "earned after it: not over yet",
            vec![bonus(1, "USD", "2026-04-01", true, "500")],
            vec![],
            "500 0 500 0 0 0",
        ),
        (
            "outside the range: still payable, not in bonuses",
            vec![bonus(1, "USD", "2025-06-30", false, "500")],
            vec![],
            "0 0 0 500 0 500",
        ),
        (
            "beside conversions, apart from approved",
            vec![
                e(1, "USD", A, "2026-01-01", 30, true, "5"),
                e(1, "USD", A, "2026-03-20", 30, true, "7"),
                bonus(1, "USD", "2026-03-31", true, "500"),
            ],
            vec![],
            "500 12 7 505 0 505",
        ),
        (
            "paid: owed nothing more",
            vec![bonus(1, "USD", "2026-02-28", true, "500")],
            vec![p(1, "USD", "2026-02-28", "500")],
            "500 0 0 500 500 0",
        ),
    ];
    for (case, earnings, payments, expected) in cases {
        let n = |d: Decimal| d.normalize().to_string();
        let got: Vec<String> = balances(&earnings, &payments, date(through))
            .into_iter()
            .map(|b| {
                format!(
                    "{} {} {} {} {} {}",
                    n(b.bonuses),
                    n(b.approved),
                    n(b.on_hold),
                    n(b.payable),
                    n(b.paid),
                    n(b.owed)
                )
            })
            .collect();
        assert_eq!(got, [expected], "{case}");
    }
    // A payment pays a bonus once its day is over, once.
    let earnings = [
        e(1, "USD", A, "2026-01-01", 30, false, "5"),
        bonus(1, "USD", "2026-03-31", false, "500"),
    ];
    let today = "2026-04-15";
    assert_eq!(due(&earnings, &[], 1, "USD", "2026-03-30", today), "5 5 0");
    assert_eq!(
        due(&earnings, &[], 1, "USD", "2026-03-31", today),
        "505 505 0"
    );
    let paid = [p(1, "USD", "2026-03-31", "505")];
    assert_eq!(
        due(&earnings, &paid, 1, "USD", "2026-04-14", today),
        "nothing_owed"
    );
}

/// What paying `partner` in `currency` through `through` on `today`
/// pays, as `amount payable paid_before`, or the refusal's name.
fn due(
    earnings: &[Earning],
    payments: &[Payment],
    partner: u64,
    currency: &str,
    through: &str,
    today: &str,
) -> String {
    let due = payment_due(
        earnings,
        payments,
        partner,
        currency,
        date(through),
        date(today),
    );
    match due {
        Ok(d) => format!(
            "{} {} {}",
            d.amount.normalize(),
            d.payable.normalize(),
            d.paid_before.normalize()
        ),
        Err(Refusal::DayNotOver { .. }) => "day_not_over".into(),
        Err(Refusal::BeforeLastPayment { .. }) => "before_last_payment".into(),
        Err(Refusal::NothingOwed { .. }) => "nothing_owed".into(),
    }
}

#[test]
fn what_a_payment_pays() {
    let earnings = [
        e(1, "USD", A, "2026-01-01", 30, false, "5"),
        e(1, "USD", A, "2026-01-20", 30, false, "2.5"),
        e(1, "USD", A, "2026-03-01", 30, false, "7"),
        e(1, "USD", P, "2026-01-01", 30, false, "1"),
        e(1, "USD", R, "2026-01-02", 30, false, "4"),
        e(1, "EUR", A, "2026-01-01", 0, false, "10"),
        e(2, "USD", A, "2026-01-01", 30, false, "3"),
    ];
    let today = "2026-04-15";
    let cases: Vec<(Vec<Payment>, u64, &str, &str, &str)> = vec![
        // Through Jan 31: only Jan 1's hold is over.
        (vec![], 1, "USD", "2026-01-31", "5 5 0"),
        // Through Feb 19: Jan 20's too; pending and reversed never pay.
        (vec![], 1, "USD", "2026-02-19", "7.5 7.5 0"),
        // Less what was paid before.
        (
            vec![p(1, "USD", "2026-01-31", "5")],
            1,
            "USD",
            "2026-02-19",
            "2.5 7.5 5",
        ),
        // The same day again pays what became payable through it since
        // (a conversion approved late).
        (
            vec![p(1, "USD", "2026-02-19", "5")],
            1,
            "USD",
            "2026-02-19",
            "2.5 7.5 5",
        ),
        // Everything paid: nothing owed.
        (
            vec![p(1, "USD", "2026-02-19", "7.5")],
            1,
            "USD",
            "2026-02-19",
            "nothing_owed",
        ),
        // Overpaid after a reversal: the negative balance is carried, and
        // the next payment nets it.
        (
            vec![p(1, "USD", "2026-02-19", "11.5")],
            1,
            "USD",
            "2026-02-19",
            "nothing_owed",
        ),
        (
            vec![p(1, "USD", "2026-02-19", "11.5")],
            1,
            "USD",
            "2026-03-31",
            "3 14.5 11.5",
        ),
        // Not earlier than the last payment.
        (
            vec![p(1, "USD", "2026-02-19", "7.5")],
            1,
            "USD",
            "2026-02-18",
            "before_last_payment",
        ),
        // Only a day that is over.
        (vec![], 1, "USD", today, "day_not_over"),
        (vec![], 1, "USD", "2026-05-01", "day_not_over"),
        (vec![], 1, "USD", "2026-04-14", "14.5 14.5 0"),
        // Other currencies' and partners' payments do not count.
        (
            vec![
                p(1, "EUR", "2026-02-19", "10"),
                p(2, "USD", "2026-02-19", "3"),
            ],
            1,
            "USD",
            "2026-01-31",
            "5 5 0",
        ),
        (vec![], 1, "EUR", "2026-01-01", "10 10 0"),
        (vec![], 2, "USD", "2026-01-30", "nothing_owed"),
        // A partner or currency with nothing at all.
        (vec![], 9, "USD", "2026-03-31", "nothing_owed"),
        (vec![], 1, "GBP", "2026-03-31", "nothing_owed"),
    ];
    for (payments, partner, currency, through, expected) in cases {
        assert_eq!(
            due(&earnings, &payments, partner, currency, through, today),
            expected,
            "partner {partner} {currency} through {through}, paid {payments:?}"
        );
    }
}

#[test]
fn refusals_say_what_is_wrong() {
    let r = payment_due(&[], &[], 4, "USD", date("2026-04-15"), date("2026-04-15")).unwrap_err();
    assert_eq!(
        r.to_string(),
        "paid_through 2026-04-15 is not over yet: pay through 2026-04-14 (yesterday, UTC) at the latest"
    );
    let r = payment_due(&[], &[], 4, "USD", date("2026-04-01"), date("2026-04-15")).unwrap_err();
    assert_eq!(
        r.to_string(),
        "nothing is owed to partner 4 in USD through 2026-04-01: payable 0, already paid 0"
    );
}
