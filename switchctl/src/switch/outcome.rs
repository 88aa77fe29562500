//! What `on` and `off` did to each route, as values: the [`Outcome`], the [`RouteState`] the route
//! was left in (read from the Cloud Controller after a failure, not assumed), and for a failure
//! its typed [`Cause`]. Every message about a route is rendered here from those values, in one
//! place, so no message can drift from what happened; `--json` events carry the same values as
//! fields.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::{
    capi::{BoundService, Destination, NewDestination},
    output::{plural, table},
};

/// A destination as reports show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DestinationView {
    /// App GUID.
    pub app: String,
    /// App name, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_name: Option<String>,
    /// Process type.
    pub process: String,
    /// App port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// Protocol.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

impl DestinationView {
    /// `d`, named with `names` (app GUID → name).
    pub fn of(d: &Destination, names: &HashMap<String, String>) -> DestinationView {
        DestinationView {
            app: d.app.guid.clone(),
            app_name: names.get(&d.app.guid).cloned(),
            process: d.process_type().to_owned(),
            port: d.port,
            protocol: d.protocol.clone(),
        }
    }

    /// A destination about to be added.
    pub fn new(d: &NewDestination, names: &HashMap<String, String>) -> DestinationView {
        DestinationView {
            app: d.app.guid.clone(),
            app_name: names.get(&d.app.guid).cloned(),
            process: d.app.process.as_ref().map_or("web", |p| p.kind.as_str()).to_owned(),
            port: d.port,
            protocol: d.protocol.clone(),
        }
    }
}

impl std::fmt::Display for DestinationView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.app_name.as_deref().unwrap_or(&self.app))?;
        write!(f, " {}", self.process)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        if let Some(protocol) = &self.protocol {
            write!(f, " {protocol}")?;
        }
        Ok(())
    }
}

/// `on` or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verb {
    /// Into maintenance.
    On,
    /// Out of maintenance.
    Off,
}

impl Verb {
    /// `on` / `off`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::On => "on",
            Verb::Off => "off",
        }
    }

    /// The other direction.
    pub fn undo(self) -> Verb {
        match self {
            Verb::On => Verb::Off,
            Verb::Off => Verb::On,
        }
    }

    /// The outcome of a route this verb finished.
    pub fn done(self) -> Outcome {
        match self {
            Verb::On => Outcome::Switched,
            Verb::Off => Outcome::Restored,
        }
    }

    fn done_word(self) -> &'static str {
        match self {
            Verb::On => "switched",
            Verb::Off => "restored",
        }
    }
}

/// What happened to one route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// `on`: now served by the maintenance app (for APP's part).
    Switched,
    /// `off`: APP serves it again.
    Restored,
    /// Nothing to do: already in the wanted state.
    Already,
    /// Left alone (TCP, internal, not mapped).
    Skipped,
    /// Could not be finished: see the cause and the state.
    Failed,
}

/// What a route is in for APP, as the Cloud Controller holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteState {
    /// APP serves it and no switchctl record for APP is on it (before `on`, after `off`).
    Serving,
    /// APP serves it, the maintenance app is not mapped, and APP's record is on it (harmless).
    RecordOnly,
    /// APP and the maintenance app are both mapped: users get either answer.
    BothServe,
    /// The maintenance app serves APP's part and APP's record is on it (after `on`).
    MaintenanceOnly,
    /// The maintenance app serves it and no switchctl record says for which app.
    MaintenanceUnrecorded,
    /// Neither APP nor the maintenance app is mapped.
    Unserved,
    /// The route could not be read after the failure.
    Unknown,
}

/// A step of a route's procedure, for a cause that names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Writing APP's record (label and annotation).
    WriteRecord,
    /// Adding the maintenance app's destination.
    AddMaintenance,
    /// Reading the route.
    ReadRoute,
    /// Removing APP's destinations.
    RemoveApp,
    /// Putting APP's recorded destinations back.
    AddApp,
    /// Removing the maintenance app's destination.
    RemoveMaintenance,
    /// Removing APP's record.
    ClearRecord,
}

impl Step {
    fn doing(self) -> &'static str {
        match self {
            Step::WriteRecord => "writing switchctl's record on the route",
            Step::AddMaintenance => "adding the maintenance app to the route",
            Step::ReadRoute => "reading the route",
            Step::RemoveApp => "removing the app's destinations",
            Step::AddApp => "putting the app's recorded destinations back",
            Step::RemoveMaintenance => "removing the maintenance app's destination",
            Step::ClearRecord => "removing switchctl's record from the route",
        }
    }
}

/// Who a verification waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Who {
    /// The maintenance app.
    MaintenanceApp,
    /// APP.
    App,
}

/// Why a route failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Cause {
    /// A Cloud Controller request failed.
    Api {
        /// During which step.
        step: Step,
        /// The API's error.
        error: String,
    },
    /// After adding a destination, the new side never answered on the route; the change was taken
    /// back.
    NotAnswering {
        /// Who was waited for.
        who: Who,
        /// For how long.
        timeout_s: u64,
        /// The last answer seen.
        last: String,
    },
    /// The API holds the change but the router kept sending requests to the old side.
    RouterLagging {
        /// Who was waited for.
        who: Who,
        /// For how long.
        timeout_s: u64,
        /// The last answer seen.
        last: String,
    },
    /// The maintenance app's destination vanished between adding it and removing APP's.
    MaintenanceVanished,
    /// The route has weighted destinations, to which CAPI refuses to add one.
    Weighted,
    /// The record cannot be written or read.
    Record {
        /// What is wrong.
        problem: String,
    },
    /// The maintenance app is mapped next to APP with no switchctl record: `off` does not know
    /// whether someone mapped it on purpose, so it leaves it and says how to remove it.
    Unrecorded {
        /// The maintenance app's destination GUID.
        destination: String,
    },
    /// Only the maintenance app serves a route APP was unmapped from (the audit trail says so), and
    /// no switchctl record is left on it: removed by hand, so `off` cannot know for sure what to
    /// put back and gives the exact repair instead of guessing.
    RecordLost {
        /// When APP was unmapped.
        unmapped_at: String,
        /// The destinations APP had, as the body of `POST /v3/routes/:guid/destinations`.
        body: String,
        /// The maintenance app's destination GUID.
        maintenance_destination: String,
    },
    /// switchctl was interrupted before the route's turn.
    Interrupted,
    /// The rate limit held requests back beyond `--max-wait` before the route's turn.
    RateLimited,
    /// The route's task died.
    Internal {
        /// What was reported.
        error: String,
    },
}

