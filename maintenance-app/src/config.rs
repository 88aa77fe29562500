//! Configuration, read once at startup from the environment and an optional rules file.
//!
//! Two layers, as in ripgrep's `lowargs` → `hiargs`: raw strings ([`PolicySpec`], [`RuleSpec`])
//! become a validated [`Config`] with typed fields, so request handlers never parse anything.
//! Every failure names the variable (or rules-file entry) and what it accepts.

use std::{path::PathBuf, str::FromStr, time::Duration};

use http::{HeaderValue, StatusCode};
use serde::Deserialize;
use time::OffsetDateTime;

// Re-exported because `config::Policy` and `config::Mode` were public paths before the types
// moved to their own module, and integration tests name them so.
pub use crate::policy::{Mode, Policy};
use crate::{
    appdoc::{AppContent, ENV_PREFIX, env_name},
    rules::{HostPattern, Rule, normalize_prefix},
};

/// Message shown when `MAINTENANCE_MESSAGE` is unset (the reference app answered 500 then).
pub const DEFAULT_MESSAGE: &str =
    "We are carrying out scheduled maintenance and will be back shortly. Thank you for your patience.";
/// Title shown when `MAINTENANCE_TITLE` is unset.
pub const DEFAULT_TITLE: &str = "Down for maintenance";
/// Value of the `StatusHeader` response header when `MAINTENANCE_STATUS_HEADER` is unset.
pub const DEFAULT_STATUS_HEADER: &str = "Status: maintenance window";
/// Health check path when `MAINTENANCE_HEALTH_PATH` is unset. The double underscore and the
/// product name make a clash with a path of an app under maintenance very unlikely, and the path
/// is also answered 200 through every route the app carries, so it must not look like an app's.
pub const DEFAULT_HEALTH_PATH: &str = "/__maintenance/health";
/// Port when `PORT` is unset (Cloud Foundry always sets it).
pub const DEFAULT_PORT: u16 = 8080;

/// A configuration error: which setting, what was given, and what it accepts.
#[derive(Debug, thiserror::Error)]
#[error("{setting}: {problem}")]
pub struct ConfigError {
    /// The variable or rules-file entry at fault, e.g. `MAINTENANCE_MODE` or `rule 2 (host "a.example")`.
    pub setting: String,
    /// What is wrong and what would be accepted.
    pub problem: String,
}

impl ConfigError {
    fn new(setting: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError { setting: setting.into(), problem: problem.into() }
    }
}

/// Unvalidated answer settings: the environment's defaults or one rule's overrides.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    /// `MAINTENANCE_MODE`.
    pub mode: Option<String>,
    /// `MAINTENANCE_MESSAGE`.
    pub message: Option<String>,
    /// `MAINTENANCE_TITLE`.
    pub title: Option<String>,
    /// `MAINTENANCE_STATUS`.
    pub status: Option<u16>,
    /// `MAINTENANCE_RETRY_AFTER`, seconds.
    pub retry_after: Option<u64>,
    /// `MAINTENANCE_UNTIL`, RFC 3339.
    pub until: Option<String>,
    /// `MAINTENANCE_STATUS_HEADER`.
    pub status_header: Option<String>,
    /// `MAINTENANCE_PAGE`, an HTML file.
    pub page: Option<PathBuf>,
}

impl PolicySpec {
    /// Fields set here win; unset ones come from `under`.
    fn over(&self, under: &PolicySpec) -> PolicySpec {
        PolicySpec {
            mode: self.mode.clone().or_else(|| under.mode.clone()),
            message: self.message.clone().or_else(|| under.message.clone()),
            title: self.title.clone().or_else(|| under.title.clone()),
            status: self.status.or(under.status),
            retry_after: self.retry_after.or(under.retry_after),
            until: self.until.clone().or_else(|| under.until.clone()),
            status_header: self.status_header.clone().or_else(|| under.status_header.clone()),
            page: self.page.clone().or_else(|| under.page.clone()),
        }
    }
}

