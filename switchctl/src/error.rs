//! The errors of the `switchctl` library, one type per boundary, each saying what to do.
//!
//! * [`ConfigError`]: finding the login and the target (cf CLI `config.json`, environment, flags).
//! * [`TokenError`]: getting or refreshing a token at UAA.
//! * [`ApiError`]: an error answer of the Cloud Controller, shown as `title (code): detail` plus a hint.
//! * [`Error`]: what the library's entry points return; it knows its process exit code.
//!
//! Exit codes: [`EXIT_OK`] 0, [`EXIT_FAILURE`] 1 (an operation failed; what was changed is reported),
//! [`EXIT_USAGE`] 2 (bad usage or configuration: nothing was changed, fix the command or the login).

use std::{fmt, path::PathBuf, time::Duration};

use serde::Deserialize;

/// Process exit code: everything done.
pub const EXIT_OK: u8 = 0;
/// Process exit code: an operation failed; the state left behind is consistent and reported.
pub const EXIT_FAILURE: u8 = 1;
/// Process exit code: bad usage or configuration (not logged in, no target, bad flags).
pub const EXIT_USAGE: u8 = 2;

/// A problem with the login or the target, found before anything is changed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Neither `CF_HOME` nor `HOME` is set, so `config.json` cannot be found.
    #[error("cannot find the cf CLI config: neither CF_HOME nor HOME is set; run `cf login` or set CF_HOME")]
    NoHome,
    /// `config.json` does not exist.
    #[error(
        "not logged in: {} does not exist; run `cf login` (or, in a pipeline, set CF_API plus \
         CF_CLIENT_ID/CF_CLIENT_SECRET or CF_USERNAME/CF_PASSWORD)",
        path.display()
    )]
    NoConfigFile {
        /// Where the file was looked for.
        path: PathBuf,
    },
    /// `config.json` has no API target.
    #[error("no API endpoint set in {}; run `cf api URL` and `cf login`", path.display())]
    NoApi {
        /// The config file.
        path: PathBuf,
    },
    /// `config.json` has no tokens.
    #[error("not logged in: {} holds no token; run `cf login`", path.display())]
    NotLoggedIn {
        /// The config file.
        path: PathBuf,
    },
    /// `config.json` is of a format the cf CLI v7/v8 does not read either.
    #[error(
        "{} has ConfigVersion {found}, not 4, so the cf CLI ignores it too; run `cf login` with cf CLI v7 or newer",
        path.display()
    )]
    UnsupportedVersion {
        /// The config file.
        path: PathBuf,
        /// The `ConfigVersion` found (as written in the file).
        found: String,
    },
    /// `config.json` could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The config file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `config.json` is not a JSON object.
    #[error("{} is not a valid cf CLI config; run `cf login` to rewrite it", path.display())]
    Parse {
        /// The config file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// Refreshed tokens could not be written back.
    #[error("cannot write {}; check the permissions of the file and its directory", path.display())]
    Write {
        /// The config file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `CF_API` is set but the credentials to go with it are not.
    #[error(
        "CF_API is set but no credentials are: set CF_CLIENT_ID and CF_CLIENT_SECRET, or CF_USERNAME and \
         CF_PASSWORD (or unset CF_API to use the login of `cf login`)"
    )]
    EnvCredentialsMissing,
    /// A URL from the configuration does not parse.
    #[error("{what} {value:?} is not a valid URL; {fix}")]
    InvalidUrl {
        /// Which setting.
        what: &'static str,
        /// Its value.
        value: String,
        /// What to do.
        fix: &'static str,
    },
    /// The API's root document names no login server.
    #[error("the API at {api} announces no login server (`links.login` / `links.uaa` in GET /); check CF_API")]
    NoTokenEndpoint {
        /// The API URL.
        api: String,
    },
    /// No org is targeted.
    #[error("no org targeted; run `cf target -o ORG` or pass `--org` (env CF_ORG)")]
    NoOrg,
    /// No space is targeted.
    #[error("no space targeted; run `cf target -s SPACE` or pass `--space` (env CF_SPACE)")]
    NoSpace,
    /// The org named by `--org` is not visible.
    #[error("org {name:?} not found (or you cannot see it); check the name with `cf orgs`")]
    OrgNotFound {
        /// The org name.
        name: String,
    },
    /// The space named by `--space` is not in the org.
    #[error("space {name:?} not found in org {org:?} (or you cannot see it); check the name with `cf spaces`")]
    SpaceNotFound {
        /// The org name.
        org: String,
        /// The space name.
        name: String,
    },
    /// The HTTP client could not be built (TLS set-up).
    #[error("cannot set up the HTTP client")]
    HttpClient(#[source] reqwest::Error),
}

