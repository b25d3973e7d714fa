//! The bot verdict measured on public corpora: recall on the crawler list's
//! own example user agents, false positives on real browsers' user agents,
//! every link-preview fetcher flagged, and the one-pass matcher agreeing
//! with the list's patterns matched one by one.
//!
//! `cargo test --test bot_corpus -- --nocapture` prints the figures.

use regex::bytes::{Regex, RegexBuilder};
use serde::Deserialize;
use trackedge::bot::fragments::FRAGMENTS;
use trackedge::bot::matcher::CRAWLER_LIST_JSON;
use trackedge::bot::{BotDetector, Device};

/// Real browsers' user agents: see the README beside it.
const BROWSERS: &str = include_str!("fixtures/browser-user-agents/user-agents.txt");

/// Recall the list's example user agents must reach.
const MIN_RECALL: f64 = 0.95;
/// Share of real browsers that may be called bots.
const MAX_FALSE_POSITIVES: f64 = 0.005;

#[derive(Deserialize)]
struct Entry {
    pattern: String,
    #[serde(default)]
    instances: Vec<String>,
}

fn entries() -> Vec<Entry> {
    serde_json::from_str(CRAWLER_LIST_JSON).expect("the vendored list parses")
}

fn browsers() -> Vec<&'static str> {
    BROWSERS.lines().filter(|l| !l.is_empty()).collect()
}

fn is_bot(d: &BotDetector, ua: &str) -> bool {
    d.classify(false, ua).0
}

#[test]
fn recall_on_the_crawler_lists_examples() {
    let d = BotDetector::default();
    let examples: Vec<String> = entries().into_iter().flat_map(|e| e.instances).collect();
    assert!(examples.len() >= 1000, "only {} examples", examples.len());
    let missed: Vec<&String> = examples.iter().filter(|ua| !is_bot(&d, ua)).collect();
    let recall = 1.0 - missed.len() as f64 / examples.len() as f64;
    println!(
        "recall on crawler-user-agents examples: {:.2} % ({} of {} flagged)",
        recall * 100.0,
        examples.len() - missed.len(),
        examples.len()
    );
    assert!(
        recall >= MIN_RECALL,
        "recall {:.2} % under {:.0} %; missed: {missed:#?}",
        recall * 100.0,
        MIN_RECALL * 100.0
    );
}

#[test]
fn false_positives_on_real_browsers() {
    let d = BotDetector::default();
    let browsers = browsers();
    assert!(browsers.len() >= 500, "only {} browsers", browsers.len());
    let flagged: Vec<&&str> = browsers.iter().filter(|ua| is_bot(&d, ua)).collect();
    let rate = flagged.len() as f64 / browsers.len() as f64;
    println!(
        "false positives on real browsers: {:.2} % ({} of {})",
        rate * 100.0,
        flagged.len(),
        browsers.len()
    );
    assert!(
        rate <= MAX_FALSE_POSITIVES,
        "{:.2} % of browsers called bots: {flagged:#?}",
        rate * 100.0
    );
}

/// Real user agents of the fetchers that unfurl a link pasted in a chat or
/// a post: each must be a bot, or every shared link counts clicks nobody
/// made.
#[test]
fn every_link_preview_fetcher_is_flagged() {
    let cases: &[(&str, &str)] = &[
        (
            "Slack",
            "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
        ),
        ("Slack images", "Slack-ImgProxy (+https://api.slack.com/robots)"),
        (
            "Discord",
            "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
        ),
        ("Telegram", "TelegramBot (like TwitterBot)"),
        ("WhatsApp Android", "WhatsApp/2.23.20.0 A"),
        ("WhatsApp iOS", "WhatsApp/2.23.18.78 i"),
        (
            "iMessage",
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_11_1) AppleWebKit/601.2.4 (KHTML, like Gecko) Version/9.0.1 Safari/601.2.4 facebookexternalhit/1.1 Facebot Twitterbot/1.0",
        ),
        (
            "Microsoft Teams / Skype",
            "Mozilla/5.0 (Windows NT 6.1; WOW64) SkypeUriPreview Preview/0.5 skype-url-preview@microsoft.com",
        ),
        (
            "Microsoft Teams (newer)",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/51.0.2704.79 Safari/537.36 Edge/14.14393 MicrosoftPreview/2.0 +https://aka.ms/MicrosoftPreview",
        ),
        (
            "LinkedIn",
            "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
        ),
        ("X", "Twitterbot/1.0"),
        (
            "Facebook",
            "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        ),
        ("Facebook catalog", "facebookcatalog/1.0"),
        (
            "Facebook (Facebot)",
            "Mozilla/5.0 (compatible; Facebot/1.0; +https://developers.facebook.com/docs/sharing/webmasters/crawler)",
        ),
    ];
    check_all_bots(cases);
}

