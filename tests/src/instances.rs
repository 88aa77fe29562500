//! Real instances: an app's `web` instances run as child processes of a binary (the workspace's
//! `maintenance-app`), started, restarted and replaced as Diego and CC's deployment updater do.
//!
//! One supervisor per app ([`CfDouble::run_instances`]) ticks every [`RunOptions::tick`], like
//! the two loops it stands for:
//! - **CC's deployment updater** (cloud_controller_ng `lib/cloud_controller/deployment_updater/`,
//!   `scheduler.rb` runs `Dispatcher` every `deployment_updater.update_frequency_in_seconds`, 30
//!   in CC's own `config/cloud_controller.yml`; capi-release's default UNCONFIRMED): for each
//!   deploying rolling deployment, `Actions::Scale` — scale the old web processes down to
//!   `target - routable new instances`, then finalize when the new process has all its instances
//!   routable, else scale it up by `max_in_flight` (1) when none is starting or crashed
//!   (`down_scaler.rb`, `up_scaler.rb`). `Actions::Finalize` destroys every other web process and
//!   marks the deployment `FINALIZED`/`DEPLOYED`: the app's web process guid is now the
//!   deployment's.
//! - **Diego's convergence**: every desired instance (index below each web process's `instances`
//!   of a started app) has a running child; every child that is no longer desired is stopped.
//!
//! An instance starts from the app's environment variables *at that moment* (Diego runs each
//! actual LRP from its desired LRP; a `PATCH …/environment_variables` changes neither) plus what
//! Diego sets: `PORT`, `CF_INSTANCE_INDEX`, `CF_INSTANCE_GUID`, `INSTANCE_INDEX`. `PORT` is 0 and
//! the address is read from the child's `listening … addr=…:PORT` line, since every instance
//! shares the loopback interface. It is `STARTING` until then and until its port accepts a
//! connection (Diego's default `port` health check, `process_model.rb`), then `RUNNING` and
//! registered with every router (after each router's delay, as through the route emitter and
//! NATS).
//!
//! A child that exits unasked (see [`CfDouble::kill_instance`]) is `CRASHED` and unregistered,
//! and is restarted from the *current* environment, as the BBS restarts a crashed actual LRP:
//! at once for the first `DefaultImmediateRestarts` (3) crashes, then after
//! `CrashBackoffMinDuration` (30 s) doubled per further crash, at most `DefaultMaxBackoffDuration`
//! (16 min) (bbs `models/actual_lrp.go`, `RestartCalculator`). "At once" is
//! [`RunOptions::restart_delay`] here: the rep needs a moment to create the new container.
//!
//! A stopped instance is unregistered first, and only once every router has dropped it does it
//! get SIGTERM, then SIGKILL after [`RunOptions::stop_grace`] (Diego's 10 s). On a foundation the
//! two race (the route emitter unregisters when the actual LRP goes), and gorouter retries a
//! request whose connection was refused on another endpoint (`proxy/fails/classifier_group.go`,
//! `RetriableClassifiers`); the double's router does not retry, so it orders the two instead.
//!
//! Every child is killed (SIGKILL, by its own PID) when the supervisor is dropped: no orphans.

use std::{
    collections::HashMap,
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use nix::{sys::signal::Signal, unistd::Pid};
use tokio::sync::{mpsc, oneshot, watch};

use crate::{
    cc::{
        Cc,
        state::{AppState, InstanceState, State},
    },
    clock::now_iso,
    router::RouterDouble,
    spawn::CfDouble,
};

/// How the real instances of an app run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The program every instance runs (e.g. the `maintenance-app` binary).
    pub binary: PathBuf,
    /// Variables every instance gets before the app's own (which win), e.g. `LOG_FORMAT=text`.
    pub base_env: Vec<(String, String)>,
    /// How long after a crash an immediate restart starts.
    pub restart_delay: Duration,
    /// How often the deployment updater and the convergence run.
    pub tick: Duration,
    /// How long an instance may take to print its address and accept a connection before it
    /// counts as crashed (Diego's health check timeout, 60 s by default; UNCONFIRMED default).
    pub start_timeout: Duration,
    /// Between SIGTERM and SIGKILL when an instance is stopped (Diego: 10 s).
    pub stop_grace: Duration,
}