/// A write the Cloud Controller answered with an error but carried out all the same: a Diego
/// error raised in an `after_commit` hook (cloud_controller_ng
/// `app/models/runtime/process_route_handler.rb`, `lib/cloud_controller/diego/bbs_apps_client.rb`)
/// or an answer lost on the way back. The route was read again, held the change, and the switch
/// went on from there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recovered {
    /// The step whose write was answered with an error.
    pub step: Step,
    /// The error it was answered with.
    pub error: String,
}

impl std::fmt::Display for Recovered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the Cloud Controller answered {} with an error ({}) but had made the change",
            self.step.doing(),
            self.error
        )
    }
}

/// A route a plain probe cannot verify, and what switchctl did instead: the route's `reach` in
/// reports and `--json` events. Routes without one were probed as usual.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reach {
    /// Bound to a route service: the router sends every request to it first, probes included.
    RouteService {
        /// The service instance.
        service: BoundService,
        /// What the probes showed.
        through: Through,
    },
    /// On a domain that enforces route policies: the router only lets callers with an instance
    /// identity a route policy allows through, so the route is switched without probes, waiting
    /// `--settle` after each change.
    RoutePolicies {
        /// The domain.
        domain: String,
        /// Its `route_policies_scope`.
        #[serde(skip_serializing_if = "Option::is_none")]
        scope: Option<String>,
        /// The wait after each change.
        settle_s: u64,
    },
}

/// What probes through a route service showed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Through {
    /// `--dry-run`: verified through it if it passes requests on, else switched after `--settle`.
    Planned,
    /// It passes requests on: the change was verified through it as for any route.
    PassedOn,
    /// It answered itself (a login redirect, say) and never passed a probe on within `--settle`:
    /// not verified; the route was switched after waiting `settle_s`.
    AnsweredItself {
        /// Its last answer.
        last: String,
        /// The wait after each change.
        settle_s: u64,
    },
    /// `--no-verify` (or `off --force`): nothing was probed.
    NotProbed,
}

impl Reach {
    /// What the report says about the route.
    pub fn describe(&self) -> String {
        match self {
            Reach::RouteService { service, through } => {
                let name = &service.name;
                match through {
                    Through::Planned => format!(
                        "bound to route service {name}: verified through it if it passes requests on, else not                          verified and switched after --settle"
                    ),
                    Through::PassedOn => format!("verified through route service {name}"),
                    Through::AnsweredItself { last, settle_s } => format!(
                        "bound to route service {name}, which answered itself ({last}): not verified; checked with                          --settle {settle_s}"
                    ),
                    Through::NotProbed => format!("bound to route service {name}: not verified"),
                }
            }
            Reach::RoutePolicies { domain, settle_s, .. } => format!(
                "domain {domain} enforces route policies, so the router refuses probes from here: not verified;                  checked with --settle {settle_s}"
            ),
        }
    }
}

/// One route's line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct RouteReport {
    /// `host.domain/path`.
    pub url: String,
    /// The route's GUID.
    pub route_guid: String,
    /// What happened.
    pub result: Outcome,
    /// What the route is in now, for APP.
    pub state: RouteState,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<Cause>,
    /// Why it was skipped, or a note on how it was done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Destinations removed (or, with `--dry-run`, to be removed).
    pub destinations_removed: Vec<DestinationView>,
    /// Destinations added (or to be added).
    pub destinations_added: Vec<DestinationView>,
    /// With `--dry-run`: the label and annotation that would be written or removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
    /// Writes answered with an error that the route shows were carried out.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recovered: Vec<Recovered>,
    /// How a route a plain probe cannot verify was checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reach: Option<Reach>,
}

impl RouteReport {
    /// A report with no destination changes.
    pub fn new(url: String, route_guid: String, result: Outcome, state: RouteState) -> RouteReport {
        RouteReport {
            url,
            route_guid,
            result,
            state,
            cause: None,
            note: None,
            destinations_removed: Vec::new(),
            destinations_added: Vec::new(),
            metadata: None,
            recovered: Vec::new(),
            reach: None,
        }
    }

    /// A failed route: `cause`, left in `state`.
    pub fn failed(url: String, route_guid: String, cause: Cause, state: RouteState) -> RouteReport {
        RouteReport { cause: Some(cause), ..RouteReport::new(url, route_guid, Outcome::Failed, state) }
    }

    /// With a note.
    pub fn with_note(mut self, note: impl Into<String>) -> RouteReport {
        self.note = Some(note.into());
        self
    }

    /// With `note` after the note it has.
    pub fn and_note(mut self, note: impl Into<String>) -> RouteReport {
        let note = note.into();
        self.note = Some(match self.note.take() {
            Some(before) => format!("{before}; {note}"),
            None => note,
        });
        self
    }

    /// With how it was checked, when a plain probe cannot.
    pub fn with_reach(mut self, reach: Option<Reach>) -> RouteReport {
        self.reach = reach;
        self
    }

    /// The note and the reach, as the line shows them.
    fn remarks(&self) -> Vec<String> {
        self.note
            .iter()
            .cloned()
            .chain(self.reach.as_ref().map(Reach::describe))
            .chain(self.recovered.iter().map(ToString::to_string))
            .collect()
    }
}

