//! Writes a cf CLI v8 `config.json` (ConfigVersion 4) as `cf login` leaves it, pointing at a
//! running double, so tools that read `$CF_HOME/.cf/config.json` work against it.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::{cc::API_VERSION, error::Error, spawn::CfDouble};

/// Logs `user_name` in and writes `<home>/.cf/config.json` targeting `org` and `space`
/// (name, guid); returns the file's path.
pub fn seed_cli_config(
    cf: &CfDouble,
    home: &Path,
    user_name: &str,
    org: (&str, &str),
    space: (&str, &str),
) -> Result<PathBuf, Error> {
    let tokens = cf.uaa.login(user_name).ok_or_else(|| Error::Seed(format!("no user {user_name}")))?;
    let dir = home.join(".cf");
    std::fs::create_dir_all(&dir)?;
    let config = json!({
        "AccessToken": format!("bearer {}", tokens.access_token),
        "APIVersion": API_VERSION,
        "AsyncTimeout": 0,
        "AuthorizationEndpoint": cf.uaa_url(),
        "CFOnK8s": { "Enabled": false, "AuthInfo": "" },
        "ColorEnabled": "",
        "ConfigVersion": 4,
        "DopplerEndPoint": "",
        "Locale": "",
        "LogCacheEndPoint": "",
        "MinCLIVersion": "",
        "MinRecommendedCLIVersion": "",
        "NetworkPolicyV1Endpoint": format!("{}/networking/v1/external", cf.api_url()),
        "OrganizationFields": { "GUID": org.1, "Name": org.0 },
        "PluginRepos": [{ "Name": "CF-Community", "URL": "https://plugins.cloudfoundry.org" }],
        "RefreshToken": tokens.refresh_token.unwrap_or_default(),
        "RoutingAPIEndpoint": "",
        "SpaceFields": { "GUID": space.1, "Name": space.0, "AllowSSH": false },
        "SSHOAuthClient": "ssh-proxy",
        "SSLDisabled": false,
        "Target": cf.api_url(),
        "Trace": "",
        "UaaEndpoint": cf.uaa_url(),
        "UAAGrantType": "",
        "UAAOAuthClient": "cf",
        "UAAOAuthClientSecret": "",
    });
    let path = dir.join("config.json");
    let text = serde_json::to_string_pretty(&config).map_err(|e| Error::Seed(e.to_string()))?;
    std::fs::write(&path, text)?;
    Ok(path)
}
