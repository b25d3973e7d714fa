//! URL templates with `{macro}` placeholders: offer landing URLs and
//! partner postback URLs.
//!
//! A template is parsed once, when an offer or partner is stored or cached;
//! rendering only copies literal pieces and percent-encodes values, so the
//! redirect path does no parsing.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Macros of an offer URL, in the order `render` takes their values.
pub const OFFER_MACROS: &[&str] = &[
    "click_id",
    "partner_id",
    "offer_id",
    "code",
    "sub1",
    "sub2",
    "sub3",
    "sub4",
    "sub5",
];

/// Macros of a partner postback URL, in the order `render` takes values.
pub const POSTBACK_MACROS: &[&str] = &[
    "click_id",
    "conversion_id",
    "order_id",
    "payout",
    "currency",
    "status",
    "event",
    "offer_id",
    "partner_id",
    "sub1",
    "sub2",
    "sub3",
    "sub4",
    "sub5",
];

/// Every byte except RFC 3986 unreserved characters is percent-encoded in a
/// substituted value, so no value can add a query parameter, a fragment or
/// a header line.
const VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Bytes of the template text itself that are escaped when stored: anything
/// not printable ASCII (UTF-8 in paths, say) so the result is a valid header.
const TEMPLATE_TEXT: &AsciiSet = &percent_encoding::CONTROLS.add(b' ');

/// Longest URL template accepted.
pub const MAX_URL_LEN: usize = 4096;

/// Why a template was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// Empty, too long, white space, control characters, no http(s) scheme
    /// or no host.
    #[error("{0}")]
    BadUrl(String),
    /// A `{name}` that is not a macro of this kind of URL.
    #[error("unknown macro {{{0}}}")]
    UnknownMacro(String),
}

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Lit(String),
    /// Index into the macro list the template was parsed with.
    Var(usize),
}

/// A parsed URL template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

impl Template {
    /// Parses `url`, accepting only the macros in `macros`.
    pub fn parse(url: &str, macros: &[&str]) -> Result<Template, TemplateError> {
        check_url(url)?;
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut rest = url;
        while let Some(open) = rest.find('{') {
            lit.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let name_len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            if name_len > 0 && after[name_len..].starts_with('}') {
                let name = &after[..name_len];
                let idx = macros
                    .iter()
                    .position(|m| *m == name)
                    .ok_or_else(|| TemplateError::UnknownMacro(name.to_string()))?;
                if !lit.is_empty() {
                    pieces.push(Piece::Lit(std::mem::take(&mut lit)));
                }
                pieces.push(Piece::Var(idx));
                rest = &after[name_len + 1..];
            } else {
                lit.push('{');
                rest = after;
            }
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            pieces.push(Piece::Lit(lit));
        }
        let pieces = pieces
            .into_iter()
            .map(|p| match p {
                Piece::Lit(s) => Piece::Lit(utf8_percent_encode(&s, TEMPLATE_TEXT).to_string()),
                v => v,
            })
            .collect();
        Ok(Template { pieces })
    }

    /// True when the template uses macro `idx`.
    pub fn uses(&self, idx: usize) -> bool {
        self.pieces.contains(&Piece::Var(idx))
    }

    /// Adds `name=` and macro `idx` to the query, before any fragment, when
    /// the template does not use that macro already.
    pub fn ensure_query_param(&self, name: &str, idx: usize) -> Template {
        if self.uses(idx) {
            return self.clone();
        }
        // The fragment starts at the first `#` in a literal piece.
        let mut before: Vec<Piece> = Vec::new();
        let mut after: Vec<Piece> = Vec::new();
        let mut in_fragment = false;
        for p in &self.pieces {
            match p {
                Piece::Lit(s) if !in_fragment => match s.find('#') {
                    Some(h) => {
                        before.push(Piece::Lit(s[..h].to_string()));
                        after.push(Piece::Lit(s[h..].to_string()));
                        in_fragment = true;
                    }
                    None => before.push(p.clone()),
                },
                _ if in_fragment => after.push(p.clone()),
                _ => before.push(p.clone()),
            }
        }
        let text_before: String = before
            .iter()
            .map(|p| match p {
                Piece::Lit(s) => s.as_str(),
                Piece::Var(_) => "x",
            })
            .collect();
        let sep = if !text_before.contains('?') {
            "?"
        } else if text_before.ends_with('?') || text_before.ends_with('&') {
            ""
        } else {
            "&"
        };
        before.push(Piece::Lit(format!("{sep}{name}=")));
        before.push(Piece::Var(idx));
        before.extend(after);
        // Re-merge adjacent literals.
        Template { pieces: Vec::new() }.bind_from(before)
    }

