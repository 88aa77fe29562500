//! An app's lifecycle as the Cloud Controller reports it, met by the real binaries: instances that
//! run but fail their readiness check (`routable: false`), and deployments in progress, which make
//! the Cloud Controller refuse a droplet change (422) even after a stop.

use std::time::{Duration, Instant};

use http::Method;
use tests::{Failure, Matcher};

use crate::switch_support::{Setup, World};

fn current_droplet(w: &World) -> Option<String> {
    w.cf.cc.state().app(&w.app.guid).and_then(|a| a.droplet_guid.clone())
}

fn started(w: &World) -> bool {
    w.cf.cc.state().app(&w.app.guid).is_some_and(|a| a.state == tests::cc::state::AppState::Started)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_refuses_a_maintenance_app_whose_instances_run_but_are_not_ready() {
    let w = World::new(Setup::default()).await;
    let before = w.all_dests();
    let maint = w.maint.as_ref().expect("a maintenance app");
    w.cf.set_unready(&maint.web_process, 1);
    let run = w.run(&["on", "shop"]).await;
    run.expect_code(1);
    assert!(
        run.stderr.contains(
            "maintenance app \"maintenance-app (space dev)\" cannot serve the routes: 1 of its 1 web instances is \
             RUNNING but not ready (routable: false: the readiness health check fails)"
        ),
        "{run}"
    );
    assert!(
        run.stderr.contains("cf logs maintenance-app --recent") && run.stderr.contains("nothing was changed"),
        "{run}"
    );
    assert!(w.cc_writes().is_empty(), "refused before any write: {:?}", w.cc_writes());
    assert_eq!(w.all_dests(), before);

    w.cf.set_unready(&maint.web_process, 0);
    w.run(&["on", "shop"]).await.expect_code(0);
    w.assert_all_on(&before, "once the maintenance app is ready").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_refuses_an_app_whose_instances_run_but_are_not_ready() {
    let w = World::new(Setup::default()).await;
    let before = w.all_dests();
    w.run(&["on", "shop"]).await.expect_code(0);
    let on_state = w.all_dests();
    w.cf.set_unready(&w.app.web_process, 2);
    w.cf.faults.clear_log();
    let run = w.run(&["off", "shop"]).await;
    run.expect_code(1);
    assert!(
        run.stderr.contains("app \"shop\" cannot serve the routes: 2 of its 2 web instances are RUNNING but not ready"),
        "{run}"
    );
    assert!(run.stderr.contains("--force"), "{run}");
    assert!(w.cc_writes().is_empty(), "refused before any write: {:?}", w.cc_writes());
    assert_eq!(w.all_dests(), on_state);

    w.cf.set_unready(&w.app.web_process, 1);
    w.run(&["off", "shop"]).await.expect_code(0);
    w.assert_restored(&before, "one ready instance is enough").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restage_with_a_deployment_in_progress_is_refused_before_the_window_opens() {
    let w = World::new(Setup { production: true, ..Setup::default() }).await;
    let before = w.all_dests();
    let old = current_droplet(&w);
    let deployment = w.cf.start_deployment(&w.app.guid, Duration::from_secs(600));
    w.cf.faults.clear_log();
    let run = w.run(&["run", "shop", "--restage"]).await;
    run.expect_code(1);
    assert!(
        run.stderr.contains(&format!(
            "cannot restage while a deployment is in progress: app shop has deployment {deployment} in progress \
             (DEPLOYING)"
        )),
        "{run}"
    );
    assert!(run.stderr.contains("`cf target -s dev && cf cancel-deployment shop`"), "{run}");
    assert!(run.stderr.contains("nothing was changed"), "{run}");
    assert!(w.cc_writes().is_empty(), "no route (or app) write: {:?}", w.cc_writes());
    let asked = w.cc_log().iter().any(|r| {
        r.path == "/v3/deployments"
            && r.query
                .as_deref()
                .is_some_and(|q| q.contains(&format!("app_guids={}", w.app.guid)) && q.contains("status_values=ACTIVE"))
    });
    assert!(asked, "asked for the app's active deployments");
    assert_eq!(w.all_dests(), before);
    assert_eq!(current_droplet(&w), old);
    assert!(started(&w), "the app runs as before");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_droplet_change_starts_the_app_again_and_it_stays_in_maintenance() {
    let w = World::new(Setup::default()).await;
    let before = w.all_dests();
    let old = current_droplet(&w).expect("a droplet");
    w.cf.faults.fail_next(Matcher::new(Method::PATCH, "/v3/apps/*/relationships/current_droplet"), Failure::Status500);
    let run = w.run(&["run", "shop", "--restage"]).await;
    run.expect_code(1);
    assert!(run.stderr.contains("failed after the stop"), "{run}");
    assert!(run.stderr.contains(&format!("the app was started again on its previous droplet {old}")), "{run}");
    assert!(run.stderr.contains("still in maintenance: shop"), "{run}");
    assert!(started(&w), "never left STOPPED");
    assert_eq!(current_droplet(&w), Some(old));
    let writes = w.cc_writes();
    let starts = writes.iter().filter(|x| x.contains("/actions/start")).count();
    assert_eq!(starts, 1, "started again once: {writes:?}");
    w.assert_all_on(&before, "after the failed droplet change").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_begun_during_staging_is_reported_and_the_app_started_again() {
    let w = World::new(Setup::default()).await;
    let before = w.all_dests();
    let old = current_droplet(&w).expect("a droplet");
    w.cf.cc.state().staging_time = Duration::from_millis(700);
    let job = w.spawn(&["run", "shop", "--restage"]);
    // Someone runs `cf restart --strategy rolling shop` while the build stages.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !w.cc_log().iter().any(|r| r.method == Method::POST && r.path == "/v3/builds") {
        assert!(Instant::now() < deadline, "no build was created");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deployment = w.cf.start_deployment(&w.app.guid, Duration::from_secs(600));
    let run = job.wait(Duration::from_secs(60)).await;
    run.expect_code(1);
    assert!(
        run.stderr.contains("Unable to assign current droplet while the app has a deployment in progress"),
        "{run}"
    );
    assert!(
        run.stderr.contains(&format!("(app shop has deployment {deployment} in progress (DEPLOYING)"))
            && run.stderr.contains("`cf target -s dev && cf cancel-deployment shop`"),
        "names the deployment and what to do: {run}"
    );
    assert!(run.stderr.contains(&format!("the app was started again on its previous droplet {old}")), "{run}");
    assert!(run.stderr.contains("still in maintenance: shop"), "{run}");
    assert!(started(&w), "never left STOPPED");
    w.assert_all_on(&before, "after the refused droplet change").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restage_waits_for_ready_instances_and_reports_those_that_never_are() {
    let w = World::new(Setup::default()).await;
    let before = w.all_dests();
    w.cf.set_unready(&w.app.web_process, 1);
    let run = w.run(&["run", "shop", "--restage", "--startup-timeout", "2"]).await;
    run.expect_code(1);
    assert!(
        run.stderr.contains(
            "not every web instance of shop runs after 2s (1 RUNNING but not ready (readiness health check failing), \
             1 RUNNING; 2 wanted)"
        ),
        "{run}"
    );
    assert!(run.stderr.contains("still in maintenance: shop"), "{run}");
    w.assert_all_on(&before, "after instances that never got ready").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_refuses_a_maintenance_app_whose_instances_are_stopping() {
    let w = World::new(Setup::default()).await;
    let before = w.all_dests();
    let maint = w.maint.as_ref().expect("a maintenance app");
    // The double reports a STOPPING instance with its actual LRP's last `routable: true`
    // (UNCONFIRMED for Diego): a reader that trusted `routable` alone would count it.
    w.cf.set_instance_states(&maint.web_process, Some(vec![tests::InstanceState::Stopping]));
    let run = w.run(&["on", "shop"]).await;
    run.expect_code(1);
    assert!(run.stderr.contains("none of its 1 web instances is RUNNING (STOPPING)"), "{run}");
    assert!(w.cc_writes().is_empty(), "{:?}", w.cc_writes());
    assert_eq!(w.all_dests(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_start_again_fails_too_the_report_says_stopped_and_how_to_start_it() {
    let w = World::new(Setup::default()).await;
    let before = w.all_dests();
    w.cf.faults.fail_next(Matcher::new(Method::PATCH, "/v3/apps/*/relationships/current_droplet"), Failure::Status500);
    w.cf.faults.fail_next(Matcher::new(Method::POST, "/v3/apps/*/actions/start"), Failure::Status500);
    let run = w.run(&["run", "shop", "--restage"]).await;
    run.expect_code(1);
    assert!(
        run.stderr.contains("failed after the stop")
            && run.stderr.contains("starting it again failed too")
            && run.stderr.contains("run `cf start shop`"),
        "{run}"
    );
    assert!(!started(&w), "the double really left it stopped, as the report says");
    assert!(run.stderr.contains("still in maintenance: shop"), "{run}");
    w.assert_all_on(&before, "after the failed start").await;

    // A start that fails after the new droplet is set: STOPPED, on the new droplet, with the command.
    w.cf.faults.fail_next(Matcher::new(Method::POST, "/v3/apps/*/actions/start"), Failure::Status500);
    let run = w.run(&["run", "shop", "--restage"]).await;
    run.expect_code(1);
    let droplet = current_droplet(&w).expect("a droplet");
    assert!(
        run.stderr.contains(&format!("starting it on droplet {droplet} failed"))
            && run.stderr.contains("the app is STOPPED: run `cf start shop`"),
        "{run}"
    );
}