/// A failure to get a token from UAA.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// UAA says the refresh token is no longer valid (`invalid_token`).
    #[error(
        "The token expired, was revoked, or the token ID is incorrect. Please log back in to re-authenticate: \
         run `cf login`"
    )]
    InvalidRefreshToken,
    /// There is no refresh token to refresh with.
    #[error("the access token has expired and there is no refresh token to renew it; run `cf login`")]
    NoRefreshToken,
    /// The stored access token cannot be sent (not a valid header value).
    #[error("the stored access token is damaged; run `cf login`")]
    Malformed,
    /// UAA refused the client or user credentials.
    #[error(
        "UAA refused the credentials ({error}: {description}); check CF_CLIENT_ID/CF_CLIENT_SECRET or \
         CF_USERNAME/CF_PASSWORD, or run `cf login` (`cf auth` for client credentials) again"
    )]
    BadCredentials {
        /// UAA's `error`.
        error: String,
        /// UAA's `error_description`.
        description: String,
    },
    /// UAA answered with another error.
    #[error("UAA at {url} answered HTTP {status} ({error}: {description}); retry later, or run `cf login` again")]
    Uaa {
        /// The token URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// UAA's `error` (or the reason phrase).
        error: String,
        /// UAA's `error_description` (or the start of the body).
        description: String,
    },
    /// No connection to UAA.
    #[error(transparent)]
    Unreachable(Unreachable),
    /// UAA was reached but its answer did not arrive.
    #[error("no answer from UAA at {url} ({cause}); run the command again")]
    Transport {
        /// The token URL.
        url: String,
        /// Why, in a few words (`connection refused`, `timed out`).
        cause: String,
    },
    /// The program that lent its login (the cf CLI, to a plugin) could not give a token: its
    /// refresh at UAA failed, or it is no longer there.
    #[error("the cf CLI could not give a token ({cause}); run `cf login`")]
    Lender {
        /// What it said.
        cause: String,
    },
    /// UAA's answer is not a token response.
    #[error("UAA at {url} sent an answer that is not a token response; check the API target (`cf api`)")]
    BadResponse {
        /// The token URL.
        url: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

impl TokenError {
    /// Whether the user has to log in again (a configuration problem) rather than retry.
    pub fn needs_login(&self) -> bool {
        matches!(
            self,
            TokenError::InvalidRefreshToken
                | TokenError::NoRefreshToken
                | TokenError::Malformed
                | TokenError::BadCredentials { .. }
                | TokenError::Lender { .. }
        )
    }
}

/// A server switchctl talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// The Cloud Controller (the API).
    CloudController,
    /// The login server.
    Uaa,
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Server::CloudController => "the Cloud Controller",
            Server::Uaa => "UAA",
        })
    }
}

/// No connection to a server (refused, DNS, connect timeout, TLS): the request was never sent.
///
/// One line, without the HTTP library's error chain (`error sending request for url (…)`,
/// `client error (Connect)`, …), which says nothing the cause does not.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "cannot reach {server} at {url} ({cause}{}); check the API target (`cf api`) and the network",
    tries(*attempts)
)]
pub struct Unreachable {
    /// Which server.
    pub server: Server,
    /// Its URL (the API's base URL, UAA's token URL).
    pub url: String,
    /// Why, in a few words (`connection refused`, `timed out`).
    pub cause: String,
    /// Attempts made.
    pub attempts: u32,
}

fn tries(attempts: u32) -> String {
    if attempts > 1 { format!(", tried {attempts} times") } else { String::new() }
}

/// Why a request got no answer, in a few words (`connection refused`, `DNS lookup failed: …`,
/// `timed out`), for one-line messages. The full chain is in the `-v` log.
pub(crate) fn transport_cause(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".to_owned();
    }
    let mut kind = None;
    let mut dns = false;
    let mut innermost = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            kind = kind.or(Some(io.kind()));
        }
        innermost = cause.to_string();
        // hyper-util's resolver failure; its own text is the OS resolver's.
        dns |= innermost == "dns error";
        source = cause.source();
    }
    use std::io::ErrorKind::*;
    match kind {
        Some(ConnectionRefused) => return "connection refused".to_owned(),
        Some(ConnectionReset) => return "connection reset".to_owned(),
        Some(ConnectionAborted) => return "connection aborted".to_owned(),
        Some(TimedOut) => return "timed out".to_owned(),
        _ => {}
    }
    // The OS adds its error number, which means nothing to the reader.
    let text = match innermost.rfind(" (os error ") {
        Some(at) => &innermost[..at],
        None => &innermost,
    };
    let text = text.strip_prefix("failed to lookup address information: ").unwrap_or(text);
    if dns && text != "dns error" { format!("DNS lookup failed: {text}") } else { text.to_owned() }
}

