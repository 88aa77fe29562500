//! `run --restage`: each app restaged inside the window the way `cf restage` does it without
//! `--strategy` (FACTS §2.1): a build of the newest ready package, polled until staged; then stop,
//! the new droplet set current, start, and a wait until every web instance runs.
//!
//! The window is what makes the downtime of a stop-and-start harmless: users see the maintenance
//! page meanwhile. A failed build leaves the app on its old droplet; instances that do not come up
//! leave it down. Either way it stays in maintenance, and the report says why.
//!
//! A stop is never left behind by a droplet change that failed: the app is started again on the
//! droplet it has (or the report says it is STOPPED, with `cf start`). A deployment in progress
//! makes the Cloud Controller refuse the droplet change (422, `AppsController#assign_current_droplet`),
//! and a stop does not end it (`AppStop`), so such apps are refused before the window opens.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use serde::Serialize;

use super::{
    context::{self, Env, Lost, each},
    fleet::{self, Member},
    signals::Interrupt,
};
use crate::{
    capi::{BuildState, Client, Deployment, InstanceState, Package},
    error::{Error, describe},
    settings::RestageTimeouts as Timeouts,
};

/// First pause between two polls; it doubles up to [`POLL_MAX`] (cf polls every 3 s).
const POLL_FIRST: Duration = Duration::from_millis(250);
/// Longest pause between two polls.
const POLL_MAX: Duration = Duration::from_secs(3);

/// How one app's restage ended.
#[derive(Debug, Clone, Serialize)]
pub struct RestageReport {
    /// The app's name.
    pub app: String,
    /// Its GUID.
    pub app_guid: String,
    /// Its space.
    pub space: String,
    /// The build, once created.
    pub build: Option<String>,
    /// The new droplet, once staged.
    pub droplet: Option<String>,
    /// Staged, started, every web instance running.
    pub ok: bool,
    /// What went wrong, and in which state the app is.
    pub error: Option<String>,
}

/// The newest ready package of every member, read (`parallel` at a time) before the window opens:
/// an app that has none cannot be restaged, and finding out inside the window would only prolong it.
pub async fn packages(client: &Client, members: &[Member], parallel: u16) -> Result<HashMap<String, Package>, Error> {
    let work = fleet::work(members);
    let lookups = each(
        work,
        parallel,
        &Interrupt::default(),
        |m| {
            let client = client.clone();
            async move { (m.app.guid.clone(), m.label.clone(), client.latest_ready_package(&m.app.guid).await) }
        },
        |label, guid, lost| (guid, label, Err(Error::Usage(format!("{lost:?}")))),
        |_| {},
    )
    .await;
    let mut found = HashMap::new();
    let mut missing = Vec::new();
    for (guid, label, package) in lookups {
        match package? {
            Some(package) => {
                found.insert(guid, package);
            }
            None => missing.push(label),
        }
    }
    if missing.is_empty() {
        Ok(found)
    } else {
        missing.sort();
        Err(Error::Usage(format!(
            "no package ready to stage for {}: push the app first (`cf push`); nothing was changed",
            missing.join(", ")
        )))
    }
}

/// Refuses, before the window opens, members with a deployment in progress (`status_values=ACTIVE`):
/// their droplet change would be refused inside the window, after the stop.
pub async fn check_deployments(client: &Client, members: &[Member], parallel: u16) -> Result<(), Error> {
    let lookups = each(
        fleet::work(members),
        parallel,
        &Interrupt::default(),
        |m| {
            let client = client.clone();
            async move {
                let found = client.active_deployments(&m.app.guid).await;
                (m.label.clone(), found.map(|d| d.first().map(|d| in_progress(&m, d))))
            }
        },
        |label, _, lost| (label, Err(Error::Usage(format!("{lost:?}")))),
        |_| {},
    )
    .await;
    let mut blocked = Vec::new();
    for (_, found) in lookups {
        blocked.extend(found?);
    }
    if blocked.is_empty() {
        return Ok(());
    }
    blocked.sort();
    Err(Error::DeploymentInProgress(blocked.join("; ")))
}

