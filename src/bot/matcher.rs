//! The crawler list and our fragments compiled into one automaton, searched
//! in one pass over the user agent.
//!
//! The list's patterns are regular expressions, but 1,464 of its 1,500 are
//! plain literals once unescaped, and every other one begins with one of a
//! few literals (its prefixes: `[wW]get` begins with `wget` or `Wget`). So
//! one Aho-Corasick DFA holds our fragments, the list's literals and the
//! other patterns' prefixes, all ignoring ASCII case, and a real browser's
//! user agent costs one scan that finds nothing: one table lookup per byte.
//! The scan reports every pattern ending at every byte (overlapping
//! matches), and each one found decides:
//!
//! - one of our fragments: a bot (they ignore case by design);
//! - a list literal whose bytes are exactly those of the user agent there:
//!   a bot (the list is case-sensitive);
//! - a regex prefix whose bytes are exactly there: the alternation of the
//!   list's regexes decides, once per user agent.
//!
//! Since no occurrence is skipped, the verdict is exactly "some list
//! pattern matches, case-sensitively, or some fragment occurs, ignoring
//! case": `tests/bot_corpus.rs` checks it against the patterns matched one
//! by one.

use aho_corasick::automaton::Automaton;
use aho_corasick::dfa::DFA;
use aho_corasick::{Anchored, MatchKind, StartKind};
use regex::bytes::{Regex, RegexBuilder};
use regex_syntax::hir::literal::{ExtractKind, Extractor};
use regex_syntax::hir::{Hir, HirKind};
use serde::Deserialize;

use super::fragments::FRAGMENTS;

/// The vendored crawler list, compiled into the binary.
pub const CRAWLER_LIST_JSON: &str =
    include_str!("../../vendor/crawler-user-agents/crawler-user-agents.json");

/// What went into the automaton, for the startup log and the tests.
#[derive(Debug, Clone, Default)]
pub struct ListStats {
    /// Patterns in the vendored list.
    pub patterns: usize,
    /// Of them, plain literals.
    pub literals: usize,
    /// Of them, regexes found through their prefixes.
    pub regexes: usize,
    /// Of them, regexes with no usable prefix, run on every user agent.
    pub unprefixed: Vec<String>,
    /// Patterns left out, with the reason: ones this regex engine cannot
    /// express (lookaround, backreferences). None in the vendored list; the
    /// tests assert so, so a refresh that brings one fails loudly.
    pub skipped: Vec<(String, String)>,
    /// Our own fragments.
    pub fragments: usize,
    /// Heap bytes of the automaton, shared by every thread.
    pub automaton_bytes: usize,
}

/// What a pattern of the automaton stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// One of our fragments: found ignoring case means found.
    Fragment,
    /// A list literal: found only if its bytes are exactly there.
    Literal,
    /// A prefix of a list regex: if its bytes are exactly there, the
    /// regexes decide.
    Prefix,
}

/// The compiled list; immutable, shared by every thread.
pub struct Matcher {
    /// Fragments, list literals and regex prefixes, all ignoring ASCII case,
    /// with standard (overlapping) match semantics: the one scan every user
    /// agent gets.
    dfa: DFA,
    /// Each pattern of `dfa`, by pattern id: its bytes and what it stands
    /// for.
    patterns: Vec<(Box<[u8]>, Kind)>,
    /// The list's non-literal patterns as one alternation; `None` if none.
    regexes: Option<Regex>,
    /// The regexes with no usable prefix, run on every user agent; `None`
    /// if none (the vendored list has none).
    unprefixed: Option<Regex>,
    /// What went in.
    stats: ListStats,
}

/// One entry of the list: only its pattern matters here.
#[derive(Deserialize)]
struct Entry {
    pattern: String,
}

/// How one pattern enters the automaton.
enum Compiled {
    /// A plain literal.
    Literal(Vec<u8>),
    /// A regex, found through any of these prefixes.
    Prefixed(Vec<Vec<u8>>),
    /// A regex without a finite set of non-empty prefixes.
    Unprefixed,
}

