//! The dashboard: one HTML page, its script and stylesheet, and the uPlot
//! charting library with its licence, all compiled into the binary (uPlot
//! by `build.rs` from the version `web/package-lock.json` pins), so the
//! admin listener serves a working dashboard with no network at all.
//! Serving, caching and security headers are [`crate::http::bundle`]'s,
//! shared with the partner portal.
//!
//! These routes need no token: they hold no data. The page asks for the
//! admin or a read-only token and sends it to the JSON API itself.

use axum::extract::{Path, RawQuery};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, ErrorBody};
use crate::http::bundle::{Asset, Bundle, CSS, JS, UPLOT_CSS, UPLOT_JS, UPLOT_LICENSE};

/// Every file under `/dashboard/`.
const ASSETS: [Asset; 5] = [
    Asset {
        name: "app.js",
        content_type: JS,
        body: include_bytes!("../assets/dashboard/app.js"),
    },
    Asset {
        name: "app.css",
        content_type: CSS,
        body: include_bytes!("../assets/dashboard/app.css"),
    },
    UPLOT_JS,
    UPLOT_CSS,
    UPLOT_LICENSE,
];

/// The page and its files.
static DASHBOARD: Bundle = Bundle::new(
    "/dashboard",
    include_str!("../assets/dashboard/index.html"),
    &ASSETS,
);

/// The dashboard page (no auth: it asks for a token and holds no data).
#[utoipa::path(get, path = "/dashboard", tag = "dashboard",
    responses(
        (status = 200, description = "the dashboard's HTML page", body = String, content_type = "text/html"),
        (status = 304, description = "the client's copy (`If-None-Match`) is current"),
    ))]
pub async fn page(headers: HeaderMap) -> Response {
    DASHBOARD.page(&headers)
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
    DASHBOARD
        .asset(&name, query.as_deref(), &headers)
        .unwrap_or_else(|| {
            ApiError::not_found("no such dashboard file", Some("asset")).into_response()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_its_own_files_by_their_current_hash_and_nothing_else() {
        DASHBOARD.assert_self_contained(&["app.js", "app.css"]);
    }
}
