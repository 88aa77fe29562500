//! Seeding helpers: create orgs, spaces, domains, apps (with a package, a droplet and processes),
//! routes, destinations and users directly in the doubles' state, without HTTP. Route changes
//! made here reach the router like any other (after the configured delay); call
//! [`RouterDouble::wait_settled`](crate::router::RouterDouble::wait_settled) before sending traffic.

use std::net::SocketAddr;

use crate::{
    cc::state::{
        App, AppState, Deployment, Destination, Domain, Droplet, InstanceState, Lifecycle, Org, Package, Process, Role,
        Route, Space, guid,
    },
    clock::now_iso,
    metadata::Metadata,
    spawn::CfDouble,
    uaa::User,
};

/// A seeded app.
#[derive(Debug, Clone)]
pub struct SeededApp {
    /// App GUID.
    pub guid: String,
    /// GUID of its `web` process.
    pub web_process: String,
    /// GUID of its package.
    pub package: String,
    /// GUID of its current droplet.
    pub droplet: String,
}

/// A ready-made foundation: one org and space, the usual domains, and users by role.
#[derive(Debug, Clone)]
pub struct Standard {
    /// Org `org`.
    pub org: String,
    /// Space `dev`.
    pub space: String,
    /// A second space `other` in the same org (for cross-space tests).
    pub other_space: String,
    /// Shared HTTP domain `apps.example.com`.
    pub domain: String,
    /// Internal domain `apps.internal`.
    pub internal_domain: String,
    /// TCP domain `tcp.example.com`.
    pub tcp_domain: String,
    /// Space Developer in both spaces (`developer` / `developer-pass`).
    pub developer: User,
    /// Space Auditor in `dev` (`auditor` / `auditor-pass`).
    pub auditor: User,
    /// Space Supporter in `dev` (`supporter` / `supporter-pass`).
    pub supporter: User,
    /// Admin (`admin` / `admin-pass`).
    pub admin: User,
}

impl CfDouble {
    /// Seeds the [`Standard`] foundation.
    pub fn seed_standard(&self) -> Standard {
        let org = self.add_org("org");
        let space = self.add_space(&org, "dev");
        let other_space = self.add_space(&org, "other");
        let domain = self.add_shared_domain("apps.example.com");
        let internal_domain = self.add_domain("apps.internal", true, None, None);
        let tcp_domain = self.add_domain("tcp.example.com", false, Some(guid()), None);
        let developer =
            self.add_user("developer", "developer-pass", &[(&space, Role::Developer), (&other_space, Role::Developer)]);
        let auditor = self.add_user("auditor", "auditor-pass", &[(&space, Role::Auditor)]);
        let supporter = self.add_user("supporter", "supporter-pass", &[(&space, Role::Supporter)]);
        let admin = self.uaa.add_user("admin", "admin-pass", true);
        Standard { org, space, other_space, domain, internal_domain, tcp_domain, developer, auditor, supporter, admin }
    }

    /// Adds an org.
    pub fn add_org(&self, name: &str) -> String {
        let now = now_iso();
        let org = Org {
            guid: guid(),
            name: name.to_owned(),
            suspended: false,
            created_at: now.clone(),
            updated_at: now,
            metadata: Metadata::default(),
        };
        let g = org.guid.clone();
        self.cc.state().orgs.push(org);
        g
    }

    /// Suspends (or resumes) an org.
    pub fn set_org_suspended(&self, org: &str, suspended: bool) {
        if let Some(o) = self.cc.state().orgs.iter_mut().find(|o| o.guid == org) {
            o.suspended = suspended;
        }
    }

    /// Adds a space to `org`.
    pub fn add_space(&self, org: &str, name: &str) -> String {
        let now = now_iso();
        let space = Space {
            guid: guid(),
            name: name.to_owned(),
            org_guid: org.to_owned(),
            created_at: now.clone(),
            updated_at: now,
            metadata: Metadata::default(),
        };
        let g = space.guid.clone();
        self.cc.state().spaces.push(space);
        g
    }

    /// Adds a shared HTTP domain.
    pub fn add_shared_domain(&self, name: &str) -> String {
        self.add_domain(name, false, None, None)
    }

    /// Adds a domain: `internal`, TCP when `router_group` is set, private when `org` is set.
    pub fn add_domain(&self, name: &str, internal: bool, router_group: Option<String>, org: Option<&str>) -> String {
        let now = now_iso();
        let d = Domain {
            guid: guid(),
            name: name.to_owned(),
            internal,
            router_group,
            org_guid: org.map(str::to_owned),
            route_policies_scope: None,
            created_at: now.clone(),
            updated_at: now,
            metadata: Metadata::default(),
        };
        let g = d.guid.clone();
        self.cc.state().domains.push(d);
        g
    }