impl RunOptions {
    /// Runs `binary` with text logs (the address line is read from them), restarts after 200 ms,
    /// ticks every 100 ms, 10 s to start, 10 s to stop.
    pub fn new(binary: impl Into<PathBuf>) -> RunOptions {
        RunOptions {
            binary: binary.into(),
            base_env: vec![
                ("LOG_FORMAT".to_owned(), "text".to_owned()),
                ("NO_COLOR".to_owned(), "1".to_owned()),
                ("MAINTENANCE_STATS_INTERVAL".to_owned(), "0".to_owned()),
            ],
            restart_delay: Duration::from_millis(200),
            tick: Duration::from_millis(100),
            start_timeout: Duration::from_secs(10),
            stop_grace: Duration::from_secs(10),
        }
    }
}

/// One instance: (process guid, index).
type Key = (String, u32);

/// What the supervisors of one double share: the children alive, by instance, for the kill
/// switch and the final SIGKILL.
#[derive(Debug, Default)]
pub(crate) struct Children {
    /// (app guid, instance) → PID of the live child. A PID leaves this map under its lock in the
    /// same step as the child is reaped, so a signal sent under the lock never reaches a reused
    /// PID.
    pids: Mutex<HashMap<(String, Key), u32>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Children {
    fn signal(&self, app: &str, key: &Key, signal: Signal) -> bool {
        let pids = lock(&self.pids);
        let Some(pid) = pids.get(&(app.to_owned(), key.clone())) else { return false };
        let Ok(pid) = i32::try_from(*pid) else { return false };
        nix::sys::signal::kill(Pid::from_raw(pid), signal).is_ok()
    }

    fn kill_all(&self, app: &str) {
        let pids = lock(&self.pids);
        for ((a, _), pid) in pids.iter() {
            if a == app
                && let Ok(pid) = i32::try_from(*pid)
            {
                let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

/// The supervisor of one app's real instances; dropping it kills every child.
#[derive(Debug)]
pub struct Supervisor {
    app_guid: String,
    children: Arc<Children>,
    stop: watch::Sender<bool>,
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.stop.send_replace(true);
        self.children.kill_all(&self.app_guid);
    }
}

/// What an instance task needs.
#[derive(Clone)]
struct Ctx {
    cc: Arc<Cc>,
    routers: Vec<Arc<RouterDouble>>,
    app_guid: String,
    options: RunOptions,
    children: Arc<Children>,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx").field("app_guid", &self.app_guid).finish_non_exhaustive()
    }
}

impl CfDouble {
    /// Runs `app`'s web instances as real children of `options.binary` from now on (see the
    /// module docs); the double keeps the supervisor and kills every child when dropped.
    pub fn run_instances(&self, app: &str, options: RunOptions) {
        self.cc.state().real_apps.insert(app.to_owned());
        let children = Arc::clone(&self.children);
        let (stop, stopped) = watch::channel(false);
        let ctx = Ctx {
            cc: Arc::clone(&self.cc),
            routers: self.routers().to_vec(),
            app_guid: app.to_owned(),
            options,
            children: Arc::clone(&children),
        };
        tokio::spawn(supervise(ctx, stopped));
        lock(&self.supervisors).push(Supervisor { app_guid: app.to_owned(), children, stop });
    }

    /// Kills instance `index` of `app`'s current web process with SIGKILL, as a cell losing it
    /// would; Diego notices, reports it CRASHED and restarts it. Whether there was such a child.
    pub fn kill_instance(&self, app: &str, index: u32) -> bool {
        let Some(process) = self.cc.state().process_of(app, "web").map(|p| p.guid.clone()) else { return false };
        self.children.signal(app, &(process, index), Signal::SIGKILL)
    }
}

/// The supervisor loop: the deployment updater, then convergence, every tick, until stopped.
async fn supervise(ctx: Ctx, mut stopped: watch::Receiver<bool>) {
    let mut running: HashMap<Key, (watch::Sender<bool>, tokio::task::JoinHandle<()>)> = HashMap::new();
    loop {
        let desired = {
            let mut st = ctx.cc.state();
            update_deployments(&mut st, &ctx.app_guid);
            desired_instances(&st, &ctx.app_guid)
        };
        running.retain(|_, (_, task)| !task.is_finished());
        let missing: Vec<Key> = desired.iter().filter(|k| !running.contains_key(*k)).cloned().collect();
        for key in missing {
            let (stop, stop_rx) = watch::channel(false);
            let task = tokio::spawn(run_instance(ctx.clone(), key.clone(), stop_rx));
            running.insert(key, (stop, task));
        }
        // Stopping is asked once: the task finishes on its own, and the entry goes with it.
        for (key, (stop, _)) in &running {
            if !desired.contains(key) {
                stop.send_replace(true);
            }
        }
        tokio::select! {
            () = until_true(&mut stopped) => break,
            () = tokio::time::sleep(ctx.options.tick) => {}
        }
    }
    for (stop, _) in running.values() {
        stop.send_replace(true);
    }
}

/// Every instance Diego should run for `app`: indexes below `instances` of each of its web
/// processes, while the app is started.
fn desired_instances(st: &State, app: &str) -> Vec<Key> {
    if st.app(app).is_none_or(|a| a.state != AppState::Started) {
        return Vec::new();
    }
    st.processes
        .iter()
        .filter(|p| p.app_guid == app && p.process_type == "web")
        .flat_map(|p| (0..p.instances).map(|i| (p.guid.clone(), i)))
        .collect()
}

/// One pass of CC's deployment updater over `app`'s deploying rolling deployments
/// (`Actions::Scale#call` with `max_in_flight` 1, then `Actions::Finalize#call`).
fn update_deployments(st: &mut State, app: &str) {
    const MAX_IN_FLIGHT: u32 = 1;
    let deploying: Vec<(String, String, u32)> = st
        .deployments
        .iter()
        .filter(|d| d.app_guid == app && d.deploying())
        .filter_map(|d| Some((d.guid.clone(), d.process_guid.clone()?, d.target_instances)))
        .collect();
    for (dep, new_guid, target) in deploying {
        let Some(new) = st.process(&new_guid).cloned() else { continue };
        let states = st.instance_states(&new);
        let count = |s: InstanceState| u32::try_from(states.iter().filter(|x| **x == s).count()).unwrap_or(0);
        let (routable, starting, unhealthy) =
            (count(InstanceState::Running), count(InstanceState::Starting), count(InstanceState::Crashed));
        let old: Vec<usize> = st
            .processes
            .iter()
            .enumerate()
            .filter(|(_, p)| p.app_guid == app && p.process_type == "web" && p.guid != new_guid)
            .map(|(i, _)| i)
            .collect();
        let old_sum: u32 = old.iter().map(|i| st.processes[*i].instances).sum();
        let keep_old = target.saturating_sub(routable);
        let can_down = old_sum > keep_old;
        let can_up =
            starting < MAX_IN_FLIGHT && unhealthy == 0 && routable >= new.instances.saturating_sub(MAX_IN_FLIGHT);
        if !can_up && !can_down {
            continue;
        }
        if can_down {
            // DownScaler#scale_down: the oldest processes first.
            let mut reduce = old_sum - keep_old;
            for i in &old {
                let p = &mut st.processes[*i];
                if reduce < p.instances {
                    p.instances -= reduce;
                    p.updated_at = now_iso();
                    break;
                }
                reduce -= p.instances;
                p.instances = 0;
                p.updated_at = now_iso();
            }
        }
        if new.instances >= target && routable >= target {
            finalize(st, app, &dep, &new_guid);
        } else if can_up {
            let wanted = (routable + MAX_IN_FLIGHT).min(target);
            if let Some(p) = st.processes.iter_mut().find(|p| p.guid == new_guid) {
                p.instances = wanted;
                p.updated_at = now_iso();
            }
        }
    }
}

/// `Actions::Finalize#call`: every other web process is destroyed, and the deployment is
/// `FINALIZED`/`DEPLOYED` (`status.value`/`status.reason` as `DeploymentPresenter` shows them);
/// the app's current droplet is the deployment's.
fn finalize(st: &mut State, app: &str, dep: &str, new_guid: &str) {
    let gone: Vec<String> = st
        .processes
        .iter()
        .filter(|p| p.app_guid == app && p.process_type == "web" && p.guid != new_guid)
        .map(|p| p.guid.clone())
        .collect();
    st.processes.retain(|p| !gone.contains(&p.guid));
    for g in &gone {
        st.actual.remove(g);
    }
    let mut droplet = None;
    if let Some(d) = st.deployments.iter_mut().find(|d| d.guid == dep) {
        d.reason = "DEPLOYED".to_owned();
        d.updated_at = now_iso();
        droplet = d.droplet_guid.clone();
    }
    if let Some(a) = st.app_mut(app) {
        a.droplet_guid = droplet.or(a.droplet_guid.take());
        a.updated_at = now_iso();
    }
}

/// Sets what Diego reports for `key`.
fn report(st: &mut State, key: &Key, state: InstanceState) {
    let states = st.actual.entry(key.0.clone()).or_default();
    let i = key.1 as usize;
    if states.len() <= i {
        states.resize(i + 1, InstanceState::Down);
    }
    states[i] = state;
}

/// How long the BBS waits before restarting an instance that crashed `crashes` times
/// (`RestartCalculator`, bbs `models/actual_lrp.go`).
fn restart_backoff(crashes: u32, immediate: Duration) -> Duration {
    const IMMEDIATE_RESTARTS: u32 = 3;
    const MIN_BACKOFF: Duration = Duration::from_secs(30);
    const MAX_BACKOFF: Duration = Duration::from_secs(16 * 60);
    if crashes <= IMMEDIATE_RESTARTS {
        return immediate;
    }
    let doubled = MIN_BACKOFF.saturating_mul(1 << (crashes - IMMEDIATE_RESTARTS - 1).min(10));
    doubled.min(MAX_BACKOFF)
}

/// Until `flag` is true (or its sender is gone); holds no borrow of it after.
async fn until_true(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|s| *s).await;
}

/// How one run of a child ended.
enum Ended {
    /// It exited (or was killed) without being asked to stop.
    Crashed,
    /// Diego stopped it.
    Stopped,
}

/// One instance for as long as it is desired: start, watch, restart after crashes.
async fn run_instance(ctx: Ctx, key: Key, mut stop: watch::Receiver<bool>) {
    let mut crashes = 0u32;
    let process_type = "web";
    while !*stop.borrow() {
        report(&mut ctx.cc.state(), &key, InstanceState::Starting);
        let ended = run_once(&ctx, &key, process_type, &mut stop).await;
        match ended {
            Ended::Stopped => break,
            Ended::Crashed => {
                crashes += 1;
                {
                    let mut st = ctx.cc.state();
                    report(&mut st, &key, InstanceState::Crashed);
                    st.emit_registration(key.clone(), &ctx.app_guid, process_type, None);
                }
                tracing::info!(app = %ctx.app_guid, process = %key.0, index = key.1, crashes, "instance crashed");
                let wait = restart_backoff(crashes, ctx.options.restart_delay);
                tokio::select! {
                    () = until_true(&mut stop) => break,
                    () = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
    // Gone: Diego reports nothing for it any more (a DOWN stub while the index is desired).
    let mut st = ctx.cc.state();
    if let Some(states) = st.actual.get_mut(&key.0)
        && let Some(s) = states.get_mut(key.1 as usize)
    {
        *s = InstanceState::Down;
    }
}

/// Starts the child once and follows it until it exits or is stopped.
async fn run_once(ctx: &Ctx, key: &Key, process_type: &str, stop: &mut watch::Receiver<bool>) -> Ended {
    let env: Vec<(String, String)> = {
        let st = ctx.cc.state();
        st.app(&ctx.app_guid).map(|a| a.environment_variables.clone().into_iter().collect()).unwrap_or_default()
    };
    let (port_tx, port_rx) = oneshot::channel::<u16>();
    let (exit_tx, mut exit_rx) = mpsc::unbounded_channel::<()>();
    if let Err(e) = spawn_child(ctx, key, &env, port_tx, exit_tx) {
        tracing::warn!(binary = %ctx.options.binary.display(), error = %e, "instance did not start");
        return Ended::Crashed;
    }
    // Up: it printed its address and the port accepts a connection.
    let up = async {
        let port = port_rx.await.ok()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        for _ in 0..500 {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return Some(addr);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    };
    let addr = tokio::select! {
        r = tokio::time::timeout(ctx.options.start_timeout, up) => r.ok().flatten(),
        _ = exit_rx.recv() => return Ended::Crashed,
        () = until_true(stop) => {
            ctx.children.signal(&ctx.app_guid, key, Signal::SIGKILL);
            return Ended::Stopped;
        }
    };
    let Some(addr) = addr else {
        // The health check timed out: Diego kills the container and counts a crash.
        ctx.children.signal(&ctx.app_guid, key, Signal::SIGKILL);
        let _ = exit_rx.recv().await;
        return Ended::Crashed;
    };
    {
        let mut st = ctx.cc.state();
        report(&mut st, key, InstanceState::Running);
        st.emit_registration(key.clone(), &ctx.app_guid, process_type, Some(addr));
    }
    tokio::select! {
        _ = exit_rx.recv() => Ended::Crashed,
        () = until_true(stop) => {
            ctx.cc.state().emit_registration(key.clone(), &ctx.app_guid, process_type, None);
            for r in &ctx.routers {
                r.wait_settled(Duration::from_secs(5)).await;
            }
            ctx.children.signal(&ctx.app_guid, key, Signal::SIGTERM);
            if tokio::time::timeout(ctx.options.stop_grace, exit_rx.recv()).await.is_err() {
                ctx.children.signal(&ctx.app_guid, key, Signal::SIGKILL);
                let _ = tokio::time::timeout(Duration::from_secs(5), exit_rx.recv()).await;
            }
            Ended::Stopped
        }
    }
}

/// Spawns the child with a clean environment: `base_env`, the app's variables, then Diego's.
/// A thread reads its stdout (sending the port of its `listening` line) and reaps it.
fn spawn_child(
    ctx: &Ctx,
    key: &Key,
    app_env: &[(String, String)],
    port_tx: oneshot::Sender<u16>,
    exit_tx: mpsc::UnboundedSender<()>,
) -> std::io::Result<()> {
    let mut cmd = Command::new(&ctx.options.binary);
    cmd.env_clear();
    for (k, v) in ctx.options.base_env.iter().chain(app_env) {
        cmd.env(k, v);
    }
    let index = key.1.to_string();
    cmd.env("PORT", "0")
        .env("CF_INSTANCE_INDEX", &index)
        .env("INSTANCE_INDEX", &index)
        .env("CF_INSTANCE_GUID", uuid::Uuid::new_v4().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child: Child = cmd.spawn()?;
    let pid_key = (ctx.app_guid.clone(), key.clone());
    lock(&ctx.children.pids).insert(pid_key.clone(), child.id());
    let stdout = child.stdout.take();
    let children = Arc::clone(&ctx.children);
    std::thread::spawn(move || {
        let mut port_tx = Some(port_tx);
        if let Some(stdout) = stdout {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = listening_port(&line)
                    && let Some(tx) = port_tx.take()
                {
                    let _ = tx.send(port);
                }
            }
        }
        // Stdout closed: the child is exiting. Reap it and forget its PID in one step.
        loop {
            let mut pids = lock(&children.pids);
            match child.try_wait() {
                Ok(None) => {
                    drop(pids);
                    std::thread::sleep(Duration::from_millis(20));
                }
                Ok(Some(_)) | Err(_) => {
                    pids.remove(&pid_key);
                    break;
                }
            }
        }
        let _ = exit_tx.send(());
    });
    Ok(())
}

/// The port of `addr=[::]:PORT` (text logs) or `"addr":"[::]:PORT"` (JSON logs) in a log line,
/// with or without ANSI colours.
fn listening_port(line: &str) -> Option<u16> {
    if !line.contains("listening") {
        return None;
    }
    let at = line.find("addr=").map(|i| i + 5).or_else(|| line.find("\"addr\":").map(|i| i + 7))?;
    let token: String = line[at..]
        .trim_start_matches(['"', ' '])
        .chars()
        .take_while(|c| c.is_ascii_digit() || matches!(c, '[' | ']' | ':' | '.') || c.is_ascii_hexdigit())
        .collect();
    token.rsplit_once(':')?.1.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_line_is_read_in_text_and_json() {
        assert_eq!(listening_port("INFO listening version=0.1.0 addr=[::]:41234 max_connections=1"), Some(41234));
        assert_eq!(listening_port(r#"{"msg":"listening","addr":"0.0.0.0:8080"}"#), Some(8080));
        assert_eq!(listening_port("\u{1b}[32mINFO\u{1b}[0m listening addr=[::]:5\u{1b}[0m"), Some(5));
        assert_eq!(listening_port("INFO request addr=1.2.3.4:5"), None);
    }

    #[test]
    fn crashes_restart_at_once_three_times_then_back_off_as_the_bbs_does() {
        let now = Duration::from_millis(1);
        let waits: Vec<Duration> = (1..=10).map(|c| restart_backoff(c, now)).collect();
        assert_eq!(&waits[..3], &[now, now, now]);
        assert_eq!(waits[3], Duration::from_secs(30));
        assert_eq!(waits[4], Duration::from_secs(60));
        assert_eq!(waits[9], Duration::from_secs(16 * 60));
    }
}
