//! Bot and link-preview verdicts from the request alone.
//!
//! Bots are still redirected and recorded, with `is_bot = 1`, so reports can
//! show them and billing can leave them out. The verdict is a pure function
//! of the method and the user agent: a HEAD request, an empty user agent, a
//! user agent the maintained crawler list matches (`vendor/crawler-user-agents`,
//! compiled into the binary; [`matcher`]), or one holding a fragment of our
//! own ([`fragments`]: link-preview fetchers, HTTP libraries, headless
//! browsers, whatever the list does upstream).

use std::hash::BuildHasher;
use std::sync::{Arc, LazyLock};
use std::time::Instant;

pub mod fragments;
pub mod matcher;

pub use matcher::ListStats;
use matcher::Matcher;

/// Decides whether a request comes from a bot, and its device class.
#[derive(Clone)]
pub struct BotDetector {
    /// The compiled crawler list and fragments; one per process (see
    /// [`BotDetector::default`]), since they never change while it runs.
    matcher: Arc<Matcher>,
}

/// The device class of a user agent, for the `clicks.device` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    /// A phone.
    Mobile,
    /// A tablet.
    Tablet,
    /// Anything else with a browser-like user agent.
    Desktop,
    /// A bot, by this module's verdict.
    Bot,
    /// No user agent at all.
    Unknown,
}

impl Device {
    /// The column value.
    pub fn as_str(self) -> &'static str {
        match self {
            Device::Mobile => "mobile",
            Device::Tablet => "tablet",
            Device::Desktop => "desktop",
            Device::Bot => "bot",
            Device::Unknown => "unknown",
        }
    }
}

/// The process's compiled list: built on first use, shared after.
static SHARED: LazyLock<BotDetector> = LazyLock::new(BotDetector::compile);

impl Default for BotDetector {
    /// The process's shared detector, compiled on the first call (tens of
    /// milliseconds) and only cloned after.
    fn default() -> Self {
        SHARED.clone()
    }
}

/// Slots of the per-thread verdict cache (a power of two).
const CACHE_SLOTS: usize = 1024;

type CacheSlot = Option<(Box<str>, bool, Device)>;

thread_local! {
    /// Verdicts of recently seen user agents: real traffic repeats a few
    /// hundred user agents endlessly, and a hash plus a compare costs a
    /// fraction of a scan. Direct-mapped: a collision just recomputes.
    static VERDICTS: std::cell::RefCell<Vec<CacheSlot>> =
        std::cell::RefCell::new(vec![None; CACHE_SLOTS]);
}

impl BotDetector {
    /// Compiles the vendored crawler list and [`fragments::FRAGMENTS`]
    /// afresh. [`BotDetector::default`] shares one compiled list instead;
    /// this is for measuring the compilation.
    pub fn compile() -> BotDetector {
        let started = Instant::now();
        let matcher = Matcher::compile();
        let stats = matcher.stats();
        tracing::info!(
            patterns = stats.patterns,
            literals = stats.literals,
            regexes = stats.regexes,
            fragments = stats.fragments,
            automaton_bytes = stats.automaton_bytes,
            compile_ms = started.elapsed().as_secs_f64() * 1e3,
            "bot list compiled"
        );
        if !stats.skipped.is_empty() {
            // The tests assert there are none: a refresh brought a pattern
            // this regex engine cannot express, and its crawler goes
            // unflagged until it is translated.
            tracing::warn!(
                skipped = ?stats.skipped,
                "crawler list patterns left out of the bot verdict"
            );
        }
        BotDetector {
            matcher: Arc::new(matcher),
        }
    }

    /// What the compiled list holds.
    pub fn list_stats(&self) -> &ListStats {
        self.matcher.stats()
    }

