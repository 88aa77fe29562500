//! JSON presenters: each resource rendered with the keys, nesting and null-ness of CC's presenters
//! (`app/presenters/v3/*`). serde_json's map sorts keys; CC's key order is not part of its
//! contract and no client depends on it.

use serde_json::{Value, json};

use super::state::{
    App, AuditEvent, Build, Deployment, Destination, Domain, Droplet, Job, Lifecycle, Org, Package, Process, Route,
    RouteBinding, Space, State,
};

fn href(url: String) -> Value {
    json!({ "href": url })
}

fn rel(guid: Option<&str>) -> Value {
    json!({ "data": guid.map(|g| json!({ "guid": g })) })
}

/// An org.
pub fn org(base: &str, o: &Org) -> Value {
    let g = &o.guid;
    json!({
        "guid": g, "created_at": o.created_at, "updated_at": o.updated_at, "name": o.name,
        "suspended": o.suspended,
        "relationships": { "quota": rel(Some("d6d1c8ba-9d5d-4b1a-8f3a-5e4e0c1e0a00")) },
        "metadata": o.metadata.to_json(),
        "links": {
            "self": href(format!("{base}/v3/organizations/{g}")),
            "domains": href(format!("{base}/v3/organizations/{g}/domains")),
            "default_domain": href(format!("{base}/v3/organizations/{g}/domains/default")),
            "quota": href(format!("{base}/v3/organization_quotas/d6d1c8ba-9d5d-4b1a-8f3a-5e4e0c1e0a00")),
        },
    })
}

/// A space.
pub fn space(base: &str, s: &Space) -> Value {
    let g = &s.guid;
    json!({
        "guid": g, "created_at": s.created_at, "updated_at": s.updated_at, "name": s.name,
        "suspended": false,
        "relationships": { "organization": rel(Some(&s.org_guid)), "quota": rel(None) },
        "metadata": s.metadata.to_json(),
        "links": {
            "self": href(format!("{base}/v3/spaces/{g}")),
            "features": href(format!("{base}/v3/spaces/{g}/features")),
            "organization": href(format!("{base}/v3/organizations/{}", s.org_guid)),
            "apply_manifest": { "href": format!("{base}/v3/spaces/{g}/actions/apply_manifest"), "method": "POST" },
        },
    })
}

/// A domain; shared domains have a null organization, no shared orgs and no org links.
pub fn domain(base: &str, d: &Domain) -> Value {
    let g = &d.guid;
    let mut links = json!({
        "self": href(format!("{base}/v3/domains/{g}")),
        "route_reservations": href(format!("{base}/v3/domains/{g}/route_reservations")),
    });
    if let Some(org) = &d.org_guid {
        links["organization"] = href(format!("{base}/v3/organizations/{org}"));
        links["shared_organizations"] = href(format!("{base}/v3/domains/{g}/relationships/shared_organizations"));
    }
    if let Some(rg) = &d.router_group {
        links["router_group"] = href(format!("{base}/routing/v1/router_groups/{rg}"));
    }
    let mut v = json!({
        "guid": g, "created_at": d.created_at, "updated_at": d.updated_at, "name": d.name,
        "internal": d.internal,
        "router_group": d.router_group.as_ref().map(|rg| json!({ "guid": rg })),
        "supported_protocols": [d.protocol()],
        "relationships": {
            "organization": rel(d.org_guid.as_deref()),
            "shared_organizations": { "data": [] },
        },
        "metadata": d.metadata.to_json(),
        "links": links,
    });
    // `app/presenters/v3/domain_presenter.rb`: both keys are deleted unless the domain enforces
    // route policies, so a client must read their absence as "does not enforce".
    if let Some(scope) = &d.route_policies_scope {
        v["enforce_route_policies"] = json!(true);
        v["route_policies_scope"] = json!(scope);
    }
    v
}