/// What the operator can run about one app: rendered from the invocation's settings, so every
/// command repeats the flags that matter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advice {
    /// APP's name.
    pub app: String,
    /// APP's GUID.
    pub app_guid: String,
    /// The maintenance app's name.
    pub maintenance_app: String,
    /// `switchctl … on APP …`.
    pub on: String,
    /// `switchctl … off APP …`.
    pub off: String,
    /// `switchctl … status APP`.
    pub status: String,
}

impl Advice {
    fn command(&self, verb: Verb) -> &str {
        match verb {
            Verb::On => &self.on,
            Verb::Off => &self.off,
        }
    }
}

impl Cause {
    /// What went wrong, in words.
    pub fn describe(&self, a: &Advice) -> String {
        let who = |w: Who| match w {
            Who::MaintenanceApp => a.maintenance_app.clone(),
            Who::App => a.app.clone(),
        };
        match self {
            Cause::Api { step, error } => format!("{} failed: {error}", step.doing()),
            Cause::NotAnswering { who: w, timeout_s, last } => format!(
                "{} did not answer on the route within {timeout_s}s (last answer: {last}), so the change was taken \
                 back",
                who(*w)
            ),
            Cause::RouterLagging { who: w, timeout_s, last } => format!(
                "the API holds the change but within {timeout_s}s the router did not answer from {} alone (last \
                 answer: {last})",
                who(*w)
            ),
            Cause::MaintenanceVanished => format!(
                "the maintenance app's destination vanished from the route while switching (changed by someone \
                 else?), so {}'s destinations were not removed",
                a.app
            ),
            Cause::Weighted => "the route has weighted destinations (a deprecated feature); CAPI refuses to add a \
                                destination to it, so switchctl did not change it"
                .to_owned(),
            Cause::Record { problem } => problem.clone(),
            Cause::Unrecorded { destination } => format!(
                "the maintenance app is mapped to this route next to {} but no switchctl record says why (mapped by \
                 hand?), so it was left there (destination {destination})",
                a.app
            ),
            Cause::RecordLost { unmapped_at, .. } => format!(
                "{} was unmapped from this route at {unmapped_at} and only {} serves it now, but switchctl's record \
                 (label and annotation) is gone from the route (removed by hand?)",
                a.app, a.maintenance_app
            ),
            Cause::Interrupted => "not started: switchctl was interrupted".to_owned(),
            Cause::RateLimited => {
                "not started: the Cloud Controller's rate limit held requests back beyond --max-wait".to_owned()
            }
            Cause::Internal { error } => format!("internal error: {error}"),
        }
    }
}

impl RouteReport {
    /// Where the route stands and what to run next, for a route of `verb` that did not finish.
    pub fn what_now(&self, verb: Verb, a: &Advice) -> String {
        let (again, undo, status) = (a.command(verb), a.command(verb.undo()), &a.status);
        let (app, rg) = (&a.app, &self.route_guid);
        match &self.cause {
            Some(Cause::Unrecorded { destination }) => {
                return format!(
                    "{app} serves the route; to take the maintenance app off it run `cf curl -X DELETE \
                     /v3/routes/{rg}/destinations/{destination}`"
                );
            }
            Some(Cause::RecordLost { body, maintenance_destination, .. }) => {
                return format!(
                    "to put {app} back run `cf curl -X POST /v3/routes/{rg}/destinations -d '{body}'`, then, once \
                     {app} answers, `cf curl -X DELETE /v3/routes/{rg}/destinations/{maintenance_destination}` takes \
                     {} off",
                    a.maintenance_app
                );
            }
            _ => {}
        }
        match (verb, self.state) {
            (Verb::On, RouteState::Serving) => format!("nothing changed, {app} serves the route: `{again}` retries"),
            (Verb::Off, RouteState::Serving) => format!("{app} serves the route again"),
            (Verb::On, RouteState::RecordOnly) => format!(
                "{app} still serves the route, which carries switchctl's record (harmless): `{again}` retries, \
                 `{undo}` removes the record"
            ),
            // The same for `off`, the other way round: the maintenance app keeps running for the
            // apps still in a window, so a router that missed its unregistration keeps a TLS
            // endpoint of it until its instances are replaced.
            (Verb::Off, RouteState::RecordOnly)
                if matches!(self.cause, Some(Cause::RouterLagging { who: Who::App, .. })) =>
            {
                let maint = &a.maintenance_app;
                format!(
                    "the API maps {app} alone again but a router still sends some requests to {maint} (it has not \
                     applied, or it missed, {maint}'s unregistration): a router drops a plain HTTP endpoint within \
                     about 2 minutes but a TLS one only once the instance is gone, so `cf restart {maint} \
                     --strategy rolling` (or, for plain HTTP, waiting) makes every router let go; then `{again}` \
                     finishes (the route keeps switchctl's record until then), and `{status}` shows who answers"
                )
            }
            (Verb::Off, RouteState::RecordOnly) => {
                format!("{app} serves the route again but it still carries switchctl's record: `{again}` finishes")
            }
            (_, RouteState::BothServe) => format!(
                "{app} and {} both serve the route (users get either answer): `{again}` finishes, `{undo}` goes \
                 back",
                a.maintenance_app
            ),
            // A router still sends some requests to APP: slow, or it missed APP's unregistration
            // (NATS delivers at most once). Gorouter prunes a plain endpoint not re-registered
            // within `droplet_stale_threshold` (120 s) but a TLS one only when dialling it fails
            // (route/pool.go#PruneEndpoints, #EndpointFailed), i.e. once the instance is gone.
            (Verb::On, RouteState::MaintenanceOnly)
                if matches!(self.cause, Some(Cause::RouterLagging { who: Who::MaintenanceApp, .. })) =>
            {
                format!(
                    "the route is switched in the API but a router still sends some requests to {app} (it has not \
                     applied, or it missed, {app}'s unregistration): a router drops a plain HTTP endpoint within \
                     about 2 minutes but a TLS one only once the instance is gone, so `cf restart {app}` (or, for \
                     plain HTTP, waiting) makes every router let go; then `{again}` finishes, and `{status}` shows \
                     who answers"
                )
            }
            (Verb::On, RouteState::MaintenanceOnly) => {
                format!("the route is switched in the API: `{status}` shows who answers, `{again}` checks again")
            }
            (Verb::Off, RouteState::MaintenanceOnly) => format!(
                "the route is still in maintenance ({} serves it): `{again}` retries once {app} answers",
                a.maintenance_app
            ),
            (_, RouteState::MaintenanceUnrecorded) => format!(
                "{} serves the route and no switchctl record says for which app: map {app} back with `cf curl -X \
                 POST /v3/routes/{rg}/destinations -d '{{\"destinations\":[{{\"app\":{{\"guid\":\"{}\"}}}}]}}'`, \
                 then remove the maintenance app's destination (`{status}` lists its GUID)",
                a.maintenance_app, a.app_guid
            ),
            (_, RouteState::Unserved) => format!(
                "neither {app} nor {} is mapped, so the route answers 404: `{}` puts back the recorded \
                 destinations",
                a.maintenance_app, a.off
            ),
            (_, RouteState::Unknown) => format!("the route could not be read: `{status}` shows its state"),
        }
    }