    /// [`BotDetector::classify`], answered from a per-thread cache of
    /// recent user agents when it can.
    pub fn classify_cached(&self, is_head: bool, user_agent: &str) -> (bool, Device) {
        if is_head || user_agent.is_empty() {
            return self.classify(is_head, user_agent);
        }
        let slot = (rustc_hash::FxBuildHasher.hash_one(user_agent) as usize) & (CACHE_SLOTS - 1);
        VERDICTS.with(|cache| {
            let mut cache = cache.borrow_mut();
            if let Some((ua, bot, device)) = &cache[slot] {
                if **ua == *user_agent {
                    return (*bot, *device);
                }
            }
            let (bot, device) = self.classify(false, user_agent);
            cache[slot] = Some((user_agent.into(), bot, device));
            (bot, device)
        })
    }

    /// The bot verdict and device class of a request: HEAD requests
    /// (unfurlers and link checkers), an empty user agent, one the crawler
    /// list matches, or one holding a [`fragments::FRAGMENTS`] entry make a
    /// bot.
    pub fn classify(&self, is_head: bool, user_agent: &str) -> (bool, Device) {
        if user_agent.is_empty() {
            return (true, Device::Unknown);
        }
        if is_head || user_agent.trim().is_empty() || self.matcher.is_match(user_agent.as_bytes()) {
            return (true, Device::Bot);
        }
        // Browsers spell these tokens exactly so: plain substring searches
        // (a few ns each) beat any case-insensitive scan.
        let ua = user_agent;
        let android = ua.contains("Android");
        let mobi = ua.contains("Mobi");
        let device = if ua.contains("iPad") || ua.contains("Tablet") || (android && !mobi) {
            Device::Tablet
        } else if mobi || android || ua.contains("iPhone") || ua.contains("iPod") {
            Device::Mobile
        } else {
            Device::Desktop
        };
        (false, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36";
    const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
    const IPAD: &str = "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/604.1";
    const ANDROID_PHONE: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Mobile Safari/537.36";
    const ANDROID_TAB: &str = "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36";

    fn check(is_head: bool, ua: &str, bot: bool, device: Device) {
        let d = BotDetector::default();
        assert_eq!(
            d.classify(is_head, ua),
            (bot, device),
            "{ua:?} head={is_head}"
        );
        // Twice: the second answer comes from the cache.
        for _ in 0..2 {
            assert_eq!(
                d.classify_cached(is_head, ua),
                (bot, device),
                "cached {ua:?}"
            );
        }
    }

    /// Every pattern of the vendored list made it in, none the slow way.
    #[test]
    fn vendored_list_compiles_whole() {
        let d = BotDetector::compile();
        let stats = d.list_stats();
        assert!(stats.skipped.is_empty(), "left out: {:?}", stats.skipped);
        assert!(
            stats.unprefixed.is_empty(),
            "unprefixed: {:?}",
            stats.unprefixed
        );
        assert!(stats.patterns >= 1000, "only {} patterns", stats.patterns);
        assert_eq!(stats.patterns, stats.literals + stats.regexes);
        println!("{stats:?}");
    }

    #[test]
    fn verdicts() {
        let cases: &[(bool, &str, bool, Device)] = &[
            (false, CHROME, false, Device::Desktop),
            (false, IPHONE, false, Device::Mobile),
            (false, IPAD, false, Device::Tablet),
            (false, ANDROID_PHONE, false, Device::Mobile),
            (false, ANDROID_TAB, false, Device::Tablet),
            (true, CHROME, true, Device::Bot),
            (false, "", true, Device::Unknown),
            (false, "   ", true, Device::Bot),
            (
                false,
                "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
                true,
                Device::Bot,
            ),
            (
                false,
                "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
                true,
                Device::Bot,
            ),
            (false, "WhatsApp/2.23.20.0 A", true, Device::Bot),
            (
                false,
                "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
                true,
                Device::Bot,
            ),
            (false, "TelegramBot (like TwitterBot)", true, Device::Bot),
            (false, "curl/8.5.0", true, Device::Bot),
            (false, "python-requests/2.31.0", true, Device::Bot),
            (
                false,
                "Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/120.0.0.0 Safari/537.36",
                true,
                Device::Bot,
            ),
            (
                false,
                "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
                true,
                Device::Bot,
            ),
            (
                false,
                "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
                true,
                Device::Bot,
            ),
        ];
        for (head, ua, bot, device) in cases {
            check(*head, ua, *bot, *device);
        }
    }
}
