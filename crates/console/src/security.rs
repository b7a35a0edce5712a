//! Headers every `/console` response carries, and the cross-site refusal of POSTs.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::Response;

/// The console's Content Security Policy: nothing inline, nothing from elsewhere.
pub(crate) const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self' blob:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; \
object-src 'none'";

/// Add the security headers (and `no-store` unless the handler chose its own caching).
pub(crate) async fn headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    h.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// Whether a request says it comes from another site: `Sec-Fetch-Site` other than
/// `same-origin` or `none`, or an `Origin` whose host and port are not this request's
/// `Host`. Requests without either header (old browsers, scripts) pass: the CSRF token
/// still guards them.
pub(crate) fn is_cross_site(method: &Method, headers: &HeaderMap) -> bool {
    if method == Method::GET || method == Method::HEAD {
        return false;
    }
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.to_str().unwrap_or("");
        if !(site.eq_ignore_ascii_case("same-origin") || site.eq_ignore_ascii_case("none")) {
            return true;
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let Ok(origin) = origin.to_str() else {
            return true;
        };
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let Ok(url) = url::Url::parse(origin) else {
            return true;
        };
        let origin_host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            _ => return true,
        };
        return !origin_host.eq_ignore_ascii_case(host);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(*k, HeaderValue::from_static(v));
        }
        m
    }

    #[test]
    fn cross_site_posts_are_recognised() {
        let post = Method::POST;
        assert!(!is_cross_site(&post, &h(&[("host", "a:1")])));
        assert!(!is_cross_site(
            &post,
            &h(&[
                ("host", "a:1"),
                ("origin", "http://a:1"),
                ("sec-fetch-site", "same-origin")
            ])
        ));
        assert!(is_cross_site(
            &post,
            &h(&[("host", "a:1"), ("origin", "http://evil:1")])
        ));
        assert!(is_cross_site(
            &post,
            &h(&[("host", "a:1"), ("origin", "null")])
        ));
        assert!(is_cross_site(
            &post,
            &h(&[("host", "a:1"), ("sec-fetch-site", "cross-site")])
        ));
        assert!(is_cross_site(
            &post,
            &h(&[("host", "a:1"), ("sec-fetch-site", "same-site")])
        ));
        assert!(!is_cross_site(
            &Method::GET,
            &h(&[("origin", "http://evil")])
        ));
    }
}
