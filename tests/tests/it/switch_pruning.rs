//! Routers that miss a NATS message, under switchctl: three routers, registrations refreshed by
//! the route emitter and pruned by gorouter on a scaled clock (threshold 2 s, pruning every
//! 250 ms, refresh every 600 ms), steady load on new connections during `on`.
//!
//! - A router misses APP's unregistration, plain endpoints: it keeps sending a share of the
//!   route's requests to APP until it prunes the stale registration; `on` reports the route done
//!   only after that, and no request fails meanwhile.
//! - The same with TLS endpoints: gorouter never prunes those for staleness, so that router keeps
//!   APP while APP runs; `on` never reports the route done, and says so.
//! - A router misses the maintenance app's registration: the refresh heals it, and `on` removes
//!   APP only after that, so no request meets a router without any destination.
//! - A router misses the maintenance app's unregistration during `off`, TLS endpoints: it keeps
//!   sending some requests to the maintenance app (which runs on for other apps); `off` keeps the
//!   record, says so, and says how to make that router let go.

use std::{
    future::Future,
    net::SocketAddr,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use tests::{
    Balance,
    router::{Freshness, Message, Pruning, SCALED_REFRESH},
};

use crate::switch_support::{Answer, Load, Setup, World, tally};

/// The router that misses a message.
const STUCK: usize = 1;

async fn world(tls: bool) -> World {
    let w = World::new(Setup {
        router_delay: (Duration::ZERO, Duration::from_millis(300)),
        routes: 1,
        routers: (3, Balance::Random),
        ..Setup::default()
    })
    .await;
    w.cf.router.set_freshness(Freshness { refresh: Some(SCALED_REFRESH), pruning: Some(Pruning::SCALED), tls });
    w
}

/// What the API and the stuck router held at one moment.
#[derive(Debug, Clone, Copy)]
struct Moment {
    at: Instant,
    /// APP (the maintenance app) has a destination on the route in the API.
    api_app: bool,
    api_maint: bool,
    /// The stuck router sends the route to APP (the maintenance app).
    router_app: bool,
    router_maint: bool,
}

/// Runs `run` while looking at the route in the API and on the stuck router every 10 ms.
async fn watching<T>(w: &World, run: impl Future<Output = T>) -> (T, Vec<Moment>) {
    let done = AtomicBool::new(false);
    let route = &w.routes[0];
    let (app, maint) = (w.app_addrs(), w.maint_addr().expect("the maintenance app runs"));
    let maint_guid = w.maint_guid();
    let look = async {
        let mut moments = Vec::new();
        // Bounded: `run` ends within its own timeout, this within 20 000 looks.
        for _ in 0..20_000 {
            if done.load(Ordering::Relaxed) {
                break;
            }
            let dests = w.dests(&route.guid);
            let served = w.cf.routers()[STUCK].endpoints_for(&route.host, &route.request_path);
            moments.push(Moment {
                at: Instant::now(),
                api_app: dests.iter().any(|d| d.0 == w.app.guid),
                api_maint: dests.iter().any(|d| d.0 == maint_guid),
                router_app: served.iter().any(|a| app.contains(a)),
                router_maint: served.contains(&maint),
            });
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        moments
    };
    let run = async {
        let out = run.await;
        done.store(true, Ordering::Relaxed);
        out
    };
    tokio::join!(run, look)
}

/// The first moment (at or after `from`) that satisfies `what`.
fn first(moments: &[Moment], from: Instant, what: impl Fn(&Moment) -> bool) -> Option<Instant> {
    moments.iter().find(|m| m.at >= from && what(m)).map(|m| m.at)
}

/// Each router's endpoints for the route now, sorted.
fn tables(w: &World) -> Vec<Vec<SocketAddr>> {
    let route = &w.routes[0];
    w.cf.routers()
        .iter()
        .map(|r| {
            let mut e = r.endpoints_for(&route.host, &route.request_path);
            e.sort();
            e
        })
        .collect()
}

/// No request of the load met a router without a destination or a failed endpoint.
fn assert_no_failure(samples: &[crate::switch_support::Sample]) {
    let all = tally(samples);
    let count = |a| all.get(&a).copied().unwrap_or(0);
    assert!(count(Answer::App) + count(Answer::Maintenance) > 0, "the load ran: {all:?}");
    assert_eq!(
        (count(Answer::NotFound), count(Answer::BadGateway), count(Answer::Other)),
        (0, 0, 0),
        "no 404, no router 503, no 502, no failed request: {all:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_that_missed_the_apps_unregistration_is_waited_for_until_it_prunes_it() {
    let w = world(false).await;
    let before = w.all_dests();
    w.cf.routers()[STUCK].lose_next(Message::Unregister, Some(&w.app.guid), 1);
    let load = Load::spread(w.cf.router_url(), w.routes.clone(), 100);
    load.wait_more(20, Duration::from_secs(10)).await;

    let (on, moments) = watching(&w, w.run(&["on", "shop"])).await;
    let returned = Instant::now();
    let held = tables(&w);
    let samples = load.stop().await;
    on.expect_code(0);
    assert_eq!(w.cf.routers()[STUCK].lost(), 1, "the stuck router missed APP's unregistration");

    let start = moments.first().map(|m| m.at).expect("looked");
    let unmapped = first(&moments, start, |m| !m.api_app).expect("the API unmapped APP during on");
    let pruned = first(&moments, unmapped, |m| !m.router_app).expect("the stuck router dropped APP during on");
    let stale_for = pruned - unmapped;
    println!("the stuck router held APP {stale_for:?} after the API unmapped it; on took {:?}", on.took);
    // Renewed last at most one refresh and one delay before the unmap: pruned 1.1–2.6 s after it.
    assert!(stale_for >= Duration::from_millis(1000), "held only {stale_for:?}: the loss did not take");
    assert!(returned >= pruned, "on returned before the stuck router pruned APP");
    let maint = vec![w.maint_addr().expect("the maintenance app runs")];
    assert!(held.iter().all(|e| *e == maint), "when on returns every router sends only to maintenance: {held:?}");
    assert_no_failure(&samples);
    w.assert_all_on(&before, "after on").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tls_endpoints_a_router_that_missed_the_unregistration_keeps_the_app_and_on_says_so() {
    let w = world(true).await;
    w.cf.routers()[STUCK].lose_next(Message::Unregister, Some(&w.app.guid), 1);
    let load = Load::spread(w.cf.router_url(), w.routes.clone(), 100);
    load.wait_more(20, Duration::from_secs(10)).await;

    let (on, moments) = watching(&w, w.run(&["--json", "on", "shop", "--timeout", "6"])).await;
    let held = tables(&w);
    let samples = load.stop().await;
    on.expect_code(1);
    assert_eq!(w.cf.routers()[STUCK].lost(), 1);
    let start = moments.first().map(|m| m.at).expect("looked");
    let unmapped = first(&moments, start, |m| !m.api_app).expect("the API unmapped APP during on");
    assert!(
        moments.iter().filter(|m| m.at >= unmapped).all(|m| m.router_app),
        "a TLS endpoint is never pruned for staleness: the stuck router held APP throughout"
    );
    assert!(held[STUCK].iter().any(|a| w.app_addrs().contains(a)), "and still does: {held:?}");
    // Not done: failed, in the state switchctl names "switched in the API", because a router still
    // sends to APP, and the operator is told how to get that router to let go.
    let report = on.report();
    assert_eq!(report["ok"], false, "{report}");
    let route = &report["routes"][0];
    assert_eq!(
        (&route["result"], &route["state"], &route["cause"]["kind"], &route["cause"]["who"]),
        (&"failed".into(), &"maintenance_only".into(), &"router_lagging".into(), &"maintenance_app".into()),
        "{route}"
    );
    assert_eq!(route["cause"]["last"], "the app (HTTP 200)", "the answer that broke the streak: {route}");
    let (_, stderr) = (&on.stdout, &on.stderr);
    assert!(stderr.contains("a router still sends some requests to shop"), "{on}");
    assert!(stderr.contains("`cf restart shop`"), "{on}");
    assert_no_failure(&samples);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_that_missed_the_maintenance_apps_registration_is_healed_before_the_app_goes() {
    let w = world(true).await;
    let before = w.all_dests();
    w.cf.routers()[STUCK].lose_next(Message::Register, Some(&w.maint_guid()), 1);
    let load = Load::spread(w.cf.router_url(), w.routes.clone(), 100);
    load.wait_more(20, Duration::from_secs(10)).await;

    let (on, moments) = watching(&w, w.run(&["on", "shop"])).await;
    let samples = load.stop().await;
    on.expect_code(0);
    assert_eq!(w.cf.routers()[STUCK].lost(), 1, "the stuck router missed the maintenance app's registration");

    let start = moments.first().map(|m| m.at).expect("looked");
    let mapped = first(&moments, start, |m| m.api_maint).expect("the API mapped the maintenance app during on");
    let healed = first(&moments, mapped, |m| m.router_maint).expect("the refresh healed the stuck router");
    let unmapped = first(&moments, mapped, |m| !m.api_app).expect("the API unmapped APP during on");
    println!(
        "healed {:?} after the API mapped the maintenance app; APP unmapped {:?} after",
        healed - mapped,
        unmapped - mapped
    );
    assert!(unmapped >= healed, "APP was unmapped before every router had the maintenance app");
    assert_no_failure(&samples);
    w.assert_all_on(&before, "after on").await;
}

/// `off`'s final check asks for the maintenance app's instance by name (`X-CF-APP-INSTANCE`), so a
/// router that still holds it answers from it on every probe that reaches it, not one in three
/// as plain probes would get from a pool of shop's two instances and its one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tls_endpoints_a_router_that_missed_the_maintenance_apps_unregistration_fails_off_with_what_to_do() {
    let w = world(true).await;
    w.run(&["on", "shop"]).await.expect_code(0);
    w.cf.routers()[STUCK].lose_next(Message::Unregister, Some(&w.maint_guid()), 1);
    let load = Load::spread(w.cf.router_url(), w.routes.clone(), 100);
    load.wait_more(20, Duration::from_secs(10)).await;

    let (off, moments) = watching(&w, w.run(&["--json", "off", "shop", "--timeout", "6"])).await;
    let held = tables(&w);
    let samples = load.stop().await;
    off.expect_code(1);
    assert_eq!(w.cf.routers()[STUCK].lost(), 1);
    let start = moments.first().map(|m| m.at).expect("looked");
    let unmapped = first(&moments, start, |m| !m.api_maint).expect("the API unmapped the maintenance app during off");
    assert!(moments.iter().filter(|m| m.at >= unmapped).all(|m| m.router_maint), "held the maintenance app throughout");
    let maint = w.maint_addr().expect("the maintenance app runs");
    assert!(held[STUCK].contains(&maint), "and still does: {held:?}");
    let report = off.report();
    let route = &report["routes"][0];
    assert_eq!(
        (&route["result"], &route["state"], &route["cause"]["kind"], &route["cause"]["who"]),
        (&"failed".into(), &"record_only".into(), &"router_lagging".into(), &"app".into()),
        "{route}"
    );
    assert_eq!(route["cause"]["last"], "the maintenance app (HTTP 503)", "{route}");
    assert!(off.stderr.contains("a router still sends some requests to maintenance-app"), "{off}");
    assert!(off.stderr.contains("`cf restart maintenance-app --strategy rolling`"), "{off}");
    assert!(!w.switch_metadata(&w.routes[0].guid).0.is_empty(), "the record stays, so that off can finish later");
    assert_no_failure(&samples);
}