    fn bind_from(mut self, pieces: Vec<Piece>) -> Template {
        for p in pieces {
            match (self.pieces.last_mut(), p) {
                (Some(Piece::Lit(prev)), Piece::Lit(s)) => prev.push_str(&s),
                (_, Piece::Lit(s)) if s.is_empty() => {}
                (_, p) => self.pieces.push(p),
            }
        }
        self
    }

    /// Appends the URL to `out`, taking macro `i`'s value from
    /// `values[i]` (missing ones are empty), percent-encoded.
    pub fn render_into(&self, values: &[&str], out: &mut String) {
        for p in &self.pieces {
            match p {
                Piece::Lit(s) => out.push_str(s),
                Piece::Var(i) => {
                    let v = values.get(*i).copied().unwrap_or("");
                    out.extend(utf8_percent_encode(v, VALUE));
                }
            }
        }
    }

    /// The URL with `values` substituted.
    pub fn render(&self, values: &[&str]) -> String {
        let mut out = String::with_capacity(self.len_hint() + 64);
        self.render_into(values, &mut out);
        out
    }

    /// Bytes of literal text: a capacity hint.
    pub fn len_hint(&self) -> usize {
        self.pieces
            .iter()
            .map(|p| match p {
                Piece::Lit(s) => s.len(),
                Piece::Var(_) => 0,
            })
            .sum()
    }
}

/// A value percent-encoded for a URL.
pub fn encode_value(v: &str) -> String {
    utf8_percent_encode(v, VALUE).to_string()
}

/// Refuses anything but an absolute http(s) URL with a host, no white space
/// and no control characters.
pub fn check_url(url: &str) -> Result<(), TemplateError> {
    let bad = |m: &str| Err(TemplateError::BadUrl(m.to_string()));
    if url.is_empty() {
        return bad("must not be empty");
    }
    if url.len() > MAX_URL_LEN {
        return bad("is longer than 4096 bytes");
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("must not hold white space or control characters");
    }
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return bad("must be an absolute http:// or https:// URL");
    }
    // Macros in the host (`https://{sub1}.example.com`) are allowed, so the
    // structural check runs on a copy with every macro replaced.
    let probe = url.replace(['{', '}'], "");
    match url::Url::parse(&probe) {
        Ok(u) if u.host_str().is_some_and(|h| !h.is_empty()) => Ok(()),
        _ => bad("is not a valid URL with a host"),
    }
}

/// Longest link code.
pub const MAX_CODE_LEN: usize = 32;

