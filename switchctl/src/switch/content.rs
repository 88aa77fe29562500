//! What an app's users see while it is in maintenance: the per-app document of the maintenance
//! app (its README's "Live content"), set by `on`/`run` (`--message` and friends), changed by
//! `message`, removed by `off`.
//!
//! For each maintenance app carrying APP's routes (each route's record names it; a pool may
//! spread APP's routes over several, and every one gets the document):
//! 1. **the secret**: `MAINTENANCE_CONTROL_SECRET` from its environment; when absent, one is made
//!    here (32 bytes of the kernel's CSPRNG, 64 hex digits), patched in, and a rolling deployment
//!    restarts the instances one by one so they pick it up, waited for. Refused before any change
//!    when the app has one instance and already carries routes: its restart would drop them;
//! 2. **durable**: the document under `MAINTENANCE_APP_<KEY>` in its environment, so an instance
//!    that restarts (crash, evacuation) comes back with it;
//! 3. **live**: a signed `PUT` to every RUNNING instance through one of APP's routes, gorouter's
//!    `X-CF-APP-INSTANCE` picking the instance (gorouter `handlers/lookup.go`);
//! 4. **verified**: per instance, a GET on APP's route pinned to it must carry
//!    `X-Maintenance-Version` at least the version written, retried until `--timeout`; an
//!    instance still stale then is reported by index (exit 1).
//!
//! `off` sends a signed `DELETE` to each instance, then patches the key to `null` (other apps'
//! keys untouched: CC merges keys, cloud_controller_ng `apps_controller.rb#update_environment_variables`).
//!
//! The secret is never printed, logged or put in an event: it lives in [`Secret`], whose `Debug`
//! hides it, and the transport never logs bodies ([`crate::capi`]).

use std::{io::Read as _, time::Duration};

use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Map, Value};
use sha2::Sha256;
use tokio::time::Instant;

use super::{
    context::{self, Env, domain_of},
    outcome::{ContentAction, ContentReport, InstanceContent},
    plan,
    probe::{Instance, Prober, Target},
    state::{self, Record},
};
use crate::{
    capi::{App, InstanceState, Route},
    cli::ContentMode,
    error::{Error, describe},
    settings::{Content, Verification, quote, rfc3339},
};

/// The maintenance app's control key (maintenance-app `config.rs`).
pub const SECRET_VAR: &str = "MAINTENANCE_CONTROL_SECRET";
/// Prefix of the per-app documents (maintenance-app `appdoc.rs`, `ENV_PREFIX`).
pub const DOC_PREFIX: &str = "MAINTENANCE_APP_";
/// The version an answer serves for the app whose route it matched (maintenance-app `response.rs`).
pub const VERSION_HEADER: &str = "x-maintenance-version";
/// Signed timestamp and signature (maintenance-app `control.rs`).
const TIMESTAMP_HEADER: &str = "x-maintenance-timestamp";
const SIGNATURE_HEADER: &str = "x-maintenance-signature";
/// The shortest secret the maintenance app accepts (its README's configuration table).
const MIN_SECRET_CHARS: usize = 32;
/// The largest document written: the control endpoint reads at most 16 KiB (`control.rs`,
/// `MAX_BODY`); a quarter is left for the environment's own limits and escaping.
const MAX_DOC_BYTES: usize = 12 * 1024;
/// Pause between two tries on a stale instance.
const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// Longest wait for the secret's rolling deployment: it starts every instance anew, each within
/// Diego's health-check timeout (60 s by default), one at a time.
const DEPLOYMENT_TIMEOUT: Duration = Duration::from_secs(900);
/// Pause between two reads of a deployment.
const DEPLOYMENT_POLL: Duration = Duration::from_millis(500);

/// The control secret; never shown.
#[derive(Clone)]
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// `MAINTENANCE_APP_` + the guid upper-cased with `-` → `_` (maintenance-app `appdoc.rs#env_name`).
pub fn env_name(app_guid: &str) -> String {
    format!("{DOC_PREFIX}{}", app_guid.to_ascii_uppercase().replace('-', "_"))
}