/// A service route binding (`app/presenters/v3/service_route_binding_presenter.rb`): the
/// `parameters` link only for a managed instance's binding; `last_operation` as
/// `RouteBindingOperation#to_hash` (its `export_attributes`) for a binding created through v3.
pub fn route_binding(base: &str, b: &RouteBinding) -> Value {
    let g = &b.guid;
    let mut links = json!({
        "self": href(format!("{base}/v3/service_route_bindings/{g}")),
        "service_instance": href(format!("{base}/v3/service_instances/{}", b.service_instance_guid)),
        "route": href(format!("{base}/v3/routes/{}", b.route_guid)),
    });
    if b.managed {
        links["parameters"] = href(format!("{base}/v3/service_route_bindings/{g}/parameters"));
    }
    json!({
        "guid": g,
        "route_service_url": b.route_service_url,
        "created_at": b.created_at,
        "updated_at": b.updated_at,
        "last_operation": {
            "type": "create", "state": "succeeded", "description": "",
            "created_at": b.created_at, "updated_at": b.updated_at,
        },
        "metadata": b.metadata.to_json(),
        "relationships": {
            "service_instance": rel(Some(&b.service_instance_guid)),
            "route": rel(Some(&b.route_guid)),
        },
        "links": links,
    })
}

/// `lifecycle` of an app (`app/presenters/v3/app_presenter.rb`): Docker's has empty `data`.
fn lifecycle(l: Lifecycle) -> Value {
    match l {
        Lifecycle::Buildpack => {
            json!({ "type": "buildpack", "data": { "buildpacks": ["binary_buildpack"], "stack": "cflinuxfs4" } })
        }
        Lifecycle::Docker => json!({ "type": "docker", "data": {} }),
        Lifecycle::Cnb => {
            json!({ "type": "cnb", "data": { "buildpacks": ["docker://paketobuildpacks/go"], "stack": "cflinuxfs4" } })
        }
    }
}

/// An app.
pub fn app(base: &str, a: &App) -> Value {
    let g = &a.guid;
    let action = |name: &str| json!({ "href": format!("{base}/v3/apps/{g}/actions/{name}"), "method": "POST" });
    json!({
        "guid": g, "created_at": a.created_at, "updated_at": a.updated_at, "name": a.name,
        "state": a.state.as_str(),
        "lifecycle": lifecycle(a.lifecycle),
        "relationships": { "space": rel(Some(&a.space_guid)), "current_droplet": rel(a.droplet_guid.as_deref()) },
        "metadata": a.metadata.to_json(),
        "links": {
            "self": href(format!("{base}/v3/apps/{g}")),
            "environment_variables": href(format!("{base}/v3/apps/{g}/environment_variables")),
            "space": href(format!("{base}/v3/spaces/{}", a.space_guid)),
            "processes": href(format!("{base}/v3/apps/{g}/processes")),
            "packages": href(format!("{base}/v3/apps/{g}/packages")),
            "current_droplet": href(format!("{base}/v3/apps/{g}/droplets/current")),
            "droplets": href(format!("{base}/v3/apps/{g}/droplets")),
            "tasks": href(format!("{base}/v3/apps/{g}/tasks")),
            "start": action("start"),
            "stop": action("stop"),
            "clear_buildpack_cache": action("clear_buildpack_cache"),
            "revisions": href(format!("{base}/v3/apps/{g}/revisions")),
            "deployed_revisions": href(format!("{base}/v3/apps/{g}/revisions/deployed")),
            "features": href(format!("{base}/v3/apps/{g}/features")),
        },
    })
}

/// The current-droplet relationship of an app.
pub fn current_droplet_relationship(base: &str, a: &App) -> Value {
    let g = &a.guid;
    json!({
        "data": a.droplet_guid.as_ref().map(|d| json!({ "guid": d })),
        "links": {
            "self": href(format!("{base}/v3/apps/{g}/relationships/current_droplet")),
            "related": href(format!("{base}/v3/apps/{g}/droplets/current")),
        },
    })
}

/// A process.
pub fn process(base: &str, st: &State, p: &Process) -> Value {
    let g = &p.guid;
    let space = st.app(&p.app_guid).map(|a| a.space_guid.clone()).unwrap_or_default();
    json!({
        "guid": g, "type": p.process_type, "command": p.command, "user": "vcap",
        "instances": p.instances, "memory_in_mb": 256, "disk_in_mb": 1024,
        "log_rate_limit_in_bytes_per_second": -1,
        "health_check": { "type": "port", "data": { "timeout": null, "invocation_timeout": null, "interval": null } },
        "readiness_health_check": { "type": "process", "data": { "invocation_timeout": null, "interval": null } },
        "relationships": { "app": rel(Some(&p.app_guid)), "revision": rel(Some(g)) },
        "metadata": p.metadata.to_json(),
        "created_at": p.created_at, "updated_at": p.updated_at,
        "version": g,
        "links": {
            "self": href(format!("{base}/v3/processes/{g}")),
            "scale": { "href": format!("{base}/v3/processes/{g}/actions/scale"), "method": "POST" },
            "app": href(format!("{base}/v3/apps/{}", p.app_guid)),
            "space": href(format!("{base}/v3/spaces/{space}")),
            "stats": href(format!("{base}/v3/processes/{g}/stats")),
            "process_instances": href(format!("{base}/v3/processes/{g}/process_instances")),
        },
    })
}

