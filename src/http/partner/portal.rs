//! The partner portal: one HTML page, its script and stylesheet and the
//! uPlot files the admin dashboard bundles, compiled into the binary and
//! served on the public listener at `/partner/portal` (serving, caching
//! and security headers are [`crate::http::bundle`]'s).
//!
//! These routes sit outside the key check: they hold no data. The page
//! asks for the partner key, keeps it in the tab's session storage, and
//! calls `/partner/v1/*` with it. They are not in the partner API's
//! OpenAPI document, which describes the JSON API a partner programs
//! against.

use axum::extract::{Path, RawQuery};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::http::admin::ApiError;
use crate::http::bundle::{Asset, Bundle, CSS, JS, UPLOT_CSS, UPLOT_JS, UPLOT_LICENSE};

/// The page's path; its files are under it.
pub const PATH: &str = "/partner/portal";

/// Every file under `/partner/portal/`.
const ASSETS: [Asset; 6] = [
    Asset {
        name: "lib.js",
        content_type: JS,
        body: include_bytes!("../assets/portal/lib.js"),
    },
    Asset {
        name: "app.js",
        content_type: JS,
        body: include_bytes!("../assets/portal/app.js"),
    },
    Asset {
        name: "app.css",
        content_type: CSS,
        body: include_bytes!("../assets/portal/app.css"),
    },
    UPLOT_JS,
    UPLOT_CSS,
    UPLOT_LICENSE,
];

/// The page and its files.
static PORTAL: Bundle = Bundle::new(PATH, include_str!("../assets/portal/index.html"), &ASSETS);

/// The portal's routes (no key needed).
pub fn routes() -> Router {
    Router::new()
        .route(PATH, get(page))
        .route(&format!("{PATH}/{{asset}}"), get(asset))
}

/// The portal page.
async fn page(headers: HeaderMap) -> Response {
    PORTAL.page(&headers)
}

/// A file of the portal: `lib.js`, `app.js`, `app.css`, `uplot.min.js`,
/// `uplot.min.css` or `uplot-LICENSE.txt`; immutable for a year when asked
/// for with `?v=<its current hash>`, as the page does.
async fn asset(
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    PORTAL
        .asset(&name, query.as_deref(), &headers)
        .unwrap_or_else(|| {
            ApiError::not_found("no such portal file", Some("asset")).into_response()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_its_own_files_by_their_current_hash_and_nothing_else() {
        PORTAL.assert_self_contained(&["lib.js", "app.js", "app.css"]);
    }

    #[test]
    fn the_page_calls_only_the_partner_api() {
        assert!(PORTAL
            .text("lib.js")
            .contains("fetch(\"/partner/v1/\" + path"));
        for name in ["lib.js", "app.js"] {
            assert!(
                !PORTAL.text(name).contains("/api/v1/"),
                "{name} calls the admin API"
            );
        }
    }
}