    /// The whole message of a failed route: the cause, then where the route stands.
    pub fn failure(&self, verb: Verb, a: &Advice) -> String {
        match &self.cause {
            Some(cause) => format!("{}; {}", cause.describe(a), self.what_now(verb, a)),
            None => self.what_now(verb, a),
        }
    }

    /// The route's line as it completes.
    pub fn line(&self, verb: Verb, a: &Advice, dry_run: bool) -> String {
        let to = match verb {
            Verb::On => &a.maintenance_app,
            Verb::Off => &a.app,
        };
        let (doing, would) = match verb {
            Verb::On => ("Switching", "switch"),
            Verb::Off => ("Restoring", "restore"),
        };
        let url = &self.url;
        match self.result {
            Outcome::Skipped => format!("Skipping route {url}: {}", self.note.as_deref().unwrap_or("")),
            Outcome::Failed => format!("{doing} route {url} to {to}... FAILED: {}", self.failure(verb, a)),
            Outcome::Already if verb == Verb::On => {
                format!("Route {url} is already in maintenance ({}). OK", a.maintenance_app)
            }
            Outcome::Already => format!("Route {url} is already restored to {}. OK", a.app),
            Outcome::Switched | Outcome::Restored if dry_run => {
                let mut steps = Vec::new();
                if let Some(meta) = &self.metadata {
                    steps.push(format!("metadata {meta}"));
                }
                if !self.destinations_added.is_empty() {
                    steps.push(format!("add {}", list(&self.destinations_added)));
                }
                if !self.destinations_removed.is_empty() {
                    steps.push(format!("remove {}", list(&self.destinations_removed)));
                }
                steps.extend(self.remarks());
                format!("Would {would} route {url} to {to}: {}", steps.join("; "))
            }
            Outcome::Switched | Outcome::Restored => {
                let remarks = self.remarks();
                let note = if remarks.is_empty() { String::new() } else { format!(" ({})", remarks.join("; ")) };
                format!("{doing} route {url} to {to}... OK{note}")
            }
        }
    }
}

/// One app's report of `on` or `off`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// APP's name.
    pub app: String,
    /// APP's GUID.
    pub app_guid: String,
    /// Its org.
    pub org: String,
    /// Its space.
    pub space: String,
    /// `on` or `off`.
    pub action: Verb,
    /// Whether this was a `--dry-run` (nothing changed).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// Every route considered.
    pub routes: Vec<RouteReport>,
    /// Why the app as a whole could not be worked on (nothing was changed then).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// No route failed and there is no error.
    pub ok: bool,
}

impl Report {
    /// A report on `app` with no route yet.
    pub fn new(app: (&str, &str), space: (&str, &str), action: Verb, dry_run: bool) -> Report {
        Report {
            app: app.0.to_owned(),
            app_guid: app.1.to_owned(),
            org: space.0.to_owned(),
            space: space.1.to_owned(),
            action,
            dry_run,
            routes: Vec::new(),
            error: None,
            ok: true,
        }
    }

    /// The report with these routes (sorted by URL); ok unless one failed.
    pub fn with_routes(mut self, mut routes: Vec<RouteReport>) -> Report {
        routes.sort_by(|a, b| a.url.cmp(&b.url));
        self.ok = self.error.is_none() && routes.iter().all(|r| r.result != Outcome::Failed);
        self.routes = routes;
        self
    }

    /// The report of an app that could not be worked on at all.
    pub fn failed(mut self, why: String) -> Report {
        self.error = Some(why);
        self.ok = false;
        self
    }

    /// After `on`: whether any of the app's traffic goes to the maintenance app.
    pub fn in_maintenance(&self) -> bool {
        self.routes.iter().any(|r| {
            matches!(r.state, RouteState::MaintenanceOnly | RouteState::BothServe | RouteState::MaintenanceUnrecorded)
        })
    }

    /// Whether `on` put nothing into maintenance because the app has no HTTP route at all.
    pub fn nothing_to_switch(&self) -> bool {
        self.error.is_none()
            && self.action == Verb::On
            && !self.routes.iter().any(|r| matches!(r.result, Outcome::Switched | Outcome::Already | Outcome::Failed))
    }

    /// How many routes ended in `outcome`.
    pub fn count(&self, outcome: Outcome) -> usize {
        self.routes.iter().filter(|r| r.result == outcome).count()
    }

