//! `--preview` and `run --smoke`/`--smoke-url`: testers reach the real app on a route of its own
//! while users see the maintenance app, and a smoke test through that route gates reopening.
//!
//! Once APP's routes are switched, the preview route (`--preview-host`, or
//! `APP-preview-<8 random lowercase letters and digits>`: unguessable, so the public does not
//! stumble on it) on the domain of APP's first switched HTTP route (shared or private; never an
//! internal or TCP one) gets APP's destinations as recorded on that route: same process, port
//! and protocol, so the preview serves what users will get back. The window's record on the app
//! ([`window`]) names it BEFORE it is created or mapped, so `off` after any crash finds it. The
//! route is created with the label [`PREVIEW_LABEL`] (= APP's GUID) as a second way to know it is
//! switchctl's.
//!
//! `off` removes it AFTER the app's public routes are back, and only for apps whose routes are
//! back: an app that stays in maintenance keeps its preview (testers still need it to find out
//! why), and users never get a moment in which the app is reachable nowhere but the maintenance
//! app is not answering either. A route switchctl created is deleted; a route that existed loses
//! only the destinations switchctl added.
//!
//! Requests: `on --preview` reads APP's switched routes (1; the domains are read by the switch
//! already), looks the preview route up (1), writes the record (1), creates the route (1, none
//! when it exists) and maps the app (1): 5. `off` looks the route up (1), deletes it (1; or one
//! delete per destination it mapped) and clears the record (1, shared with the window's other
//! edges). A rerun of `on` with the preview recorded does not write the record again: 4.

use std::{collections::BTreeMap, time::Duration};

use super::{
    context::Env,
    fleet::Member,
    outcome::{PreviewChange, Report, SmokeOutcome},
    plan,
    probe::{Answer, CONSECUTIVE, Target, Want},
    state::{self, Record},
    window::{self, PreviewRecord, WindowRecord},
};
use crate::{
    capi::{MetadataPatch, Route},
    error::{EXIT_FAILURE, Error, describe},
    settings::{Run, Verification, quote},
};

/// The label on a preview route switchctl created; its value is the app's GUID.
pub const PREVIEW_LABEL: &str = "switchctl.cf-maintenance/preview";
/// The variable `run`'s command and smoke test find the preview URL in, when the window has one
/// app: with several, no one URL is *the* preview, so it is not set.
pub const URL_VARIABLE: &str = "SWITCHCTL_PREVIEW_URL";
/// The variable with every preview URL, one per line, in the order of `SWITCHCTL_APPS`.
pub const URLS_VARIABLE: &str = "SWITCHCTL_PREVIEW_URLS";

/// Gives `cmd` the preview URLs (see [`URL_VARIABLE`], [`URLS_VARIABLE`]).
pub fn export(cmd: &mut tokio::process::Command, urls: &[String]) {
    if urls.is_empty() {
        return;
    }
    cmd.env(URLS_VARIABLE, urls.join("\n"));
    if let [only] = urls {
        cmd.env(URL_VARIABLE, only);
    }
}
/// How long `--smoke-url` tries when routes are not probed (`--no-verify` has no `--timeout`).
const SMOKE_URL_DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Pause between `--smoke-url` attempts.
const SMOKE_URL_PAUSE: Duration = Duration::from_millis(200);

/// The previews opened: each app's record as it now is, and the URLs in the members' order.
#[derive(Debug, Default)]
pub struct Opened {
    /// The records written (or found), for `run`'s close.
    pub records: Vec<(Member, WindowRecord)>,
    /// `https://host.domain` (or `http://` through `--probe-via`), one per app.
    pub urls: Vec<String>,
    /// Whether every preview is mapped and answers.
    pub ok: bool,
}

impl Opened {
    /// Puts the records into `records` (a window's, read before the preview existed).
    pub fn merge_into(&self, records: &mut Vec<(Member, WindowRecord)>) {
        for (member, record) in &self.records {
            records.retain(|(m, _)| m.app.guid != member.app.guid);
            records.push((member.clone(), record.clone()));
        }
    }
}

