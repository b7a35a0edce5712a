//! Oversized request bodies: read them to the end (within bounds) before the 413 goes out.
//!
//! A server that answers 413 and closes while the client is still sending leaves unread bytes
//! in its socket; the kernel then resets the connection, and a reset that reaches the client
//! before it has read the answer throws the answer away (the client sees "connection closed
//! before message completed" or "broken pipe" instead of the 413). Under load this lost about
//! one answer in six in our tests. nginx and Apache avoid it with a "lingering close"; this
//! module does the equivalent before routing: a body declared or found to be over the limit is
//! read and discarded — up to `drain_cap` bytes and for at most `drain_time` — and the request
//! then goes down the normal stack, where the body limit layer answers 413 in JSON, with
//! request id, trace and metrics like any other answer. Bodies larger than the drain cap are
//! not read: they are refused at once and the connection closes (the reset risk then falls on
//! an abusive client).
//!
//! Bodies within their declared limit pass through untouched, decided synchronously: with a
//! `Content-Length` hyper already holds the body to exactly that length, so the hot path costs
//! one header lookup and no extra future.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Request, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::time::Duration;

/// The limits of one listener.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyGuard {
    /// The largest body a request may carry.
    pub(crate) limit: usize,
    /// The most bytes read and discarded from a body over the limit.
    pub(crate) drain_cap: usize,
    /// The longest time spent reading and discarding.
    pub(crate) drain_time: Duration,
}

impl BodyGuard {
    /// A guard for `limit`, draining up to four times the limit (1 MiB at least) for 5 s.
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            limit,
            drain_cap: (limit.saturating_mul(4)).max(1024 * 1024),
            drain_time: Duration::from_secs(5),
        }
    }

    /// Decide without waiting: a body with a declared length within the limit (hyper holds
    /// it to exactly that length) or no body at all passes at once; anything else must be
    /// looked at with [`BodyGuard::admit`] first.
    pub(crate) fn check(self, request: Request<Incoming>) -> Admission {
        let passes = match declared_length(request.headers()) {
            Some(n) => n <= self.limit as u64,
            None => hyper::body::Body::is_end_stream(request.body()),
        };
        if passes {
            Admission::Pass(request.map(Body::new))
        } else {
            Admission::Hold(request)
        }
    }

    /// Let a held request through, having drained its body first if it is over the limit.
    pub(crate) async fn admit(self, request: Request<Incoming>) -> Request<Body> {
        let (mut parts, body) = request.into_parts();
        match declared_length(&parts.headers) {
            Some(n) if n <= self.limit as u64 => Request::from_parts(parts, Body::new(body)),
            // Over the limit by its own declaration. With `Expect: 100-continue` the client
            // waits for our answer before sending, so there is nothing to drain (and reading
            // would invite the body we are about to refuse). The body limit layer below
            // answers 413 from the header alone.
            Some(n) => {
                if n <= self.drain_cap as u64 && !expects_continue(&parts.headers) {
                    self.drain(body, 0).await;
                }
                Request::from_parts(parts, Body::empty())
            }
            // No length: a chunked body.
            None => match self.buffer(body).await {
                Buffered::Within(body) => Request::from_parts(parts, body),
                // Describe the refused body by the length seen so far, so the body limit
                // layer answers 413 exactly as it does for a declared length (the handlers
                // would otherwise each word their own refusal).
                Buffered::Over(seen) => {
                    parts.headers.remove(header::TRANSFER_ENCODING);
                    parts
                        .headers
                        .insert(header::CONTENT_LENGTH, HeaderValue::from(seen));
                    Request::from_parts(parts, Body::empty())
                }
            },
        }
    }

    /// Read a body of unknown length into memory, up to one byte past the limit. Over the
    /// limit, drain the rest.
    async fn buffer(self, mut body: Incoming) -> Buffered {
        let mut read: Vec<u8> = Vec::new();
        loop {
            match body.frame().await {
                None => return Buffered::Within(Body::from(read)),
                // A broken body: hand on a body that fails the same way.
                Some(Err(e)) => return Buffered::Within(Body::new(FailedBody(Some(e)))),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        read.extend_from_slice(&data);
                        if read.len() > self.limit {
                            let seen = read.len();
                            drop(read);
                            self.drain(body, seen).await;
                            return Buffered::Over(seen);
                        }
                    }
                }
            }
        }
    }

    /// Read and discard the rest of `body` (whose first `already` bytes were read), within
    /// the drain cap and time. Whatever is left unread when either runs out stays unread, and
    /// hyper closes the connection after the answer.
    async fn drain(self, mut body: Incoming, already: usize) {
        let cap = self.drain_cap;
        let discard = async move {
            let mut seen = already;
            while let Some(Ok(frame)) = body.frame().await {
                if let Ok(data) = frame.into_data() {
                    seen = seen.saturating_add(data.len());
                    if seen > cap {
                        tracing::debug!(bytes = seen, "oversized body past the drain cap");
                        return;
                    }
                }
            }
        };
        if tokio::time::timeout(self.drain_time, discard)
            .await
            .is_err()
        {
            tracing::debug!("oversized body not drained in time");
        }
    }
}

/// The declared `Content-Length`, if there is one (hyper has already refused malformed or
/// conflicting values).
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// What [`BodyGuard::check`] decided.
pub(crate) enum Admission {
    /// Route it now.
    Pass(Request<Body>),
    /// Its body must be read first ([`BodyGuard::admit`]).
    Hold(Request<Incoming>),
}

/// A body of unknown length, read.
enum Buffered {
    /// Within the limit: the body to hand on.
    Within(Body),
    /// Over the limit after this many bytes; the rest was drained.
    Over(usize),
}

/// Whether the client waits for `100 Continue` before sending its body (RFC 9110 §10.1.1).
fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// A body that yields one error: what a broken chunked body becomes after buffering, so the
/// handler answers it as it would have answered the original.
struct FailedBody(Option<hyper::Error>);

impl hyper::body::Body for FailedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, hyper::Error>>> {
        std::task::Poll::Ready(self.0.take().map(Err))
    }
}