/// The signature of a control request, as the maintenance app checks it (`control.rs#sign`):
/// `v1=` and the hex HMAC-SHA256 over `v1`, method, path, timestamp (each followed by a newline)
/// and the body.
pub fn sign(secret: &[u8], method: &str, path: &str, timestamp: &str, body: &[u8]) -> String {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC takes any key"));
    for part in ["v1", method, path, timestamp] {
        mac.update(part.as_bytes());
        mac.update(b"\n");
    }
    mac.update(body);
    format!("v1={}", hex(&mac.finalize().into_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// 64 hex digits from the kernel's CSPRNG (not `fastrand`: the secret must not be guessable).
fn new_secret() -> Result<Secret, Error> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| Error::Content(format!("cannot read /dev/urandom for a control secret: {e}")))?;
    Ok(Secret(hex(&bytes)))
}

/// A maintenance app carrying some of APP's routes, and where its instances are reached.
#[derive(Debug, Clone)]
pub struct Carrier {
    /// The maintenance app.
    pub maint: App,
    /// APP's routes as the document names them (`host` or `host/path`).
    pub hosts: Vec<String>,
    /// A route of this maintenance app with an exact host and no path, APP's own when it has
    /// one: requests to `/__maintenance/control/…` on it reach the maintenance app (a path route
    /// would not match: gorouter picks routes by path prefix).
    pub control: Option<Target>,
    /// One of APP's routes to this maintenance app (not a wildcard): a GET there answers with
    /// the version served for APP.
    pub check: Option<Target>,
}

/// The maintenance apps carrying APP's routes, from the records on APP's labelled routes.
pub async fn carriers(env: &Env, space_guid: &str, app_guid: &str) -> Result<Vec<Carrier>, Error> {
    let client = &env.client;
    let routes = client.routes_by_label(space_guid, &state::key(app_guid)).await?;
    let domains = env.domains.of(client, &routes).await?;
    let mut by_maint: Vec<(String, Vec<&Route>)> = Vec::new();
    for route in &routes {
        let Ok(Some(record)) = Record::read(route, app_guid) else { continue };
        if plan::skip_reason(route, domain_of(route, &domains)).is_some() {
            continue;
        }
        match by_maint.iter_mut().find(|(m, _)| *m == record.maintenance_app) {
            Some((_, list)) => list.push(route),
            None => by_maint.push((record.maintenance_app.clone(), vec![route])),
        }
    }
    // Every carrier gets all of APP's hosts: one that does not carry a host never sees it asked.
    // Wildcard routes are left out: a document names exact hosts only (maintenance-app
    // `appdoc.rs#parse_route`); a wildcard route gets the maintenance app's rules and defaults.
    let mut hosts: Vec<String> = routes
        .iter()
        .filter(|r| matches!(Record::read(r, app_guid), Ok(Some(_))))
        .filter(|r| plan::skip_reason(r, domain_of(r, &domains)).is_none())
        .map(|r| plan::url(r, domain_of(r, &domains)))
        .filter(|u| !u.starts_with('*'))
        .collect();
    hosts.sort();
    hosts.dedup();
    let mut out = Vec::new();
    for (maint, list) in by_maint {
        let maint = client.get_app(&maint).await?;
        let targets: Vec<Target> =
            list.iter().map(|r| plan::target(r, domain_of(r, &domains))).filter(|t| !t.fqdn.starts_with('*')).collect();
        let mut control = targets.iter().find(|t| t.path.is_empty()).cloned();
        if control.is_none() {
            // APP has only path routes there (`on --only`): any host route the maintenance app
            // carries reaches its instances as well.
            let carried = env.maintenance_routes.of(client, &maint.guid).await?;
            let their = env.domains.of(client, &carried).await?;
            control = carried
                .iter()
                .filter(|r| plan::skip_reason(r, domain_of(r, &their)).is_none())
                .map(|r| plan::target(r, domain_of(r, &their)))
                .find(|t| t.path.is_empty() && !t.fqdn.starts_with('*'));
        }
        out.push(Carrier { maint, hosts: hosts.clone(), control, check: targets.first().cloned() });
    }
    out.sort_by(|a, b| a.maint.name.cmp(&b.maint.name));
    Ok(out)
}

/// Content for an app taken down with `--only` is refused before any change: the record of its
/// path routes is on the app, not on each route (paths.rs), so [`carriers`] would not find them.
/// UNCONFIRMED beyond that: reading that record here is left to do.
pub fn supported(window: &crate::settings::Window) -> Result<(), Error> {
    if !window.content.is_empty() && matches!(window.paths, crate::settings::Paths::Only(_)) {
        return Err(Error::Usage(
            "--message, --title, --until, --retry-after, --mode and --status do not work with --only yet: open the \
             window without them; nothing was changed"
                .to_owned(),
        ));
    }
    Ok(())
}

/// Makes sure every maintenance app in `pool` has a control secret, before any route moves
/// (`on` with content): see step 1 of the module docs.
pub async fn prepare(env: &Env, pool: &[App]) -> Result<(), Error> {
    let mut seen: Vec<&str> = Vec::new();
    for maint in pool {
        if seen.contains(&maint.guid.as_str()) {
            continue;
        }
        seen.push(&maint.guid);
        secret(env, maint).await?;
    }
    Ok(())
}

/// The maintenance app's secret and environment; made and rolled out when absent.
async fn secret(env: &Env, maint: &App) -> Result<(Secret, Map<String, Value>), Error> {
    let client = &env.client;
    let vars = client.app_environment_variables(&maint.guid).await?;
    if let Some(s) = vars.get(SECRET_VAR).and_then(Value::as_str).filter(|s| s.chars().count() >= MIN_SECRET_CHARS) {
        return Ok((Secret(s.to_owned()), vars));
    }
    let instances = client.web_stats(&maint.guid).await?.map_or(0, |s| s.len());
    let carried = env.maintenance_routes.of(client, &maint.guid).await?.len();
    if instances < 2 && carried > 0 {
        return Err(Error::Usage(format!(
            "maintenance app {name:?} has no {SECRET_VAR} yet, and setting one restarts its instances; with \
             {instances} instance and {carried} route(s) on it, the restart would drop those routes. Run `cf scale \
             {quoted} -i 2` first (a rolling deployment then replaces the instances one by one); nothing was changed",
            name = maint.name,
            quoted = quote(&maint.name),
        )));
    }
    env.out.line(&format!(
        "Setting a control secret on {} and restarting its instances one by one (rolling deployment)...",
        maint.name
    ));
    let secret = new_secret()?;
    let mut patch = Map::new();
    patch.insert(SECRET_VAR.to_owned(), Value::String(secret.0.clone()));
    client.patch_environment_variables(&maint.guid, &patch).await?;
    deploy(env, maint).await?;
    // The deployment replaced the web process: the instances probes name are read again.
    if let Ok(Ok(indexes)) = context::running_web(client, &client.get_app(&maint.guid).await?).await {
        env.running.record(&maint.guid, indexes);
    }
    let mut vars = vars;
    vars.insert(SECRET_VAR.to_owned(), Value::String(secret.0.clone()));
    Ok((secret, vars))
}

/// A rolling deployment of `maint`, waited for until `FINALIZED`/`DEPLOYED` (CC
/// `DeploymentModel::STATUS_VALUES`, `STATUS_REASONS`).
async fn deploy(env: &Env, maint: &App) -> Result<(), Error> {
    let client = &env.client;
    let deployment = client.create_rolling_deployment(&maint.guid).await?;
    let deadline = Instant::now() + DEPLOYMENT_TIMEOUT;
    let mut current = deployment;
    loop {
        match (current.status.value.as_str(), current.status.reason.as_deref()) {
            ("FINALIZED", Some("DEPLOYED")) => return Ok(()),
            ("FINALIZED", reason) => {
                return Err(Error::Content(format!(
                    "the rolling deployment {} of {} that gives its instances the control secret ended {}; its \
                     instances may not hold the secret: run `cf restart {} --strategy rolling`, then this command \
                     again",
                    current.guid,
                    maint.name,
                    reason.unwrap_or("without a reason"),
                    quote(&maint.name)
                )));
            }
            _ => {}
        }
        if Instant::now() > deadline {
            return Err(Error::Content(format!(
                "the rolling deployment {} of {} did not finish within {} s; check `cf app {}`, then run this command \
                 again",
                current.guid,
                maint.name,
                DEPLOYMENT_TIMEOUT.as_secs(),
                quote(&maint.name)
            )));
        }
        tokio::time::sleep(DEPLOYMENT_POLL).await;
        current = client.get_deployment(&current.guid).await?;
    }
}

/// The content held for APP in `vars`, and its version (0 when none).
fn held(vars: &Map<String, Value>, app_guid: &str) -> Option<(u64, Content)> {
    let doc: Value = serde_json::from_str(vars.get(&env_name(app_guid))?.as_str()?).ok()?;
    let text = |k: &str| doc.get(k).and_then(Value::as_str).map(str::to_owned);
    let content = Content {
        message: text("message"),
        title: text("title"),
        until: text("until")
            .and_then(|u| time::OffsetDateTime::parse(&u, &time::format_description::well_known::Rfc3339).ok()),
        retry_after: doc.get("retry_after").and_then(Value::as_u64),
        mode: text("mode").and_then(|m| match m.as_str() {
            "html" => Some(ContentMode::Html),
            "503" => Some(ContentMode::Status503),
            "json" => Some(ContentMode::Json),
            "auto" => Some(ContentMode::Auto),
            _ => None,
        }),
        status: doc.get("status").and_then(Value::as_u64).and_then(|s| u16::try_from(s).ok()),
    };
    Some((doc.get("version").and_then(Value::as_u64).unwrap_or(0), content))
}

/// The next version: above the one held, and at least now in milliseconds, so that a document
/// written after a lost one (say, an environment patched by hand) still goes up.
fn next_version(held: u64) -> u64 {
    let now_ms = u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    (held + 1).max(now_ms)
}

/// The document: `version`, `app`, `hosts`, and the fields given.
fn document(version: u64, app_guid: &str, hosts: &[String], content: &Content) -> Value {
    let mut doc = Map::new();
    doc.insert("version".into(), version.into());
    doc.insert("app".into(), app_guid.into());
    doc.insert("hosts".into(), hosts.to_vec().into());
    if let Some(m) = &content.message {
        doc.insert("message".into(), m.clone().into());
    }
    if let Some(t) = &content.title {
        doc.insert("title".into(), t.clone().into());
    }
    if let Some(u) = content.until {
        doc.insert("until".into(), rfc3339(u).into());
    }
    if let Some(r) = content.retry_after {
        doc.insert("retry_after".into(), r.into());
    }
    if let Some(m) = content.mode {
        doc.insert("mode".into(), m.as_str().into());
    }
    if let Some(s) = content.status {
        doc.insert("status".into(), s.into());
    }
    Value::Object(doc)
}

/// Sets APP's content on every carrier (`on`, `run`, `message`): the fields of `content` over
/// those held (so `message APP --until …` keeps the message), written to the environment, then to
/// each instance, then verified. One report per carrier.
pub async fn set(env: &Env, app: (&str, &str), carriers: &[Carrier], content: &Content) -> Vec<ContentReport> {
    let mut reports = Vec::new();
    for carrier in carriers {
        let report = match set_one(env, app, carrier, content).await {
            Ok(r) => r,
            Err(e) => ContentReport::failed(app.0, &carrier.maint.name, ContentAction::Set, describe(&e)),
        };
        reports.push(report);
    }
    reports
}

async fn set_one(
    env: &Env,
    (name, guid): (&str, &str),
    carrier: &Carrier,
    content: &Content,
) -> Result<ContentReport, Error> {
    let (secret, vars) = secret(env, &carrier.maint).await?;
    let (held_version, held_content) = held(&vars, guid).unwrap_or_default();
    let version = next_version(held_version);
    if carrier.hosts.is_empty() {
        return Err(Error::Content(format!(
            "{name} has no route with an exact host on {}: a document names exact hosts only (a wildcard route gets \
             the maintenance app's own settings)",
            carrier.maint.name
        )));
    }
    let text = document(version, guid, &carrier.hosts, &content.over(&held_content)).to_string();
    if text.len() > MAX_DOC_BYTES {
        return Err(Error::Usage(format!(
            "the content of {name} takes {} bytes with its {} routes, more than the {MAX_DOC_BYTES} switchctl writes; \
             shorten the message or title; nothing was changed",
            text.len(),
            carrier.hosts.len()
        )));
    }
    let mut patch = Map::new();
    patch.insert(env_name(guid), Value::String(text.clone()));
    env.client.patch_environment_variables(&carrier.maint.guid, &patch).await?;
    let instances = live(env, carrier, &secret, (Method::PUT, guid, text.into_bytes()), version).await?;
    Ok(ContentReport::new(name, &carrier.maint.name, ContentAction::Set, version, instances))
}

/// Removes APP's content from every carrier whose environment holds it (`off`, `message
/// --clear`): a signed `DELETE` to each instance, then the key patched to `null`.
pub async fn clear(env: &Env, app: (&str, &str), carriers: &[Carrier]) -> Vec<ContentReport> {
    let mut reports = Vec::new();
    for carrier in carriers {
        match clear_one(env, app, carrier).await {
            Ok(Some(r)) => reports.push(r),
            Ok(None) => {}
            Err(e) => {
                reports.push(ContentReport::failed(app.0, &carrier.maint.name, ContentAction::Cleared, describe(&e)));
            }
        }
    }
    reports
}

async fn clear_one(env: &Env, (name, guid): (&str, &str), carrier: &Carrier) -> Result<Option<ContentReport>, Error> {
    let vars = env.client.app_environment_variables(&carrier.maint.guid).await?;
    let Some(held_version) = vars.get(&env_name(guid)).map(|_| held(&vars, guid).map_or(0, |(v, _)| v)) else {
        return Ok(None);
    };
    let version = next_version(held_version);
    let instances = match vars.get(SECRET_VAR).and_then(Value::as_str) {
        Some(s) => {
            let body = serde_json::json!({ "version": version }).to_string().into_bytes();
            live(env, carrier, &Secret(s.to_owned()), (Method::DELETE, guid, body), version).await?
        }
        // Without a secret no instance took a live change: the environment is all there is.
        None => Vec::new(),
    };
    let mut patch = Map::new();
    patch.insert(env_name(guid), Value::Null);
    env.client.patch_environment_variables(&carrier.maint.guid, &patch).await?;
    Ok(Some(ContentReport::new(name, &carrier.maint.name, ContentAction::Cleared, version, instances)))
}

/// Sends the signed change to every RUNNING instance of the carrier and checks each.
async fn live(
    env: &Env,
    carrier: &Carrier,
    secret: &Secret,
    (method, app_guid, body): (Method, &str, Vec<u8>),
    version: u64,
) -> Result<Vec<InstanceContent>, Error> {
    let (Some(control), Some(check)) = (&carrier.control, &carrier.check) else {
        return Err(Error::Content(format!(
            "{} carries no route with an exact host and no path, so its instances cannot be reached (a path route \
             does not match /__maintenance/control/); they serve the content from their next start",
            carrier.maint.name
        )));
    };
    let stats = env.client.web_stats(&carrier.maint.guid).await?.unwrap_or_default();
    let mut indexes: Vec<u32> = stats.iter().filter(|s| s.state == InstanceState::Running).map(|s| s.index).collect();
    indexes.sort_unstable();
    let (patient, timeout) = match &env.verify.mode {
        Verification::Probe { timeout, .. } => (true, *timeout),
        Verification::Settle(_) => (false, Duration::ZERO),
    };
    let deadline = Instant::now() + timeout;
    let path = format!("/__maintenance/control/apps/{app_guid}");
    let mut out = Vec::new();
    for index in indexes {
        let instance = Instance { app_guid: carrier.maint.guid.clone(), index };
        let send = Send { env, control, check, instance: &instance, secret, method: &method, path: &path, body: &body };
        out.push(send.until_served(version, patient, deadline, method == Method::PUT).await);
    }
    Ok(out)
}

/// One instance's change.
struct Send<'a> {
    env: &'a Env,
    control: &'a Target,
    check: &'a Target,
    instance: &'a Instance,
    secret: &'a Secret,
    method: &'a Method,
    path: &'a str,
    body: &'a [u8],
}

