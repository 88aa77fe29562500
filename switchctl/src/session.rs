//! Building the authenticated [`Client`] and finding the target space, the way cf users expect.
//!
//! Two logins:
//! * **cf CLI** (the default): `$CF_HOME/.cf/config.json` (else `~/.cf/config.json`) as `cf login`
//!   left it — API target, tokens, UAA endpoint, targeted org and space, `SSLDisabled`. Renewed tokens
//!   are written back to the file.
//! * **Environment** (pipelines without `cf login`), chosen when `CF_API` is set: the API URL plus
//!   `CF_CLIENT_ID`/`CF_CLIENT_SECRET` (client credentials) or `CF_USERNAME`/`CF_PASSWORD`
//!   (password grant); org and space from `--org`/`--space` (or `CF_ORG`/`CF_SPACE`). The token
//!   endpoint is found in `GET /` (`links.login`, else `links.uaa`). No file is read or written.
//!
//! * **Lent** by the program that started switchctl ([`LentLogin`]: the cf CLI, when switchctl runs
//!   as its plugin): API, org, space, `SSLDisabled` as it reports them, and tokens asked of it
//!   (it refreshes them). What it could not report comes from `config.json` as above.
//!
//! `--org`/`--space` also override the cf CLI's target. TLS is verified unless `SSLDisabled` is set
//! in the config or `--skip-ssl-validation` is given (with a warning).

use std::{path::PathBuf, sync::Arc};

use crate::{
    capi::{Client, HttpOptions, parse_api_url},
    cfconfig::{CfConfig, Targeted},
    error::{ConfigError, Error},
    uaa::{Login, TokenLender, TokenSource, token_url},
};

/// A login lent by the program that started switchctl. Each part is `None` when the lender could
/// not say (its call failed): that part then comes from `config.json`.
#[derive(Clone, Default)]
pub struct LentLogin {
    /// The API endpoint.
    pub api: Option<String>,
    /// The targeted org (`Some(None)`: the lender says none is targeted).
    pub org: Option<Option<Targeted>>,
    /// The targeted space (`Some(None)`: the lender says none is targeted).
    pub space: Option<Option<Targeted>>,
    /// Whether TLS verification is off for the API.
    pub ssl_disabled: Option<bool>,
    /// Where tokens come from.
    pub tokens: Option<Arc<dyn TokenLender>>,
    /// The token the lender gave first (`bearer …`), used until it expires or is rejected.
    pub access_token: Option<String>,
}

impl std::fmt::Debug for LentLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LentLogin")
            .field("api", &self.api)
            .field("org", &self.org)
            .field("space", &self.space)
            .field("ssl_disabled", &self.ssl_disabled)
            .field("tokens", &self.tokens.is_some())
            .field("access_token", &self.access_token.is_some())
            .finish()
    }
}

/// The login settings from the environment. Tests build this directly; the binary reads the
/// process environment with [`LoginEnv::from_process`].
#[derive(Clone, Default)]
pub struct LoginEnv {
    /// `CF_HOME`.
    pub cf_home: Option<PathBuf>,
    /// `HOME`.
    pub home: Option<PathBuf>,
    /// `CF_API`: when set, log in from the environment instead of `config.json`.
    pub api: Option<String>,
    /// `CF_USERNAME`.
    pub username: Option<String>,
    /// `CF_PASSWORD`.
    pub password: Option<String>,
    /// `CF_CLIENT_ID`.
    pub client_id: Option<String>,
    /// `CF_CLIENT_SECRET`.
    pub client_secret: Option<String>,
    /// A login lent by the program that started switchctl; used before all of the above.
    pub lent: Option<LentLogin>,
}

impl std::fmt::Debug for LoginEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginEnv")
            .field("cf_home", &self.cf_home)
            .field("home", &self.home)
            .field("api", &self.api)
            .field("username", &self.username)
            .field("client_id", &self.client_id)
            .field("lent", &self.lent)
            .finish_non_exhaustive()
    }
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl LoginEnv {
    /// Reads `CF_HOME`, `HOME`, `CF_API`, `CF_USERNAME`, `CF_PASSWORD`, `CF_CLIENT_ID`, `CF_CLIENT_SECRET`.
    pub fn from_process() -> LoginEnv {
        LoginEnv {
            cf_home: var("CF_HOME").map(PathBuf::from),
            home: std::env::var_os("HOME").map(PathBuf::from),
            api: var("CF_API"),
            username: var("CF_USERNAME"),
            password: std::env::var("CF_PASSWORD").ok(),
            client_id: var("CF_CLIENT_ID"),
            client_secret: std::env::var("CF_CLIENT_SECRET").ok(),
            lent: None,
        }
    }
}

/// Everything needed to open a [`Session`].
#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    /// `--org`: overrides the targeted org.
    pub org: Option<String>,
    /// `--space`: overrides the targeted space.
    pub space: Option<String>,
    /// `--skip-ssl-validation`.
    pub skip_ssl_validation: bool,
    /// Login settings from the environment.
    pub env: LoginEnv,
    /// Timeouts and retries (`skip_ssl_validation` here is set from the flag and the config).
    pub http: HttpOptions,
}

