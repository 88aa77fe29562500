//! Errors: [`ApiError`] is a Cloud Controller error answer (status + `errors[]` body, exactly as CC
//! renders it); [`Error`] is what the double's own setup can fail with.

use axum::{
    body::Body,
    response::{IntoResponse, Response},
};
use http::{HeaderValue, StatusCode, header::CONTENT_TYPE};
use serde::Serialize;

/// A failure while starting or driving the double (not an HTTP answer).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Binding a listener or another socket operation failed.
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    /// A token could not be issued or checked.
    #[error("token: {0}")]
    Token(String),
    /// A seeding call named something the double does not hold.
    #[error("seed: {0}")]
    Seed(String),
}

/// One Cloud Controller error, rendered as `{"errors":[{"detail","title","code"}]}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// `CF-` + the error name from CC's `errors/v2.yml` (or `UnknownError`).
    pub title: &'static str,
    /// Numeric code from `errors/v2.yml`.
    pub code: u32,
    /// Human text, formatted like CC's.
    pub detail: String,
}

// CC's production error hasher keeps detail, title, code in this order (v3_error_hasher.rb); the
// structs keep the order because serde_json's map would sort the keys.
#[derive(Serialize)]
struct Body1<'a> {
    errors: [Item<'a>; 1],
}

#[derive(Serialize)]
struct Item<'a> {
    detail: &'a str,
    title: &'a str,
    code: u32,
}

// `UnknownError` is rendered from a plain hash with title first (CC `V3ErrorHasher#unknown_error_hash`).
#[derive(Serialize)]
struct UnknownBody<'a> {
    errors: [UnknownItem<'a>; 1],
}

#[derive(Serialize)]
struct UnknownItem<'a> {
    title: &'a str,
    detail: &'a str,
    code: u32,
}

impl ApiError {
    fn new(status: StatusCode, title: &'static str, code: u32, detail: impl Into<String>) -> ApiError {
        ApiError { status, title, code, detail: detail.into() }
    }

    /// 401 CF-NotAuthenticated: no `Authorization` header.
    pub fn not_authenticated() -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "CF-NotAuthenticated", 10002, "Authentication error")
    }

    /// 401 CF-InvalidAuthToken: a token that is expired, badly signed or not a bearer token.
    pub fn invalid_auth_token() -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "CF-InvalidAuthToken", 1000, "Invalid Auth Token")
    }

    /// 403 CF-NotAuthorized: missing scope or role.
    pub fn not_authorized() -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "CF-NotAuthorized",
            10003,
            "You are not authorized to perform the requested action",
        )
    }

    /// 403 CF-OrgSuspended.
    pub fn org_suspended() -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "CF-OrgSuspended", 10017, "The organization is suspended")
    }

    /// 404 CF-NotFound: no such endpoint.
    pub fn unknown_request() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "CF-NotFound", 10000, "Unknown request")
    }

    /// 404 CF-ResourceNotFound, e.g. `not_found("App")` → `App not found`.
    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "CF-ResourceNotFound", 10010, format!("{what} not found"))
    }

    /// 400 CF-BadQueryParameter with CC's prefix.
    pub fn bad_query(message: &str) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "CF-BadQueryParameter",
            10005,
            format!("The query parameter is invalid: {message}"),
        )
    }

    /// 400 CF-MessageParseError: the body is not JSON (or not an object).
    pub fn parse_error() -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "CF-MessageParseError",
            1001,
            "Request invalid due to parse error: invalid request body",
        )
    }

    /// 422 CF-UnprocessableEntity with the given message(s).
    pub fn unprocessable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "CF-UnprocessableEntity", 10008, message)
    }

    /// 422 CF-LabelLimitExceeded.
    pub fn label_limit(adding: usize, max: usize) -> ApiError {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "CF-LabelLimitExceeded",
            390020,
            format!("Failed to add {adding} labels because it would exceed maximum of {max}"),
        )
    }

    /// 422 CF-AnnotationLimitExceeded.
    pub fn annotation_limit(adding: usize, max: usize) -> ApiError {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "CF-AnnotationLimitExceeded",
            390023,
            format!("Failed to add {adding} annotations because it would exceed maximum of {max}"),
        )
    }

    /// 422 CF-StagingInProgress.
    pub fn staging_in_progress() -> ApiError {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "CF-StagingInProgress",
            170017,
            "Only one build can be STAGING at a time per application.",
        )
    }

    /// 429 CF-RateLimitExceeded (per-user limit).
    pub fn rate_limited() -> ApiError {
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "CF-RateLimitExceeded", 10013, "Rate Limit Exceeded")
    }

    /// 429 CF-IPBasedRateLimitExceeded (unauthenticated requests).
    pub fn ip_rate_limited() -> ApiError {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "CF-IPBasedRateLimitExceeded",
            10014,
            "Rate Limit Exceeded: Unauthenticated requests from this IP address have exceeded the limit. Please log in.",
        )
    }

    /// 503 CF-ServiceUnavailable, CC's answer when its database is gone.
    /// 500 `CF-RunnerError` (170016, `Runner error: %s` in CC's `errors/v2.yml`), as
    /// `bbs_apps_client.rb` raises it with the BBS error's message; here the BBS's refusal of a
    /// desired LRP whose routes JSON passes `maximumRouteLength` (bbs `models/desired_lrp.go`,
    /// `ErrInvalidField{"routes"}`, whose text is `Invalid field: routes`).
    pub fn runner_error() -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "CF-RunnerError",
            170016,
            "Runner error: Invalid field: routes",
        )
    }

    /// 503 `CF-RunnerUnavailable` (170015, `Runner is unavailable: %s`).
    pub fn runner_unavailable() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "CF-RunnerUnavailable",
            170015,
            "Runner is unavailable: Unable to communicate with Diego",
        )
    }

    pub fn service_unavailable() -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "CF-ServiceUnavailable", 10015, "Database connection failure")
    }

    /// 500 UnknownError.
    pub fn unknown() -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "UnknownError", 10001, "An unknown error occurred.")
    }

    /// The JSON body, byte for byte as CC writes it (compact).
    pub fn body(&self) -> Vec<u8> {
        let rendered = if self.title == "UnknownError" {
            serde_json::to_vec(&UnknownBody {
                errors: [UnknownItem { title: self.title, detail: &self.detail, code: self.code }],
            })
        } else {
            serde_json::to_vec(&Body1 { errors: [Item { detail: &self.detail, title: self.title, code: self.code }] })
        };
        // Serialising plain strings and integers cannot fail.
        rendered.unwrap_or_default()
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} ({}): {}", self.status.as_u16(), self.title, self.code, self.detail)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = Response::new(Body::from(self.body()));
        *response.status_mut() = self.status;
        response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(crate::JSON_CONTENT_TYPE));
        response
    }
}
