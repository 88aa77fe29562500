//! The cf CLI's `config.json`: where `cf login` leaves the API target, the tokens, the UAA endpoint
//! and the targeted org and space.
//!
//! The file is held as a JSON object with typed accessors, so that writing refreshed tokens back
//! keeps every other field — including ones this version of switchctl does not know — as it was.
//! Writing follows the cf CLI: two-space indented JSON, top-level keys in case-insensitive order,
//! mode 0600, a temporary file in the same directory renamed over the old one (atomic).

use std::{
    fs,
    io::{self, Write},
    path::{Path, PathBuf},
};

use serde_json::{Map, Value};

use crate::error::ConfigError;

/// The only `ConfigVersion` the cf CLI v7/v8 reads (it ignores other files).
pub const CONFIG_VERSION: i64 = 4;

/// A targeted org or space as `config.json` records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Targeted {
    /// The GUID.
    pub guid: String,
    /// The name.
    pub name: String,
}

/// A loaded `config.json`.
#[derive(Clone)]
pub struct CfConfig {
    path: PathBuf,
    data: Map<String, Value>,
}

impl std::fmt::Debug for CfConfig {
    // Never show the tokens.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CfConfig")
            .field("path", &self.path)
            .field("target", &self.target())
            .field("org", &self.org())
            .field("space", &self.space())
            .finish_non_exhaustive()
    }
}

impl CfConfig {
    /// `$CF_HOME/.cf/config.json` if `CF_HOME` is set (and not empty), else `$HOME/.cf/config.json`.
    pub fn locate(cf_home: Option<&Path>, home: Option<&Path>) -> Result<PathBuf, ConfigError> {
        let base = [cf_home, home].into_iter().flatten().find(|p| !p.as_os_str().is_empty());
        base.map(|b| b.join(".cf").join("config.json")).ok_or(ConfigError::NoHome)
    }

