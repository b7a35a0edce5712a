//! The console's static files, compiled into the binary and served under
//! `/console/static/<tag>/<name>`, where the tag is a hash of their contents (so they may be
//! cached for a year).

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The content tag of this build's static files.
pub(crate) const TAG: &str = env!("CONSOLE_ASSETS_TAG");

/// (name, content type, bytes)
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "pico.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../static/pico.min.css"),
    ),
    (
        "htmx.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../static/htmx.min.js"),
    ),
    (
        "console.css",
        "text/css; charset=utf-8",
        include_bytes!("../static/console.css"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../static/console.js"),
    ),
    (
        "htmx.LICENSE",
        "text/plain; charset=utf-8",
        include_bytes!("../static/htmx.LICENSE"),
    ),
    (
        "pico.LICENSE.md",
        "text/plain; charset=utf-8",
        include_bytes!("../static/pico.LICENSE.md"),
    ),
];

/// The URL of a static file.
pub(crate) fn url(name: &str) -> String {
    format!("/console/static/{TAG}/{name}")
}

/// `GET /console/static/{tag}/{name}`.
pub(crate) async fn serve(Path((tag, name)): Path<(String, String)>) -> Response {
    let Some((_, content_type, bytes)) = FILES.iter().find(|(n, _, _)| *n == name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Another build's tag: serve this build's file, but do not let it be cached as that one.
    let cache = if tag == TAG {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}