    /// `2 switched, 1 skipped`: the routes by outcome (nothing to do when there are none).
    fn counts(&self) -> String {
        let mut parts = Vec::new();
        // A dry run changed nothing: its routes are "to switch", not "switched".
        let done_word = match (self.dry_run, self.action) {
            (false, verb) => verb.done_word(),
            (true, Verb::On) => "to switch",
            (true, Verb::Off) => "to restore",
        };
        for (o, word) in [
            (self.action.done(), done_word),
            (Outcome::Already, "already done"),
            (Outcome::Skipped, "skipped"),
            (Outcome::Failed, "failed"),
        ] {
            let n = self.count(o);
            if n > 0 || o == self.action.done() {
                parts.push(format!("{n} {word}"));
            }
        }
        parts.join(", ")
    }
}

/// The last line of one app's run, and what to do when it failed.
pub fn summary(report: &Report, a: &Advice) -> (String, Vec<String>) {
    let verb = report.action;
    if let Some(error) = &report.error {
        return (format!("FAILED: app {}: nothing was changed.", report.app), vec![error.clone()]);
    }
    if report.nothing_to_switch() {
        let why = if report.routes.is_empty() {
            format!("app {} has no route", report.app)
        } else {
            format!("none of app {}'s {} can be switched", report.app, plural(report.routes.len(), "route"))
        };
        return (
            format!("FAILED: nothing went into maintenance: {why}."),
            vec![format!("{why}, so nothing went into maintenance; map a route to it (`cf map-route`) first")],
        );
    }
    if verb == Verb::Off && report.routes.is_empty() {
        return (format!("OK: no route of app {} is in maintenance; nothing to do.", report.app), Vec::new());
    }
    let head = if report.dry_run {
        "Dry run, nothing changed"
    } else if report.ok {
        "OK"
    } else {
        "FAILED"
    };
    let line = format!("{head}: {} of app {}: {}.", plural(report.routes.len(), "route"), report.app, report.counts());
    if report.ok {
        return (line, Vec::new());
    }
    let mut errors: Vec<String> = report
        .routes
        .iter()
        .filter(|r| r.result == Outcome::Failed)
        .map(|r| format!("route {} ({}): {}", r.url, r.route_guid, r.failure(verb, a)))
        .collect();
    errors.push(format!(
        "{} of app {} could not be {}; each is in the state shown above. Fix the cause, then run `{}` to finish \
         (or `{}` to go back); `{}` shows where each route sends traffic.",
        plural(report.count(Outcome::Failed), "route"),
        report.app,
        verb.done_word(),
        a.command(verb),
        a.command(verb.undo()),
        a.status
    ));
    (line, errors)
}

/// A fleet's table: app, space, result, routes, and the first reason.
pub fn app_table(reports: &[Report], advice: impl Fn(&Report) -> Advice) -> Vec<String> {
    let mut rows = vec![["app", "space", "result", "routes", "reason"].map(str::to_owned)];
    for r in reports {
        let reason = r.error.clone().or_else(|| {
            r.routes
                .iter()
                .find(|x| x.result == Outcome::Failed)
                .map(|x| format!("{}: {}", x.url, x.failure(r.action, &advice(r))))
        });
        let result = if r.nothing_to_switch() {
            "NOTHING"
        } else if r.ok {
            "ok"
        } else {
            "FAILED"
        };
        rows.push([r.app.clone(), r.space.clone(), result.to_owned(), r.counts(), reason.unwrap_or_default()]);
    }
    table(&rows)
}

/// A fleet's closing line, its counts adding up: `OK: 2 of 3 apps switched, 1 already done or
/// with nothing to do.`
pub fn fleet_line(verb: Verb, dry_run: bool, reports: &[Report]) -> String {
    let failed = reports.iter().filter(|r| !r.ok || r.nothing_to_switch()).count();
    let idle = reports.iter().filter(|r| r.ok && r.count(verb.done()) == 0 && !r.nothing_to_switch()).count();
    let head = if dry_run {
        "Dry run, nothing changed"
    } else if failed == 0 {
        "OK"
    } else {
        "FAILED"
    };
    let done = reports.len() - failed - idle;
    let mut line = format!("{head}: {done} of {} {}", plural(reports.len(), "app"), verb.done_word());
    if idle > 0 {
        line.push_str(&format!(", {idle} already done or with nothing to do"));
    }
    if failed > 0 {
        line.push_str(&format!(", {failed} failed"));
    }
    line.push('.');
    line
}

/// A list of destinations for a line: `shop web:8080 http1, shop api:9000 http2`.
pub fn list(views: &[DestinationView]) -> String {
    if views.is_empty() {
        return "none".to_owned();
    }
    views.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// What was done to an app's content on one maintenance app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ContentAction {
    /// Set or changed (`on --message`, `message`).
    Set,
    /// Removed (`off`, `message --clear`).
    Cleared,
}

/// One instance of the maintenance app after a content change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum InstanceContent {
    /// Serves the version written or a newer one (checked with a pinned request).
    Serving {
        /// Instance index.
        index: u32,
        /// The version it answered with.
        version: u64,
    },
    /// Took the change, not checked (`--no-verify`).
    Unverified {
        /// Instance index.
        index: u32,
    },
    /// Did not serve the version written before `--timeout`: it keeps what it had until it
    /// restarts (then it reads the environment, which holds the change).
    Stale {
        /// Instance index.
        index: u32,
        /// The last thing it (or the router) answered.
        last: String,
    },
}