/// One entry of a Cloud Controller error body `{"errors":[{"detail","title","code"}]}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ErrorItem {
    /// E.g. `CF-ResourceNotFound`.
    #[serde(default)]
    pub title: String,
    /// E.g. 10010.
    #[serde(default)]
    pub code: Option<i64>,
    /// E.g. `App not found`.
    #[serde(default)]
    pub detail: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    errors: Vec<ErrorItem>,
}

/// An error answer of the Cloud Controller.
///
/// `Display` is `title (code): detail — what to do [METHOD path → HTTP status]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: u16,
    /// The error title, e.g. `CF-NotAuthorized`; `HTTP 502` when the body is not a CC error.
    pub title: String,
    /// The error code, e.g. 10003; `None` when the body is not a CC error.
    pub code: Option<i64>,
    /// The error detail; the start of the body when it is not a CC error.
    pub detail: String,
    /// Further errors of the same answer (CC sends several for compound errors).
    pub more: Vec<ErrorItem>,
    /// The request method.
    pub method: String,
    /// The request path (no query, no host).
    pub path: String,
}

impl ApiError {
    /// Parses an error answer. Bodies that are not `{"errors":[…]}` (a router's 502 page, say) give a
    /// title `HTTP <status>` and their first 200 characters as detail.
    pub fn from_response(status: u16, body: &[u8], method: &str, path: &str) -> ApiError {
        let (first, more) = match serde_json::from_slice::<ErrorBody>(body) {
            Ok(ErrorBody { errors }) if !errors.is_empty() => {
                let mut it = errors.into_iter();
                match it.next() {
                    Some(first) => (first, it.collect()),
                    None => (plain_item(status, body), Vec::new()),
                }
            }
            _ => (plain_item(status, body), Vec::new()),
        };
        ApiError {
            status,
            title: first.title,
            code: first.code,
            detail: first.detail,
            more,
            method: method.to_owned(),
            path: path.to_owned(),
        }
    }

    /// Whether this is CAPI's "token invalid or expired" answer (401 `CF-InvalidAuthToken`).
    pub fn is_invalid_auth_token(&self) -> bool {
        self.status == 401 && (self.title == "CF-InvalidAuthToken" || self.code == Some(1000))
    }

    /// What the user should do about this error.
    pub fn hint(&self) -> &'static str {
        match (self.status, self.title.as_str()) {
            (401, _) => {
                "your login is not valid (any more): run `cf login` (in a pipeline: check CF_API and \
                 CF_CLIENT_ID/CF_CLIENT_SECRET or CF_USERNAME/CF_PASSWORD)"
            }
            (403, "CF-OrgSuspended" | "CF-SpaceSuspended") => {
                "the org or space is suspended; ask a platform operator to reactivate it"
            }
            (403, _) => {
                "you need the Space Developer role (SpaceDeveloper; Space Supporter suffices for route changes) in \
                 the app's space (`cf space-users ORG SPACE` shows who has it; an org or space manager can grant it \
                 with `cf set-space-role`)"
            }
            (404, _) => {
                "check the app and route names and the targeted org and space (`cf target`, `cf apps`, `cf routes`)"
            }
            (422, _) if self.detail.contains("route's space") => {
                "the maintenance app must be in the same space as the app's routes (or the routes shared into its \
                 space)"
            }
            (422, _) => "the Cloud Controller refused the change; fix what the detail says and run the command again",
            (429, _) => "the API rate limit is used up; wait until it resets and run the command again",
            (400, _) => "the API did not accept switchctl's request; please report this with the output of `-v`",
            (500..=599, _) => {
                "the Cloud Controller is failing or unavailable; wait and run the command again (`switchctl \
                 status` shows what was changed)"
            }
            (300..=399, _) => "the API answered with a redirect; check the API URL (`cf api`)",
            _ => "run the command again with `-v` to see the requests",
        }
    }
}