/// `{"resources": [instance stats…]}` (not paginated). Instances that are not up are the DOWN
/// stubs CC fills in (`fill_unreported_instances_with_down_instances`), whose `routable` is null:
/// the stub hash has none (`process_stats_presenter.rb` `down_instance_stats_hash`).
pub fn stats(st: &State, p: &Process) -> Value {
    let routable = st.instance_routable(p);
    let resources: Vec<Value> = st
        .instance_states(p)
        .iter()
        .zip(routable)
        .enumerate()
        .map(|(index, (state, routable))| {
            let s = state.as_str();
            if matches!(state, super::state::InstanceState::Down) {
                return json!({
                    "type": p.process_type, "index": index, "state": s, "routable": routable, "uptime": 0,
                    "isolation_segment": null, "details": null,
                });
            }
            let running = s == "RUNNING";
            json!({
                "type": p.process_type, "index": index,
                "instance_guid": format!("{}-{index}", &p.guid[..8]),
                "state": s, "routable": routable,
                "usage": { "time": crate::clock::now_iso(), "cpu": 0.001, "cpu_entitlement": 0.01,
                           "mem": 19_177_472, "disk": 69_705_728, "log_rate": 0 },
                "host": "10.244.16.10", "instance_internal_ip": "10.255.93.167",
                "instance_ports": [{ "external": 61000 + index, "internal": 8080,
                                     "external_tls_proxy_port": 61100 + index, "internal_tls_proxy_port": 61001 }],
                "uptime": if running { 60 } else { 0 },
                "mem_quota": 268_435_456, "disk_quota": 1_073_741_824, "fds_quota": 16384,
                "isolation_segment": null, "log_rate_limit": null, "details": null,
            })
        })
        .collect();
    json!({ "resources": resources })
}

/// One destination.
pub fn destination(st: &State, d: &Destination) -> Value {
    json!({
        "guid": d.guid,
        "app": { "guid": d.app_guid, "process": { "type": d.process_type } },
        "weight": d.weight, "port": st.presented_port(d), "protocol": d.protocol,
        "created_at": d.created_at, "updated_at": d.updated_at,
    })
}

/// `{"destinations": […], "links": {self, route}}`, sorted by guid.
pub fn destinations(base: &str, st: &State, r: &Route) -> Value {
    let mut ds: Vec<&Destination> = r.destinations.iter().collect();
    ds.sort_by(|a, b| a.guid.cmp(&b.guid));
    json!({
        "destinations": ds.into_iter().map(|d| destination(st, d)).collect::<Vec<_>>(),
        "links": {
            "self": href(format!("{base}/v3/routes/{}/destinations", r.guid)),
            "route": href(format!("{base}/v3/routes/{}", r.guid)),
        },
    })
}

/// A route: `port: null`, `host: ""`, `path: ""` as the real server emits them; `options` omitted
/// when unset.
pub fn route(base: &str, st: &State, r: &Route) -> Value {
    let g = &r.guid;
    let protocol = st.domain(&r.domain_guid).map_or("http", Domain::protocol);
    let mut ds: Vec<&Destination> = r.destinations.iter().collect();
    ds.sort_by(|a, b| a.guid.cmp(&b.guid));
    let mut v = json!({
        "guid": g, "created_at": r.created_at, "updated_at": r.updated_at,
        "protocol": protocol, "host": r.host, "path": r.path, "port": r.port,
        "url": st.route_url(r),
        "destinations": ds.into_iter().map(|d| destination(st, d)).collect::<Vec<_>>(),
        "metadata": r.metadata.to_json(),
        "relationships": { "space": rel(Some(&r.space_guid)), "domain": rel(Some(&r.domain_guid)) },
        "links": {
            "self": href(format!("{base}/v3/routes/{g}")),
            "space": href(format!("{base}/v3/spaces/{}", r.space_guid)),
            "destinations": href(format!("{base}/v3/routes/{g}/destinations")),
            "domain": href(format!("{base}/v3/domains/{}", r.domain_guid)),
        },
    });
    if let Some(options) = &r.options {
        v["options"] = Value::Object(options.clone());
    }
    v
}