/// After `on` switched the apps' routes: a preview route per app in maintenance (nothing without
/// `--preview`, or on a dry run). `plans` are the window's records written just before.
pub async fn open(env: &Env, members: &[Member], plans: &[window::Plan], reports: &[Report]) -> Result<Opened, Error> {
    let Some(preview) = &env.settings.window.preview else { return Ok(Opened { ok: true, ..Opened::default() }) };
    window::check_preview(preview, members)?;
    let mut opened = Opened { ok: true, ..Opened::default() };
    for member in members {
        if !reports.iter().any(|r| r.app_guid == member.app.guid && r.ok && !r.dry_run) {
            continue;
        }
        let record = plans
            .iter()
            .find(|p| p.member.app.guid == member.app.guid)
            .map(|p| p.record.clone())
            .or_else(|| WindowRecord::of(&member.app).ok().flatten());
        let change = match open_one(env, member, record, preview.host.as_deref()).await {
            Ok((record, change)) => {
                if let Some(p) = &record.preview {
                    opened.urls.push(url_of(env, &p.url));
                }
                opened.records.push((member.clone(), record));
                change
            }
            Err((url, e)) => PreviewChange::Failed { url, error: describe(&e) },
        };
        opened.ok &= change.settled();
        print(env, member, &change);
    }
    Ok(opened)
}

/// One app's preview: found or chosen, recorded, created, mapped, verified. On error, the URL
/// when known.
async fn open_one(
    env: &Env,
    member: &Member,
    record: Option<WindowRecord>,
    host: Option<&str>,
) -> Result<(WindowRecord, PreviewChange), (String, Error)> {
    let client = &env.client;
    let app = &member.app;
    let mut record =
        record.unwrap_or_else(|| WindowRecord { v: 1, since: state::now_rfc3339(), ..WindowRecord::default() });
    // The destinations to map come from APP's first switched HTTP route, as its record says.
    let (first, domain) = first_http_route(env, member).await.map_err(|e| (String::new(), e))?;
    let recorded = Record::read(&first, &app.guid)
        .map_err(|e| (String::new(), Error::Usage(e.to_string())))?
        .map(|r| r.destinations)
        .unwrap_or_default();
    // A rerun keeps the recorded preview (its random host cannot be chosen again).
    let mut preview = match record.preview.clone() {
        Some(p) => p,
        None => {
            let host = host.map_or_else(|| random_host(&app.name), str::to_owned);
            PreviewRecord {
                url: format!("{host}.{}", domain.name),
                host,
                domain: domain.guid.clone(),
                created: true,
                destinations: recorded.clone(),
            }
        }
    };
    let url = preview.url.clone();
    let fail = |e: Error| (url.clone(), e);
    let existing = client.find_route(None, &preview.domain, &preview.host, "").await.map_err(fail)?;
    if let Some(route) = &existing
        && (state::has_record(route, &app.guid) || state::labelled_apps(route).contains(&app.guid.as_str()))
    {
        return Err(fail(Error::Usage(format!(
            "{url} is one of the app's switched routes; choose another --preview-host"
        ))));
    }
    if record.preview.is_none() {
        let owned = existing.as_ref().is_some_and(|r| r.metadata.labels.get(PREVIEW_LABEL) == Some(&app.guid));
        preview.created = existing.is_none() || owned;
        if let Some(route) = existing.as_ref().filter(|_| !preview.created) {
            // Only what switchctl adds is taken away again.
            preview.destinations.retain(|d| !route.destinations.iter().any(|x| d.is(&app.guid, x)));
        }
        record.preview = Some(preview.clone());
        let mut patch = MetadataPatch::default();
        patch.labels.insert(window::WINDOW_KEY.to_owned(), Some(window::WINDOW_LABEL.to_owned()));
        patch.annotations.insert(window::WINDOW_KEY.to_owned(), Some(record.text()));
        client.patch_app_metadata(&app.guid, &patch).await.map_err(fail)?;
    }
    let route = match existing {
        Some(route) => route,
        None => {
            let labels = BTreeMap::from([(PREVIEW_LABEL.to_owned(), app.guid.clone())]);
            match client.create_route(&member.target.space.guid, &preview.domain, (&preview.host, ""), &labels).await {
                Ok(route) => route,
                // A create whose first answer was lost: the route is there now.
                Err(Error::Api(e)) if e.status == 422 && e.detail.starts_with("Route already exists") => client
                    .find_route(None, &preview.domain, &preview.host, "")
                    .await
                    .map_err(fail)?
                    .ok_or_else(|| fail(Error::Api(e)))?,
                Err(e) => return Err(fail(e)),
            }
        }
    };
    let wanted: Vec<_> = preview.destinations.iter().map(|d| d.to_new(&app.guid)).collect();
    if !wanted.is_empty() {
        client.insert_destinations(&route.guid, &wanted).await.map_err(fail)?;
    }
    let target = Target { fqdn: preview.url.clone(), path: String::new() };
    let shown = url_of(env, &preview.url);
    let change = match env.verify.after_change(&target, Want::App, CONSECUTIVE).await {
        Ok(()) => PreviewChange::Opened { url: shown, created: preview.created },
        Err(e) => PreviewChange::NotVerified { url: shown, last: e.last },
    };
    Ok((record, change))
}