    /// Reads and checks the file: it must exist, be a JSON object and have `ConfigVersion` 4.
    pub fn load(path: &Path) -> Result<CfConfig, ConfigError> {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ConfigError::NoConfigFile { path: path.to_owned() });
            }
            Err(source) => return Err(ConfigError::Read { path: path.to_owned(), source }),
        };
        CfConfig::parse(path, &text)
    }

    /// Parses the text of a `config.json` found at `path`.
    pub fn parse(path: &Path, text: &str) -> Result<CfConfig, ConfigError> {
        if text.trim().is_empty() {
            // The cf CLI treats an empty file as "no config".
            return Err(ConfigError::NoConfigFile { path: path.to_owned() });
        }
        let data: Map<String, Value> =
            serde_json::from_str(text).map_err(|source| ConfigError::Parse { path: path.to_owned(), source })?;
        let config = CfConfig { path: path.to_owned(), data };
        match config.data.get("ConfigVersion") {
            Some(v) if v.as_i64() == Some(CONFIG_VERSION) => Ok(config),
            other => Err(ConfigError::UnsupportedVersion {
                path: path.to_owned(),
                found: other.map_or_else(|| "(none)".to_owned(), Value::to_string),
            }),
        }
    }

    /// Where the file was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The whole file, as read (plus any tokens set since).
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.data
    }

    fn string(&self, key: &str) -> Option<&str> {
        self.data.get(key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty())
    }

    /// `Target`: the Cloud Controller URL.
    pub fn target(&self) -> Option<&str> {
        self.string("Target")
    }

    /// `AccessToken`, as stored: `bearer <JWT>`.
    pub fn access_token(&self) -> Option<&str> {
        self.string("AccessToken")
    }

    /// `RefreshToken`.
    pub fn refresh_token(&self) -> Option<&str> {
        self.string("RefreshToken")
    }

    /// `AuthorizationEndpoint`: the base URL of `POST /oauth/token` (the root's `links.login`).
    pub fn authorization_endpoint(&self) -> Option<&str> {
        self.string("AuthorizationEndpoint")
    }

    /// `UaaEndpoint`: the root's `links.uaa`.
    pub fn uaa_endpoint(&self) -> Option<&str> {
        self.string("UaaEndpoint")
    }

    /// `SSLDisabled`: set by `cf api --skip-ssl-validation`.
    pub fn ssl_disabled(&self) -> bool {
        self.data.get("SSLDisabled").and_then(Value::as_bool).unwrap_or(false)
    }

    /// `UAAOAuthClient`, `cf` when unset.
    pub fn uaa_client(&self) -> &str {
        self.string("UAAOAuthClient").unwrap_or("cf")
    }

    /// `UAAOAuthClientSecret`, empty when unset (the cf CLI never stores a client-credentials secret).
    pub fn uaa_client_secret(&self) -> &str {
        self.data.get("UAAOAuthClientSecret").and_then(Value::as_str).unwrap_or("")
    }

    /// `UAAGrantType`: `""`/`password` after `cf login`, `client_credentials` after `cf auth --client-credentials`.
    pub fn uaa_grant_type(&self) -> &str {
        self.string("UAAGrantType").unwrap_or("")
    }

    /// `OrganizationFields`, if an org is targeted.
    pub fn org(&self) -> Option<Targeted> {
        self.targeted("OrganizationFields")
    }

    /// `SpaceFields`, if a space is targeted.
    pub fn space(&self) -> Option<Targeted> {
        self.targeted("SpaceFields")
    }

    fn targeted(&self, key: &str) -> Option<Targeted> {
        let fields = self.data.get(key)?.as_object()?;
        // cf v7+ writes `GUID`; files written by cf v6 say `Guid`.
        let guid = ["GUID", "Guid"].iter().find_map(|k| fields.get(*k).and_then(Value::as_str))?.trim();
        let name = fields.get("Name").and_then(Value::as_str).unwrap_or("").trim();
        (!guid.is_empty()).then(|| Targeted { guid: guid.to_owned(), name: name.to_owned() })
    }

    /// Sets `AccessToken` (as stored: `bearer <JWT>`) and `RefreshToken`, in memory.
    pub fn set_tokens(&mut self, access_token: &str, refresh_token: &str) {
        self.data.insert("AccessToken".to_owned(), Value::String(access_token.to_owned()));
        self.data.insert("RefreshToken".to_owned(), Value::String(refresh_token.to_owned()));
    }

    /// Stores new tokens the way `cf` does: reads the file again (so that a `cf target` run meanwhile
    /// is kept), sets the two token fields, and writes it back atomically with mode 0600.
    ///
    /// If the file now targets another API (`cf api` meanwhile), the tokens are not written: they
    /// belong to the old one. Returns whether the file was written.
    pub fn save_tokens(&mut self, access_token: &str, refresh_token: &str) -> Result<bool, ConfigError> {
        if let Ok(current) = CfConfig::load(&self.path) {
            if current.target() != self.target() {
                self.set_tokens(access_token, refresh_token);
                return Ok(false);
            }
            self.data = current.data;
        }
        self.set_tokens(access_token, refresh_token);
        self.save().map(|()| true)
    }

    /// The file's text as the cf CLI writes it: two-space indent, top-level keys in case-insensitive
    /// alphabetical order (nested objects in plain key order), no trailing newline.
    pub fn to_json_string(&self) -> String {
        let mut keys: Vec<&String> = self.data.keys().collect();
        keys.sort_by(|a, b| a.to_lowercase().cmp(&b.to_lowercase()).then_with(|| a.cmp(b)));
        if keys.is_empty() {
            return "{}".to_owned();
        }
        let mut out = String::from("{\n");
        for (i, key) in keys.iter().enumerate() {
            let value = &self.data[key.as_str()];
            let key = Value::String((*key).clone()).to_string();
            // serde_json escapes newlines inside strings, so every '\n' here is layout.
            let value = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".to_owned()).replace('\n', "\n  ");
            out.push_str("  ");
            out.push_str(&key);
            out.push_str(": ");
            out.push_str(&value);
            if i + 1 < keys.len() {
                out.push(',');
            }
            out.push('\n');
        }
        out.push('}');
        out
    }

    /// Writes the file back (atomic replace, mode 0600).
    pub fn save(&self) -> Result<(), ConfigError> {
        write_atomic(&self.path, self.to_json_string().as_bytes())
            .map_err(|source| ConfigError::Write { path: self.path.clone(), source })
    }
}

