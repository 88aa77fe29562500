//! What `on`, `off` and `status` print: cf-style lines on stdout as routes complete, or one JSON
//! document with `--json`. Diagnostics go to stderr (tracing), never here.

use std::io::Write as _;

use serde::Serialize;

use super::plan::DestinationView;
use crate::{capi::App, error::Error, session::Target as SpaceTarget};

/// What happened to one route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// `on`: now served by the maintenance app only (for APP's part).
    Switched,
    /// Nothing to do: already in the wanted state.
    Already,
    /// Left alone (TCP, internal, not mapped).
    Skipped,
    /// Could not be finished; `reason` says why and in which state it is.
    Failed,
    /// `off`: APP serves it again.
    Restored,
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
    /// Why it was skipped or failed (or a note).
    pub reason: Option<String>,
    /// Destinations removed (or, with `--dry-run`, to be removed).
    pub destinations_removed: Vec<DestinationView>,
    /// Destinations added (or to be added).
    pub destinations_added: Vec<DestinationView>,
    /// With `--dry-run`: the label and annotation that would be written or removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
}

impl RouteReport {
    /// A report with no destination changes.
    pub fn bare(url: String, route_guid: String, result: Outcome, reason: Option<String>) -> RouteReport {
        RouteReport {
            url,
            route_guid,
            result,
            reason,
            destinations_removed: Vec::new(),
            destinations_added: Vec::new(),
            metadata: None,
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
    pub action: &'static str,
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
    /// A report on `app` in `target` with no route yet.
    pub fn new(app: &App, target: &SpaceTarget, action: &'static str, dry_run: bool) -> Report {
        Report {
            app: app.name.clone(),
            app_guid: app.guid.clone(),
            org: target.org.name.clone(),
            space: target.space.name.clone(),
            action,
            dry_run,
            routes: Vec::new(),
            error: None,
            ok: true,
        }
    }

    /// The report with these routes; ok unless one failed.
    pub fn with_routes(mut self, routes: Vec<RouteReport>) -> Report {
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
        self.ok || self.count(Outcome::Switched) > 0
    }

    /// How many routes ended in `outcome`.
    pub fn count(&self, outcome: Outcome) -> usize {
        self.routes.iter().filter(|r| r.result == outcome).count()
    }
}

/// A table of apps' results for a fleet: app, space, result, routes, and the first reason.
pub fn app_table(reports: &[Report]) -> Vec<String> {
    let mut rows =
        vec![["app".to_owned(), "space".to_owned(), "result".to_owned(), "routes".to_owned(), "reason".to_owned()]];
    for r in reports {
        let done = if r.action == "on" { Outcome::Switched } else { Outcome::Restored };
        let word = if r.action == "on" { "switched" } else { "restored" };
        let mut parts = vec![format!("{} {word}", r.count(done))];
        for (o, w) in [(Outcome::Already, "already"), (Outcome::Skipped, "skipped"), (Outcome::Failed, "failed")] {
            if r.count(o) > 0 {
                parts.push(format!("{} {w}", r.count(o)));
            }
        }
        let reason = r.error.clone().or_else(|| {
            r.routes
                .iter()
                .find(|x| x.result == Outcome::Failed)
                .map(|x| format!("{}: {}", x.url, x.reason.as_deref().unwrap_or("failed")))
        });
        let result = if r.ok { "ok" } else { "FAILED" };
        rows.push([r.app.clone(), r.space.clone(), result.to_owned(), parts.join(", "), reason.unwrap_or_default()]);
    }
    table(&rows)
}

/// Rows in aligned columns (the last column is not padded).
pub fn table<const N: usize>(rows: &[[String; N]]) -> Vec<String> {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    rows.iter()
        .map(|row| {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i + 1 == N {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<width$}  ", width = widths[i]));
                }
            }
            line.trim_end().to_owned()
        })
        .collect()
}

/// Writes to stdout; remembers the first failure instead of stopping halfway through a switch.
#[derive(Debug)]
pub struct Out {
    /// One JSON document at the end instead of lines.
    pub json: bool,
    error: Option<std::io::Error>,
}

impl Out {
    /// Text lines, or JSON with `json`.
    pub fn new(json: bool) -> Out {
        Out { json, error: None }
    }

    /// Prints a line (text mode only).
    pub fn line(&mut self, text: &str) {
        if !self.json {
            self.write(text);
        }
    }

    fn write(&mut self, text: &str) {
        if self.error.is_some() {
            return;
        }
        let mut stdout = std::io::stdout().lock();
        if let Err(e) = writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
            self.error = Some(e);
        }
    }

    /// Prints `value` as the JSON document (JSON mode only).
    pub fn document<T: Serialize>(&mut self, value: &T) {
        if self.json {
            match serde_json::to_string_pretty(value) {
                Ok(text) => self.write(&text),
                Err(e) => self.error = Some(std::io::Error::other(e)),
            }
        }
    }

    /// The first write error, if any.
    pub fn finish(self) -> Result<(), Error> {
        self.error.map_or(Ok(()), |e| Err(Error::Output(e)))
    }
}