/// Parses like the regexes that verify: bytes, ASCII classes, no UTF-8
/// requirement (a user agent can carry any byte).
fn parse(pattern: &str) -> Result<Hir, String> {
    regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .build()
        .parse(pattern)
        .map_err(|e| e.to_string())
}

fn compile_pattern(pattern: &str) -> Result<Compiled, String> {
    let hir = parse(pattern)?;
    if let HirKind::Literal(lit) = hir.kind() {
        return Ok(Compiled::Literal(lit.0.to_vec()));
    }
    // Every match of the pattern begins with one of these (when the set is
    // finite), so finding them finds every match.
    let prefixes = Extractor::new().kind(ExtractKind::Prefix).extract(&hir);
    match prefixes.literals() {
        Some(lits) if !lits.is_empty() && lits.iter().all(|l| !l.as_bytes().is_empty()) => {
            let mut out: Vec<Vec<u8>> = lits.iter().map(|l| l.as_bytes().to_vec()).collect();
            out.sort();
            out.dedup();
            Ok(Compiled::Prefixed(out))
        }
        _ => Ok(Compiled::Unprefixed),
    }
}

/// One alternation of `patterns`, matched like `parse` reads them.
fn alternation(patterns: &[String]) -> Option<Regex> {
    if patterns.is_empty() {
        return None;
    }
    let joined = patterns
        .iter()
        .map(|p| format!("(?:{p})"))
        .collect::<Vec<_>>()
        .join("|");
    let regex = RegexBuilder::new(&joined)
        .unicode(false)
        .build()
        // Each part parsed alone above with the same syntax, and an
        // alternation of valid regexes is valid.
        .expect("an alternation of parsed patterns compiles");
    Some(regex)
}

impl Matcher {
    /// Compiles the vendored list and [`FRAGMENTS`]; tens of milliseconds.
    pub fn compile() -> Matcher {
        let entries: Vec<Entry> = serde_json::from_str(CRAWLER_LIST_JSON)
            // A constant vendored file; the tests parse it, and the refresh
            // script refuses one without a pattern in every entry.
            .expect("the vendored crawler list is an array of entries with a pattern");
        Matcher::new(entries.iter().map(|e| e.pattern.as_str()), FRAGMENTS)
    }

