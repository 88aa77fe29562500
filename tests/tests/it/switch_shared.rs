//! Acceptance (issue 4): a route shared by two apps in maintenance. `off` for one of them keeps
//! the maintenance destination while the other app's label is on the route, and gives back only
//! its own destinations. (Run with `--no-verify`: while the other app also serves the route,
//! "only the maintenance app answers" cannot hold, and the contract does not say what the probes
//! expect then.)

use crate::switch_support::{Setup, World, state_key};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_keeps_the_maintenance_app_while_another_app_is_in_maintenance() {
    let w = World::new(Setup { routes: 1, ..Setup::default() }).await;
    let maint = w.maint_guid();
    let cart = w.cf.add_app(&w.std.space, "cart");
    let shared = &w.routes[0].guid;
    w.cf.map_route(shared, &cart.guid, "web", 8080);
    let before = w.dests(shared);
    let no_verify = ["--no-verify", "--settle", "0"];

    w.run(&[&["on", "shop"][..], &no_verify].concat()).await.expect_code(0);
    w.run(&[&["on", "cart"][..], &no_verify].concat()).await.expect_code(0);
    let d = w.dests(shared);
    assert_eq!(d.iter().map(|x| x.0.as_str()).collect::<Vec<_>>(), [maint.as_str()], "both in maintenance: {d:?}");
    let (labels, _) = w.switch_metadata(shared);
    assert!(labels.contains_key(&state_key(&w.app.guid)) && labels.contains_key(&state_key(&cart.guid)), "{labels:?}");

    w.run(&[&["off", "shop"][..], &no_verify].concat()).await.expect_code(0);
    let d = w.dests(shared);
    let mut apps: Vec<&str> = d.iter().map(|x| x.0.as_str()).collect();
    apps.sort_unstable();
    let mut expected = vec![w.app.guid.as_str(), maint.as_str()];
    expected.sort_unstable();
    assert_eq!(apps, expected, "off shop: shop back, maintenance kept for cart: {d:?}");
    let (labels, _) = w.switch_metadata(shared);
    assert!(!labels.contains_key(&state_key(&w.app.guid)) && labels.contains_key(&state_key(&cart.guid)), "{labels:?}");

    w.run(&[&["off", "cart"][..], &no_verify].concat()).await.expect_code(0);
    assert_eq!(w.dests(shared), before, "both off: the destinations are as before");
    let (labels, annotations) = w.switch_metadata(shared);
    assert!(labels.is_empty() && annotations.is_empty(), "{labels:?} {annotations:?}");
}
