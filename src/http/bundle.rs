//! A browser page and its files compiled into the binary, served as the
//! admin dashboard and the partner portal serve theirs: version tags,
//! `ETag`s, and security headers that allow nothing but the page's own
//! origin. The uPlot files (`build.rs` copies them from the version
//! `web/package-lock.json` pins) are defined once here, so both pages
//! serve the same bytes and the binary holds them once.
//!
//! Caching: a page names each file with `?v=<its hash>`, so a file asked
//! for with its current hash never changes and is cached for a year; the
//! page itself, and a file asked for without it, are revalidated on every
//! use by their `ETag`. A new build's page thus never runs an old script.

use std::sync::OnceLock;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// Nothing but this origin: no inline script or style, no other host, no
/// framing by another site.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; base-uri 'none'; \
     object-src 'none'; form-action 'self'; frame-ancestors 'none'";

/// A file a page loads.
pub struct Asset {
    /// Its name under the page's path.
    pub name: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: &'static [u8],
}

/// A script's `Content-Type`.
pub const JS: &str = "text/javascript; charset=utf-8";
/// A stylesheet's `Content-Type`.
pub const CSS: &str = "text/css; charset=utf-8";

/// uPlot's script.
pub const UPLOT_JS: Asset = Asset {
    name: "uplot.min.js",
    content_type: JS,
    body: include_bytes!(concat!(env!("OUT_DIR"), "/uplot.min.js")),
};

/// uPlot's stylesheet.
pub const UPLOT_CSS: Asset = Asset {
    name: "uplot.min.css",
    content_type: CSS,
    body: include_bytes!(concat!(env!("OUT_DIR"), "/uplot.min.css")),
};

/// uPlot's MIT licence, served beside it.
pub const UPLOT_LICENSE: Asset = Asset {
    name: "uplot-LICENSE.txt",
    content_type: "text/plain; charset=utf-8",
    body: include_bytes!(concat!(env!("OUT_DIR"), "/uplot-LICENSE.txt")),
};

/// A page with a `{{file}}` placeholder where each file's hash goes, and
/// its files.
pub struct Bundle {
    /// The page's path, e.g. `/dashboard`; its files are under it.
    pub path: &'static str,
    page: &'static str,
    assets: &'static [Asset],
    prepared: OnceLock<Prepared>,
}

/// The page with its files' hashes filled in, and every hash: computed
/// once, on first use.
struct Prepared {
    page: String,
    page_hash: String,
    /// `assets[i]`'s hash.
    hashes: Vec<String>,
}

impl Bundle {
    /// The page at `path` with its `assets`.
    pub const fn new(path: &'static str, page: &'static str, assets: &'static [Asset]) -> Bundle {
        Bundle {
            path,
            page,
            assets,
            prepared: OnceLock::new(),
        }
    }

    fn prepared(&self) -> &Prepared {
        self.prepared.get_or_init(|| {
            let hashes: Vec<String> = self.assets.iter().map(|a| hash(a.body)).collect();
            let mut page = self.page.to_string();
            for (asset, h) in self.assets.iter().zip(&hashes) {
                page = page.replace(&format!("{{{{{}}}}}", asset.name), h);
            }
            Prepared {
                page_hash: hash(page.as_bytes()),
                page,
                hashes,
            }
        })
    }

    /// The page, with its files' hashes filled in.
    pub fn html(&self) -> &str {
        &self.prepared().page
    }

    /// The page as an answer to a request with `headers`.
    pub fn page(&'static self, headers: &HeaderMap) -> Response {
        let p = self.prepared();
        answer(
            headers,
            "text/html; charset=utf-8",
            p.page.as_bytes(),
            &p.page_hash,
            Freshness::Revalidate,
        )
    }