/// A package.
pub fn package(base: &str, p: &Package) -> Value {
    let g = &p.guid;
    json!({
        "guid": g, "type": "bits",
        "data": { "checksum": { "type": "sha256", "value": null }, "error": null },
        "state": p.state, "created_at": p.created_at, "updated_at": p.updated_at,
        "relationships": { "app": rel(Some(&p.app_guid)) },
        "metadata": { "labels": {}, "annotations": {} },
        "links": {
            "self": href(format!("{base}/v3/packages/{g}")),
            "upload": { "href": format!("{base}/v3/packages/{g}/upload"), "method": "POST" },
            "download": { "href": format!("{base}/v3/packages/{g}/download"), "method": "GET" },
            "app": href(format!("{base}/v3/apps/{}", p.app_guid)),
        },
    })
}

/// The double's one buildpack (`app/presenters/v3/buildpack_presenter.rb`; the docs'
/// `_buildpacks.erb` shape), the one its buildpack apps stage with.
pub fn buildpack(base: &str) -> Value {
    let g = "8a7b6c5d-0000-4000-8000-000000000001";
    json!({
        "guid": g, "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
        "name": "binary_buildpack", "state": "READY", "filename": "binary_buildpack-cflinuxfs4-v1.1.0.zip",
        "stack": "cflinuxfs4", "position": 1, "lifecycle": "buildpack", "enabled": true, "locked": false,
        "metadata": { "labels": {}, "annotations": {} },
        "links": {
            "self": href(format!("{base}/v3/buildpacks/{g}")),
            "upload": { "href": format!("{base}/v3/buildpacks/{g}/upload"), "method": "POST" },
        },
    })
}

/// A build; `droplet` is null until staged.
pub fn build(base: &str, b: &Build) -> Value {
    let g = &b.guid;
    let mut links = json!({
        "self": href(format!("{base}/v3/builds/{g}")),
        "app": href(format!("{base}/v3/apps/{}", b.app_guid)),
    });
    if let Some(d) = &b.droplet_guid {
        links["droplet"] = href(format!("{base}/v3/droplets/{d}"));
    }
    json!({
        "guid": g, "created_at": b.created_at, "updated_at": b.updated_at,
        "created_by": { "guid": b.created_by.0, "name": b.created_by.1, "email": format!("{}@example.com", b.created_by.1) },
        "state": b.state, "staging_memory_in_mb": 1024, "staging_disk_in_mb": 1024,
        "staging_log_rate_limit_bytes_per_second": -1, "error": b.error,
        "lifecycle": { "type": "buildpack", "data": { "buildpacks": ["binary_buildpack"], "stack": "cflinuxfs4" } },
        "package": { "guid": b.package_guid },
        "droplet": b.droplet_guid.as_ref().map(|d| json!({ "guid": d })),
        "relationships": { "app": rel(Some(&b.app_guid)) },
        "metadata": { "labels": {}, "annotations": {} },
        "links": links,
    })
}