/// What to say about `member`'s deployment `d` in progress, and what to do about it.
fn in_progress(member: &Member, d: &Deployment) -> String {
    let name = crate::settings::quote(&member.app.name);
    let space = crate::settings::quote(&member.target.space.name);
    let reason = d.status.reason.as_deref().unwrap_or("ACTIVE");
    // A canceling deployment can only be waited for; CC refuses to cancel it twice.
    let what = if reason == "CANCELING" {
        format!("wait until it has finished canceling (`cf target -s {space} && cf app {name}`)")
    } else {
        format!(
            "wait until it has finished (`cf target -s {space} && cf app {name}` shows it), or cancel it with \
             `cf target -s {space} && cf cancel-deployment {name}`"
        )
    };
    format!(
        "app {} has deployment {} in progress ({reason}): {what}, then run switchctl again",
        member.app.name, d.guid
    )
}

/// Restages every member, `parallel` at a time.
pub async fn each_app(
    env: &Env,
    members: &[Member],
    packages: &HashMap<String, Package>,
    timeouts: Timeouts,
    parallel: u16,
) -> Vec<RestageReport> {
    let packages = Arc::new(packages.clone());
    let out = env.out.clone();
    each(
        fleet::work(members),
        parallel,
        &env.interrupt,
        |m| {
            let (env, packages) = (env.clone(), Arc::clone(&packages));
            async move {
                let package = packages.get(&m.app.guid).map(|p| p.guid.clone()).unwrap_or_default();
                restage(&env, &m, &package, timeouts).await
            }
        },
        |label, guid, lost| RestageReport {
            app: label,
            app_guid: guid,
            space: String::new(),
            build: None,
            droplet: None,
            ok: false,
            error: Some(match lost {
                Lost::Interrupted => "not started: switchctl was interrupted; the app runs as before".to_owned(),
                Lost::RateLimited => {
                    "not started: the Cloud Controller's rate limit held requests back beyond --max-wait; the app \
                     runs as before"
                        .to_owned()
                }
                Lost::Died(e) => format!("internal error ({e})"),
            }),
        },
        |r| out.event("restage", r),
    )
    .await
}

/// One app: build, wait, stop, set the droplet, start, wait. Kept in one piece: each step's
/// failure message says which state the app is left in, and that depends on the steps before.
async fn restage(env: &Env, member: &Member, package: &str, timeouts: Timeouts) -> RestageReport {
    let (client, progress, label) = (&env.client, &env.out, member.label.as_str());
    let app = &member.app;
    let mut report = RestageReport {
        app: app.name.clone(),
        app_guid: app.guid.clone(),
        space: member.target.space.name.clone(),
        build: None,
        droplet: None,
        ok: false,
        error: None,
    };
    let fail = |mut report: RestageReport, why: String| {
        progress.phase(label, "restage FAILED", Some(&why), true);
        report.error = Some(why);
        report
    };

    // 1. Stage.
    progress.phase(label, "staging", None, true);
    let build = match client.create_build(package).await {
        Ok(build) => build,
        Err(e) => {
            return fail(report, format!("the build could not be created: {}; the app runs as before", describe(&e)));
        }
    };
    report.build = Some(build.guid.clone());
    let deadline = Instant::now() + timeouts.staging;
    let mut pause = POLL_FIRST;
    let mut build = build;
    let droplet = loop {
        match build.state {
            BuildState::Staged => match build.droplet.as_ref() {
                Some(d) => break d.guid.clone(),
                None => return fail(report, format!("build {} is STAGED without a droplet", build.guid)),
            },
            BuildState::Failed => {
                let error = build.error.as_deref().unwrap_or("no reason given");
                return fail(
                    report,
                    format!(
                        "staging failed: {error} (build {}; `cf logs {} --recent` shows the staging log); the app runs \
                         its old droplet",
                        build.guid, app.name
                    ),
                );
            }
            BuildState::Staging | BuildState::Unknown => {}
        }
        if Instant::now() >= deadline {
            return fail(
                report,
                format!(
                    "staging did not finish within {}s (build {} is still STAGING); the app runs its old droplet",
                    timeouts.staging.as_secs(),
                    build.guid
                ),
            );
        }
        tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
        pause = (pause * 2).min(POLL_MAX);
        build = match client.get_build(&build.guid).await {
            Ok(b) => b,
            Err(e) => return fail(report, format!("reading build {}: {}", build.guid, describe(&e))),
        };
    };
    report.droplet = Some(droplet.clone());

    // 2. Stop, new droplet, start: the window hides the downtime.
    progress.phase(label, "restarting", Some(&format!("droplet {droplet}")), true);
    if let Err(e) = client.stop_app(&app.guid).await {
        // The stop may have gone through with its answer lost: start again whatever happened.
        let why = format!("stopping it for droplet {droplet} failed: {}", describe(&e));
        return fail(report, start_again(client, &app.guid, &app.name, &droplet, why).await);
    }
    if let Err(e) = client.set_current_droplet(&app.guid, &droplet).await {
        let mut why = format!("setting droplet {droplet} failed after the stop: {}", describe(&e));
        // A deployment begun since the check before the window (someone's `cf restart --strategy
        // rolling`) is the usual 422: name it and what to do.
        if e.api().is_some_and(|a| a.status == 422)
            && let Ok(deployments) = client.active_deployments(&app.guid).await
            && let Some(d) = deployments.first()
        {
            why = format!("{why} ({})", in_progress(member, d));
        }
        return fail(report, start_again(client, &app.guid, &app.name, &droplet, why).await);
    }
    if let Err(e) = client.start_app(&app.guid).await {
        return fail(
            report,
            format!(
                "starting it on droplet {droplet} failed: {}; the app is STOPPED: run `cf start {}`",
                describe(&e),
                crate::settings::quote(&app.name)
            ),
        );
    }

    // 3. Every web instance running.
    progress.phase(label, "starting", None, true);
    match wait_running(client, &app.guid, &app.name, timeouts.startup).await {
        Ok(()) => {
            report.ok = true;
            progress.phase(label, "restaged", None, true);
            report
        }
        Err(why) => fail(report, why),
    }
}