/// One entry of the rules file: where it applies and what it overrides.
///
/// The policy fields repeat [`PolicySpec`]'s rather than `#[serde(flatten)]` it, because serde
/// cannot combine `flatten` with `deny_unknown_fields`, and a misspelt key (`retry-after`) must be
/// an error at startup, not a silently ignored setting.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Exact host, `*.domain` wildcard, or `*` for any host.
    #[serde(default = "any_host")]
    pub host: String,
    /// Optional path prefix, matched segment by segment.
    pub path: Option<String>,
    /// Answer mode.
    pub mode: Option<String>,
    /// Message.
    pub message: Option<String>,
    /// Page title.
    pub title: Option<String>,
    /// Status override.
    pub status: Option<u16>,
    /// `Retry-After` seconds.
    pub retry_after: Option<u64>,
    /// Expected end, RFC 3339.
    pub until: Option<String>,
    /// `StatusHeader` value.
    pub status_header: Option<String>,
    /// Own HTML page.
    pub page: Option<PathBuf>,
}

fn any_host() -> String {
    "*".to_owned()
}

impl RuleSpec {
    fn policy(&self) -> PolicySpec {
        PolicySpec {
            mode: self.mode.clone(),
            message: self.message.clone(),
            title: self.title.clone(),
            status: self.status,
            retry_after: self.retry_after,
            until: self.until.clone(),
            status_header: self.status_header.clone(),
            page: self.page.clone(),
        }
    }
}

/// The rules file: `[[rule]]` tables in TOML, `{"rules": [...]}` in JSON.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default, rename = "rule", alias = "rules")]
    rules: Vec<RuleSpec>,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines, for a terminal.
    Text,
    /// One JSON object per line, for Cloud Foundry's loggregator.
    Json,
}

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// TCP port to listen on (`PORT`); 0 picks a free one.
    pub port: u16,
    /// Path answered 200 for health checks (`MAINTENANCE_HEALTH_PATH`).
    pub health_path: String,
    /// Answer settings from the environment, used where no rule matches.
    pub default: Policy,
    /// Per host/path overrides from `MAINTENANCE_CONFIG`, most specific first.
    pub rules: Vec<Rule>,
    /// Log format: JSON on Cloud Foundry (`VCAP_APPLICATION` set) unless `LOG_FORMAT` says otherwise.
    pub log_format: LogFormat,
    /// How often request counts per host are logged; zero turns it off (`MAINTENANCE_STATS_INTERVAL`).
    pub stats_interval: Duration,
    /// Time a connection may go without an answer: to send a request's headers, idle between
    /// keep-alive requests, or not reading an answer (`MAINTENANCE_HEADER_TIMEOUT`).
    pub header_timeout: Duration,
    /// Longest wait for in-flight requests after SIGTERM (`MAINTENANCE_SHUTDOWN_TIMEOUT`);
    /// Cloud Foundry kills the process 10 s after SIGTERM.
    pub shutdown_timeout: Duration,
    /// Key of the control endpoint (`MAINTENANCE_CONTROL_SECRET`); `None` disables it.
    pub control_secret: Option<ControlSecret>,
    /// Per-app content from `MAINTENANCE_APP_<KEY>` variables, valid ones only.
    pub apps: Vec<AppContent>,
    /// Problems worth a warning but not a refusal to start (a bad per-app document, an `until`
    /// already past), logged once logging is set up.
    pub warnings: Vec<String>,
}

/// Shortest control secret accepted: 32 characters, 256 bits when hex or 192 when base64, as
/// much as HMAC-SHA256 can use.
pub const MIN_SECRET_LEN: usize = 32;

/// The control endpoint's key. Its `Debug` hides it, so that no log of a `Config` shows it.
#[derive(Clone)]
pub struct ControlSecret(String);

