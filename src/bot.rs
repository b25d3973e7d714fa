//! Bot and link-preview verdicts from the request alone.
//!
//! Bots are still redirected and recorded, with `is_bot = 1`, so reports can
//! show them and billing can leave them out. The verdict is a pure function
//! of the method and the user agent.

use std::hash::BuildHasher;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

/// Case-insensitive fragments of user agents that are not a person clicking:
/// crawlers, link unfurlers of chat apps and social networks, HTTP
/// libraries, headless browsers and monitoring probes.
const BOT_FRAGMENTS: &[&str] = &[
    "bot",
    "crawl",
    "spider",
    "slurp",
    "facebookexternalhit",
    "facebookcatalog",
    "preview",
    "whatsapp",
    "telegram",
    "skypeuripreview",
    "embedly",
    "quora link",
    "pinterest",
    "vkshare",
    "w3c_validator",
    "curl/",
    "wget/",
    "python-requests",
    "python-urllib",
    "aiohttp",
    "httpx",
    "go-http-client",
    "java/",
    "apache-httpclient",
    "okhttp/",
    "libwww",
    "lwp::",
    "node-fetch",
    "axios/",
    "headlesschrome",
    "phantomjs",
    "puppeteer",
    "playwright",
    "lighthouse",
    "pingdom",
    "uptimerobot",
    "statuscake",
    "monitor",
    "scan",
    "feedfetcher",
    "mediapartners",
    "http_request",
    "wordpress",
    "ahrefs",
    "semrush",
    "bingpreview",
    "archive.org",
];

/// Decides whether a request comes from a bot, and its device class.
pub struct BotDetector {
    /// Bot fragments, case-insensitive.
    bots: AhoCorasick,
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

impl Default for BotDetector {
    fn default() -> Self {
        BotDetector {
            bots: AhoCorasickBuilder::new()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::LeftmostFirst)
                .build(BOT_FRAGMENTS)
                .expect("bot fragments are valid patterns"),
        }
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
    /// (unfurlers and link checkers), an empty user agent, or a known bot
    /// fragment in it make a bot.
    pub fn classify(&self, is_head: bool, user_agent: &str) -> (bool, Device) {
        if user_agent.is_empty() {
            return (true, Device::Unknown);
        }
        if is_head || user_agent.trim().is_empty() || self.bots.is_match(user_agent) {
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