/// Where the login came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginSource {
    /// The cf CLI's `config.json` at this path.
    CfConfig(PathBuf),
    /// `CF_API` and credentials from the environment.
    Environment,
    /// Lent by the program that started switchctl (the cf CLI).
    Lent,
}

/// An org and a space, with GUIDs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The org.
    pub org: Targeted,
    /// The space.
    pub space: Targeted,
}

/// An authenticated client plus the target to work in.
#[derive(Debug, Clone)]
pub struct Session {
    client: Client,
    source: LoginSource,
    config_org: Option<Targeted>,
    config_space: Option<Targeted>,
    org_flag: Option<String>,
    space_flag: Option<String>,
}

impl Session {
    /// Opens a session from the cf CLI config, or from the environment when `CF_API` is set.
    /// Fails with a [`ConfigError`] saying what to run when there is no usable login.
    pub async fn connect(options: SessionOptions) -> Result<Session, Error> {
        let SessionOptions { org, space, skip_ssl_validation, env, mut http } = options;
        let org = org.filter(|o| !o.trim().is_empty());
        let space = space.filter(|s| !s.trim().is_empty());
        if let Some(lent) = env.lent.clone() {
            let mut session = connect_lent(lent, &env, skip_ssl_validation, http).await?;
            (session.org_flag, session.space_flag) = (org, space);
            return Ok(session);
        }
        if let Some(api) = env.api.clone() {
            http.skip_ssl_validation = skip_ssl_validation;
            warn_if_insecure(&http, "--skip-ssl-validation");
            let client = connect_env(&api, &env, &http).await?;
            return Ok(Session {
                client,
                source: LoginSource::Environment,
                config_org: None,
                config_space: None,
                org_flag: org,
                space_flag: space,
            });
        }
        let path = CfConfig::locate(env.cf_home.as_deref(), env.home.as_deref())?;
        let config = CfConfig::load(&path)?;
        let api = config.target().ok_or_else(|| ConfigError::NoApi { path: path.clone() })?;
        let api = parse_api_url(api, "Target in config.json", "run `cf api URL` and `cf login`")?;
        if config.access_token().is_none() && config.refresh_token().is_none() {
            return Err(ConfigError::NotLoggedIn { path }.into());
        }
        http.skip_ssl_validation = skip_ssl_validation || config.ssl_disabled();
        warn_if_insecure(
            &http,
            if skip_ssl_validation { "--skip-ssl-validation" } else { "SSLDisabled in config.json" },
        );
        let client_http = http.client()?;
        let (config_org, config_space) = (config.org(), config.space());
        let tokens = config_tokens(config, &client_http, &api, &http).await?;
        Ok(Session {
            client: Client::new(client_http, api, Some(tokens), http.retry.clone()),
            source: LoginSource::CfConfig(path),
            config_org,
            config_space,
            org_flag: org,
            space_flag: space,
        })
    }

    /// The authenticated client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Where the login came from.
    pub fn source(&self) -> &LoginSource {
        &self.source
    }

    /// The org and space to work in: `--org`/`--space` (looked up by name) over the cf CLI's target.
    /// Without a flag and with the cf target, no request is made.
    pub async fn target(&self) -> Result<Target, Error> {
        let org = self.target_org().await?;
        let same_org = self.config_org.as_ref().is_some_and(|c| c.guid == org.guid);
        let space = match (&self.space_flag, &self.config_space) {
            (Some(name), Some(cfg)) if same_org && *name == cfg.name => cfg.clone(),
            (Some(name), _) => {
                let found = self.client.find_space(&org.guid, name).await?;
                let space =
                    found.ok_or_else(|| ConfigError::SpaceNotFound { org: org.name.clone(), name: name.clone() })?;
                Targeted { guid: space.guid, name: space.name }
            }
            // The cf target's space belongs to the cf target's org only.
            (None, Some(cfg)) if same_org => cfg.clone(),
            (None, _) => return Err(ConfigError::NoSpace.into()),
        };
        Ok(Target { org, space })
    }

    /// The org to work in: `--org` (looked up by name) over the cf CLI's target.
    pub async fn target_org(&self) -> Result<Targeted, Error> {
        Ok(match (&self.org_flag, &self.config_org) {
            (Some(name), Some(cfg)) if *name == cfg.name => cfg.clone(),
            (Some(name), _) => {
                let found = self.client.find_org(name).await?;
                let org = found.ok_or_else(|| ConfigError::OrgNotFound { name: name.clone() })?;
                Targeted { guid: org.guid, name: org.name }
            }
            (None, Some(cfg)) => cfg.clone(),
            (None, None) => return Err(ConfigError::NoOrg.into()),
        })
    }
}

