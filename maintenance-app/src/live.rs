//! The per-app content an instance holds, changed live by the control endpoint and read by every
//! request without a lock.
//!
//! Writers (a control request, a few a day) take a mutex, check the version, render the app's
//! answers, build a new immutable [`Snapshot`] and publish it with a new generation number.
//! Readers keep the snapshot they last used in a thread-local slot, tagged with its generation,
//! and compare that with one atomic load per request; only on the first request after a change
//! does a thread take the mutex, once, to pick up the new snapshot. So the hot path is an atomic
//! load and a compare: no lock, no reference-count traffic, no allocation. (`arc-swap` would do
//! the same; this keeps the binary and `Cargo.lock` as they are, and the server runs on one
//! thread, where the slot is hit on every request but the first after a change.)
//!
//! Generations are unique in the process, not per [`Live`], so a thread serving two servers
//! (tests do) can never mistake one's snapshot for the other's: it only reloads more often.

use std::{
    cell::RefCell,
    collections::BTreeMap,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
};

use crate::{appdoc::AppContent, response::Answers, rules::Rule};

/// Source of generation numbers; 0 is never handed out, so an empty slot never matches.
static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The snapshot this thread used last, with its generation.
    static SEEN: RefCell<Option<(u64, Arc<Snapshot>)>> = const { RefCell::new(None) };
}

/// The per-app answers at one moment: immutable, shared by every request until the next change.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// One entry per route of every app with content, most specific first.
    routes: Vec<(Rule, Arc<Answers>)>,
}

impl Snapshot {
    /// The answers of the app whose route matches; `host` lower case without port.
    pub fn answers_for(&self, host: &str, path: &str) -> Option<&Answers> {
        self.routes.iter().find(|(rule, _)| rule.matches(host, path)).map(|(_, answers)| &**answers)
    }
}

/// What the instance holds for one app: the last version it accepted, and the content unless
/// that was a delete (a tombstone, so that the delete cannot be undone by replaying an older put).
#[derive(Debug)]
struct Held {
    version: u64,
    content: Option<(Vec<Rule>, Arc<Answers>)>,
}

#[derive(Debug)]
struct Published {
    generation: u64,
    snapshot: Arc<Snapshot>,
}

/// A change was refused because the instance already holds this version or a newer one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stale {
    /// The version held.
    pub held: u64,
}

/// The live per-app content of one server.
#[derive(Debug)]
pub struct Live {
    generation: AtomicU64,
    published: Mutex<Published>,
    held: Mutex<BTreeMap<String, Held>>,
}

impl Live {
    /// Starts from the documents in the environment.
    pub fn new(apps: &[AppContent]) -> Live {
        let live = Live {
            generation: AtomicU64::new(0),
            published: Mutex::new(Published { generation: 0, snapshot: Arc::default() }),
            held: Mutex::default(),
        };
        for app in apps {
            // Names are unique in an environment and each names its app, so none is stale here.
            let _ = live.put(app.clone());
        }
        if apps.is_empty() {
            live.publish(&BTreeMap::new());
        }
        live
    }

    /// Runs `f` on the current snapshot: an atomic load, and a lock only on the first call in a
    /// thread after a change (see the module docs).
    pub fn with<R>(&self, f: impl FnOnce(&Snapshot) -> R) -> R {
        let generation = self.generation.load(Ordering::Acquire);
        SEEN.with(|slot| {
            if let Some((seen, snapshot)) = slot.borrow().as_ref()
                && *seen == generation
            {
                return f(snapshot);
            }
            let snapshot = {
                let published = self.published.lock().unwrap_or_else(PoisonError::into_inner);
                // The pair is read under the lock, so the tag always names this snapshot even if
                // a writer published again since the load above.
                *slot.borrow_mut() = Some((published.generation, Arc::clone(&published.snapshot)));
                Arc::clone(&published.snapshot)
            };
            f(&snapshot)
        })
    }

    /// The version held for `app`, 0 when none.
    pub fn version(&self, app: &str) -> u64 {
        self.held.lock().unwrap_or_else(PoisonError::into_inner).get(app).map_or(0, |h| h.version)
    }