impl ControlSecret {
    /// The key bytes, for the HMAC.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for ControlSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ControlSecret(..)")
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        // Named by the app they are for, so listed rather than looked up. A value that is not
        // UTF-8 cannot be a document; it is passed on as one that fails to parse, and so is
        // reported like any other bad document.
        let apps = std::env::vars_os()
            .filter_map(|(k, v)| {
                let k = k.into_string().ok()?;
                k.starts_with(ENV_PREFIX).then(|| (k, v.into_string().unwrap_or_else(|_| "(not UTF-8)".to_owned())))
            })
            .collect();
        Config::from_lookup(
            |name| match std::env::var(name) {
                Ok(v) => Ok(Some(v)),
                Err(std::env::VarError::NotPresent) => Ok(None),
                Err(std::env::VarError::NotUnicode(_)) => {
                    Err(ConfigError::new(name, "is not valid UTF-8; set it to plain text"))
                }
            },
            apps,
        )
    }

    /// Builds a configuration from `(name, value)` pairs, as if they were the environment.
    pub fn from_vars<'a>(vars: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Config, ConfigError> {
        let vars: Vec<(&str, &str)> = vars.into_iter().collect();
        // Later pairs win, as for the other variables.
        let apps: std::collections::BTreeMap<String, String> = vars
            .iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(
            |name| Ok(vars.iter().rev().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())),
            apps.into_iter().collect(),
        )
    }

    fn from_lookup(
        get: impl Fn(&str) -> Result<Option<String>, ConfigError>,
        app_vars: Vec<(String, String)>,
    ) -> Result<Config, ConfigError> {
        // An empty variable counts as unset: manifests often carry `KEY: ""` placeholders.
        let var =
            |name: &str| -> Result<Option<String>, ConfigError> { Ok(get(name)?.filter(|v| !v.trim().is_empty())) };

        let env_spec = PolicySpec {
            mode: var("MAINTENANCE_MODE")?,
            message: var("MAINTENANCE_MESSAGE")?,
            title: var("MAINTENANCE_TITLE")?,
            status: var("MAINTENANCE_STATUS")?
                .map(|v| parse_num("MAINTENANCE_STATUS", &v, "an HTTP status code from 200 to 599"))
                .transpose()?,
            retry_after: var("MAINTENANCE_RETRY_AFTER")?
                .map(|v| parse_num("MAINTENANCE_RETRY_AFTER", &v, "a number of seconds, e.g. 600"))
                .transpose()?,
            until: var("MAINTENANCE_UNTIL")?,
            status_header: var("MAINTENANCE_STATUS_HEADER")?,
            page: var("MAINTENANCE_PAGE")?.map(PathBuf::from),
        };
        let default = validate_policy(&env_spec, &EnvNames)?;

        let rules = match var("MAINTENANCE_CONFIG")? {
            None => Vec::new(),
            Some(source) => load_rules(&source)?
                .iter()
                .enumerate()
                .map(|(i, rule)| {
                    let names = RuleNames { index: i + 1, host: &rule.host };
                    let pattern =
                        HostPattern::parse(&rule.host).map_err(|problem| ConfigError::new(names.whole(), problem))?;
                    let prefix = rule
                        .path
                        .as_deref()
                        .map(normalize_prefix)
                        .transpose()
                        .map_err(|problem| ConfigError::new(names.field("path"), problem))?;
                    let policy = validate_policy(&rule.policy().over(&env_spec), &names)?;
                    Ok(Rule::new(pattern, prefix, policy))
                })
                .collect::<Result<Vec<_>, ConfigError>>()?,
        };

        let port = match var("PORT")? {
            None => DEFAULT_PORT,
            // 0 asks the system for a free port, which tests use; the log line names the one bound.
            Some(v) => parse_num("PORT", &v, "a TCP port from 0 to 65535")?,
        };

        let health_path = var("MAINTENANCE_HEALTH_PATH")?.unwrap_or_else(|| DEFAULT_HEALTH_PATH.to_owned());
        if !health_path.starts_with('/') || health_path.contains(['?', '#', ' ']) {
            return Err(ConfigError::new(
                "MAINTENANCE_HEALTH_PATH",
                format!(
                    "{health_path:?} is not a path; give one that starts with '/' and has no '?', '#' or spaces, e.g. {DEFAULT_HEALTH_PATH}"
                ),
            ));
        }

        let log_format = match var("LOG_FORMAT")?.map(|v| v.to_ascii_lowercase()) {
            Some(v) if v == "json" => LogFormat::Json,
            Some(v) if v == "text" => LogFormat::Text,
            Some(v) => return Err(ConfigError::new("LOG_FORMAT", format!("{v:?} is not a format; use json or text"))),
            None if var("VCAP_APPLICATION")?.is_some() => LogFormat::Json,
            None => LogFormat::Text,
        };

        let seconds = |name: &str, default: u64| -> Result<Duration, ConfigError> {
            Ok(Duration::from_secs(match var(name)? {
                None => default,
                Some(v) => parse_num(name, &v, "a whole number of seconds")?,
            }))
        };
        let stats_interval = seconds("MAINTENANCE_STATS_INTERVAL", 60)?;
        let header_timeout = seconds("MAINTENANCE_HEADER_TIMEOUT", 10)?;
        if header_timeout.is_zero() {
            return Err(ConfigError::new("MAINTENANCE_HEADER_TIMEOUT", "must be at least 1 second"));
        }
        let shutdown_timeout = seconds("MAINTENANCE_SHUTDOWN_TIMEOUT", 8)?;

        // Read through `get` but not `var`: a secret of spaces is short, not unset. The error
        // gives the length only, never the value.
        let control_secret = match get("MAINTENANCE_CONTROL_SECRET")? {
            None => None,
            Some(s) if s.chars().count() < MIN_SECRET_LEN => {
                return Err(ConfigError::new(
                    "MAINTENANCE_CONTROL_SECRET",
                    format!(
                        "is {} characters long; use at least {MIN_SECRET_LEN} random characters (e.g. `openssl rand -hex 32`), or unset it to disable the control endpoint",
                        s.chars().count()
                    ),
                ));
            }
            Some(s) => Some(ControlSecret(s)),
        };

        let mut warnings = Vec::new();
        if let Some(until) = default.until
            && until <= OffsetDateTime::now_utc()
        {
            warnings.push(format!(
                "MAINTENANCE_UNTIL: {} has already passed; pages say the work is taking longer than planned",
                crate::policy::rfc3339(until)
            ));
        }
        let apps = app_documents(app_vars, &default, &mut warnings);

        Ok(Config {
            port,
            health_path,
            default,
            rules: crate::rules::most_specific_first(rules),
            log_format,
            stats_interval,
            header_timeout,
            shutdown_timeout,
            control_secret,
            apps,
            warnings,
        })
    }

    /// One line describing the effective configuration, for the startup log.
    pub fn summary(&self) -> String {
        let d = &self.default;
        let mut s = format!(
            "mode={} status={} health_path={} rules={}",
            d.mode,
            d.status.unwrap_or(d.mode.default_status()).as_u16(),
            self.health_path,
            self.rules.len()
        );
        if let Some(secs) = d.retry_after {
            s.push_str(&format!(" retry_after={secs}s"));
        }
        if let Some(until) = d.until {
            s.push_str(&format!(" until={}", crate::policy::rfc3339(until)));
        }
        if d.page.is_some() {
            s.push_str(" page=custom");
        }
        s.push_str(if self.control_secret.is_some() { " control=enabled" } else { " control=disabled" });
        s.push_str(&format!(" apps={}", self.apps.len()));
        s
    }
}