/// Headless browsers and HTTP libraries: automation, not a person.
#[test]
fn headless_browsers_and_http_libraries_are_flagged() {
    let cases: &[(&str, &str)] = &[
        (
            "HeadlessChrome",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36",
        ),
        (
            "PhantomJS",
            "Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) PhantomJS/2.1.1 Safari/538.1",
        ),
        (
            "Lighthouse",
            "Mozilla/5.0 (Linux; Android 11; moto g power (2022)) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Mobile Safari/537.36 Chrome-Lighthouse",
        ),
        ("curl", "curl/8.5.0"),
        ("Wget", "Wget/1.21.4"),
        ("python-requests", "python-requests/2.31.0"),
        ("urllib", "Python-urllib/3.11"),
        ("aiohttp", "Python/3.11 aiohttp/3.9.1"),
        ("httpx", "python-httpx/0.27.0"),
        ("Go", "Go-http-client/1.1"),
        ("Go HTTP/2", "Go-http-client/2.0"),
        ("OkHttp", "okhttp/4.12.0"),
        ("Apache HttpClient", "Apache-HttpClient/4.5.14 (Java/17.0.2)"),
        ("Java", "Java/17.0.2"),
        ("axios", "axios/1.6.2"),
        (
            "node-fetch",
            "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)",
        ),
        ("Guzzle", "GuzzleHttp/7"),
        ("libwww-perl", "libwww-perl/6.72"),
        ("HTTPie", "HTTPie/3.2.2"),
    ];
    check_all_bots(cases);
}

fn check_all_bots(cases: &[(&str, &str)]) {
    let d = BotDetector::default();
    let missed: Vec<&str> = cases
        .iter()
        .filter(|(_, ua)| d.classify(false, ua) != (true, Device::Bot))
        .map(|(name, _)| *name)
        .collect();
    assert!(missed.is_empty(), "not flagged: {missed:?}");
}

/// The list's patterns one by one, as its authors mean them, and the
/// fragments ignoring case: what the one-pass matcher must answer.
struct Oracle {
    patterns: Vec<Regex>,
    fragments: Vec<String>,
}

impl Oracle {
    fn new(entries: &[Entry]) -> Oracle {
        let patterns = entries
            .iter()
            .map(|e| {
                RegexBuilder::new(&e.pattern)
                    .unicode(false)
                    .build()
                    .unwrap_or_else(|err| panic!("pattern {:?}: {err}", e.pattern))
            })
            .collect();
        let fragments = FRAGMENTS.iter().map(|f| f.to_ascii_lowercase()).collect();
        Oracle {
            patterns,
            fragments,
        }
    }

    fn is_bot(&self, ua: &str) -> bool {
        let lower = ua.to_ascii_lowercase();
        self.fragments.iter().any(|f| lower.contains(f.as_str()))
            || self.patterns.iter().any(|p| p.is_match(ua.as_bytes()))
    }
}

/// The one-pass matcher answers exactly what the patterns answer one by
/// one, on the corpora and on variants made to catch it out: other case
/// (the list is case-sensitive, the fragments are not) and cut starts (the
/// list anchors some patterns at the start).
#[test]
fn one_pass_matcher_agrees_with_the_patterns_one_by_one() {
    let entries = entries();
    let oracle = Oracle::new(&entries);
    let d = BotDetector::default();
    let mut inputs: Vec<String> = browsers().into_iter().map(str::to_owned).collect();
    for e in &entries {
        for ua in &e.instances {
            inputs.push(ua.clone());
            inputs.push(ua.to_ascii_lowercase());
            inputs.push(ua.to_ascii_uppercase());
            for cut in [1, 2, 5] {
                if let Some(rest) = ua.get(cut..) {
                    inputs.push(rest.to_owned());
                }
            }
            inputs.push(format!("x {ua}"));
        }
    }
    let mut disagreements = Vec::new();
    let mut bots = 0;
    for ua in &inputs {
        let want = oracle.is_bot(ua) || ua.trim().is_empty();
        bots += want as usize;
        if is_bot(&d, ua) != want {
            disagreements.push((ua.as_str(), want));
        }
    }
    println!(
        "matcher vs patterns one by one: {} inputs ({bots} bots), {} disagreements",
        inputs.len(),
        disagreements.len()
    );
    // Bots and non-bots both: the comparison means something either way.
    assert!(bots > 1000 && inputs.len() - bots > 500);
    assert!(disagreements.is_empty(), "{disagreements:#?}");
}