/// A staged droplet.
pub fn droplet(base: &str, st: &State, d: &Droplet) -> Value {
    let g = &d.guid;
    let mut links = json!({
        "self": href(format!("{base}/v3/droplets/{g}")),
        "app": href(format!("{base}/v3/apps/{}", d.app_guid)),
        "assign_current_droplet": {
            "href": format!("{base}/v3/apps/{}/relationships/current_droplet", d.app_guid), "method": "PATCH",
        },
        "download": href(format!("{base}/v3/droplets/{g}/download")),
    });
    if let Some(p) = &d.package_guid {
        links["package"] = href(format!("{base}/v3/packages/{p}"));
    }
    let kind = st.app(&d.app_guid).map_or(Lifecycle::Buildpack, |a| a.lifecycle);
    let mut v = json!({
        "guid": g, "state": "STAGED", "error": null,
        "lifecycle": { "type": "buildpack", "data": {} },
        "execution_metadata": "",
        "process_types": { "web": "./app" },
        "checksum": { "type": "sha256", "value": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
        "buildpacks": [{ "name": "binary_buildpack", "detect_output": "binary", "version": "1.1.0",
                         "buildpack_name": "binary" }],
        "stack": "cflinuxfs4", "image": null,
        "created_at": d.created_at, "updated_at": d.updated_at,
        "relationships": { "app": rel(Some(&d.app_guid)) },
        "links": links,
        "metadata": { "labels": {}, "annotations": {} },
    });
    if kind == Lifecycle::Docker {
        // A Docker droplet (`app/presenters/v3/droplet_presenter.rb`): the image's metadata as a
        // JSON string, whose `ports` CC reads for a destination without a port
        // (`droplet_model.rb` `docker_ports`, TCP ones only).
        let ports: Vec<Value> = d.docker_ports.iter().map(|p| json!({ "Port": p, "Protocol": "tcp" })).collect();
        v["lifecycle"] = json!({ "type": "docker", "data": {} });
        v["execution_metadata"] = json!(json!({ "cmd": [], "ports": ports }).to_string());
        v["buildpacks"] = json!([]);
        v["stack"] = Value::Null;
        v["checksum"] = Value::Null;
        v["image"] = json!(format!("registry.example.com/{}:latest", d.app_guid));
    }
    v
}

/// A deployment.
pub fn deployment(base: &str, st: &State, d: &Deployment) -> Value {
    let g = &d.guid;
    let value = d.status_value();
    // The deployment's own process when it has one (`deployment_processes`), else the app's.
    let web = d.process_guid.as_deref().and_then(|g| st.process(g)).or_else(|| st.process_of(&d.app_guid, "web"));
    json!({
        "guid": g,
        "status": { "value": value, "reason": d.reason,
                    "details": { "last_successful_healthcheck": d.updated_at, "last_status_change": d.updated_at,
                                 "error": null } },
        "strategy": d.strategy,
        "options": { "max_in_flight": 1, "web_instances": web.map(|p| p.instances), "memory_in_mb": 256,
                     "disk_in_mb": 1024, "log_rate_limit_in_bytes_per_second": -1 },
        "droplet": { "guid": d.droplet_guid },
        "previous_droplet": { "guid": d.previous_droplet_guid },
        "new_processes": web.map(|p| vec![json!({ "guid": p.guid, "type": "web" })]).unwrap_or_default(),
        "revision": { "guid": g, "version": 1 },
        "created_at": d.created_at, "updated_at": d.updated_at,
        "metadata": { "labels": {}, "annotations": {} },
        "relationships": { "app": rel(Some(&d.app_guid)) },
        "links": {
            "self": href(format!("{base}/v3/deployments/{g}")),
            "app": href(format!("{base}/v3/apps/{}", d.app_guid)),
            "cancel": { "href": format!("{base}/v3/deployments/{g}/actions/cancel"), "method": "POST" },
            "continue": { "href": format!("{base}/v3/deployments/{g}/actions/continue"), "method": "POST" },
        },
    })
}

/// A (complete) job.
pub fn job(base: &str, j: &Job) -> Value {
    json!({
        "guid": j.guid, "created_at": j.created_at, "updated_at": j.created_at,
        "operation": j.operation, "state": "COMPLETE",
        "links": { "self": href(format!("{base}/v3/jobs/{}", j.guid)) },
        "errors": [], "warnings": [],
    })
}

/// An audit event (`app/presenters/v3/event_presenter.rb`).
pub fn audit_event(base: &str, e: &AuditEvent) -> Value {
    let party = |(guid, kind, name): &(String, &str, String)| json!({ "guid": guid, "type": kind, "name": name });
    json!({
        "guid": e.guid,
        "created_at": e.created_at,
        "updated_at": e.created_at,
        "type": e.kind,
        "actor": party(&e.actor),
        "target": party(&e.target),
        "data": e.data,
        "space": { "guid": e.space_guid },
        "organization": { "guid": e.org_guid },
        "links": { "self": href(format!("{base}/v3/audit_events/{}", e.guid)) },
    })
}