/// True for a link code: 1 to 32 base62 characters.
pub fn is_valid_code(code: &str) -> bool {
    (1..=MAX_CODE_LEN).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `url` as an offer template, ensures a click id parameter and
    /// renders it for partner 7, offer 9, code `Ab1` and `subs`, as a
    /// cached route does on every redirect.
    fn check(url: &str, subs: [&str; 5], expected: &str) {
        let t = Template::parse(url, OFFER_MACROS)
            .unwrap()
            .ensure_query_param("click_id", 0);
        let mut values = vec!["CID", "7", "9", "Ab1"];
        values.extend(subs);
        assert_eq!(t.render(&values), expected, "template {url}");
    }

    #[test]
    fn macro_substitution() {
        let none = ["", "", "", "", ""];
        let cases: &[(&str, [&str; 5], &str)] = &[
            (
                "https://m.com/l?c={click_id}",
                none,
                "https://m.com/l?c=CID",
            ),
            ("https://m.com/l", none, "https://m.com/l?click_id=CID"),
            (
                "https://m.com/l?a=1",
                none,
                "https://m.com/l?a=1&click_id=CID",
            ),
            ("https://m.com/l?", none, "https://m.com/l?click_id=CID"),
            (
                "https://m.com/l?a=1&",
                none,
                "https://m.com/l?a=1&click_id=CID",
            ),
            (
                "https://m.com/l#top",
                none,
                "https://m.com/l?click_id=CID#top",
            ),
            (
                "https://m.com/l?a=1#x?y",
                none,
                "https://m.com/l?a=1&click_id=CID#x?y",
            ),
            (
                "https://m.com/#/p?c={click_id}",
                none,
                "https://m.com/#/p?c=CID",
            ),
            (
                "https://m.com/{code}?p={partner_id}&o={offer_id}&s={sub1}&t={sub5}",
                ["a", "", "", "", "e"],
                "https://m.com/Ab1?p=7&o=9&s=a&t=e&click_id=CID",
            ),
            (
                "https://m.com/?s={sub2}&c={click_id}",
                none,
                "https://m.com/?s=&c=CID",
            ),
            (
                "https://m.com/?j={\"a\":1}",
                none,
                "https://m.com/?j={\"a\":1}&click_id=CID",
            ),
            ("https://m.com/{", none, "https://m.com/{?click_id=CID"),
        ];
        for (url, subs, expected) in cases {
            check(url, *subs, expected);
        }
    }

    #[test]
    fn values_are_percent_encoded() {
        let cases: &[(&str, &str)] = &[
            ("a b", "a%20b"),
            ("x\r\nSet-Cookie: y", "x%0D%0ASet-Cookie%3A%20y"),
            ("\"quoted'", "%22quoted%27"),
            ("a&b=c#d", "a%26b%3Dc%23d"),
            ("héllo", "h%C3%A9llo"),
            ("safe-._~09AZaz", "safe-._~09AZaz"),
            ("100%", "100%25"),
        ];
        for (raw, encoded) in cases {
            check(
                "https://m.com/?s={sub1}&c={click_id}",
                [raw, "", "", "", ""],
                &format!("https://m.com/?s={encoded}&c=CID"),
            );
        }
    }

    #[test]
    fn non_ascii_template_text_is_encoded() {
        check(
            "https://m.com/café",
            ["", "", "", "", ""],
            "https://m.com/caf%C3%A9?click_id=CID",
        );
    }

    #[test]
    fn bad_urls_are_refused() {
        let cases: &[&str] = &[
            "",
            "m.com/landing",
            "ftp://m.com/",
            "javascript:alert(1)",
            "https://",
            "https://m.com/a b",
            "https://m.com/\r\nx",
            "https://m.com/\tx",
            "//m.com/x",
        ];
        for url in cases {
            assert!(
                matches!(
                    Template::parse(url, OFFER_MACROS),
                    Err(TemplateError::BadUrl(_))
                ),
                "{url:?} accepted"
            );
        }
        let long = format!("https://m.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(Template::parse(&long, OFFER_MACROS).is_err());
    }

    #[test]
    fn unknown_macros_are_refused() {
        assert_eq!(
            Template::parse("https://m.com/?c={clickid}", OFFER_MACROS),
            Err(TemplateError::UnknownMacro("clickid".into()))
        );
        assert!(Template::parse("https://m.com/?c={payout}", OFFER_MACROS).is_err());
        assert!(Template::parse("https://m.com/?c={payout}", POSTBACK_MACROS).is_ok());
        assert!(Template::parse("HTTPS://{sub1}.m.com/", OFFER_MACROS).is_ok());
    }

    #[test]
    fn code_validation() {
        let cases: &[(&str, bool)] = &[
            ("a", true),
            ("Ab09zZ", true),
            (&"x".repeat(32), true),
            (&"x".repeat(33), false),
            ("", false),
            ("ab-c", false),
            ("ab_c", false),
            ("ab c", false),
            ("ab%20", false),
            ("é", false),
            ("../x", false),
        ];
        for (code, ok) in cases {
            assert_eq!(is_valid_code(code), *ok, "{code:?}");
        }
    }
}
