//! Apps, processes and their stats, packages, builds, droplets and deployments: what switchctl
//! reads and what `cf restage`/`cf restart` do (FACTS §1.3, §2).

use std::{sync::Arc, time::Instant};

use axum::response::Response;
use http::StatusCode;
use serde_json::{Value, json};

use super::{
    Cx, Included, json_response, ok, ordered, present,
    state::{App, AppState, Build, Deployment, Process, Role, State, guid},
    str_at,
};
use crate::{clock::now_iso, error::ApiError, pagination::Rules};

const APP_MANAGERS: &[Role] = &[Role::Developer, Role::Supporter];

/// `AppsListMessage`'s keys in `allowed_keys` order (cloud_controller_ng
/// `app/messages/apps_list_message.rb`; `guids` from `ListMessage`, `label_selector` appended by
/// `MetadataListMessage.register_allowed_keys`).
const APP_KEYS: &[&str] =
    &["guids", "names", "organization_guids", "space_guids", "stacks", "include", "lifecycle_type", "label_selector"];
/// `ProcessesListMessage`'s keys (app/messages/processes_list_message.rb); `app_guid` is the
/// nesting key of `/v3/apps/:guid/processes`. `embed=process_instances` is accepted and not
/// applied (UNMODELLED: CC embeds the instances).
const PROCESS_KEYS: &[&str] =
    &["guids", "app_guid", "types", "space_guids", "organization_guids", "app_guids", "embed", "label_selector"];
/// `IncludeParamValidator` values of `AppsListMessage` and `AppShowMessage`.
const APP_INCLUDES: &[&str] = &["space", "org", "space.organization"];