/// The valid `MAINTENANCE_APP_<KEY>` documents. A bad one is a warning naming its variable and
/// is left out: one app's bad content must not keep the maintenance app, which carries every
/// app's routes, from starting.
fn app_documents(vars: Vec<(String, String)>, base: &Policy, warnings: &mut Vec<String>) -> Vec<AppContent> {
    let mut apps = Vec::new();
    for (name, value) in vars {
        if value.trim().is_empty() {
            // An emptied variable is how a `PATCH` with `null` looks before CF drops it.
            continue;
        }
        match AppContent::parse(&value, base) {
            Ok(content) if env_name(&content.app) == name => apps.push(content),
            Ok(content) => warnings.push(format!(
                "{name}: holds the content of app {:?}, which belongs in {}; ignored",
                content.app,
                env_name(&content.app)
            )),
            Err(problem) => warnings.push(format!("{name}: {problem}; ignored")),
        }
    }
    apps
}

/// How settings are named in error messages: environment variables or rules-file fields.
trait Names {
    fn field(&self, field: &str) -> String;
}

struct EnvNames;

impl Names for EnvNames {
    fn field(&self, field: &str) -> String {
        format!("MAINTENANCE_{}", field.to_ascii_uppercase())
    }
}

struct RuleNames<'a> {
    index: usize,
    host: &'a str,
}

impl RuleNames<'_> {
    fn whole(&self) -> String {
        format!("MAINTENANCE_CONFIG rule {} (host {:?})", self.index, self.host)
    }
}

impl Names for RuleNames<'_> {
    fn field(&self, field: &str) -> String {
        format!("{}: {field}", self.whole())
    }
}

fn parse_num<T: FromStr>(setting: &str, value: &str, expected: &str) -> Result<T, ConfigError> {
    value.trim().parse().map_err(|_| ConfigError::new(setting, format!("{value:?} is not {expected}")))
}

