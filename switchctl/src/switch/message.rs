//! `switchctl message APP [TEXT] [--title …] [--until …] [--clear]`: changes what APP's users see
//! while it is in maintenance, on every instance of every maintenance app carrying its routes,
//! without restarting anything ([`content`] does the work; this finds APP and its carriers).
//!
//! Fields not given keep their value: `message shop --until 19:00` changes the end and keeps the
//! text. An app none of whose routes carries a switchctl record is not in maintenance: exit 1,
//! nothing changed (like `on` finding no route to switch).

use std::{process::ExitCode, sync::Arc};

use super::{
    content,
    context::{self, Env},
    signals::Signals,
};
use crate::{
    cli::{DEFAULT_CONCURRENCY, DEFAULT_MAINTENANCE_APP, DEFAULT_ROUTES_LIMIT},
    error::{EXIT_FAILURE, Error},
    output::Output,
    session::Session,
    settings::{FleetSelection, Message, Pool, Settings, Switch},
};

/// `switchctl message`.
pub async fn run(
    session: &Session,
    settings: &Arc<Settings>,
    out: &Output,
    message: &Message,
) -> Result<ExitCode, Error> {
    if message.content.is_empty() && !message.clear {
        return Err(Error::Usage(
            "give the new message (`switchctl message APP TEXT`), a field to change (--title, --until, --retry-after, \
             --mode, --status), or --clear"
                .to_owned(),
        ));
    }
    let client = session.client();
    let target = session.target().await?;
    let app = context::require_app(client, &target, &message.app).await?;
    // The switch settings only carry how changes are verified: nothing here switches a route.
    let switch = Switch {
        fleet: FleetSelection { apps: vec![app.name.clone()], ..FleetSelection::default() },
        maintenance: Pool::single(DEFAULT_MAINTENANCE_APP),
        dry_run: false,
        verify: message.verify.clone(),
        concurrency: DEFAULT_CONCURRENCY,
        routes_limit: DEFAULT_ROUTES_LIMIT,
    };
    let signals = Signals::install(out);
    let env = Env::new(client, settings, &switch, out, signals.phase())?;
    let carriers = content::carriers(&env, &target.space.guid, &app.guid).await?;
    if carriers.is_empty() {
        return Err(Error::NotInMaintenance { name: app.name.clone() });
    }
    out.event("start", serde_json::json!({"action": "message", "apps": [&app.name], "clear": message.clear}));
    let reports = if message.clear {
        content::clear(&env, (&app.name, &app.guid), &carriers).await
    } else {
        content::set(&env, (&app.name, &app.guid), &carriers, &message.content).await
    };
    let ok = content::print(&env, &reports);
    if message.clear && reports.is_empty() {
        out.line(&format!("{} has no content of its own: its users see the maintenance app's defaults", app.name));
    }
    out.event("summary", serde_json::json!({"action": "message", "ok": ok, "content": reports}));
    let code = if ok { ExitCode::SUCCESS } else { ExitCode::from(EXIT_FAILURE) };
    Ok(signals.received().map_or(code, |s| ExitCode::from(super::signals::exit_code(s))))
}