    /// Serves `content` for its app from now on, unless the instance holds its version or a
    /// newer one: that refusal is what keeps a captured request from being replayed.
    pub fn put(&self, content: AppContent) -> Result<u64, Stale> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let current = held.get(&content.app).map_or(0, |h| h.version);
        if content.version <= current {
            return Err(Stale { held: current });
        }
        let answers = Arc::new(Answers::new(&content.policy, content.version));
        held.insert(content.app, Held { version: content.version, content: Some((content.routes, answers)) });
        self.publish(&held);
        Ok(content.version)
    }

    /// Stops serving `app`'s content, leaving a tombstone with `version`, under the same rule.
    pub fn delete(&self, app: &str, version: u64) -> Result<u64, Stale> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let current = held.get(app).map_or(0, |h| h.version);
        if version <= current {
            return Err(Stale { held: current });
        }
        held.insert(app.to_owned(), Held { version, content: None });
        self.publish(&held);
        Ok(version)
    }

    /// Builds and publishes the snapshot of `held`; called with the `held` lock taken, so that
    /// two writers publish in the order they changed it.
    fn publish(&self, held: &BTreeMap<String, Held>) {
        let mut routes: Vec<(Rule, Arc<Answers>)> = held
            .values()
            .filter_map(|h| h.content.as_ref())
            .flat_map(|(rules, answers)| rules.iter().map(|rule| (rule.clone(), Arc::clone(answers))))
            .collect();
        // Stable: between two apps claiming the same route, the guid order decides, the same on
        // every instance.
        routes.sort_by_key(|(rule, _)| std::cmp::Reverse(rule.specificity()));
        let generation = NEXT_GENERATION.fetch_add(1, Ordering::Relaxed);
        let mut published = self.published.lock().unwrap_or_else(PoisonError::into_inner);
        *published = Published { generation, snapshot: Arc::new(Snapshot { routes }) };
        self.generation.store(generation, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn doc(app: &str, version: u64, host: &str, message: &str) -> AppContent {
        let base = Config::from_vars([]).expect("valid").default;
        let json = serde_json::json!({"version": version, "app": app, "hosts": [host], "message": message});
        AppContent::parse(&json.to_string(), &base).expect("valid document")
    }

    fn version_served(live: &Live, host: &str) -> Option<String> {
        live.with(|s| {
            s.answers_for(host, "/").map(|a| {
                let response = a.respond(&http::Method::GET, "/", None);
                response.headers()["x-maintenance-version"].to_str().expect("ascii").to_owned()
            })
        })
    }

    #[test]
    fn versions_only_go_up_and_deletes_leave_a_tombstone() {
        let live = Live::new(&[doc("a", 2, "a.example", "a2")]);
        assert_eq!(version_served(&live, "a.example").as_deref(), Some("2"));
        assert_eq!(live.put(doc("a", 2, "a.example", "again")), Err(Stale { held: 2 }));
        assert_eq!(live.put(doc("a", 3, "a.example", "a3")), Ok(3));
        assert_eq!(version_served(&live, "a.example").as_deref(), Some("3"));
        assert_eq!(live.delete("a", 3), Err(Stale { held: 3 }));
        assert_eq!(live.delete("a", 4), Ok(4));
        assert_eq!(version_served(&live, "a.example"), None);
        assert_eq!(live.put(doc("a", 3, "a.example", "replayed")), Err(Stale { held: 4 }));
        assert_eq!(live.version("a"), 4);
    }

    #[test]
    fn another_thread_sees_a_change_at_its_next_request() {
        let live = Arc::new(Live::new(&[]));
        let reader = Arc::clone(&live);
        let before = std::thread::spawn(move || version_served(&reader, "b.example")).join().expect("thread");
        assert_eq!(before, None);
        live.put(doc("b", 1, "b.example", "b1")).expect("fresh");
        let reader = Arc::clone(&live);
        let after = std::thread::spawn(move || version_served(&reader, "b.example")).join().expect("thread");
        assert_eq!(after.as_deref(), Some("1"));
        // Two servers on one thread never see each other's content.
        let other = Live::new(&[]);
        assert_eq!(version_served(&other, "b.example"), None);
        assert_eq!(version_served(&live, "b.example").as_deref(), Some("1"));
    }
}