fn validate_policy(spec: &PolicySpec, names: &dyn Names) -> Result<Policy, ConfigError> {
    let mode = match spec.mode.as_deref() {
        None => Mode::Html,
        Some(m) => m.parse().map_err(|()| {
            ConfigError::new(names.field("mode"), format!("{m:?} is not a mode; use one of {}", Mode::ACCEPTED))
        })?,
    };
    let status = spec
        .status
        .map(|code| {
            StatusCode::from_u16(code).ok().filter(|s| (200..=599).contains(&s.as_u16())).ok_or_else(|| {
                ConfigError::new(names.field("status"), format!("{code} is not an HTTP status code from 200 to 599"))
            })
        })
        .transpose()?;
    let until = spec
        .until
        .as_deref()
        .map(|v| {
            OffsetDateTime::parse(v.trim(), &time::format_description::well_known::Rfc3339).map_err(|_| {
                ConfigError::new(
                    names.field("until"),
                    format!(
                        "{v:?} is not an RFC 3339 time; write e.g. 2026-11-24T18:00:00Z or 2026-11-24T19:00:00+01:00"
                    ),
                )
            })
        })
        .transpose()?;
    let status_header_text = spec.status_header.as_deref().unwrap_or(DEFAULT_STATUS_HEADER);
    let status_header = HeaderValue::from_str(status_header_text).map_err(|_| {
        ConfigError::new(
            names.field("status_header"),
            format!("{status_header_text:?} cannot be a header value; use visible ASCII text"),
        )
    })?;
    let page = spec
        .page
        .as_ref()
        .map(|path| {
            std::fs::read_to_string(path).map_err(|e| {
                ConfigError::new(
                    names.field("page"),
                    format!("cannot read {}: {e}; name an HTML file pushed with the app", path.display()),
                )
            })
        })
        .transpose()?;
    Ok(Policy {
        mode,
        message: spec.message.clone().unwrap_or_else(|| DEFAULT_MESSAGE.to_owned()),
        title: spec.title.clone().unwrap_or_else(|| DEFAULT_TITLE.to_owned()),
        status,
        retry_after: spec.retry_after,
        until,
        status_header,
        page,
    })
}

/// Reads `MAINTENANCE_CONFIG`: inline JSON when it starts with `{`, else a TOML or JSON file.
fn load_rules(source: &str) -> Result<Vec<RuleSpec>, ConfigError> {
    const NAME: &str = "MAINTENANCE_CONFIG";
    let trimmed = source.trim_start();
    if trimmed.starts_with('{') {
        return parse_json(trimmed).map_err(|e| ConfigError::new(NAME, format!("inline JSON is not valid: {e}")));
    }
    let text = std::fs::read_to_string(source).map_err(|e| {
        ConfigError::new(NAME, format!("cannot read {source:?}: {e}; give a TOML or JSON file path or inline JSON"))
    })?;
    let is_json = source.ends_with(".json") || (!source.ends_with(".toml") && text.trim_start().starts_with('{'));
    let parsed = if is_json {
        parse_json(&text)
    } else {
        toml::from_str::<RulesFile>(&text).map(|f| f.rules).map_err(|e| e.to_string())
    };
    parsed.map_err(|e| ConfigError::new(NAME, format!("{source} is not a valid rules file: {}", e.trim_end())))
}