fn plain_item(status: u16, body: &[u8]) -> ErrorItem {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let detail = if text.is_empty() {
        "(empty answer)".to_owned()
    } else {
        let mut short: String = text.chars().take(200).collect();
        if short.len() < text.len() {
            short.push('…');
        }
        short
    };
    let reason = reqwest::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("");
    ErrorItem { title: format!("HTTP {status} {reason}").trim_end().to_owned(), code: None, detail }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_item(f, &self.title, self.code, &self.detail)?;
        for item in &self.more {
            f.write_str("; ")?;
            write_item(f, &item.title, item.code, &item.detail)?;
        }
        write!(f, " — {} [{} {} → HTTP {}]", self.hint(), self.method, self.path, self.status)
    }
}

fn write_item(f: &mut fmt::Formatter<'_>, title: &str, code: Option<i64>, detail: &str) -> fmt::Result {
    match code {
        Some(code) => write!(f, "{title} ({code}): {detail}"),
        None => write!(f, "{title}: {detail}"),
    }
}

impl std::error::Error for ApiError {}

/// What the library's entry points return.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Login or target problem.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Token problem.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The Cloud Controller answered with an error (boxed: it is large, and errors travel far).
    #[error(transparent)]
    Api(Box<ApiError>),
    /// The API or UAA could not be connected to.
    #[error("{error}")]
    Unreachable {
        /// Which server, and why.
        error: Unreachable,
        /// No request had got through to the API before: nothing was changed, so this is the
        /// target or the network (exit 2) rather than a failure half way (exit 1).
        nothing_changed: bool,
    },
    /// The request was sent (or perhaps sent) but did not get an answer.
    #[error("{method} {url}: {what}")]
    Transport {
        /// The request method.
        method: String,
        /// The request URL (without credentials).
        url: String,
        /// What happened (the cause in a few words, not the HTTP library's error chain) and what
        /// to do.
        what: String,
    },
    /// The answer is not what the API documents.
    #[error("{method} {url}: the answer is not the JSON switchctl expects; check the API target (`cf api`)")]
    Decode {
        /// The request method.
        method: String,
        /// The request URL.
        url: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The API's pagination does not end.
    #[error("GET {url}: the list did not end after {pages} pages; please report this")]
    Pagination {
        /// The first page's URL.
        url: String,
        /// Pages read.
        pages: usize,
    },
    /// Waiting for the rate limit would take too long.
    #[error("{source} (switchctl waited {waited:?} in all and gives up)")]
    GaveUp {
        /// The last answer.
        source: Box<ApiError>,
        /// Total time waited before retries.
        waited: Duration,
    },
    /// The rate limit asks for a wait beyond `--max-wait`: the request was refused, not carried out.
    #[error(
        "{source}: the Cloud Controller's rate limit allows the next request in {}s (at {until}), beyond \
         --max-wait {}s (waited {}s already); run the command again after that, or with a longer --max-wait",
        retry_after.as_secs(), max_wait.as_secs(), waited.as_secs()
    )]
    RateLimited {
        /// The 429.
        source: Box<ApiError>,
        /// What `Retry-After` asked for.
        retry_after: Duration,
        /// When that is, UTC (`HH:MM:SS UTC`).
        until: String,
        /// Waited for this request already.
        waited: Duration,
        /// `--max-wait`.
        max_wait: Duration,
    },
    /// The app named on the command line is not in the target space.
    #[error(
        "app {name:?} not found in org {org:?} / space {space:?}; check the name with `cf apps` (and the target \
         with `cf target`, or pass --org/--space); nothing was changed"
    )]
    AppNotFound {
        /// The name given.
        name: String,
        /// The org searched.
        org: String,
        /// The space searched.
        space: String,
    },
    /// The maintenance app is not in the target space.
    #[error(
        "maintenance app {name:?} not found in org {org:?} / space {space:?}; push it there (`cf push` from the \
         maintenance-app directory), or name it with --maintenance-app (env SWITCHCTL_MAINTENANCE_APP): it must be \
         in the same space as the routes; nothing was changed"
    )]
    MaintenanceAppNotFound {
        /// The name given (or the default).
        name: String,
        /// The org searched.
        org: String,
        /// The space searched.
        space: String,
    },
    /// A request of the checks before the first change failed: nothing was changed, and the same
    /// command, run again once the cause is gone, does the whole job.
    #[error("{cause}; nothing was changed: run {command} again once that is over")]
    BeforeAnyChange {
        /// What failed.
        cause: String,
        /// The command(s) to run again, in backticks.
        command: String,
    },
    /// The run would bring a maintenance app past the share of Diego's routes limit `on` allows.
    #[error(
        "maintenance app {name:?} in space {space:?} would carry {after_routes} routes after this run, about \
         {after_bytes} bytes of routes for Diego, past {allowed_bytes} (three quarters of Diego's limit of {limit} \
         bytes on one app's routes; past the limit Diego refuses the app's routes and new ones never reach the \
         routers). It carries {carried} routes now, so about {room} more fit. Nothing was changed: spread the routes \
         over more maintenance apps (push another copy of the maintenance app and name every one with \
         --maintenance-app, once each: the run has {pool} now), or switch fewer apps in one run"
    )]
    Capacity {
        /// The maintenance app.
        name: String,
        /// Its space.
        space: String,
        /// Routes it carries now.
        carried: usize,
        /// Routes after the run.
        after_routes: usize,
        /// Estimated bytes after the run.
        after_bytes: u64,
        /// The most allowed.
        allowed_bytes: u64,
        /// `--routes-limit`.
        limit: u64,
        /// How many more routes fit.
        room: usize,
        /// How many maintenance apps the run spreads routes over.
        pool: usize,
    },
    /// The run certainly needs more requests than the Cloud Controller's rate limit leaves, and its
    /// window ends later than `--max-wait` allows waiting.
    #[error(
        "this run needs about {needed} more requests to the Cloud Controller, and its rate limit leaves at most \
         {at_most} of {limit} until its window ends at {until}, in {wait_s} s: longer than --max-wait allows waiting. \
         Nothing was changed: run {command} after {until}, or wait for it with {waiting}, or switch fewer apps in \
         one run"
    )]
    RateBudget {
        /// Requests the run needs.
        needed: u64,
        /// At most this many are left.
        at_most: u64,
        /// `X-RateLimit-Limit`.
        limit: u64,
        /// The window's end, `HH:MM:SS UTC`.
        until: String,
        /// Seconds until then.
        wait_s: u64,
        /// The same run, in backticks.
        command: String,
        /// The same run allowed to wait, in backticks.
        waiting: String,
    },
    /// An app that has to answer on the routes is not running.
    #[error("{role} {name:?} cannot serve the routes: {why}; {fix}")]
    NotRunning {
        /// `app` or `maintenance app`.
        role: &'static str,
        /// Its name.
        name: String,
        /// What is wrong.
        why: String,
        /// What to do.
        fix: String,
    },
    /// Apps to restage have a deployment in progress: the Cloud Controller would refuse their new
    /// droplet inside the window (`PATCH …/relationships/current_droplet` is 422 while one deploys).
    #[error("cannot restage while a deployment is in progress: {0}; nothing was changed")]
    DeploymentInProgress(String),
    /// Arguments that parse but make no sense together.
    #[error("{0}")]
    Usage(String),
    /// Writing output failed.
    #[error("cannot write the output")]
    Output(#[source] std::io::Error),
}

