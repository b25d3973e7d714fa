//! Device class, operating system and browser from the user agent, by
//! uap-core's maintained rules (`vendor/uap-core/regexes.yaml`, compiled
//! in; `scripts/vendor-uap.sh` refreshes it), remembered per user agent.
//!
//! Which device class wins: the redirect's own (`clicks.device`, from its
//! bot verdict and a few substring checks) unless the rules name the device
//! a phone or a tablet outright (`iPhone`, `iPad`, `Generic Smartphone`,
//! `Generic Feature Phone`, `Generic Tablet`, Kindles, ...). A `bot` or
//! `unknown` from the redirect always stands: the bot verdict is the
//! redirect's, and `is_bot` and `device` must not disagree.

use std::collections::HashMap;
use std::sync::Arc;

/// uap-core's rules, as vendored.
const REGEXES_YAML: &str = include_str!("../../vendor/uap-core/regexes.yaml");

/// Longest family name kept: a rule may copy text from the user agent
/// into a family, and a column of made-up names is not analytics.
const MAX_FAMILY_LEN: usize = 64;

/// What the rules say about one user agent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Agent {
    /// Operating system family (`iOS`, `Windows`, `Android`, ...), empty
    /// when the rules do not know it.
    pub os: Box<str>,
    /// Browser family (`Chrome`, `Mobile Safari`, `Firefox`, ...), empty
    /// when the rules do not know it.
    pub browser: Box<str>,
    /// `mobile` or `tablet` when the device family says so outright; `None`
    /// leaves the redirect's class.
    pub device: Option<&'static str>,
}

/// The device class a rules' device family settles, if any.
pub fn device_class(device_family: &str) -> Option<&'static str> {
    match device_family {
        "iPad" | "Generic Tablet" | "BlackBerry Playbook" | "HP TouchPad" => Some("tablet"),
        f if f.starts_with("Kindle") => Some("tablet"),
        "iPhone" | "iPod" | "iPod touch" | "Generic Smartphone" | "Generic Feature Phone" => {
            Some("mobile")
        }
        _ => None,
    }
}

/// The `device` column: the redirect's class, refined by the rules as the
/// module doc says.
pub fn refine_device<'a>(redirect: &'a str, agent: &Agent) -> &'a str {
    match (redirect, agent.device) {
        ("bot" | "unknown", _) => redirect,
        (_, Some(class)) => class,
        (_, None) => redirect,
    }
}

/// A family as stored: uap's `Other` (no rule matched) is empty, and
/// anything overlong is cut at a character boundary.
fn family(name: &str) -> Box<str> {
    if name == "Other" {
        return "".into();
    }
    let mut end = name.len().min(MAX_FAMILY_LEN);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].into()
}

/// uap-core's rules, compiled.
pub struct AgentParser {
    rules: ua_parser::Extractor<'static>,
}

/// uap-core's rules failed to load: a broken vendored file, caught by the
/// unit tests before any release.
#[derive(Debug, thiserror::Error)]
pub enum AgentRulesError {
    /// The YAML does not parse.
    #[error("vendor/uap-core/regexes.yaml does not parse: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
    /// A rule does not compile.
    #[error("vendor/uap-core/regexes.yaml has a rule that does not compile: {0}")]
    Rule(#[from] ua_parser::Error),
}

impl AgentParser {
    /// Compiles the vendored rules (a few hundred milliseconds: done once,
    /// on the shipper's thread).
    pub fn new() -> Result<AgentParser, AgentRulesError> {
        let regexes: ua_parser::Regexes<'static> = serde_yaml_ng::from_str(REGEXES_YAML)?;
        Ok(AgentParser {
            rules: ua_parser::Extractor::try_from(regexes)?,
        })
    }

    /// Parses one user agent (tens of microseconds: see `benches/enrich.rs`).
    pub fn parse(&self, user_agent: &str) -> Agent {
        if user_agent.is_empty() {
            return Agent::default();
        }
        let (browser, os, device) = self.rules.extract(user_agent);
        Agent {
            os: os.map_or_else(|| "".into(), |o| family(&o.os)),
            browser: browser.map_or_else(|| "".into(), |b| family(&b.family)),
            device: device.and_then(|d| device_class(&d.device)),
        }
    }
}

/// A map bounded to about `capacity` entries that keeps the recently used
/// ones: entries live in a young and an old generation; a hit in the old
/// one moves the entry to the young one, and when the young one is full it
/// becomes the old one (the old one is dropped). Two hash maps, no list to
/// keep in order, and anything used within the last `capacity / 2` distinct
/// keys survives.
pub struct Recent<V> {
    young: HashMap<Box<str>, V>,
    old: HashMap<Box<str>, V>,
    generation: usize,
}

impl<V: Clone> Recent<V> {
    /// A map of at most `capacity` entries (at least 2).
    pub fn new(capacity: usize) -> Self {
        Recent {
            young: HashMap::new(),
            old: HashMap::new(),
            generation: (capacity / 2).max(1),
        }
    }

    /// The value for `key`, computed by `make` when not kept; the flag
    /// says whether it was kept.
    pub fn get_or_insert_with(&mut self, key: &str, make: impl FnOnce() -> V) -> (V, bool) {
        if let Some(v) = self.young.get(key) {
            return (v.clone(), true);
        }
        let (v, hit) = match self.old.remove(key) {
            Some(v) => (v, true),
            None => (make(), false),
        };
        if self.young.len() >= self.generation {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(key.into(), v.clone());
        (v, hit)
    }

    /// Entries kept.
    pub fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }

    /// True when nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The parser and the parses of recent user agents.
pub struct AgentCache {
    /// Shared only by tests and benchmarks, which compile the rules once.
    parser: Arc<AgentParser>,
    recent: Recent<Arc<Agent>>,
}

impl AgentCache {
    /// `parser` with room for `capacity` user agents.
    pub fn new(parser: Arc<AgentParser>, capacity: usize) -> Self {
        AgentCache {
            parser,
            recent: Recent::new(capacity),
        }
    }

    /// The parse of `user_agent`, and whether it was cached.
    pub fn get(&mut self, user_agent: &str) -> (Arc<Agent>, bool) {
        let parser = &self.parser;
        self.recent
            .get_or_insert_with(user_agent, || Arc::new(parser.parse(user_agent)))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::OnceLock;

    /// The rules, compiled once for every test of the crate (a second
    /// and more in a debug build).
    pub(crate) fn shared() -> Arc<AgentParser> {
        static P: OnceLock<Arc<AgentParser>> = OnceLock::new();
        P.get_or_init(|| Arc::new(AgentParser::new().expect("the vendored rules compile")))
            .clone()
    }

    fn check(ua: &str, os: &str, browser: &str, device: Option<&str>) {
        let a = shared().parse(ua);
        assert_eq!(
            (&*a.os, &*a.browser, a.device),
            (os, browser, device),
            "{ua}"
        );
    }

    #[test]
    fn known_agents() {
        let cases = [
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
                "Windows",
                "Chrome",
                None,
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
                "iOS",
                "Mobile Safari",
                Some("mobile"),
            ),
            (
                "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
                "iOS",
                "Mobile Safari",
                Some("tablet"),
            ),
            (
                "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Mobile Safari/537.36",
                "Android",
                "Chrome Mobile",
                None,
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.5; rv:128.0) Gecko/20100101 Firefox/128.0",
                "Mac OS X",
                "Firefox",
                None,
            ),
            (
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36",
                "Linux",
                "Chrome",
                None,
            ),
            ("curl/8.5.0", "", "curl", None),
            ("", "", "", None),
            ("made-up agent", "", "", None),
        ];
        for (ua, os, browser, device) in cases {
            check(ua, os, browser, device);
        }
    }

    #[test]
    fn device_classes() {
        let cases = [
            ("iPad", Some("tablet")),
            ("Kindle Fire HD", Some("tablet")),
            ("Generic Tablet", Some("tablet")),
            ("iPhone", Some("mobile")),
            ("Generic Feature Phone", Some("mobile")),
            ("Generic Smartphone", Some("mobile")),
            ("Samsung SM-X700", None),
            ("Spider", None),
            ("Mac", None),
            ("Other", None),
        ];
        for (family, class) in cases {
            assert_eq!(device_class(family), class, "{family}");
        }
    }

    #[test]
    fn which_device_wins() {
        let with = |device| Agent {
            device,
            ..Agent::default()
        };
        let cases = [
            ("bot", Some("mobile"), "bot"),
            ("unknown", Some("tablet"), "unknown"),
            ("desktop", Some("mobile"), "mobile"),
            ("mobile", Some("tablet"), "tablet"),
            ("tablet", None, "tablet"),
            ("desktop", None, "desktop"),
        ];
        for (redirect, parsed, expected) in cases {
            assert_eq!(
                refine_device(redirect, &with(parsed)),
                expected,
                "{redirect} {parsed:?}"
            );
        }
    }

    #[test]
    fn families_are_bounded() {
        assert_eq!(&*family("Other"), "");
        assert_eq!(&*family("Chrome"), "Chrome");
        let long = "é".repeat(40);
        let cut = family(&long);
        assert!(cut.len() <= MAX_FAMILY_LEN && long.starts_with(&*cut));
    }

    #[test]
    fn recent_keeps_what_is_used_and_stays_bounded() {
        let mut r: Recent<u32> = Recent::new(4);
        let mut made = 0;
        let mut get = |r: &mut Recent<u32>, k: &str| {
            r.get_or_insert_with(k, || {
                made += 1;
                made
            })
        };
        assert_eq!(get(&mut r, "a"), (1, false));
        assert_eq!(get(&mut r, "a"), (1, true));
        assert_eq!(get(&mut r, "b"), (2, false));
        // The young generation (2) is full: "a" and "b" age.
        assert_eq!(get(&mut r, "c"), (3, false));
        // "a" is found in the old generation and comes back.
        assert_eq!(get(&mut r, "a"), (1, true));
        assert_eq!(get(&mut r, "d"), (4, false));
        // "b" was not used for two generations: gone.
        assert_eq!(get(&mut r, "b"), (5, false));
        for i in 0..100 {
            get(&mut r, &i.to_string());
            assert!(r.len() <= 4, "{}", r.len());
        }
    }

    #[test]
    fn the_cache_parses_once_per_agent() {
        let mut cache = AgentCache::new(shared(), 16);
        let ua = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
        let (first, hit) = cache.get(ua);
        assert!(!hit);
        let (second, hit) = cache.get(ua);
        assert!(hit);
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(&*second.browser, "Firefox");
    }
}