fn parse_json(text: &str) -> Result<Vec<RuleSpec>, String> {
    serde_json::from_str::<RulesFile>(text).map(|f| f.rules).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(vars: &[(&str, &str)]) -> String {
        Config::from_vars(vars.iter().copied()).expect_err("config should be rejected").to_string()
    }

    #[test]
    fn no_configuration_gives_html_on_8080() {
        let cfg = Config::from_vars([]).expect("defaults are valid");
        assert_eq!(cfg.port, 8080);
        assert_eq!(cfg.default.mode, Mode::Html);
        assert_eq!(cfg.default.message, DEFAULT_MESSAGE);
        assert_eq!(cfg.health_path, DEFAULT_HEALTH_PATH);
        assert_eq!(cfg.log_format, LogFormat::Text);
    }

    #[test]
    fn unknown_mode_names_the_variable_and_the_choices() {
        let e = err(&[("MAINTENANCE_MODE", "xml")]);
        assert_eq!(e, r#"MAINTENANCE_MODE: "xml" is not a mode; use one of html, 503, json, auto, compat"#);
    }

    #[test]
    fn bad_values_are_rejected_with_the_variable_named() {
        assert!(err(&[("MAINTENANCE_STATUS", "99")]).starts_with("MAINTENANCE_STATUS: "));
        assert!(err(&[("MAINTENANCE_STATUS", "abc")]).starts_with("MAINTENANCE_STATUS: "));
        assert!(err(&[("MAINTENANCE_UNTIL", "tomorrow")]).contains("RFC 3339"));
        assert!(err(&[("PORT", "70000")]).starts_with("PORT: "));
        assert!(err(&[("MAINTENANCE_RETRY_AFTER", "-5")]).starts_with("MAINTENANCE_RETRY_AFTER: "));
        assert!(err(&[("MAINTENANCE_HEALTH_PATH", "health")]).starts_with("MAINTENANCE_HEALTH_PATH: "));
        assert!(err(&[("MAINTENANCE_STATUS_HEADER", "a\nb")]).starts_with("MAINTENANCE_STATUS_HEADER: "));
        assert!(err(&[("MAINTENANCE_PAGE", "/nonexistent/page.html")]).contains("cannot read"));
        assert!(err(&[("LOG_FORMAT", "xml")]).starts_with("LOG_FORMAT: "));
    }

    #[test]
    fn empty_variables_count_as_unset() {
        let cfg = Config::from_vars([("MAINTENANCE_MESSAGE", ""), ("PORT", " ")]).expect("valid");
        assert_eq!(cfg.default.message, DEFAULT_MESSAGE);
        assert_eq!(cfg.port, 8080);
    }

    #[test]
    fn json_mode_defaults_to_200_and_others_to_503() {
        assert_eq!(Mode::Json.default_status(), StatusCode::OK);
        for m in [Mode::Html, Mode::Plain503, Mode::Auto, Mode::Compat] {
            assert_eq!(m.default_status(), StatusCode::SERVICE_UNAVAILABLE);
        }
    }

    #[test]
    fn until_accepts_offsets() {
        let cfg = Config::from_vars([("MAINTENANCE_UNTIL", "2026-11-24T19:00:00+01:00")]).expect("valid");
        assert_eq!(cfg.default.until.map(|t| t.unix_timestamp()), Some(1_795_543_200));
    }

    #[test]
    fn inline_json_rules_inherit_env_defaults() {
        let cfg = Config::from_vars([
            ("MAINTENANCE_MESSAGE", "env message"),
            ("MAINTENANCE_CONFIG", r#"{"rules":[{"host":"API.example.com","mode":"json"},{"host":"*.example.com","path":"/docs/","title":"Docs"}]}"#),
        ])
        .expect("valid");
        assert_eq!(cfg.rules.len(), 2);
        let api = cfg.rules.iter().find(|r| r.policy().mode == Mode::Json).expect("json rule");
        assert_eq!(api.policy().message, "env message");
    }

    #[test]
    fn rules_errors_name_the_rule() {
        let e = err(&[("MAINTENANCE_CONFIG", r#"{"rules":[{"host":"a.example","mode":"nope"}]}"#)]);
        assert_eq!(
            e,
            r#"MAINTENANCE_CONFIG rule 1 (host "a.example"): mode: "nope" is not a mode; use one of html, 503, json, auto, compat"#
        );
        let e = err(&[("MAINTENANCE_CONFIG", r#"{"rules":[{"host":"a b"}]}"#)]);
        assert!(e.starts_with("MAINTENANCE_CONFIG rule 1"), "{e}");
        let e = err(&[("MAINTENANCE_CONFIG", r#"{"rules":[{"host":"a.example","colour":"red"}]}"#)]);
        assert!(e.contains("unknown field"), "{e}");
        let e = err(&[("MAINTENANCE_CONFIG", "{not json")]);
        assert!(e.starts_with("MAINTENANCE_CONFIG: inline JSON is not valid"), "{e}");
        let e = err(&[("MAINTENANCE_CONFIG", "/nonexistent/rules.toml")]);
        assert!(e.contains("cannot read"), "{e}");
    }

    #[test]
    fn toml_rules_file_is_read() {
        let dir = std::env::temp_dir().join(format!("maintenance-rules-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("rules.toml");
        std::fs::write(
            &file,
            "[[rule]]\nhost = \"shop.example.com\"\npath = \"/api\"\nmode = \"json\"\nretry_after = 120\n",
        )
        .expect("write rules");
        let cfg = Config::from_vars([("MAINTENANCE_CONFIG", file.to_str().expect("utf-8 path"))]).expect("valid");
        assert_eq!(cfg.rules.len(), 1);
        assert_eq!(cfg.rules[0].policy().retry_after, Some(120));
        std::fs::write(&file, "[[rule]]\nhost = 5\n").expect("write rules");
        let e = Config::from_vars([("MAINTENANCE_CONFIG", file.to_str().expect("utf-8 path"))])
            .expect_err("bad toml")
            .to_string();
        assert!(e.contains("is not a valid rules file"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
