//! Bot and link-preview verdicts from the request alone.
//!
//! Bots are still redirected and recorded, with `is_bot = 1`, so reports can
//! show them and billing can leave them out. The verdict is a pure function
//! of the method and the user agent.

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

/// Decides whether a request comes from a bot.
pub struct BotDetector {
    matcher: AhoCorasick,
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
            matcher: AhoCorasickBuilder::new()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::LeftmostFirst)
                .build(BOT_FRAGMENTS)
                .expect("bot fragments are valid patterns"),
        }
    }
}

impl BotDetector {
    /// True for HEAD requests (unfurlers and link checkers), an empty user
    /// agent, or a known bot fragment in it.
    pub fn is_bot(&self, is_head: bool, user_agent: &str) -> bool {
        is_head || user_agent.trim().is_empty() || self.matcher.is_match(user_agent)
    }

    /// The device class, given the bot verdict.
    pub fn device(&self, is_bot: bool, user_agent: &str) -> Device {
        if user_agent.is_empty() {
            return Device::Unknown;
        }
        if is_bot {
            return Device::Bot;
        }
        let has = |needle: &str| {
            user_agent
                .as_bytes()
                .windows(needle.len())
                .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
        };
        if has("ipad") || has("tablet") || (has("android") && !has("mobile")) {
            Device::Tablet
        } else if has("mobi") || has("iphone") || has("ipod") || has("android") {
            Device::Mobile
        } else {
            Device::Desktop
        }
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
            d.is_bot(is_head, ua),
            bot,
            "bot verdict for {ua:?} head={is_head}"
        );
        assert_eq!(d.device(bot, ua), device, "device for {ua:?}");
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