    /// Adds a UAA user with `roles` (space guid, role).
    pub fn add_user(&self, name: &str, password: &str, roles: &[(&str, Role)]) -> User {
        let user = self.uaa.add_user(name, password, false);
        let mut st = self.cc.state();
        for (space, role) in roles {
            st.roles.push((user.guid.clone(), (*space).to_owned(), *role));
        }
        user
    }

    /// Gives `user_guid` `role` in `space`.
    pub fn grant(&self, user_guid: &str, space: &str, role: Role) {
        self.cc.state().roles.push((user_guid.to_owned(), space.to_owned(), role));
    }

    /// Adds a started, staged buildpack app with one `web` instance.
    pub fn add_app(&self, space: &str, name: &str) -> SeededApp {
        self.add_app_with(space, name, 1, true)
    }

    /// Adds a staged app with `instances` web instances, started or stopped.
    pub fn add_app_with(&self, space: &str, name: &str, instances: u32, started: bool) -> SeededApp {
        self.add_app_of(space, name, (instances, started), Lifecycle::Buildpack, &[])
    }

    /// Adds a started Docker app with one `web` instance whose image exposes `ports` (TCP).
    pub fn add_docker_app(&self, space: &str, name: &str, ports: &[u16]) -> SeededApp {
        self.add_app_of(space, name, (1, true), Lifecycle::Docker, ports)
    }

    /// Adds a staged app of `lifecycle` with (instances, started) web instances.
    pub fn add_app_of(
        &self,
        space: &str,
        name: &str,
        (instances, started): (u32, bool),
        lifecycle: Lifecycle,
        docker_ports: &[u16],
    ) -> SeededApp {
        let now = now_iso();
        let app_guid = guid();
        let package = Package {
            guid: guid(),
            app_guid: app_guid.clone(),
            state: "READY".to_owned(),
            created_at: now.clone(),
            updated_at: now.clone(),
        };
        let droplet = Droplet {
            guid: guid(),
            app_guid: app_guid.clone(),
            package_guid: Some(package.guid.clone()),
            docker_ports: docker_ports.to_vec(),
            created_at: now.clone(),
            updated_at: now.clone(),
        };
        let app = App {
            guid: app_guid.clone(),
            name: name.to_owned(),
            space_guid: space.to_owned(),
            state: if started { AppState::Started } else { AppState::Stopped },
            droplet_guid: Some(droplet.guid.clone()),
            lifecycle,
            started_at: None,
            stopped_at: None,
            created_at: now.clone(),
            updated_at: now,
            metadata: Metadata::default(),
            environment_variables: Default::default(),
        };
        let seeded = SeededApp {
            guid: app_guid.clone(),
            web_process: String::new(),
            package: package.guid.clone(),
            droplet: droplet.guid.clone(),
        };
        {
            let mut st = self.cc.state();
            st.apps.push(app);
            st.packages.push(package);
            st.droplets.push(droplet);
        }
        let web_process = self.add_process(&app_guid, "web", instances);
        SeededApp { web_process, ..seeded }
    }

    /// Adds a process type to an app; returns its guid.
    pub fn add_process(&self, app: &str, process_type: &str, instances: u32) -> String {
        let now = now_iso();
        let p = Process {
            guid: guid(),
            app_guid: app.to_owned(),
            process_type: process_type.to_owned(),
            instances,
            command: Some("./app".to_owned()),
            forced_states: None,
            unready: 0,
            ports: None,
            created_at: now.clone(),
            updated_at: now,
            metadata: Metadata::default(),
        };
        let g = p.guid.clone();
        let mut st = self.cc.state();
        st.processes.push(p);
        st.emit_instances(app);
        g
    }

    /// Sets label `key` to `value` on an app (for label selectors).
    pub fn label_app(&self, app: &str, key: &str, value: &str) {
        let mut st = self.cc.state();
        if let Some(a) = st.app_mut(app) {
            a.metadata.labels.insert(key.to_owned(), value.to_owned());
        }
    }

    /// Makes the builds of `app` fail with `error` (CC's wording: `StagingError - Staging error: …`);
    /// `None` lets them stage again.
    pub fn fail_staging(&self, app: &str, error: Option<&str>) {
        let mut st = self.cc.state();
        match error {
            Some(error) => st.staging_failures.insert(app.to_owned(), error.to_owned()),
            None => st.staging_failures.remove(app),
        };
    }

    /// Forces the instance states a process reports (and routes to); `None` goes back to states
    /// derived from the app's state.
    pub fn set_instance_states(&self, process: &str, states: Option<Vec<InstanceState>>) {
        let mut st = self.cc.state();
        let Some(p) = st.processes.iter_mut().find(|p| p.guid == process) else { return };
        p.forced_states = states;
        let app = p.app_guid.clone();
        st.emit_instances(&app);
    }