/// A session from a lent login, each missing part from `config.json` (read only when needed).
async fn connect_lent(
    lent: LentLogin,
    env: &LoginEnv,
    skip_ssl_validation: bool,
    mut http: HttpOptions,
) -> Result<Session, Error> {
    let complete = lent.api.is_some()
        && lent.tokens.is_some()
        && lent.ssl_disabled.is_some()
        && lent.org.is_some()
        && lent.space.is_some();
    let config = if complete {
        None
    } else {
        let path = CfConfig::locate(env.cf_home.as_deref(), env.home.as_deref())?;
        Some(CfConfig::load(&path)?)
    };
    let api = match (&lent.api, &config) {
        (Some(api), _) => api.clone(),
        (None, Some(config)) => {
            config.target().ok_or_else(|| ConfigError::NoApi { path: config.path().to_owned() })?.to_owned()
        }
        (None, None) => unreachable!("config is read whenever a part is missing"),
    };
    let api = parse_api_url(&api, "the cf CLI's API endpoint", "run `cf api URL` and `cf login`")?;
    let ssl_disabled = lent.ssl_disabled.unwrap_or_else(|| config.as_ref().is_some_and(CfConfig::ssl_disabled));
    http.skip_ssl_validation = skip_ssl_validation || ssl_disabled;
    warn_if_insecure(&http, if skip_ssl_validation { "--skip-ssl-validation" } else { "SSLDisabled of the cf CLI" });
    let client_http = http.client()?;
    let tokens = match (lent.tokens, &config) {
        (Some(lender), _) => TokenSource::lent(client_http.clone(), api.clone(), lender, lent.access_token),
        (None, Some(config)) => {
            if config.access_token().is_none() && config.refresh_token().is_none() {
                return Err(ConfigError::NotLoggedIn { path: config.path().to_owned() }.into());
            }
            config_tokens(config.clone(), &client_http, &api, &http).await?
        }
        (None, None) => unreachable!("config is read whenever a part is missing"),
    };
    let config_org = lent.org.unwrap_or_else(|| config.as_ref().and_then(CfConfig::org));
    let config_space = lent.space.unwrap_or_else(|| config.as_ref().and_then(CfConfig::space));
    Ok(Session {
        client: Client::new(client_http, api, Some(tokens), http.retry.clone()),
        source: LoginSource::Lent,
        config_org,
        config_space,
        org_flag: None,
        space_flag: None,
    })
}

/// Tokens from `cf login`'s `config.json`, renewed at its UAA (found in `GET /` if not recorded).
async fn config_tokens(
    config: CfConfig,
    client_http: &reqwest::Client,
    api: &reqwest::Url,
    http: &HttpOptions,
) -> Result<TokenSource, Error> {
    let endpoint = match config.authorization_endpoint().or(config.uaa_endpoint()) {
        Some(endpoint) => endpoint.to_owned(),
        None => discover_token_endpoint(client_http, api, http).await?,
    };
    let token_url = token_url(&endpoint).ok_or(ConfigError::InvalidUrl {
        what: "AuthorizationEndpoint in config.json",
        value: endpoint.clone(),
        fix: "run `cf api URL` and `cf login`",
    })?;
    Ok(TokenSource::from_cf_config(client_http.clone(), token_url, config))
}

fn warn_if_insecure(http: &HttpOptions, why: &str) {
    if http.skip_ssl_validation {
        tracing::warn!("TLS certificates are not verified ({why}); anyone on the network path can read the token");
    }
}

async fn connect_env(api: &str, env: &LoginEnv, http: &HttpOptions) -> Result<Client, Error> {
    let login = match (&env.client_id, &env.client_secret, &env.username, &env.password) {
        (Some(id), Some(secret), _, _) => {
            Login::ClientCredentials { client_id: id.clone(), client_secret: secret.clone() }
        }
        (_, _, Some(user), Some(password)) => Login::Password { username: user.clone(), password: password.clone() },
        _ => return Err(ConfigError::EnvCredentialsMissing.into()),
    };
    let api = parse_api_url(api, "CF_API", "set CF_API to the API URL, e.g. https://api.sys.example.com")?;
    let client_http = http.client()?;
    let endpoint = discover_token_endpoint(&client_http, &api, http).await?;
    let token_url = token_url(&endpoint).ok_or(ConfigError::InvalidUrl {
        what: "login link of GET /",
        value: endpoint.clone(),
        fix: "check CF_API",
    })?;
    let tokens = TokenSource::new(client_http.clone(), token_url, login);
    Ok(Client::new(client_http, api, Some(tokens), http.retry.clone()))
}

/// `links.login.href`, else `links.uaa.href`, of the API's `GET /` (sent without a token).
async fn discover_token_endpoint(
    http: &reqwest::Client,
    api: &reqwest::Url,
    options: &HttpOptions,
) -> Result<String, Error> {
    let anonymous = Client::new(http.clone(), api.clone(), None, options.retry.clone());
    let root = anonymous.root().await?;
    root.token_endpoint().map(str::to_owned).ok_or_else(|| ConfigError::NoTokenEndpoint { api: api.to_string() }.into())
}