/// An app's content on one maintenance app: the environment written, then each instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContentReport {
    /// APP's name.
    pub app: String,
    /// The maintenance app.
    pub maintenance_app: String,
    /// Set or cleared.
    pub action: ContentAction,
    /// The version written (0 when nothing was).
    pub version: u64,
    /// Each running instance.
    pub instances: Vec<InstanceContent>,
    /// Why it failed, when it did before reaching the instances.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ContentReport {
    /// The environment holds `version`; the instances as found.
    pub fn new(app: &str, maint: &str, action: ContentAction, version: u64, instances: Vec<InstanceContent>) -> Self {
        ContentReport {
            app: app.to_owned(),
            maintenance_app: maint.to_owned(),
            action,
            version,
            instances,
            error: None,
        }
    }

    /// Nothing (more) could be done: `why`.
    pub fn failed(app: &str, maint: &str, action: ContentAction, why: String) -> Self {
        ContentReport { error: Some(why), ..ContentReport::new(app, maint, action, 0, Vec::new()) }
    }

    /// No error and no stale instance.
    pub fn ok(&self) -> bool {
        self.error.is_none() && !self.instances.iter().any(|i| matches!(i, InstanceContent::Stale { .. }))
    }

    /// The lines that tell it.
    pub fn lines(&self) -> Vec<String> {
        let what = match self.action {
            ContentAction::Set => "content",
            ContentAction::Cleared => "content removal",
        };
        if let Some(e) = &self.error {
            return vec![format!("{}'s {what} on {}: failed: {e}", self.app, self.maintenance_app)];
        }
        let (mut serving, mut unverified, mut stale) = (Vec::new(), Vec::new(), Vec::new());
        for i in &self.instances {
            match i {
                InstanceContent::Serving { index, .. } => serving.push(index.to_string()),
                InstanceContent::Unverified { index } => unverified.push(index.to_string()),
                InstanceContent::Stale { index, last } => stale.push(format!("#{index} ({last})")),
            }
        }
        let mut line =
            format!("{}'s {what} version {} on {}: in its environment", self.app, self.version, self.maintenance_app);
        if !serving.is_empty() {
            line.push_str(&format!(", served by instance(s) {}", serving.join(", ")));
        }
        if !unverified.is_empty() {
            line.push_str(&format!(", sent to instance(s) {} (not verified: --no-verify)", unverified.join(", ")));
        }
        if self.instances.is_empty() {
            line.push_str(", no running instance to tell");
        }
        let mut lines = vec![line];
        if !stale.is_empty() {
            lines.push(format!(
                "{}: instance(s) {} still stale after --timeout; each serves the change from its next start (the                  environment holds it), or run the same command again",
                self.maintenance_app,
                stale.join(", ")
            ));
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn advice() -> Advice {
        Advice {
            app: "shop".into(),
            app_guid: "app-guid-1".into(),
            maintenance_app: "maintenance-app".into(),
            on: "switchctl --org o --space s on shop --probe-via 127.0.0.1:9".into(),
            off: "switchctl --org o --space s off shop --probe-via 127.0.0.1:9".into(),
            status: "switchctl --org o --space s status shop --probe-via 127.0.0.1:9".into(),
        }
    }

    fn r(url: &str, result: Outcome) -> RouteReport {
        RouteReport::new(url.into(), "route-guid-7".into(), result, RouteState::Serving)
    }

    #[test]
    fn every_failed_route_message_names_a_real_command_or_guid() {
        let a = advice();
        let states = [
            RouteState::Serving,
            RouteState::RecordOnly,
            RouteState::BothServe,
            RouteState::MaintenanceOnly,
            RouteState::MaintenanceUnrecorded,
            RouteState::Unserved,
            RouteState::Unknown,
        ];
        let causes = [
            Cause::Api { step: Step::WriteRecord, error: "CF-X".into() },
            Cause::NotAnswering { who: Who::MaintenanceApp, timeout_s: 5, last: "the app (HTTP 200)".into() },
            Cause::RouterLagging { who: Who::App, timeout_s: 5, last: "x".into() },
            Cause::MaintenanceVanished,
            Cause::Weighted,
            Cause::Record { problem: "unreadable".into() },
            Cause::Unrecorded { destination: "dest-guid-3".into() },
            Cause::RecordLost {
                unmapped_at: "2026-12-01T10:00:00Z".into(),
                body: r#"{"destinations":[{"app":{"guid":"g"}}]}"#.into(),
                maintenance_destination: "dest-guid-4".into(),
            },
            Cause::Interrupted,
            Cause::RateLimited,
            Cause::Internal { error: "panic".into() },
        ];
        for verb in [Verb::On, Verb::Off] {
            for state in states {
                for cause in &causes {
                    let report = RouteReport::failed("u".into(), "route-guid-7".into(), cause.clone(), state);
                    let text = report.failure(verb, &a);
                    let names_something = [&a.on, &a.off, &a.status].iter().any(|c| text.contains(&format!("`{c}`")))
                        || text.contains("route-guid-7")
                        || (verb == Verb::Off && state == RouteState::Serving);
                    assert!(names_something, "{verb:?} {state:?} {cause:?}: {text}");
                    assert!(!text.contains("ROUTE_GUID") && !text.contains("APP_GUID"), "no placeholder: {text}");
                    if state == RouteState::MaintenanceUnrecorded || matches!(cause, Cause::Unrecorded { .. }) {
                        assert!(text.contains("cf curl -X") && text.contains("/v3/routes/route-guid-7/"), "{text}");
                    }
                    if matches!(cause, Cause::RecordLost { .. }) {
                        let post = r#"destinations -d '{"destinations":[{"app":{"guid":"g"}}]}'"#;
                        assert!(text.contains(post) && text.contains("destinations/dest-guid-4`"), "{text}");
                    }
                }
            }
        }
    }

    #[test]
    fn lines_read_like_cf() {
        let a = advice();
        let ok = r("shop.example.com/api", Outcome::Switched);
        assert_eq!(ok.line(Verb::On, &a, false), "Switching route shop.example.com/api to maintenance-app... OK");
        let failed = RouteReport::failed(
            "shop.example.com/api".into(),
            "g".into(),
            Cause::Api { step: Step::AddApp, error: "boom".into() },
            RouteState::MaintenanceOnly,
        );
        assert!(
            failed.line(Verb::Off, &a, false).starts_with(
                "Restoring route shop.example.com/api to shop... FAILED: putting the app's recorded destinations \
                 back failed: boom; the route is still in maintenance"
            ),
            "{}",
            failed.line(Verb::Off, &a, false)
        );
        let planned = r("shop.example.com", Outcome::Switched);
        assert!(planned.line(Verb::On, &a, true).starts_with("Would switch route shop.example.com"));
    }

    #[test]
    fn a_failure_summary_names_the_routes_and_the_command_to_finish() {
        let a = advice();
        let report = Report::new(("shop", "g"), ("o", "s"), Verb::On, false).with_routes(vec![
            r("a", Outcome::Switched),
            RouteReport::failed("b".into(), "rb".into(), Cause::Interrupted, RouteState::Serving),
            r("c", Outcome::Skipped),
        ]);
        let table = app_table(std::slice::from_ref(&report), |_| a.clone());
        assert_eq!(table[0], "app   space  result  routes                           reason");
        assert!(table[1].starts_with("shop  s      FAILED  1 switched, 1 skipped, 1 failed  b: not started"));
        let (line, errors) = summary(&report, &a);
        assert_eq!(line, "FAILED: 3 routes of app shop: 1 switched, 1 skipped, 1 failed.");
        assert!(errors[0].starts_with("route b (rb): not started"), "{errors:?}");
        assert!(errors[1].contains(&format!("`{}`", a.on)) && errors[1].contains(&format!("`{}`", a.off)));
    }

    #[test]
    fn an_app_without_routes_is_not_reported_as_switched() {
        let a = advice();
        let report = Report::new(("shop", "g"), ("o", "s"), Verb::On, false).with_routes(Vec::new());
        assert!(report.nothing_to_switch());
        let (line, errors) = summary(&report, &a);
        assert_eq!(line, "FAILED: nothing went into maintenance: app shop has no route.");
        assert_eq!(errors.len(), 1);
        let off = Report::new(("shop", "g"), ("o", "s"), Verb::Off, false).with_routes(Vec::new());
        assert_eq!(summary(&off, &a).0, "OK: no route of app shop is in maintenance; nothing to do.");
        assert_eq!(
            fleet_line(Verb::Off, false, &[off.clone(), off]),
            "OK: 0 of 2 apps restored, 2 already done or with nothing to do."
        );
    }
}

/// What the window did to one process stopped with `--stop-processes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ProcessChange {
    /// `on`: scaled from `from` instances to 0.
    Stopped {
        /// Instances before.
        from: u32,
    },
    /// `on --dry-run`: would be scaled from `from` instances to 0.
    WouldStop {
        /// Instances now.
        from: u32,
    },
    /// `on`: already at 0 (a rerun, or it ran no instance); its recorded count is kept.
    AlreadyStopped {
        /// The count recorded for `off`.
        recorded: u32,
    },
    /// `off`: scaled from 0 back to the recorded count.
    Restored {
        /// Instances now.
        to: u32,
    },
    /// `off`: already at the recorded count.
    AlreadyRestored {
        /// Instances.
        instances: u32,
    },
    /// `off`: someone scaled it during the window; left as it is, still recorded.
    ScaledByOthers {
        /// The count recorded by `on`.
        recorded: u32,
        /// The count found.
        now: u32,
    },
    /// `off --force`: scaled back to the recorded count from someone else's.
    Forced {
        /// The count found.
        from: u32,
        /// The recorded count, now set.
        to: u32,
    },
    /// The app has no such process any more (pushed without it): nothing to restore.
    Gone {
        /// The count recorded.
        recorded: u32,
    },
    /// The Cloud Controller refused or failed; still recorded, a rerun tries again.
    Failed {
        /// The recorded count.
        recorded: u32,
        /// Why.
        error: String,
    },
}

