//! Partner health: `active`, `declining` or `inactive`, with the reason,
//! from a partner's click activity alone (pure).
//!
//! The guide this product serves names "ignoring inactive partners" as a
//! classic mistake; these verdicts are what a partner manager acts on, and
//! what may pause a partner's links, so each one says why.

use serde::Serialize;

/// One day in seconds.
const DAY: u32 = 86_400;

/// How a partner is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Clicking as before, or more.
    Active,
    /// The last 30 days' clicks are under half the 30 days before.
    Declining,
    /// No click for the configured number of days.
    Inactive,
}

/// Why a partner got its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthReason {
    /// Nothing wrong.
    Ok,
    /// Younger than the inactivity period and not clicked yet.
    New,
    /// Clicks in the last 30 days are under half those of the 30 before.
    ClicksHalved,
    /// The last click is older than the inactivity period.
    NoRecentClick,
    /// Never clicked, and created longer ago than the inactivity period.
    NeverClicked,
}

impl HealthReason {
    /// The name the API and the records use.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthReason::Ok => "ok",
            HealthReason::New => "new",
            HealthReason::ClicksHalved => "clicks_halved",
            HealthReason::NoRecentClick => "no_recent_click",
            HealthReason::NeverClicked => "never_clicked",
        }
    }
}

/// What a partner's health is judged on, in Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Activity {
    /// When the partner was created.
    pub created_s: u32,
    /// Its last billable click (not a bot's), if any.
    pub last_click_s: Option<u32>,
    /// Billable clicks in the 30 days before now.
    pub clicks_30d: u64,
    /// Billable clicks in the 30 days before those.
    pub clicks_prev_30d: u64,
}

/// The partner's status and its reason at `now_s`, with `inactive_days`
/// of silence making a partner inactive. First match wins: inactivity,
/// then decline, else active.
pub fn judge(a: &Activity, now_s: u32, inactive_days: u32) -> (HealthStatus, HealthReason) {
    let quiet_for = |since: u32| now_s.saturating_sub(since) >= inactive_days.saturating_mul(DAY);
    match a.last_click_s {
        Some(last) if quiet_for(last) => {
            return (HealthStatus::Inactive, HealthReason::NoRecentClick)
        }
        None if quiet_for(a.created_s) => {
            return (HealthStatus::Inactive, HealthReason::NeverClicked)
        }
        None => return (HealthStatus::Active, HealthReason::New),
        Some(_) => {}
    }
    // "Down more than 50 %": strictly under half, in integers.
    if a.clicks_30d.saturating_mul(2) < a.clicks_prev_30d {
        return (HealthStatus::Declining, HealthReason::ClicksHalved);
    }
    (HealthStatus::Active, HealthReason::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u32 = 1_800_000_000;

    fn check(a: Activity, inactive_days: u32, expected: (HealthStatus, HealthReason)) {
        assert_eq!(judge(&a, NOW, inactive_days), expected, "{a:?}");
    }

    #[test]
    fn verdicts() {
        use HealthReason as R;
        use HealthStatus as S;
        let days_ago = |d: u32| NOW - d * DAY;
        let clicked = |last: u32, c30: u64, prev: u64| Activity {
            created_s: days_ago(400),
            last_click_s: Some(last),
            clicks_30d: c30,
            clicks_prev_30d: prev,
        };
        let never = |created: u32| Activity {
            created_s: created,
            ..Activity::default()
        };
        let cases = [
            // (activity, inactive_days, expected)
            (clicked(days_ago(1), 100, 100), 90, (S::Active, R::Ok)),
            (clicked(days_ago(1), 100, 0), 90, (S::Active, R::Ok)),
            // Exactly half is not "down more than 50 %".
            (clicked(days_ago(1), 50, 100), 90, (S::Active, R::Ok)),
            (
                clicked(days_ago(1), 49, 100),
                90,
                (S::Declining, R::ClicksHalved),
            ),
            (
                clicked(days_ago(31), 0, 10),
                90,
                (S::Declining, R::ClicksHalved),
            ),
            (
                clicked(days_ago(0), 0, 1),
                90,
                (S::Declining, R::ClicksHalved),
            ),
            (clicked(days_ago(1), 0, 0), 90, (S::Active, R::Ok)),
            // The period is inclusive at its end.
            (
                clicked(days_ago(90), 0, 0),
                90,
                (S::Inactive, R::NoRecentClick),
            ),
            (clicked(days_ago(90) + 1, 0, 0), 90, (S::Active, R::Ok)),
            (
                clicked(days_ago(200), 0, 0),
                90,
                (S::Inactive, R::NoRecentClick),
            ),
            // Inactivity wins over decline.
            (
                clicked(days_ago(8), 0, 500),
                7,
                (S::Inactive, R::NoRecentClick),
            ),
            (never(days_ago(10)), 90, (S::Active, R::New)),
            (never(days_ago(90)), 90, (S::Inactive, R::NeverClicked)),
            (never(NOW + 60), 90, (S::Active, R::New)),
            // A configured period of zero days: everyone is inactive.
            (clicked(NOW, 5, 5), 0, (S::Inactive, R::NoRecentClick)),
        ];
        for (a, days, expected) in cases {
            check(a, days, expected);
        }
    }

    #[test]
    fn names_are_the_interface_s() {
        let names: Vec<_> = [
            HealthStatus::Active,
            HealthStatus::Declining,
            HealthStatus::Inactive,
        ]
        .iter()
        .map(|s| serde_json::to_value(s).unwrap())
        .collect();
        assert_eq!(names, ["active", "declining", "inactive"]);
        for r in [
            HealthReason::Ok,
            HealthReason::New,
            HealthReason::ClicksHalved,
            HealthReason::NoRecentClick,
            HealthReason::NeverClicked,
        ] {
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
    }
}