/// Replaces `path` with `contents` atomically: a new file with mode 0600 in the same directory,
/// synced, then renamed over `path`. A symlink at `path` is followed, so the file it points at is
/// replaced, not the link.
pub fn write_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    let real = match fs::canonicalize(path) {
        Ok(real) => real,
        Err(e) if e.kind() == io::ErrorKind::NotFound => path.to_owned(),
        Err(e) => return Err(e),
    };
    let dir = match real.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = real.file_name().map_or_else(|| "config.json".into(), |n| n.to_string_lossy().into_owned());
    let mut last_err = None;
    for _ in 0..16 {
        let tmp = dir.join(format!(".{name}.switchctl-{}-{:08x}.tmp", std::process::id(), fastrand::u32(..)));
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = match options.open(&tmp) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                last_err = Some(e);
                continue;
            }
            Err(e) => return Err(e),
        };
        let written = (|| {
            file.write_all(contents)?;
            #[cfg(unix)]
            {
                // The umask can only take bits away; make it exactly 0600 anyway.
                use std::os::unix::fs::PermissionsExt;
                file.set_permissions(fs::Permissions::from_mode(0o600))?;
            }
            file.sync_all()?;
            drop(file);
            fs::rename(&tmp, &real)
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        // Make the rename durable; not all file systems allow syncing a directory.
        if let Ok(d) = fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        return Ok(());
    }
    Err(last_err.unwrap_or_else(|| io::Error::other("no free temporary file name")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/capi/cf-cli-config");

    fn example(name: &str) -> String {
        let path = format!("{EXAMPLES}/{name}");
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"))
    }

    #[test]
    fn the_v8_config_gives_target_tokens_endpoints_and_target() {
        let c = CfConfig::parse(Path::new("config.json"), &example("constructed-v8-config.json")).expect("parse");
        assert_eq!(c.target(), Some("https://api.sys.example.com"));
        assert!(c.access_token().is_some_and(|t| t.starts_with("bearer ")));
        assert_eq!(c.refresh_token(), Some("0d2c4b7e2f7a4b0f9c3e1a2b3c4d5e6f-r"));
        assert_eq!(c.authorization_endpoint(), Some("https://login.sys.example.com"));
        assert_eq!(c.uaa_endpoint(), Some("https://uaa.sys.example.com"));
        assert!(!c.ssl_disabled());
        assert_eq!((c.uaa_client(), c.uaa_client_secret(), c.uaa_grant_type()), ("cf", "", ""));
        let org = c.org().expect("org");
        assert_eq!((org.guid.as_str(), org.name.as_str()), ("3a3f3d89-3f89-4f05-8188-751b298c79d5", "my-org"));
        let space = c.space().expect("space");
        assert_eq!((space.guid.as_str(), space.name.as_str()), ("885a8cb3-c07b-4856-b448-eeb10bf36236", "dev"));
    }

    #[test]
    fn the_legacy_v4_config_is_read_too() {
        let c = CfConfig::parse(Path::new("c"), &example("legacy-coreconfig-test-example-v4.json")).expect("parse");
        assert!(c.ssl_disabled());
        assert_eq!(c.uaa_client(), "cf-oauth-client-id");
        assert_eq!(c.uaa_client_secret(), "cf-oauth-client-secret");
        assert_eq!(c.space().map(|s| s.name), Some("the-space".to_owned()));
    }

    #[test]
    fn a_version_3_config_is_refused_like_cf_does() {
        let err = CfConfig::parse(Path::new("c"), &example("fixture-outdated-config-v3.json")).expect_err("v3");
        assert!(matches!(err, ConfigError::UnsupportedVersion { ref found, .. } if found == "3"), "{err}");
        assert!(err.to_string().contains("cf login"));
    }

    #[test]
    fn a_missing_or_empty_file_means_not_logged_in() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.json");
        let err = CfConfig::load(&path).expect_err("missing");
        assert!(err.to_string().contains("run `cf login`"), "{err}");
        fs::write(&path, "").expect("write");
        assert!(matches!(CfConfig::load(&path), Err(ConfigError::NoConfigFile { .. })));
    }

    #[test]
    fn cf_home_wins_over_home() {
        let p = CfConfig::locate(Some(Path::new("/a")), Some(Path::new("/b"))).expect("path");
        assert_eq!(p, Path::new("/a/.cf/config.json"));
        let p = CfConfig::locate(Some(Path::new("")), Some(Path::new("/b"))).expect("path");
        assert_eq!(p, Path::new("/b/.cf/config.json"));
        assert!(matches!(CfConfig::locate(None, None), Err(ConfigError::NoHome)));
    }

    #[test]
    fn written_text_is_indented_like_cf_and_round_trips() {
        let text = example("constructed-v8-config.json");
        let c = CfConfig::parse(Path::new("c"), &text).expect("parse");
        let written = c.to_json_string();
        let again: Value = serde_json::from_str(&written).expect("written json");
        let original: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(again, original);
        // The example was written by cf: its top-level key order is reproduced.
        let keys = |t: &str| t.lines().filter(|l| l.starts_with("  \"")).map(str::to_owned).collect::<Vec<_>>();
        let top = |t: &str| keys(t).into_iter().map(|l| l[..l.find(':').unwrap_or(0)].to_owned()).collect::<Vec<_>>();
        assert_eq!(top(&written), top(&text));
        assert!(written.starts_with("{\n  \"AccessToken\": \"bearer "));
        assert!(written.contains("\n  \"CFOnK8s\": {\n    \"AuthInfo\": \"\",\n    \"Enabled\": false\n  },\n"));
    }

    #[cfg(unix)]
    #[test]
    fn saving_tokens_replaces_the_file_with_mode_0600_and_keeps_other_fields() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.json");
        fs::write(&path, example("constructed-v8-config.json")).expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        let mut c = CfConfig::load(&path).expect("load");
        // A `cf target` run meanwhile: kept.
        let mut changed: Map<String, Value> = serde_json::from_str(&example("constructed-v8-config.json")).expect("j");
        changed.insert("Locale".into(), "de_DE".into());
        fs::write(&path, serde_json::to_string(&changed).expect("json")).expect("write");

        assert!(c.save_tokens("bearer new-access", "new-refresh").expect("save"));

        let mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let after: Map<String, Value> = serde_json::from_str(&fs::read_to_string(&path).expect("read")).expect("j");
        assert_eq!(after["AccessToken"], "bearer new-access");
        assert_eq!(after["RefreshToken"], "new-refresh");
        let mut expected = changed;
        expected.insert("AccessToken".into(), "bearer new-access".into());
        expected.insert("RefreshToken".into(), "new-refresh".into());
        assert_eq!(after, expected);
        let names: Vec<_> = fs::read_dir(dir.path()).expect("ls").map(|e| e.expect("e").file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("config.json")], "no temporary file left");
    }

    #[cfg(unix)]
    #[test]
    fn a_symlinked_config_is_written_through_the_link() {
        let dir = tempfile::tempdir().expect("tempdir");
        let real = dir.path().join("real.json");
        let link = dir.path().join("config.json");
        fs::write(&real, example("constructed-v8-config.json")).expect("write");
        std::os::unix::fs::symlink(&real, &link).expect("symlink");
        let mut c = CfConfig::load(&link).expect("load");
        c.save_tokens("bearer x", "y").expect("save");
        assert!(fs::symlink_metadata(&link).expect("meta").file_type().is_symlink());
        assert!(fs::read_to_string(&real).expect("read").contains("bearer x"));
    }

    #[test]
    fn tokens_are_not_saved_into_a_config_that_now_targets_another_api() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.json");
        fs::write(&path, example("constructed-v8-config.json")).expect("write");
        let mut c = CfConfig::load(&path).expect("load");
        let other = example("constructed-v8-config.json")
            .replace("https://api.sys.example.com\"", "https://api.other.example\"");
        fs::write(&path, &other).expect("write");
        assert!(!c.save_tokens("bearer x", "y").expect("save"));
        assert_eq!(fs::read_to_string(&path).expect("read"), other);
    }
}