/// One process of one app and what the window did to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcessReport {
    /// The app's name.
    pub app: String,
    /// The process type.
    pub process: String,
    /// What happened.
    #[serde(flatten)]
    pub change: ProcessChange,
}

impl ProcessReport {
    /// Whether the process is where the window wants it (the record may let go of it).
    pub fn settled(&self) -> bool {
        !matches!(self.change, ProcessChange::ScaledByOthers { .. } | ProcessChange::Failed { .. })
    }

    /// The line about it (the app named by the caller's prefix).
    pub fn line(&self) -> String {
        let p = &self.process;
        match &self.change {
            ProcessChange::Stopped { from } => format!("process {p}: stopped ({from} → 0 instances)"),
            ProcessChange::WouldStop { from } => format!("process {p}: would be stopped ({from} → 0 instances)"),
            ProcessChange::AlreadyStopped { recorded } => {
                format!("process {p}: already at 0 instances (recorded count: {recorded})")
            }
            ProcessChange::Restored { to } => format!("process {p}: restored (0 → {to} instances)"),
            ProcessChange::AlreadyRestored { instances } => {
                format!("process {p}: already at its recorded {instances} instances")
            }
            ProcessChange::ScaledByOthers { recorded, now } => format!(
                "process {p}: scaled to {now} instances by someone else during the window; left at {now} \
                 (recorded: {recorded}; --force restores {recorded})"
            ),
            ProcessChange::Forced { from, to } => {
                format!("process {p}: scaled by someone else to {from}; restored to the recorded {to} (--force)")
            }
            ProcessChange::Gone { recorded } => {
                format!("process {p}: the app has no such process any more; its {recorded} instances are not restored")
            }
            ProcessChange::Failed { recorded, error } => {
                format!("process {p}: FAILED (recorded count {recorded}, kept for a rerun): {error}")
            }
        }
    }
}