/// APP's first switched HTTP route (by URL) with its domain: not TCP, not on an internal domain.
async fn first_http_route(env: &Env, member: &Member) -> Result<(Route, crate::capi::Domain), Error> {
    let selector = format!("{}={}", state::key(&member.app.guid), state::LABEL_VALUE);
    let routes = env.client.routes_by_label(&member.target.space.guid, &selector).await?;
    let domains = env.domains.of(&env.client, &routes).await?;
    let mut candidates: Vec<(String, Route, crate::capi::Domain)> = routes
        .into_iter()
        .filter(|r| !r.is_tcp())
        .filter_map(|r| {
            let domain = super::context::domain_of(&r, &domains).filter(|d| !d.internal && d.router_group.is_none())?;
            Some((plan::url(&r, Some(domain)), r.clone(), domain.clone()))
        })
        .collect();
    candidates.sort_by(|a, b| a.0.cmp(&b.0));
    candidates.into_iter().next().map(|(_, r, d)| (r, d)).ok_or_else(|| {
        Error::Usage(format!(
            "app {} has no switched HTTP route on a shared or private domain to take the preview's domain and \
             destinations from",
            member.app.name
        ))
    })
}

/// `APP-preview-<8 random lowercase letters and digits>`, a valid host (at most 63 characters).
fn random_host(app: &str) -> String {
    let base: String = app
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .take(63 - "-preview-".len() - 8)
        .collect();
    let random: String = (0..8).map(|_| fastrand::alphanumeric().to_ascii_lowercase()).collect();
    format!("{}-preview-{random}", base.trim_matches('-'))
}

/// The URL as users type it: https, or http when probes go to `--probe-via` (as probe.rs asks).
fn url_of(env: &Env, fqdn: &str) -> String {
    match &env.verify.mode {
        Verification::Probe { via: Some(_), .. } => format!("http://{fqdn}"),
        _ => format!("https://{fqdn}"),
    }
}

/// Whether `route` is `app`'s recorded preview (so that a rerun of `on` leaves it alone).
pub fn is_preview(app: &crate::capi::App, route: &Route) -> bool {
    route.metadata.labels.get(PREVIEW_LABEL) == Some(&app.guid)
        || WindowRecord::of(app).ok().flatten().and_then(|r| r.preview).is_some_and(|p| {
            route.host == p.host && route.path.is_empty() && route.relationships.domain.guid() == Some(&p.domain)
        })
}

/// `off`, once the routes are back: each recorded preview of an app whose routes are back is
/// removed and cleared from the records handed on to [`window::closed`]; one that could not be
/// removed stays recorded.
pub async fn close(env: &Env, records: Vec<(Member, WindowRecord)>, reports: &[Report]) -> Vec<(Member, WindowRecord)> {
    let mut out = Vec::with_capacity(records.len());
    for (member, mut record) in records {
        let back = reports.iter().any(|r| r.app_guid == member.app.guid && r.ok && !r.dry_run);
        if let (true, Some(preview)) = (back, record.preview.clone()) {
            let change = match close_one(env, &member, &preview).await {
                Ok(deleted) => {
                    record.preview = None;
                    PreviewChange::Removed { url: url_of(env, &preview.url), deleted }
                }
                Err(e) => PreviewChange::Failed { url: url_of(env, &preview.url), error: describe(&e) },
            };
            print(env, &member, &change);
        }
        out.push((member, record));
    }
    out
}

/// Removes one preview; whether the route was deleted (else only unmapped, or already gone).
async fn close_one(env: &Env, member: &Member, preview: &PreviewRecord) -> Result<bool, Error> {
    let client = &env.client;
    let Some(route) = client.find_route(None, &preview.domain, &preview.host, "").await? else { return Ok(false) };
    if preview.created {
        return client.delete_route(&route.guid).await;
    }
    for d in route.destinations.iter().filter(|d| preview.destinations.iter().any(|s| s.is(&member.app.guid, d))) {
        client.delete_destination(&route.guid, &d.guid).await?;
    }
    Ok(false)
}

/// The line and the `preview` event of one app.
fn print(env: &Env, member: &Member, change: &PreviewChange) {
    let out = &env.out;
    if change.settled() {
        out.line(&format!("{}{}", out.prefix(&member.label), change.line()));
    } else {
        out.error(&format!("{}{}", out.prefix(&member.label), change.line()));
    }
    out.event("preview", serde_json::json!({"app": member.label, "preview": change}));
}