    /// Makes the first `n` RUNNING instances of `process` fail their readiness health check: still
    /// RUNNING, but `routable: false` in the stats and no traffic from the router.
    pub fn set_unready(&self, process: &str, n: u32) {
        let mut st = self.cc.state();
        let Some(p) = st.processes.iter_mut().find(|p| p.guid == process) else { return };
        p.unready = n;
        let app = p.app_guid.clone();
        st.emit_instances(&app);
    }

    /// How long a stopped app's instances take to go, and whether CC reports them STOPPING
    /// meanwhile (its `app_instance_stopping_state`, on by default) or DOWN.
    pub fn set_stopping(&self, time: std::time::Duration, stopping_state: bool) {
        let mut st = self.cc.state();
        st.stopping_time = time;
        st.stopping_reported_down = !stopping_state;
    }

    /// Starts a rolling deployment of `app` onto its current droplet (what `cf restart --strategy
    /// rolling` creates) that stays DEPLOYING for `lasts`; returns its guid.
    pub fn start_deployment(&self, app: &str, lasts: std::time::Duration) -> String {
        let mut st = self.cc.state();
        let droplet = st.app(app).and_then(|a| a.droplet_guid.clone());
        let now = now_iso();
        let dep = Deployment {
            guid: guid(),
            app_guid: app.to_owned(),
            droplet_guid: droplet.clone(),
            previous_droplet_guid: droplet,
            strategy: "rolling".to_owned(),
            reason: "DEPLOYING".to_owned(),
            ready_at: std::time::Instant::now() + lasts,
            process_guid: None,
            target_instances: st.process_of(app, "web").map_or(0, |p| p.instances),
            created_at: now.clone(),
            updated_at: now,
        };
        let g = dep.guid.clone();
        st.deployments.push(dep);
        g
    }

    /// Adds an HTTP route `host.domain/path` (host and path may be empty).
    pub fn add_route(&self, space: &str, domain: &str, host: &str, path: &str) -> String {
        self.insert_route(space, domain, host, path, None)
    }

    /// Adds a TCP route `domain:port`.
    pub fn add_tcp_route(&self, space: &str, domain: &str, port: u16) -> String {
        self.insert_route(space, domain, "", "", Some(port))
    }

    fn insert_route(&self, space: &str, domain: &str, host: &str, path: &str, port: Option<u16>) -> String {
        let now = now_iso();
        let r = Route {
            guid: guid(),
            host: host.to_owned(),
            path: path.to_owned(),
            port,
            domain_guid: domain.to_owned(),
            space_guid: space.to_owned(),
            shared_spaces: Vec::new(),
            options: Some(serde_json::Map::new()),
            destinations: Vec::new(),
            created_at: now.clone(),
            updated_at: now,
            metadata: Metadata::default(),
        };
        let g = r.guid.clone();
        self.cc.state().routes.push(r);
        g
    }

    /// Shares a route into another space.
    pub fn share_route(&self, route: &str, space: &str) {
        if let Some(r) = self.cc.state().route_mut(route) {
            r.shared_spaces.push(space.to_owned());
        }
    }

    /// Maps `app`'s `process_type` on `port` to `route`; returns the destination guid.
    pub fn map_route(&self, route: &str, app: &str, process_type: &str, port: u16) -> String {
        self.map_route_port(route, app, process_type, Some(port))
    }

    /// Maps `app`'s `process_type` to `route` with the port stored as given (`None`: CC's -1, a
    /// Docker or CNB app's destination created without a port, as `cf map-route` makes it).
    pub fn map_route_port(&self, route: &str, app: &str, process_type: &str, port: Option<u16>) -> String {
        let mut st = self.cc.state();
        let tcp = st.route(route).and_then(|r| st.domain(&r.domain_guid)).is_some_and(|d| d.router_group.is_some());
        let now = now_iso();
        let d = Destination {
            guid: guid(),
            app_guid: app.to_owned(),
            process_type: process_type.to_owned(),
            port,
            protocol: if tcp { "tcp" } else { "http1" }.to_owned(),
            weight: None,
            created_at: now.clone(),
            updated_at: now,
        };
        let g = d.guid.clone();
        let mut all = st.route(route).map(|r| r.destinations.clone()).unwrap_or_default();
        all.push(d);
        st.set_destinations(route, all);
        g
    }

    /// Starts `count` built-in backends for `app`'s `process_type` and registers them with the
    /// router; the servers stop when the returned handles are dropped.
    pub async fn serve_instances(
        &self,
        app: &str,
        name: &str,
        process_type: &str,
        count: usize,
    ) -> std::io::Result<Vec<crate::serve::Server>> {
        let mut servers = Vec::new();
        for i in 0..count {
            servers.push(crate::backend::start(name, i).await?);
        }
        let addrs: Vec<SocketAddr> = servers.iter().map(crate::serve::Server::addr).collect();
        self.router.register(app, process_type, addrs);
        Ok(servers)
    }
}