/// What the window did to one app's preview route (`--preview`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum PreviewChange {
    /// The app answers on it (or, `--no-verify`, the settle time passed).
    Opened {
        /// `https://host.domain` (`http://` when probes go through `--probe-via`).
        url: String,
        /// Whether switchctl created the route (else it existed and only the app was mapped).
        created: bool,
    },
    /// Mapped, but the app was not seen answering on it within `--timeout`.
    NotVerified {
        /// The URL.
        url: String,
        /// The last answer seen.
        last: String,
    },
    /// `off`: the route deleted (switchctl created it) or the app's destinations unmapped.
    Removed {
        /// The URL.
        url: String,
        /// Whether the route was deleted.
        deleted: bool,
    },
    /// A request failed; the record keeps the preview for the next `off` (or `on`).
    Failed {
        /// The URL, when known.
        url: String,
        /// What went wrong.
        error: String,
    },
}

impl PreviewChange {
    /// The line about it (the app named by the caller's prefix).
    pub fn line(&self) -> String {
        match self {
            PreviewChange::Opened { url, created: true } => format!("preview: {url} (route created; the app answers)"),
            PreviewChange::Opened { url, created: false } => {
                format!("preview: {url} (existing route; the app mapped to it and answers)")
            }
            PreviewChange::NotVerified { url, last } => {
                format!("preview: {url} is mapped but the app was not seen answering on it (last answer: {last})")
            }
            PreviewChange::Removed { url, deleted: true } => format!("preview: {url} deleted"),
            PreviewChange::Removed { url, deleted: false } => {
                format!("preview: the app unmapped from {url} (the route existed before; it stays)")
            }
            PreviewChange::Failed { url, error } => {
                format!("preview: {url}: FAILED (kept in the window's record for a rerun): {error}")
            }
        }
    }

    /// Whether the preview is where the window wants it.
    pub fn settled(&self) -> bool {
        !matches!(self, PreviewChange::Failed { .. } | PreviewChange::NotVerified { .. })
    }
}

/// What `run --smoke`/`--smoke-url` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SmokeOutcome {
    /// The command exited 0, or the URL answered 2xx/3xx from the app.
    Passed {
        /// The command as a shell would show it, or the URL.
        what: String,
    },
    /// It did not pass: the window stays open, the run exits with `code`.
    Failed {
        /// The command or the URL.
        what: String,
        /// The exit code the run ends with.
        code: u8,
        /// Why, in words.
        why: String,
    },
}

impl SmokeOutcome {
    /// The line about it.
    pub fn line(&self) -> String {
        match self {
            SmokeOutcome::Passed { what } => format!("smoke test passed: {what}"),
            SmokeOutcome::Failed { what, why, .. } => format!("smoke test FAILED: {what}: {why}"),
        }
    }
}

/// What a path route of `--except` / `--only` is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PathRole {
    /// `--except`: the prefix stays on the app while its host route is in maintenance.
    Except,
    /// `--only`: the prefix alone goes to the maintenance app.
    Only,
}

/// What became of one path route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "change")]
pub enum PathChange {
    /// `on`: created by switchctl and mapped, verified.
    Created,
    /// `on`: an existing route, switchctl's destinations added to it (`added` of them), verified.
    Reused {
        /// Destinations switchctl added (0: it already had them all).
        added: usize,
    },
    /// `--dry-run`: would be created or reused.
    Planned {
        /// Whether the route exists already.
        exists: bool,
    },
    /// `off`: the route switchctl created is deleted.
    Deleted,
    /// `off`: switchctl's destinations removed from a route that existed before (it stays).
    Unmapped {
        /// Destinations removed.
        removed: usize,
    },
    /// `off`: the route is already gone.
    Gone,
    /// `off --dry-run`: what would be done.
    WouldRemove {
        /// The route would be deleted (else only switchctl's destinations removed).
        delete: bool,
        /// switchctl's destinations on it.
        destinations: usize,
    },
    /// `off` left it, because its host route is not restored yet (a rerun of `off` finishes).
    Waiting,
    /// Could not be done: the error, and what the route is in.
    Failed {
        /// What went wrong.
        error: String,
    },
}

/// One path route's line and event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathReport {
    /// `host.domain/path`.
    pub url: String,
    /// What it is for.
    pub role: PathRole,
    /// What happened.
    #[serde(flatten)]
    pub change: PathChange,
}

impl PathReport {
    /// Whether nothing went wrong.
    pub fn ok(&self) -> bool {
        !matches!(self.change, PathChange::Failed { .. } | PathChange::Waiting)
    }

    /// The line for the operator, rendered here only.
    pub fn line(&self) -> String {
        let url = &self.url;
        let role = match self.role {
            PathRole::Except => "kept on the app (--except)",
            PathRole::Only => "to the maintenance app (--only)",
        };
        match &self.change {
            PathChange::Created => format!("Path route {url} created, {role}... OK"),
            PathChange::Reused { added: 0 } => format!("Path route {url} existed and already serves the app... OK"),
            PathChange::Reused { added } => {
                format!("Path route {url} existed; {added} destination(s) added, {role}... OK")
            }
            PathChange::Planned { exists: false } => format!("Would create path route {url}, {role}"),
            PathChange::Planned { exists: true } => format!("Would reuse path route {url}, {role}"),
            PathChange::Deleted => format!("Path route {url} ({role}) deleted... OK"),
            PathChange::Unmapped { removed } => {
                format!("Path route {url} existed before: left, {removed} destination(s) switchctl added removed... OK")
            }
            PathChange::Gone => format!("Path route {url} is already gone. OK"),
            PathChange::WouldRemove { delete: true, .. } => format!("Would delete path route {url} ({role})"),
            PathChange::WouldRemove { destinations, .. } => {
                format!("Would remove {destinations} destination(s) switchctl added from path route {url} ({role})")
            }
            PathChange::Waiting => {
                format!("Path route {url} left until its host route is restored (run off again)")
            }
            PathChange::Failed { error } => format!("Path route {url} ({role})... FAILED: {error}"),
        }
    }
}