impl Cx<'_> {
    fn find_app<'s>(&self, st: &'s State, g: &str) -> Result<&'s App, ApiError> {
        st.app(g).filter(|a| self.can_read_space(st, &a.space_guid)).ok_or_else(|| ApiError::not_found("App"))
    }

    fn find_process<'s>(&self, st: &'s State, g: &str) -> Result<&'s Process, ApiError> {
        st.process(g)
            .filter(|p| st.app(&p.app_guid).is_some_and(|a| self.can_read_space(st, &a.space_guid)))
            .ok_or_else(|| ApiError::not_found("Process"))
    }

    pub(crate) fn list_apps(&self) -> Result<Response, ApiError> {
        let q = self
            .query(&Rules::list(APP_KEYS, &["created_at", "updated_at", "name", "state"]).with_include(APP_INCLUDES))?;
        let st = self.st();
        let items: Vec<Value> = st
            .apps
            .iter()
            .filter(|a| self.can_read_space(&st, &a.space_guid))
            .filter(|a| {
                let org = st.space(&a.space_guid).map(|s| s.org_guid.as_str()).unwrap_or("");
                q.allows("guids", &a.guid)
                    && q.allows("names", &a.name)
                    && q.allows("space_guids", &a.space_guid)
                    && q.allows("organization_guids", org)
                    && q.allows("stacks", "cflinuxfs4")
                    && q.allows("lifecycle_type", "buildpack")
                    && q.selects(&a.metadata.labels)
            })
            .map(|a| present::app(self.base(), a))
            .collect();
        drop(st);
        Ok(self.page_including(&ordered(items, &q), &q, "/v3/apps", Some(Included::Apps)))
    }

    pub(crate) fn get_app(&self, g: &str) -> Result<Response, ApiError> {
        // apps_controller.rb#show validates `AppShowMessage` (400) before it looks the app up.
        let q = self.query(&Rules::show(&["include"], APP_INCLUDES))?;
        let st = self.st();
        let mut v = present::app(self.base(), self.find_app(&st, g)?);
        if let Some(included) = self.included(&st, &q, std::slice::from_ref(&v), Included::Apps) {
            v["included"] = included;
        }
        Ok(ok(v))
    }

    pub(crate) fn patch_app(&self, g: &str) -> Result<Response, ApiError> {
        let body = Value::Object(self.body(&["name", "lifecycle", "metadata"])?);
        let mut st = self.st();
        let app = self.find_app(&st, g)?;
        // App metadata needs Space Developer; a Space Supporter is refused (ROLES_FOR_SPACE_WRITING).
        self.require_write(&st, &app.space_guid.clone(), &[Role::Developer])?;
        let mut metadata = app.metadata.clone();
        if let Some(m) = body.get("metadata") {
            metadata.patch(m)?;
        }
        let Some(app) = st.app_mut(g) else { return Err(ApiError::not_found("App")) };
        if let Some(name) = body.get("name").and_then(Value::as_str) {
            app.name = name.to_owned();
        }
        app.metadata = metadata;
        app.updated_at = now_iso();
        Ok(ok(present::app(self.base(), app)))
    }

    pub(crate) fn list_app_processes(&self, g: &str) -> Result<Response, ApiError> {
        let q = self.nested_query(&Rules::list(PROCESS_KEYS, &["created_at", "updated_at"]))?;
        let st = self.st();
        self.find_app(&st, g)?;
        let items: Vec<Value> = st
            .processes
            .iter()
            .filter(|p| p.app_guid == g && q.allows("guids", &p.guid) && q.allows("types", &p.process_type))
            .filter(|p| q.selects(&p.metadata.labels))
            .map(|p| present::process(self.base(), &st, p))
            .collect();
        Ok(self.page(&ordered(items, &q), &q, &format!("/v3/apps/{g}/processes")))
    }

    pub(crate) fn list_processes(&self) -> Result<Response, ApiError> {
        let q = self.list_query(PROCESS_KEYS, &["created_at", "updated_at"])?;
        let st = self.st();
        let items: Vec<Value> = st
            .processes
            .iter()
            .filter(|p| {
                let Some(app) = st.app(&p.app_guid) else { return false };
                self.can_read_space(&st, &app.space_guid)
                    && q.allows("guids", &p.guid)
                    && q.allows("types", &p.process_type)
                    && q.allows("app_guids", &p.app_guid)
                    && q.allows("space_guids", &app.space_guid)
                    && q.allows("organization_guids", st.space(&app.space_guid).map_or("", |s| s.org_guid.as_str()))
                    && q.selects(&p.metadata.labels)
            })
            .map(|p| present::process(self.base(), &st, p))
            .collect();
        Ok(self.page(&ordered(items, &q), &q, "/v3/processes"))
    }

    pub(crate) fn get_app_process(&self, g: &str, t: &str) -> Result<Response, ApiError> {
        let st = self.st();
        self.find_app(&st, g)?;
        let p = st.process_of(g, t).ok_or_else(|| ApiError::not_found("Process"))?;
        Ok(ok(present::process(self.base(), &st, p)))
    }

    pub(crate) fn app_process_stats(&self, g: &str, t: &str) -> Result<Response, ApiError> {
        let st = self.st();
        self.find_app(&st, g)?;
        let p = st.process_of(g, t).ok_or_else(|| ApiError::not_found("Process"))?;
        Ok(ok(present::stats(&st, p)))
    }

    pub(crate) fn get_process(&self, g: &str) -> Result<Response, ApiError> {
        let st = self.st();
        let p = self.find_process(&st, g)?;
        Ok(ok(present::process(self.base(), &st, p)))
    }

    pub(crate) fn process_stats(&self, g: &str) -> Result<Response, ApiError> {
        let st = self.st();
        let p = self.find_process(&st, g)?;
        Ok(ok(present::stats(&st, p)))
    }

    pub(crate) fn scale_process(&self, g: &str) -> Result<Response, ApiError> {
        let body = Value::Object(self.body(&[
            "instances",
            "memory_in_mb",
            "disk_in_mb",
            "log_rate_limit_in_bytes_per_second",
        ])?);
        let mut st = self.st();
        let p = self.find_process(&st, g)?.clone();
        let space = st.app(&p.app_guid).map(|a| a.space_guid.clone()).unwrap_or_default();
        self.require_write(&st, &space, APP_MANAGERS)?;
        if let Some(n) = body.get("instances") {
            let n = n.as_u64().and_then(|n| u32::try_from(n).ok());
            let Some(n) = n else { return Err(ApiError::unprocessable("Instances must be an integer")) };
            if let Some(p) = st.processes.iter_mut().find(|x| x.guid == g) {
                p.instances = n;
                p.updated_at = now_iso();
            }
            st.emit_instances(&p.app_guid);
        }
        let p = st.process(g).cloned().ok_or_else(|| ApiError::not_found("Process"))?;
        Ok(json_response(StatusCode::ACCEPTED, &present::process(self.base(), &st, &p)))
    }

    pub(crate) fn current_droplet(&self, g: &str) -> Result<Response, ApiError> {
        let st = self.st();
        let app = self.find_app(&st, g)?;
        let d = app
            .droplet_guid
            .as_ref()
            .and_then(|d| st.droplets.iter().find(|x| &x.guid == d))
            .ok_or_else(|| ApiError::not_found("Droplet"))?;
        Ok(ok(present::droplet(self.base(), &st, d)))
    }

    pub(crate) fn current_droplet_rel(&self, g: &str) -> Result<Response, ApiError> {
        let st = self.st();
        Ok(ok(present::current_droplet_relationship(self.base(), self.find_app(&st, g)?)))
    }

    pub(crate) fn set_current_droplet(&self, g: &str) -> Result<Response, ApiError> {
        let body = Value::Object(self.body(&["data"])?);
        let droplet = str_at(&body, "/data/guid").unwrap_or("").to_owned();
        let mut st = self.st();
        let app = self.find_app(&st, g)?;
        self.require_write(&st, &app.space_guid.clone(), APP_MANAGERS)?;
        // After the role and suspension checks, before the droplet is looked at:
        // `deployment_in_progress! if app.deploying?` (cloud_controller_ng
        // `app/controllers/v3/apps_controller.rb` `assign_current_droplet`). A deployment finished by
        // now must not block, so the clock moves first.
        st.advance();
        if st.deployments.iter().any(|d| d.app_guid == g && d.deploying()) {
            return Err(ApiError::unprocessable(
                "Unable to assign current droplet while the app has a deployment in progress. Wait for the \
                 deployment to complete or cancel it.",
            ));
        }
        if !st.droplets.iter().any(|d| d.guid == droplet && d.app_guid == g) {
            return Err(ApiError::unprocessable(
                "Unable to assign current droplet. Ensure the droplet exists and belongs to this app.",
            ));
        }
        let Some(app) = st.app_mut(g) else { return Err(ApiError::not_found("App")) };
        app.droplet_guid = Some(droplet);
        app.updated_at = now_iso();
        Ok(ok(present::current_droplet_relationship(self.base(), app)))
    }

    pub(crate) fn app_action(&self, g: &str, action: &str) -> Result<Response, ApiError> {
        let mut st = self.st();
        let app = self.find_app(&st, g)?.clone();
        self.require_write(&st, &app.space_guid, APP_MANAGERS)?;
        let start = match action {
            "stop" => false,
            "start" | "restart" => {
                if app.droplet_guid.is_none() {
                    return Err(ApiError::unprocessable("Assign a droplet before starting this app."));
                }
                true
            }
            _ => return Err(ApiError::unknown_request()),
        };
        let startup = st.startup_time;
        let Some(a) = st.app_mut(g) else { return Err(ApiError::not_found("App")) };
        // Stopping sets the desired state only: a deployment in flight goes on (`AppStop.stop`,
        // `app/actions/app_stop.rb`, touches the app and its processes, never its deployments), so
        // a droplet change right after a stop is still refused.
        if start {
            a.state = AppState::Started;
            a.started_at = Some(Instant::now());
            a.stopped_at = None;
        } else {
            if a.state == AppState::Started {
                a.stopped_at = Some(Instant::now());
            }
            a.state = AppState::Stopped;
            a.started_at = None;
        }
        a.updated_at = now_iso();
        let v = present::app(self.base(), a);
        st.emit_instances(g);
        drop(st);
        if start && !startup.is_zero() {
            // Instances report STARTING until the startup time has passed; tell the router then.
            let cc = Arc::clone(self.cc);
            let g = g.to_owned();
            tokio::spawn(async move {
                tokio::time::sleep(startup).await;
                cc.state().emit_instances(&g);
            });
        }
        Ok(ok(v))
    }

    pub(crate) fn list_packages(&self) -> Result<Response, ApiError> {
        let q = self.list_query(super::lists::PACKAGE_KEYS, &["created_at", "updated_at"])?;
        let st = self.st();
        let items: Vec<Value> = st
            .packages
            .iter()
            .filter(|p| {
                let Some(app) = st.app(&p.app_guid) else { return false };
                self.can_read_space(&st, &app.space_guid)
                    && q.allows("guids", &p.guid)
                    && q.allows("states", &p.state)
                    && q.allows("types", "bits")
                    && q.allows("app_guids", &p.app_guid)
                    && q.allows("space_guids", &app.space_guid)
            })
            .map(|p| present::package(self.base(), p))
            .collect();
        Ok(self.page(&ordered(items, &q), &q, "/v3/packages"))
    }

    pub(crate) fn get_package(&self, g: &str) -> Result<Response, ApiError> {
        let st = self.st();
        let p = st
            .packages
            .iter()
            .find(|p| p.guid == g && st.app(&p.app_guid).is_some_and(|a| self.can_read_space(&st, &a.space_guid)))
            .ok_or_else(|| ApiError::not_found("Package"))?;
        Ok(ok(present::package(self.base(), p)))
    }

    pub(crate) fn create_build(&self) -> Result<Response, ApiError> {
        let body = Value::Object(self.body(&[
            "package",
            "lifecycle",
            "staging_memory_in_mb",
            "staging_disk_in_mb",
            "metadata",
        ])?);
        let package = str_at(&body, "/package/guid").unwrap_or("").to_owned();
        let mut st = self.st();
        st.advance();
        let Some(pkg) = st
            .packages
            .iter()
            .find(|p| p.guid == package && st.app(&p.app_guid).is_some_and(|a| self.can_read_space(&st, &a.space_guid)))
            .cloned()
        else {
            return Err(ApiError::unprocessable(
                "Unable to use package. Ensure that the package exists and you have access to it.",
            ));
        };
        let space = st.app(&pkg.app_guid).map(|a| a.space_guid.clone()).unwrap_or_default();
        self.require_write(&st, &space, APP_MANAGERS)?;
        if st.builds.iter().any(|b| b.app_guid == pkg.app_guid && b.state == "STAGING") {
            return Err(ApiError::staging_in_progress());
        }
        let now = now_iso();
        let build = Build {
            guid: guid(),
            app_guid: pkg.app_guid.clone(),
            package_guid: pkg.guid.clone(),
            state: "STAGING".to_owned(),
            droplet_guid: None,
            error: None,
            ready_at: Instant::now() + st.staging_time,
            created_by: (self.actor.id.clone(), self.actor.name.clone()),
            created_at: now.clone(),
            updated_at: now,
        };
        let v = present::build(self.base(), &build);
        st.builds.push(build);
        Ok(json_response(StatusCode::CREATED, &v))
    }

    pub(crate) fn get_build(&self, g: &str) -> Result<Response, ApiError> {
        let mut st = self.st();
        st.advance();
        let b = st
            .builds
            .iter()
            .find(|b| b.guid == g && st.app(&b.app_guid).is_some_and(|a| self.can_read_space(&st, &a.space_guid)))
            .ok_or_else(|| ApiError::not_found("Build"))?;
        Ok(ok(present::build(self.base(), b)))
    }

    pub(crate) fn get_droplet(&self, g: &str) -> Result<Response, ApiError> {
        let mut st = self.st();
        st.advance();
        let d = st
            .droplets
            .iter()
            .find(|d| d.guid == g && st.app(&d.app_guid).is_some_and(|a| self.can_read_space(&st, &a.space_guid)))
            .ok_or_else(|| ApiError::not_found("Droplet"))?;
        let mut v = present::droplet(self.base(), &st, d);
        // droplets_controller.rb#show: `show_secrets` only for `can_read_secrets_in_space?`
        // (admin, admin read-only, Space Developer); others get droplet_presenter.rb's redactions.
        // (`/v3/apps/:guid/droplets/current` presents with the default, unredacted.)
        let space = st.app(&d.app_guid).map(|a| a.space_guid.as_str()).unwrap_or("");
        if !self.actor.read_secrets && !st.roles_in(&self.actor.id, space).contains(&Role::Developer) {
            v["execution_metadata"] = json!("[PRIVATE DATA HIDDEN]");
            v["process_types"] = json!({ "redacted_message": "[PRIVATE DATA HIDDEN]" });
        }
        Ok(ok(v))
    }

    pub(crate) fn create_deployment(&self) -> Result<Response, ApiError> {
        let body =
            Value::Object(self.body(&["droplet", "revision", "strategy", "options", "relationships", "metadata"])?);
        let app_guid = str_at(&body, "/relationships/app/data/guid").unwrap_or("").to_owned();
        let mut st = self.st();
        st.advance();
        let Some(app) = st.app(&app_guid).filter(|a| self.can_read_space(&st, &a.space_guid)).cloned() else {
            return Err(ApiError::unprocessable(
                "Unable to use app. Ensure that the app exists and you have access to it.",
            ));
        };
        self.require_write(&st, &app.space_guid, APP_MANAGERS)?;
        let droplet = str_at(&body, "/droplet/guid").map(str::to_owned).or_else(|| app.droplet_guid.clone());
        if droplet.as_ref().is_none_or(|d| !st.droplets.iter().any(|x| &x.guid == d && x.app_guid == app_guid)) {
            return Err(ApiError::unprocessable(
                "Unable to assign current droplet. Ensure the droplet exists and belongs to this app.",
            ));
        }
        let strategy = body.get("strategy").and_then(Value::as_str).unwrap_or("rolling").to_owned();
        // A newer deployment supersedes the one in flight, as in CC.
        for d in st.deployments.iter_mut().filter(|d| d.app_guid == app_guid && d.deploying()) {
            d.reason = "SUPERSEDED".to_owned();
        }
        let now = now_iso();
        let target_instances = st.process_of(&app_guid, "web").map_or(0, |p| p.instances);
        let dep_guid = guid();
        // An app whose instances run for real gets the deployment's own web process, as
        // `DeploymentCreate#create_deployment_process` clones it (type `web`, a new guid), with
        // `[max_in_flight, desired].min` instances to start (`starting_process_instances`;
        // `max_in_flight` is 1 unless given, and the double takes no options). The deployment
        // updater of `crate::instances` rolls it out.
        // (A canary deployment of such an app only keeps time: its pause is not modelled.)
        let process_guid = (st.real_apps.contains(&app_guid) && strategy == "rolling").then(|| {
            let template = st.process_of(&app_guid, "web").cloned();
            let new = Process {
                guid: guid(),
                instances: target_instances.min(1),
                forced_states: None,
                unready: 0,
                created_at: now.clone(),
                updated_at: now.clone(),
                ..template.unwrap_or_else(|| Process {
                    guid: String::new(),
                    app_guid: app_guid.clone(),
                    process_type: "web".to_owned(),
                    instances: 0,
                    command: None,
                    forced_states: None,
                    unready: 0,
                    ports: None,
                    created_at: String::new(),
                    updated_at: String::new(),
                    metadata: Default::default(),
                })
            };
            let g = new.guid.clone();
            st.processes.push(new);
            g
        });
        let dep = Deployment {
            guid: dep_guid,
            app_guid: app_guid.clone(),
            droplet_guid: droplet,
            previous_droplet_guid: app.droplet_guid.clone(),
            strategy,
            reason: "DEPLOYING".to_owned(),
            ready_at: Instant::now() + st.deployment_time,
            process_guid,
            target_instances,
            created_at: now.clone(),
            updated_at: now,
        };
        let v = present::deployment(self.base(), &st, &dep);
        st.deployments.push(dep);
        Ok(json_response(StatusCode::CREATED, &v))
    }

    pub(crate) fn get_deployment(&self, g: &str) -> Result<Response, ApiError> {
        let mut st = self.st();
        st.advance();
        let d = st
            .deployments
            .iter()
            .find(|d| d.guid == g && st.app(&d.app_guid).is_some_and(|a| self.can_read_space(&st, &a.space_guid)))
            .ok_or_else(|| ApiError::not_found("Deployment"))?;
        Ok(ok(present::deployment(self.base(), &st, d)))
    }

    pub(crate) fn cancel_deployment(&self, g: &str) -> Result<Response, ApiError> {
        let mut st = self.st();
        st.advance();
        let d = st
            .deployments
            .iter()
            .find(|d| d.guid == g && st.app(&d.app_guid).is_some_and(|a| self.can_read_space(&st, &a.space_guid)))
            .cloned()
            .ok_or_else(|| ApiError::not_found("Deployment"))?;
        let space = st.app(&d.app_guid).map(|a| a.space_guid.clone()).unwrap_or_default();
        self.require_write(&st, &space, APP_MANAGERS)?;
        if !d.deploying() {
            return Err(ApiError::unprocessable("Cannot cancel a deployment that is not deploying."));
        }
        if let Some(x) = st.deployments.iter_mut().find(|x| x.guid == g) {
            x.reason = "CANCELED".to_owned();
            x.updated_at = now_iso();
        }
        Ok(json_response(StatusCode::OK, &json!({})))
    }
}
