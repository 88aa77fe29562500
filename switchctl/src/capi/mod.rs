//! A typed Cloud Controller v3 client with the HTTP discipline a tool that changes routes needs.
//!
//! * **Timeouts** on every request ([`HttpOptions`]: connect and total).
//! * **Tokens** from a [`TokenSource`](crate::uaa::TokenSource): renewed before a request when they expire within a minute,
//!   and once more when the Cloud Controller answers 401 `CF-InvalidAuthToken` (then the request is
//!   sent again, once).
//! * **Retries** with exponential backoff and jitter on connection errors and on 502/503/504, for
//!   requests that are safe to repeat ([`Repeat::Safe`]). A request that could not connect was never
//!   sent, so it is retried whatever its method. Which requests are safe:
//!   - `GET`: reads.
//!   - `PATCH` of metadata, of `/v3/routes/:guid/destinations` (replace) and of the current droplet:
//!     the body states the end result, so sending it twice ends the same.
//!   - `POST /v3/routes/:guid/destinations` (insert): CAPI skips a destination equal to one the route
//!     already has, so a repeat adds nothing (CC `UpdateRouteDestinations#add`).
//!   - `POST /v3/apps/:guid/actions/start|stop`: they set the desired state.
//!   - Not safe: `POST /v3/builds` (a second build would be started, or refused as "staging in
//!     progress"). Such requests are sent once; if the answer is lost, the error says so.
//! * **Rate limit across all requests**: a 429, or an answer saying no request is left
//!   (`X-RateLimit-Remaining: 0`), closes a gate that every request of this client (a whole fleet's)
//!   waits at until `Retry-After` or `X-RateLimit-Reset`, instead of each finding out with a 429 of
//!   its own.
//! * **429**: waits as `Retry-After` says (bounded by [`RetryPolicy::max_retry_after`] and a total
//!   [`RetryPolicy::max_total_wait`]), then sends again; a request refused for the rate limit was
//!   not carried out, so this holds for every method.
//! * **Errors** become [`ApiError`](crate::ApiError) (`title (code): detail` + what to do). An API that cannot be
//!   reached is [`Error::Unreachable`](crate::Error::Unreachable): a configuration problem (exit 2)
//!   while no request of the client has got through yet, since until then nothing was changed.
//! * **Tracing** (`-v`): method, URL, status, duration, attempt at debug; request headers with the
//!   `Authorization` value redacted at trace. Bodies and tokens are never logged.
//!
//! Modules, each depending only on those before it: [`types`] (the resources' JSON), `retry` (when
//! to send again: a pure state machine), `ratelimit` (the gate and its headers), `transport` (the
//! [`Client`] and its generic requests), `resources` (the endpoints switchctl uses).

mod ratelimit;
mod resources;
mod retry;
mod transport;
pub mod types;

pub use ratelimit::RateHeaders;
pub use retry::{DEFAULT_MAX_WAIT, Notify, Repeat, RetryPolicy};
pub use transport::{Client, HttpOptions, parse_api_url};
pub use types::*;