/// What one request to an instance got.
enum Got {
    /// The instance holds at least this version (control answer, or a GET's header).
    Holds(u64),
    /// Something else, in words.
    Other(String),
}

impl Send<'_> {
    /// Sends the change, then (for a `PUT`, when `patient`) checks the route answers with the
    /// version, retrying both until `deadline`.
    async fn until_served(&self, version: u64, patient: bool, deadline: Instant, check: bool) -> InstanceContent {
        let index = self.instance.index;
        let mut sent = false;
        let mut last = String::from("no answer yet");
        loop {
            if !sent {
                match self.change().await {
                    Got::Holds(v) if v >= version => sent = true,
                    Got::Holds(v) => last = format!("holds version {v}"),
                    Got::Other(why) => last = why,
                }
            }
            if sent && !(patient && check) {
                return if patient {
                    InstanceContent::Serving { index, version }
                } else {
                    InstanceContent::Unverified { index }
                };
            }
            if sent {
                match self.served().await {
                    Got::Holds(v) if v >= version => return InstanceContent::Serving { index, version: v },
                    Got::Holds(v) => last = format!("answers with version {v}"),
                    Got::Other(why) => last = why,
                }
            }
            if !patient || Instant::now() + RETRY_PAUSE > deadline {
                return InstanceContent::Stale { index, last };
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    /// The signed control request; what the instance holds afterwards.
    async fn change(&self) -> Got {
        let prober = &self.env.verify.prober;
        let Some(request) = prober.request(self.method.clone(), self.control, self.path, Some(self.instance)) else {
            return Got::Other(format!("{} is not a valid URL", self.control.fqdn));
        };
        let timestamp = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
        let signature = sign(self.secret.0.as_bytes(), self.method.as_str(), self.path, &timestamp, self.body);
        let request = request
            .header(TIMESTAMP_HEADER, timestamp)
            .header(SIGNATURE_HEADER, signature)
            .header("content-type", "application/json")
            .body(self.body.to_vec());
        match request.send().await {
            // 200: accepted; 409: the instance already holds this version or a newer one (a retry
            // whose first answer was lost). Either way the header says what it holds.
            Ok(r) if r.status().as_u16() == 200 || r.status().as_u16() == 409 => match version_of(r.headers()) {
                Some(v) => Got::Holds(v),
                None => Got::Other(format!("HTTP {} without {VERSION_HEADER}", r.status().as_u16())),
            },
            Ok(r) => {
                let status = r.status().as_u16();
                let router = r.headers().contains_key("x-cf-routererror");
                let why = error_of(r).await;
                Got::Other(if router {
                    format!("the router: HTTP {status} (the instance is not on the route there yet)")
                } else {
                    format!("HTTP {status}: {why}")
                })
            }
            Err(e) => Got::Other(format!("no answer: {e}")),
        }
    }

    /// A pinned GET on APP's route: the version the instance serves there for APP.
    async fn served(&self) -> Got {
        match served_version(&self.env.verify.prober, self.check, self.instance).await {
            Ok(v) => Got::Holds(v),
            Err(why) => Got::Other(why),
        }
    }
}

/// A GET on `check` (one of APP's routes) pinned to `instance`: the content version it serves
/// there for APP, or why that is not known.
pub async fn served_version(prober: &Prober, check: &Target, instance: &Instance) -> Result<u64, String> {
    let path = if check.path.is_empty() { "/" } else { check.path.as_str() };
    let Some(request) = prober.request(Method::GET, check, path, Some(instance)) else {
        return Err(format!("{} is not a valid URL", check.fqdn));
    };
    match request.header("cache-control", "no-cache").send().await {
        Ok(r) => {
            version_of(r.headers()).ok_or_else(|| format!("HTTP {} without {VERSION_HEADER}", r.status().as_u16()))
        }
        Err(e) => Err(format!("no answer: {e}")),
    }
}

/// The version of APP's document in a maintenance app's environment variables `vars`, if any:
/// what each of its instances serves from its next start.
pub fn held_version(vars: &Map<String, Value>, app_guid: &str) -> Option<u64> {
    held(vars, app_guid).map(|(version, _)| version)
}

fn version_of(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    headers.get(VERSION_HEADER)?.to_str().ok()?.trim().parse().ok()
}

/// The `error` of a control refusal (the maintenance app never echoes the secret), bounded.
async fn error_of(r: reqwest::Response) -> String {
    let body = r.bytes().await.unwrap_or_default();
    let text = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default();
    text.chars().take(200).collect()
}

/// `on`/`run`: the content of each member whose switch succeeded; `members` are (name, GUID,
/// space GUID).
pub async fn open(env: &Env, members: &[(String, String, String)], content: &Content) -> Vec<ContentReport> {
    let mut reports = Vec::new();
    for (name, guid, space) in members {
        match carriers(env, space, guid).await {
            Ok(carriers) => reports.extend(set(env, (name, guid), &carriers, content).await),
            Err(e) => reports.push(ContentReport::failed(name, "?", ContentAction::Set, describe(&e))),
        }
    }
    reports
}

/// `off`: removes the content of each member before its routes go back. Only members that have
/// some are looked at: `pool` (the maintenance apps of the members' spaces) has its environment
/// read once, so an `off` without content costs one request per maintenance app, not per app.
pub async fn close(env: &Env, members: &[(String, String, String)], pool: &[App]) -> Vec<ContentReport> {
    let mut keys: Vec<String> = Vec::new();
    for maint in pool {
        match env.client.app_environment_variables(&maint.guid).await {
            Ok(vars) => keys.extend(vars.keys().filter(|k| k.starts_with(DOC_PREFIX)).cloned()),
            // Unreadable: every member is looked at, as if it had content there.
            Err(_) => keys.extend(members.iter().map(|(_, guid, _)| env_name(guid))),
        }
    }
    let with: Vec<(String, String, String)> =
        members.iter().filter(|(_, guid, _)| keys.contains(&env_name(guid))).cloned().collect();
    close_all(env, &with).await
}

/// Removes the content of each of `members` from the maintenance apps its records name.
pub async fn close_all(env: &Env, members: &[(String, String, String)]) -> Vec<ContentReport> {
    let mut reports = Vec::new();
    for (name, guid, space) in members {
        match carriers(env, space, guid).await {
            Ok(carriers) => reports.extend(clear(env, (name, guid), &carriers).await),
            Err(e) => reports.push(ContentReport::failed(name, "?", ContentAction::Cleared, describe(&e))),
        }
    }
    reports
}

/// Prints each report (a line and a `content` event); whether all are fine.
pub fn print(env: &Env, reports: &[ContentReport]) -> bool {
    for r in reports {
        for line in r.lines() {
            if r.ok() { env.out.line(&line) } else { env.out.error(&line) }
        }
        env.out.event("content", r);
    }
    reports.iter().all(ContentReport::ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_the_maintenance_apps() {
        // HMAC-SHA256(k, "v1\nPUT\n/__maintenance/control/apps/a\n1\n{}"), computed apart
        // (Python's hmac module), as maintenance-app `control.rs#sign` computes it.
        assert_eq!(
            sign(b"k", "PUT", "/__maintenance/control/apps/a", "1", b"{}"),
            "v1=1528b7d331f5dfd2b4d0e438d1e9bc13210b4d46f9aa2acbc427eebadae7abb4"
        );
        assert_ne!(
            sign(b"k", "PUT", "/__maintenance/control/apps/a", "1", b"{ }"),
            sign(b"k", "PUT", "/__maintenance/control/apps/a", "1", b"{}")
        );
    }

    #[test]
    fn versions_go_up_and_keep_to_the_clock() {
        assert!(next_version(0) > 1_700_000_000_000);
        assert_eq!(next_version(u64::MAX - 1), u64::MAX);
    }

    #[test]
    fn a_held_document_gives_its_fields_back() {
        let mut vars = Map::new();
        let doc = document(
            7,
            "a-b",
            &["shop.example.com".into()],
            &Content {
                message: Some("m".into()),
                mode: Some(ContentMode::Status503),
                status: Some(500),
                ..Content::default()
            },
        );
        vars.insert(env_name("a-b"), Value::String(doc.to_string()));
        let (v, c) = held(&vars, "a-b").expect("held");
        assert_eq!(
            (v, c.message.as_deref(), c.mode, c.status),
            (7, Some("m"), Some(ContentMode::Status503), Some(500))
        );
        assert_eq!(env_name("a-b"), "MAINTENANCE_APP_A_B");
    }

    #[test]
    fn the_secret_never_shows_in_debug() {
        assert_eq!(format!("{:?}", Secret("0123".into())), "Secret(…)");
    }
}