impl From<ApiError> for Error {
    fn from(e: ApiError) -> Error {
        Error::Api(Box::new(e))
    }
}

impl Error {
    /// The process exit code for this error: 2 for configuration and login problems, else 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) | Error::Usage(_) => EXIT_USAGE,
            // A name that does not exist is a mistake in the command (or its configuration), like
            // an unknown `--org`; a stopped app is the platform's state.
            Error::AppNotFound { .. }
            | Error::MaintenanceAppNotFound { .. }
            | Error::Capacity { .. }
            | Error::RateBudget { .. } => EXIT_USAGE,
            Error::Token(t) if t.needs_login() => EXIT_USAGE,
            Error::Unreachable { nothing_changed: true, .. } => EXIT_USAGE,
            _ => EXIT_FAILURE,
        }
    }

    /// The Cloud Controller error inside, if this is one.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Error::Api(e) | Error::GaveUp { source: e, .. } | Error::RateLimited { source: e, .. } => Some(e),
            _ => None,
        }
    }
}

/// `error: cause: cause…`, as `{:#}` of anyhow prints it: for reports that carry an error as text.
pub fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(name: &str) -> Vec<u8> {
        let path = format!("{}/../tests/fixtures/capi/cc-error-bodies/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("read {path}: {e}"))
    }

    #[test]
    fn every_recorded_error_body_is_shown_as_title_code_detail_and_a_hint() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/capi/cc-error-bodies");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {dir}: {e}")) {
            let entry = entry.expect("dir entry");
            let name = entry.file_name().to_string_lossy().into_owned();
            let status: u16 = name[..3].parse().expect("file name starts with the status");
            let raw: serde_json::Value = serde_json::from_slice(&body(&name)).expect("json");
            let item = &raw["errors"][0];
            let err = ApiError::from_response(status, &body(&name), "GET", "/v3/x");
            let want = format!(
                "{} ({}): {}",
                item["title"].as_str().expect("title"),
                item["code"].as_i64().expect("code"),
                item["detail"].as_str().expect("detail")
            );
            let shown = err.to_string();
            assert!(shown.starts_with(&want), "{name}: {shown}");
            assert!(shown.contains(err.hint()), "{name}: {shown}");
            assert!(shown.ends_with(&format!("[GET /v3/x → HTTP {status}]")), "{name}: {shown}");
            seen += 1;
        }
        assert!(seen >= 20, "only {seen} error bodies found");
    }

    #[test]
    fn hints_say_what_to_do_per_status() {
        let hint = |status, name| ApiError::from_response(status, &body(name), "GET", "/").hint();
        assert!(hint(401, "401-CF-InvalidAuthToken.json").contains("cf login"));
        assert!(hint(403, "403-CF-NotAuthorized.json").contains("SpaceDeveloper"));
        assert!(hint(404, "404-CF-ResourceNotFound-app.json").contains("cf target"));
        assert!(hint(422, "422-CF-UnprocessableEntity-destination-space.json").contains("same space"));
        assert!(hint(429, "429-CF-RateLimitExceeded.json").contains("rate limit"));
        assert!(hint(503, "503-CF-ServiceUnavailable-db.json").contains("switchctl status"));
    }

    #[test]
    fn invalid_auth_token_is_recognised() {
        let err = ApiError::from_response(401, &body("401-CF-InvalidAuthToken.json"), "GET", "/v3/apps");
        assert!(err.is_invalid_auth_token());
        let err = ApiError::from_response(401, &body("401-CF-NotAuthenticated.json"), "GET", "/v3/apps");
        assert!(!err.is_invalid_auth_token());
    }

    #[test]
    fn a_router_page_is_shown_with_its_status_and_text() {
        let err = ApiError::from_response(502, b"<html>502 Bad Gateway</html>\n", "GET", "/v3/apps");
        assert_eq!(err.title, "HTTP 502 Bad Gateway");
        assert_eq!(err.code, None);
        assert!(err.to_string().starts_with("HTTP 502 Bad Gateway: <html>502 Bad Gateway</html> — "));
    }

    #[test]
    fn compound_errors_are_all_shown() {
        let raw = br#"{"errors":[{"detail":"a","title":"CF-A","code":1},{"detail":"b","title":"CF-B","code":2}]}"#;
        let err = ApiError::from_response(422, raw, "POST", "/v3/x");
        assert!(err.to_string().starts_with("CF-A (1): a; CF-B (2): b — "));
    }

    #[test]
    fn login_problems_exit_2_and_api_failures_exit_1() {
        assert_eq!(Error::from(ConfigError::NoSpace).exit_code(), EXIT_USAGE);
        assert_eq!(Error::from(TokenError::InvalidRefreshToken).exit_code(), EXIT_USAGE);
        let api = ApiError::from_response(500, b"", "GET", "/");
        assert_eq!(Error::from(api).exit_code(), EXIT_FAILURE);
        let missing = Error::AppNotFound { name: "shop".into(), org: "o".into(), space: "s".into() };
        assert_eq!(missing.exit_code(), EXIT_USAGE);
        let stopped =
            Error::NotRunning { role: "app", name: "shop".into(), why: "it is STOPPED".into(), fix: "x".into() };
        assert_eq!(stopped.exit_code(), EXIT_FAILURE);
    }

    #[test]
    fn an_unreachable_server_is_a_configuration_error_only_before_anything_got_through() {
        let error = Unreachable {
            server: Server::Uaa,
            url: "https://uaa.example.com/oauth/token".into(),
            cause: "connection refused".into(),
            attempts: 3,
        };
        assert_eq!(
            error.to_string(),
            "cannot reach UAA at https://uaa.example.com/oauth/token (connection refused, tried 3 times); check the \
             API target (`cf api`) and the network"
        );
        let first = Error::Unreachable { error: error.clone(), nothing_changed: true };
        assert_eq!(first.exit_code(), EXIT_USAGE);
        let later = Error::Unreachable { error, nothing_changed: false };
        assert_eq!(later.exit_code(), EXIT_FAILURE);
        assert_eq!(first.to_string(), later.to_string());
    }
}
