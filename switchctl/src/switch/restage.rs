//! `run --restage`: each app restaged inside the window the way `cf restage` does it without
//! `--strategy` (FACTS §2.1): a build of the newest ready package, polled until staged; then stop,
//! the new droplet set current, start, and a wait until every web instance runs.
//!
//! The window is what makes the downtime of a stop-and-start harmless: users see the maintenance
//! page meanwhile. A failed build leaves the app on its old droplet; instances that do not come up
//! leave it down. Either way it stays in maintenance, and the report says why.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use serde::Serialize;

use super::{
    context::{Env, Lost, each},
    fleet::{self, Member},
    signals::Interrupt,
};
use crate::{
    capi::{BuildState, Client, InstanceState, Package},
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
    let steps = async {
        client.stop_app(&app.guid).await?;
        client.set_current_droplet(&app.guid, &droplet).await?;
        client.start_app(&app.guid).await
    };
    if let Err(e) = steps.await {
        return fail(
            report,
            format!("restarting with droplet {droplet}: {} (`cf app {}` shows its state)", describe(&e), app.name),
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

/// Waits until every instance of the app's web process is RUNNING. Fails at once when all have
/// crashed, as cf does; otherwise at the timeout, with the instances' states.
async fn wait_running(client: &Client, app_guid: &str, app_name: &str, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let mut pause = POLL_FIRST;
    loop {
        let processes = client.app_processes(app_guid).await.map_err(|e| describe(&e))?;
        let Some(web) = processes.iter().find(|p| p.kind == "web") else {
            return Err(format!("app {app_name} has no web process"));
        };
        let stats = client.process_stats(&web.guid).await.map_err(|e| describe(&e))?;
        let running = stats.iter().filter(|s| s.state == InstanceState::Running).count();
        if web.instances == 0 || (running == stats.len() && running >= web.instances as usize) {
            return Ok(());
        }
        let states = || {
            let mut counts: Vec<(String, usize)> = Vec::new();
            for s in &stats {
                let name = format!("{:?}", s.state).to_uppercase();
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
