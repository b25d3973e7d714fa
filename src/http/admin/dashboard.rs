//! The dashboard: one HTML page, its script and stylesheet, and the uPlot
//! charting library with its licence, all compiled into the binary (uPlot
//! by `build.rs` from the version `web/package-lock.json` pins), so the
//! admin listener serves a working dashboard with no network at all.
//!
//! These routes need no token: they hold no data. The page asks for the
//! admin or a read-only token and sends it to the JSON API itself.
//!
//! Caching: the page names each file with `?v=<its hash>`, so a file asked
//! for with its current hash never changes and is cached for a year; the
//! page itself, and a file asked for without it, are revalidated on every
//! use by their `ETag`. A new build's page thus never runs an old script.

use std::sync::OnceLock;

use axum::extract::{Path, RawQuery};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::error::{ApiError, ErrorBody};

/// Nothing but this origin: no inline script or style, no other host, no
/// framing by another site.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; base-uri 'none'; \
     object-src 'none'; form-action 'self'; frame-ancestors 'none'";

/// The page, with a `{{file}}` placeholder where each file's hash goes.
const PAGE: &str = include_str!("../assets/dashboard/index.html");

/// A file the page loads.
struct Asset {
    /// Its name under `/dashboard/`.
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

/// Every file under `/dashboard/`.
const ASSETS: [Asset; 5] = [
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/dashboard/app.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../assets/dashboard/app.css"),
    },
    Asset {
        name: "uplot.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!(concat!(env!("OUT_DIR"), "/uplot.min.js")),
    },
    Asset {
        name: "uplot.min.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!(concat!(env!("OUT_DIR"), "/uplot.min.css")),
    },
    Asset {
        name: "uplot-LICENSE.txt",
        content_type: "text/plain; charset=utf-8",
        body: include_bytes!(concat!(env!("OUT_DIR"), "/uplot-LICENSE.txt")),
    },
];

/// The page with its files' hashes filled in, and every hash: computed
/// once, on first use.
struct Prepared {
    page: String,
    page_hash: String,
    /// `ASSETS[i]`'s hash.
    hashes: Vec<String>,
}

fn prepared() -> &'static Prepared {
    static PREPARED: OnceLock<Prepared> = OnceLock::new();
    PREPARED.get_or_init(|| {
        let hashes: Vec<String> = ASSETS.iter().map(|a| hash(a.body)).collect();
        let mut page = PAGE.to_string();
        for (asset, h) in ASSETS.iter().zip(&hashes) {
            page = page.replace(&format!("{{{{{}}}}}", asset.name), h);
        }
        Prepared {
            page_hash: hash(page.as_bytes()),
            page,
            hashes,
        }
    })
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
    // The page's URL may carry a token in its fragment for a moment; the
    // fragment is never sent, and nor is anything else of the URL.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

/// The dashboard page (no auth: it asks for a token and holds no data).
#[utoipa::path(get, path = "/dashboard", tag = "dashboard",
    responses(
        (status = 200, description = "the dashboard's HTML page", body = String, content_type = "text/html"),
        (status = 304, description = "the client's copy (`If-None-Match`) is current"),
    ))]
pub async fn page(headers: HeaderMap) -> Response {
    let p = prepared();
    answer(
        &headers,
        "text/html; charset=utf-8",
        p.page.as_bytes(),
        &p.page_hash,
        Freshness::Revalidate,
    )
}

/// A file of the dashboard: `app.js`, `app.css`, `uplot.min.js`,
/// `uplot.min.css` or `uplot-LICENSE.txt` (no auth). Immutable for a year
/// when asked for with `?v=<its current hash>`, as the page does.
#[utoipa::path(get, path = "/dashboard/{asset}", tag = "dashboard",
    params(
        ("asset" = String, Path, description = "the file's name"),
        ("v" = Option<String>, Query, description = "the file's version hash, as the page gives it"),
    ),
    responses(
        (status = 200, description = "the file", body = String, content_type = "text/javascript"),
        (status = 304, description = "the client's copy (`If-None-Match`) is current"),
        (status = 404, description = "no such file", body = ErrorBody),
    ))]
pub async fn asset(
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let Some(i) = ASSETS.iter().position(|a| a.name == name) else {
        return ApiError::not_found("no such dashboard file", Some("asset")).into_response();
    };
    let (asset, hash) = (&ASSETS[i], &prepared().hashes[i]);
    answer(
        &headers,
        asset.content_type,
        asset.body,
        hash,
        freshness(query.as_deref(), hash),
    )
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

    #[test]
    fn the_page_names_every_file_by_its_current_hash() {
        let p = prepared();
        assert!(!p.page.contains("{{"), "a placeholder left: {}", p.page);
        for (asset, h) in ASSETS.iter().zip(&p.hashes) {
            if asset.name.ends_with(".txt") {
                continue;
            }
            let url = format!("/dashboard/{}?v={h}", asset.name);
            assert!(p.page.contains(&url), "the page does not load {url}");
        }
        // The licence is linked, without a version.
        assert!(p.page.contains("/dashboard/uplot-LICENSE.txt"));
    }

    #[test]
    fn the_bundled_library_is_uplot_with_its_licence() {
        let body = |name: &str| {
            let a = ASSETS.iter().find(|a| a.name == name).expect("listed");
            std::str::from_utf8(a.body).expect("text")
        };
        assert!(body("uplot.min.js").contains("uPlot"));
        assert!(body("uplot-LICENSE.txt").contains("MIT License"));
        // Nothing the page loads comes from another origin.
        for name in ["app.js", "app.css"] {
            for scheme in ["http://", "https://", "//cdn"] {
                assert!(!body(name).contains(scheme), "{name} names {scheme}");
            }
        }
        assert!(!PAGE.contains("http://") && !PAGE.contains("https://"));
    }
}