/// A list of destinations for a line: `shop web:8080 http1, shop api:9000 http2`.
pub fn list(views: &[DestinationView]) -> String {
    if views.is_empty() {
        return "none".to_owned();
    }
    views.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// The line for a route of `on`/`off` as it completes.
pub fn route_line(action: &str, r: &RouteReport, app: &str, maint: &str, dry_run: bool) -> String {
    let (verb, would, to) = match action {
        "on" => ("Switching", "switch", maint),
        _ => ("Restoring", "restore", app),
    };
    match r.result {
        Outcome::Skipped => format!("Skipping route {}: {}", r.url, r.reason.as_deref().unwrap_or("")),
        Outcome::Failed => format!("{verb} route {} to {to}... FAILED: {}", r.url, r.reason.as_deref().unwrap_or("")),
        Outcome::Already if action == "on" => format!("Route {} is already in maintenance ({maint}). OK", r.url),
        Outcome::Already => format!("Route {} is already restored to {app}. OK", r.url),
        Outcome::Switched | Outcome::Restored if dry_run => {
            let mut steps = Vec::new();
            if let Some(meta) = &r.metadata {
                steps.push(format!("metadata {meta}"));
            }
            if !r.destinations_added.is_empty() {
                steps.push(format!("add {}", list(&r.destinations_added)));
            }
            if !r.destinations_removed.is_empty() {
                steps.push(format!("remove {}", list(&r.destinations_removed)));
            }
            format!("Would {would} route {} to {to}: {}", r.url, steps.join("; "))
        }
        Outcome::Switched | Outcome::Restored => {
            let note = r.reason.as_deref().map(|n| format!(" ({n})")).unwrap_or_default();
            format!("{verb} route {} to {to}... OK{note}", r.url)
        }
    }
}

/// The summary after all routes, and, when something failed, what to do (for stderr).
pub fn summary(report: &Report) -> (String, Option<String>) {
    let count = |o: Outcome| report.routes.iter().filter(|r| r.result == o).count();
    let urls = |o: Outcome| {
        let v: Vec<&str> = report.routes.iter().filter(|r| r.result == o).map(|r| r.url.as_str()).collect();
        if v.is_empty() { "none".to_owned() } else { v.join(", ") }
    };
    let done = if report.action == "on" { Outcome::Switched } else { Outcome::Restored };
    let done_word = if report.action == "on" { "switched" } else { "restored" };
    let mut parts = vec![format!("{} {done_word}", count(done))];
    for (o, word) in [(Outcome::Already, "already done"), (Outcome::Skipped, "skipped"), (Outcome::Failed, "failed")] {
        if count(o) > 0 {
            parts.push(format!("{} {word}", count(o)));
        }
    }
    let head = if report.dry_run {
        "Dry run, nothing changed"
    } else if report.ok {
        "OK"
    } else {
        "FAILED"
    };
    let line = format!("{head}: {} of app {}: {}.", plural(report.routes.len(), "route"), report.app, parts.join(", "));
    if report.ok {
        return (line, None);
    }
    let (again, undo) = (format!("switchctl {} {}", report.action, report.app), other(report.action));
    let advice = format!(
        "{} of app {} could not be {done_word}: {}. Each route is left in a consistent state \
         ({done_word}: {}; already done: {}; failed: {}). Fix the cause shown above and run `{again}` again to \
         finish (or `switchctl {undo} {}` to undo); `switchctl status {}` shows where each route sends traffic.",
        plural(count(Outcome::Failed), "route"),
        report.app,
        urls(Outcome::Failed),
        urls(done),
        urls(Outcome::Already),
        urls(Outcome::Failed),
        report.app,
        report.app,
    );
    (line, Some(advice))
}

fn other(action: &str) -> &'static str {
    if action == "on" { "off" } else { "on" }
}

/// `1 app`, `2 apps`.
pub fn plural(n: usize, word: &str) -> String {
    if n == 1 { format!("1 {word}") } else { format!("{n} {word}s") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(url: &str, result: Outcome) -> RouteReport {
        RouteReport::bare(url.into(), "g".into(), result, None)
    }

    #[test]
    fn lines_read_like_cf() {
        let mut ok = r("shop.example.com/api", Outcome::Switched);
        assert_eq!(
            route_line("on", &ok, "shop", "maintenance-app", false),
            "Switching route shop.example.com/api to maintenance-app... OK"
        );
        ok.result = Outcome::Failed;
        ok.reason = Some("boom".into());
        assert_eq!(
            route_line("off", &ok, "shop", "maintenance-app", false),
            "Restoring route shop.example.com/api to shop... FAILED: boom"
        );
    }

    #[test]
    fn a_failure_summary_names_the_routes_and_the_command_to_finish() {
        let report = Report {
            app: "shop".into(),
            app_guid: "g".into(),
            org: "o".into(),
            space: "s".into(),
            action: "on",
            dry_run: false,
            routes: vec![r("a", Outcome::Switched), r("b", Outcome::Failed), r("c", Outcome::Skipped)],
            error: None,
            ok: false,
        };
        let table = app_table(std::slice::from_ref(&report));
        assert_eq!(table[0], "app   space  result  routes                           reason");
        assert_eq!(table[1], "shop  s      FAILED  1 switched, 1 skipped, 1 failed  b: failed");
        let (line, advice) = summary(&report);
        assert_eq!(line, "FAILED: 3 routes of app shop: 1 switched, 1 skipped, 1 failed.");
        let advice = advice.expect("advice");
        assert!(
            advice.contains("switched: a;") && advice.contains("failed: b)") && advice.contains("`switchctl on shop`")
        );
    }
}
