//! `switchctl on|off|run|status|message`: moving apps' routes to the maintenance app and back, verified.
//!
//! Per route, `on` writes its record first ([`state`]), adds the maintenance app, waits until it
//! answers on the route ([`probe`]), then deletes APP's destinations (other apps' untouched), and
//! checks again. `off` does the reverse from the record. At every step the route has at least one
//! destination that answers, and the record on the route says how to go on: after a crash or a
//! failed request, running the same command again finishes the job. What each step does is
//! decided in [`plan`]; what a route was left in is an [`outcome`], rendered in one place.
//!
//! Imports run one way: [`run`] (a window) → [`on`] / [`off`] / [`restage`] → [`fleet`] (which
//! apps, the check before any change, routes fleet members share, the summary) → [`context`]
//! (what tasks share) → [`capacity`], [`reads`], [`plan`], [`paths`], [`state`], [`trail`], [`probe`],
//! [`outcome`], [`signals`] → [`crate::output`]. [`status`] only reads. [`preview`] (`--preview`,
//! the smoke gate) is used by [`on`], [`off`] and [`run`] and uses [`window`] (whose record it
//! extends). [`content`] (what an app's users see: the maintenance app's per-app document, its
//! secret, each instance told and checked) is used by [`on`], [`off`], [`run`] and [`message`],
//! and uses [`context`], [`probe`], [`plan`], [`state`] and [`outcome`].
//!
//! Requests per switched route: `on` 4 (metadata, insert, read, a delete per destination of APP),
//! `off` 4 (insert, read, a delete of the maintenance app's destination, metadata); a route several
//! apps of the run share costs the same once for all of them. Per app, its labelled routes (and
//! for a single app its mapped routes and their route-service bindings, [`plan::Probing`]; a
//! fleet lists those for 50 apps and 50 routes at once, [`reads`]), for `off` its web process's
//! stats (for `on`, the maintenance apps', once per space), and for `off` its audit trail when
//! the maintenance app has a route no record explains ([`trail`]); per space, the apps, the
//! maintenance apps and their routes (once, for `on`'s [`capacity`] check and the pool's spread,
//! and `off`'s search for unlabelled routes); each domain once per run. So a fleet's app with two
//! routes costs `on` 9 and `off` 10 requests. A failed request costs one more read of the route,
//! so the report says what the Cloud Controller holds, and a failed write one read to see
//! whether CC made the change anyway.

pub mod budget;
pub mod capacity;
pub mod content;
pub mod context;
pub mod fleet;
pub mod message;
pub mod notify;
pub mod off;
pub mod on;
pub mod outcome;
pub mod paths;
pub mod plan;
pub mod preview;
pub mod probe;
pub mod reads;
pub mod restage;
pub mod run;
pub mod schedule;
pub mod signals;
pub mod state;
pub mod status;
pub mod trail;
pub mod window;

use std::{process::ExitCode, sync::Arc};

use crate::{
    error::Error,
    output::Output,
    session::Session,
    settings::{Action, Settings},
};

/// Runs `on`, `off`, `run` or `status` for a connected session.
pub async fn dispatch(session: &Session, settings: &Arc<Settings>, out: &Output) -> Result<ExitCode, Error> {
    match &settings.action {
        Action::On(switch) => on::run(session, settings, out, switch).await,
        Action::Off(off) => off::run(session, settings, out, off).await,
        Action::Run(run) => run::run(session, settings, out, run).await,
        Action::Status(status) => status::run(session, settings, out, status).await,
        Action::Message(message) => message::run(session, settings, out, message).await,
        // Handled before a session is opened.
        Action::Completions(_) => Ok(ExitCode::SUCCESS),
    }
}