    /// File `name` asked for with `query`; `None` when there is no such
    /// file.
    pub fn asset(
        &'static self,
        name: &str,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> Option<Response> {
        let i = self.assets.iter().position(|a| a.name == name)?;
        let (asset, hash) = (&self.assets[i], &self.prepared().hashes[i]);
        Some(answer(
            headers,
            asset.content_type,
            asset.body,
            hash,
            freshness(query, hash),
        ))
    }

    /// Every file, with its current hash.
    pub fn files(&self) -> impl Iterator<Item = (&Asset, &str)> {
        self.assets
            .iter()
            .zip(self.prepared().hashes.iter().map(String::as_str))
    }

    /// File `name`'s bytes as text, for tests of what a page loads.
    #[cfg(test)]
    pub fn text(&self, name: &str) -> &str {
        let a = self
            .assets
            .iter()
            .find(|a| a.name == name)
            .unwrap_or_else(|| panic!("{name} is not a file of {}", self.path));
        std::str::from_utf8(a.body).expect("a text file")
    }

    /// Asserts the page loads every file but the licence by its current
    /// hash, links the licence, and names no other origin, nor does any
    /// of its own scripts and styles (`own`).
    #[cfg(test)]
    pub fn assert_self_contained(&self, own: &[&str]) {
        let page = self.html();
        assert!(!page.contains("{{"), "a placeholder left: {page}");
        for (asset, h) in self.files() {
            if asset.name.ends_with(".txt") {
                continue;
            }
            let url = format!("{}/{}?v={h}", self.path, asset.name);
            assert!(page.contains(&url), "the page does not load {url}");
        }
        assert!(page.contains(&format!("{}/uplot-LICENSE.txt", self.path)));
        assert!(self.text("uplot.min.js").contains("uPlot"));
        assert!(self.text("uplot-LICENSE.txt").contains("MIT License"));
        for name in own {
            for scheme in ["http://", "https://", "//cdn"] {
                assert!(!self.text(name).contains(scheme), "{name} names {scheme}");
            }
        }
        assert!(!self.page.contains("http://") && !self.page.contains("https://"));
        // No inline script: the policy would refuse it.
        assert_eq!(
            page.matches("<script").count(),
            page.matches("<script src=").count()
        );
    }
}

/// The first 16 hex digits of the SHA-256 of `bytes`: a version tag.
fn hash(bytes: &[u8]) -> String {
    Sha256::digest(bytes)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// How long a response may be reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Freshness {
    /// Revalidate on every use (by the `ETag`).
    Revalidate,
    /// Never changes under this URL.
    Immutable,
}

impl Freshness {
    fn header(self) -> &'static str {
        match self {
            Freshness::Revalidate => "no-cache",
            Freshness::Immutable => "public, max-age=31536000, immutable",
        }
    }
}

/// A file asked for with the query `query` is immutable when the query's
/// `v` is the file's current hash.
fn freshness(query: Option<&str>, current: &str) -> Freshness {
    let tagged = query.is_some_and(|q| {
        form_urlencoded::parse(q.as_bytes()).any(|(k, v)| k == "v" && v == current)
    });
    if tagged {
        Freshness::Immutable
    } else {
        Freshness::Revalidate
    }
}

/// The answer for `body` of type `content_type` and version `hash`: `304`
/// when the client holds it already.
fn answer(
    request: &HeaderMap,
    content_type: &'static str,
    body: &'static [u8],
    hash: &str,
    freshness: Freshness,
) -> Response {
    let etag = format!("\"{hash}\"");
    let held = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut resp = if held {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, content_type)], body).into_response()
    };
    let headers = resp.headers_mut();
    // The hash is 16 hex digits between quotes: always a valid value.
    headers.insert(header::ETAG, HeaderValue::from_str(&etag).expect("hex"));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(freshness.header()),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // The page's URL may carry a secret in its fragment for a moment; the
    // fragment is never sent, and nor is anything else of the URL.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_current_version_tag_makes_a_file_immutable() {
        let check = |query: Option<&str>, expected: Freshness| {
            assert_eq!(freshness(query, "abc"), expected, "{query:?}");
        };
        check(Some("v=abc"), Freshness::Immutable);
        check(Some("x=1&v=abc"), Freshness::Immutable);
        check(Some("v=abd"), Freshness::Revalidate);
        check(Some("v="), Freshness::Revalidate);
        check(Some("w=abc"), Freshness::Revalidate);
        check(None, Freshness::Revalidate);
    }

    /// `If-None-Match` → the status answered for a file of hash `abc`.
    #[test]
    fn a_held_version_is_not_sent_again() {
        let check = |held: Option<&str>, expected: u16| {
            let mut h = HeaderMap::new();
            if let Some(v) = held {
                h.insert(header::IF_NONE_MATCH, HeaderValue::from_str(v).unwrap());
            }
            let r = answer(&h, JS, b"x", "abc", Freshness::Revalidate);
            assert_eq!(r.status().as_u16(), expected, "{held:?}");
            assert_eq!(r.headers()[header::ETAG], "\"abc\"");
            assert_eq!(
                r.headers()[header::CONTENT_SECURITY_POLICY],
                CONTENT_SECURITY_POLICY
            );
        };
        check(None, 200);
        check(Some("\"abc\""), 304);
        check(Some("\"old\", \"abc\""), 304);
        check(Some("*"), 304);
        check(Some("\"abd\""), 200);
    }
}