/// After a failed stop or droplet change: starts the app again on the droplet it has, so that a
/// failed restage never leaves it STOPPED, and says which droplet that is (read back: a change
/// whose answer was lost may have gone through).
async fn start_again(client: &Client, app_guid: &str, app_name: &str, new_droplet: &str, why: String) -> String {
    let name = crate::settings::quote(app_name);
    if let Err(e) = client.start_app(app_guid).await {
        return format!(
            "{why}; starting it again failed too: {}; the app may be STOPPED: run `cf start {name}` (`cf app {name}` \
             shows its state)",
            describe(&e)
        );
    }
    let on = match client.current_droplet(app_guid).await {
        Ok(Some(d)) if d.guid == new_droplet => format!("on the new droplet {new_droplet} (the change went through)"),
        Ok(Some(d)) => format!("on its previous droplet {}", d.guid),
        Ok(None) => "(it has no current droplet)".to_owned(),
        Err(_) => "on its current droplet (`cf app {name}` shows which)".replace("{name}", &name),
    };
    format!("{why}; the app was started again {on} (`cf app {name}` shows when its instances run)")
}

/// Waits until every instance of the app's web process is RUNNING and ready (routable): only then
/// does the router send it traffic. Fails at once when all have crashed, as cf does; otherwise at
/// the timeout, with the instances' states.
async fn wait_running(client: &Client, app_guid: &str, app_name: &str, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let mut pause = POLL_FIRST;
    loop {
        let processes = client.app_processes(app_guid).await.map_err(|e| describe(&e))?;
        let Some(web) = processes.iter().find(|p| p.kind == "web") else {
            return Err(format!("app {app_name} has no web process"));
        };
        let stats = client.process_stats(&web.guid).await.map_err(|e| describe(&e))?;
        let ready = stats.iter().filter(|s| context::serves(s)).count();
        if web.instances == 0 || (ready == stats.len() && ready >= web.instances as usize) {
            return Ok(());
        }
        let states = || {
            let mut counts: Vec<(String, usize)> = Vec::new();
            for s in &stats {
                let mut name = format!("{:?}", s.state).to_uppercase();
                if s.state == InstanceState::Running && !context::serves(s) {
                    name.push_str(" but not ready (readiness health check failing)");
                }
                match counts.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, c)) => *c += 1,
                    None => counts.push((name, 1)),
                }
            }
            counts.iter().map(|(n, c)| format!("{c} {n}")).collect::<Vec<_>>().join(", ")
        };
        if !stats.is_empty() && stats.iter().all(|s| s.state == InstanceState::Crashed) {
            return Err(format!(
                "all {} web instances of {app_name} CRASHED after the restart (`cf logs {} --recent` shows why); \
                 the app is down",
                stats.len(),
                crate::settings::quote(app_name)
            ));
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "not every web instance of {app_name} runs after {}s ({}; {} wanted); the app stays in maintenance",
                timeout.as_secs(),
                if stats.is_empty() { "no instance reported".to_owned() } else { states() },
                web.instances
            ));
        }
        tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
        pause = (pause * 2).min(POLL_MAX);
    }
}