    /// Compiles these list patterns (case-sensitive regexes) and fragments
    /// (literals, ignoring ASCII case).
    pub fn new<'a>(list: impl IntoIterator<Item = &'a str>, fragments: &[&str]) -> Matcher {
        let mut stats = ListStats {
            fragments: fragments.len(),
            ..ListStats::default()
        };
        let mut patterns: Vec<(Box<[u8]>, Kind)> = fragments
            .iter()
            .map(|f| (Box::from(f.as_bytes()), Kind::Fragment))
            .collect();
        let mut regexes: Vec<String> = Vec::new();
        for pattern in list {
            stats.patterns += 1;
            match compile_pattern(pattern) {
                Ok(Compiled::Literal(lit)) => {
                    stats.literals += 1;
                    patterns.push((lit.into(), Kind::Literal));
                }
                Ok(Compiled::Prefixed(lits)) => {
                    stats.regexes += 1;
                    patterns.extend(lits.into_iter().map(|l| (l.into(), Kind::Prefix)));
                    regexes.push(pattern.to_owned());
                }
                Ok(Compiled::Unprefixed) => stats.unprefixed.push(pattern.to_owned()),
                Err(reason) => stats.skipped.push((pattern.to_owned(), reason)),
            }
        }
        let dfa = DFA::builder()
            .ascii_case_insensitive(true)
            // Standard semantics: every pattern ending at a byte is in that
            // byte's state, which the scan needs to miss none.
            .match_kind(MatchKind::Standard)
            .start_kind(StartKind::Unanchored)
            // With over a thousand patterns no prefilter would skip much.
            .prefilter(false)
            .build(patterns.iter().map(|(bytes, _)| bytes))
            // Non-empty literals only, far under the automaton's limits.
            .expect("the bot literals build an automaton");
        stats.automaton_bytes = dfa.memory_usage();
        let unprefixed = alternation(&stats.unprefixed);
        Matcher {
            dfa,
            patterns,
            regexes: alternation(&regexes),
            unprefixed,
            stats,
        }
    }

    /// What went in.
    pub fn stats(&self) -> &ListStats {
        &self.stats
    }

    /// Whether some fragment occurs in `ua` ignoring ASCII case, or some
    /// list pattern matches it.
    pub fn is_match(&self, ua: &[u8]) -> bool {
        let dfa = &self.dfa;
        let mut state = dfa
            .start_state(Anchored::No)
            // Built with an unanchored start above.
            .expect("the bot automaton has an unanchored start");
        // The regex alternation runs at most once: its answer holds for the
        // whole user agent.
        let mut regexes_checked = false;
        for (at, &byte) in ua.iter().enumerate() {
            state = dfa.next_state(Anchored::No, state, byte);
            if !(dfa.is_special(state) && dfa.is_match(state)) {
                continue;
            }
            for i in 0..dfa.match_len(state) {
                let (bytes, kind) = &self.patterns[dfa.match_pattern(state, i).as_usize()];
                if *kind == Kind::Fragment {
                    return true;
                }
                // The pattern ends at `at`, so it starts `len - 1` before.
                let found = &ua[at + 1 - bytes.len()..=at];
                if found != &bytes[..] {
                    continue;
                }
                if *kind == Kind::Literal {
                    return true;
                }
                if !regexes_checked {
                    regexes_checked = true;
                    if self.regexes.as_ref().is_some_and(|r| r.is_match(ua)) {
                        return true;
                    }
                }
            }
        }
        self.unprefixed.as_ref().is_some_and(|r| r.is_match(ua))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Patterns written like the list's, and user agents with the verdict
    /// the plain regexes give.
    #[test]
    fn verdicts_of_small_lists() {
        let m = Matcher::new(
            [
                "Googlebot\\/",
                "[wW]get",
                "^Seekbot",
                "AdsBot-Google([^-]|$)",
                "Current[\\s\\S]*RSS Reader",
                "SSL Labs$",
                "Netumo|netumo",
                "(^| )sentry\\/",
            ],
            &["headless"],
        );
        assert_eq!(m.stats().literals, 1);
        assert_eq!(m.stats().regexes, 7);
        assert!(m.stats().unprefixed.is_empty() && m.stats().skipped.is_empty());
        let cases: &[(&str, bool)] = &[
            ("Mozilla/5.0 (compatible; Googlebot/2.1)", true),
            ("GOOGLEBOT/2.1", false),
            // Fragments ignore case.
            ("HeadlessChrome", true),
            ("HEADLESS", true),
            ("Wget/1.21", true),
            ("xwget", true),
            ("WGET", false),
            ("Seekbo", false),
            ("AdsBot-Google", true),
            ("AdsBot-Googlex", true),
            ("Current News RSS Reader", true),
            ("current news RSS Reader", false),
            ("SSL Labs", true),
            ("SSL Labs!", false),
            ("netumo", true),
            ("NETUMO", false),
            ("sentry/1.0", true),
            ("x sentry/1.0", true),
            ("xsentry/1.0", false),
            (
                "Mozilla/5.0 (Windows NT 10.0) Chrome/130.0.0.0 Safari/537.36",
                false,
            ),
        ];
        for (ua, bot) in cases {
            assert_eq!(m.is_match(ua.as_bytes()), *bot, "{ua:?}");
        }
    }

    /// A regex with no finite prefix is still honoured, and one this engine
    /// cannot read is set aside and reported, not a panic.
    #[test]
    fn unprefixed_and_unreadable_patterns() {
        let m = Matcher::new(["[a-z]+ing Agent/\\d", "foo(?=bar)"], &[]);
        assert_eq!(m.stats().unprefixed, vec!["[a-z]+ing Agent/\\d".to_owned()]);
        assert_eq!(m.stats().skipped.len(), 1);
        assert_eq!(m.stats().skipped[0].0, "foo(?=bar)");
        assert!(m.is_match(b"Testing Agent/1"));
        assert!(!m.is_match(b"foobar"));
    }
}