/// `run --smoke`/`--smoke-url`, after the command and the restage: `Ok` when every smoke test
/// passed (or none was asked for), else the exit code the run ends with.
pub async fn smoke(env: &Env, run: &Run, urls: &[String]) -> Result<(), u8> {
    let mut outcomes = Vec::new();
    if let Some((program, rest)) = run.smoke.split_first() {
        let what = run.smoke.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ");
        env.out.line(&format!("Smoke test: running {what}..."));
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(rest).stdout(env.out.child_stdout());
        export(&mut cmd, urls);
        let outcome = match cmd.status().await {
            Ok(status) if status.success() => SmokeOutcome::Passed { what },
            Ok(status) => {
                let code = status.code().and_then(|c| u8::try_from(c).ok()).filter(|c| *c != 0).unwrap_or(EXIT_FAILURE);
                SmokeOutcome::Failed { what, code, why: format!("exited with {code}") }
            }
            Err(e) => SmokeOutcome::Failed { what, code: 127, why: format!("cannot run it: {e}") },
        };
        outcomes.push(outcome);
    }
    if let Some(path) = &run.smoke_url {
        for (url, fqdn) in urls.iter().zip(env_targets(urls)) {
            outcomes.push(smoke_url(env, url, Target { fqdn, path: path.clone() }).await);
        }
    }
    for o in &outcomes {
        match o {
            SmokeOutcome::Passed { .. } => env.out.line(&o.line()),
            SmokeOutcome::Failed { .. } => env.out.error(&o.line()),
        }
        env.out.event("smoke", o);
    }
    match outcomes.iter().find_map(|o| match o {
        SmokeOutcome::Failed { code, .. } => Some(*code),
        SmokeOutcome::Passed { .. } => None,
    }) {
        Some(code) => Err(code),
        None => Ok(()),
    }
}

/// The `host.domain` of each URL.
/// `--smoke-url` on one app's preview `url`: a 2xx or 3xx answer of the app (not of the
/// maintenance app, not of the router) within the verification timeout.
async fn smoke_url(env: &Env, url: &str, target: Target) -> SmokeOutcome {
    let what = format!("GET {url}{}", target.path);
    let timeout = match &env.verify.mode {
        Verification::Probe { timeout, .. } => *timeout,
        Verification::Settle(_) => SMOKE_URL_DEFAULT_TIMEOUT,
    };
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = None;
    // Bounded by the deadline: at most timeout / pause attempts.
    while tokio::time::Instant::now() < deadline {
        let answer = env.verify.prober.probe(&target).await;
        if matches!(answer, Answer::App(s) if (200..400).contains(&s)) {
            return SmokeOutcome::Passed { what };
        }
        last = Some(answer);
        tokio::time::sleep(SMOKE_URL_PAUSE).await;
    }
    SmokeOutcome::Failed {
        what,
        code: EXIT_FAILURE,
        why: format!(
            "no 2xx/3xx answer from the app within {}s (last: {})",
            timeout.as_secs(),
            last.map_or_else(|| "none".to_owned(), |a| a.to_string())
        ),
    }
}

fn env_targets(urls: &[String]) -> Vec<String> {
    urls.iter().map(|u| u.split_once("://").map_or(u.as_str(), |(_, rest)| rest).to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `export` sets on a command.
    fn exported(urls: &[&str]) -> Vec<(String, String)> {
        let mut cmd = tokio::process::Command::new("true");
        export(&mut cmd, &urls.iter().map(|u| (*u).to_owned()).collect::<Vec<_>>());
        let mut vars: Vec<(String, String)> = cmd
            .as_std()
            .get_envs()
            .filter_map(|(k, v)| Some((k.to_str()?.to_owned(), v?.to_str()?.to_owned())))
            .collect();
        vars.sort();
        vars
    }

    #[test]
    fn one_preview_is_the_preview_url_several_are_listed_in_the_apps_order() {
        let one = exported(&["https://shop-preview-a.example.com"]);
        assert_eq!(
            one,
            [
                (URL_VARIABLE.to_owned(), "https://shop-preview-a.example.com".to_owned()),
                (URLS_VARIABLE.to_owned(), "https://shop-preview-a.example.com".to_owned()),
            ]
        );
        // With several, no single URL stands for the window (the first app's would mislead).
        let two = exported(&["https://a-preview-1.example.com", "https://b-preview-2.example.com"]);
        assert_eq!(
            two,
            [(URLS_VARIABLE.to_owned(), "https://a-preview-1.example.com\nhttps://b-preview-2.example.com".to_owned())]
        );
        assert!(exported(&[]).is_empty());
    }

    #[test]
    fn a_random_host_is_a_valid_unguessable_label() {
        let a = random_host("My_Shop");
        assert!(a.starts_with("my-shop-preview-"), "{a}");
        assert_eq!(a.len(), "my-shop-preview-".len() + 8);
        assert!(a.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'), "{a}");
        assert_ne!(a, random_host("My_Shop"));
        assert!(random_host(&"x".repeat(100)).len() <= 63);
    }
}
