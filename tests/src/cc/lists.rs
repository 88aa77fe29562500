//! The list endpoints around staging that switchctl and the cf CLI may read, beside the ones in
//! `apps.rs`: `GET /v3/builds`, `/v3/deployments`, `/v3/droplets`, `/v3/buildpacks`,
//! `/v3/apps/:guid/droplets`, `/v3/apps/:guid/packages`, `GET /v3/apps/:guid/env`, and an app's
//! user-provided environment variables (`GET`/`PATCH /v3/apps/:guid/environment_variables`).
//!
//! Each list validates its query as its message class does (the keys, in `allowed_keys` order,
//! are the "Valid parameters" text) and filters what the double models; filters on things the
//! double does not hold (stacks, status details) compare with its fixed values.

use axum::response::Response;
use serde_json::{Value, json};

use super::{
    Cx, ok, ordered, present,
    state::{App, Role, State},
};
use crate::{error::ApiError, pagination::Rules};

/// `BuildsListMessage` (cloud_controller_ng `app/messages/builds_list_message.rb`).
const BUILD_KEYS: &[&str] = &["guids", "app_guids", "package_guids", "states", "label_selector"];
/// `DeploymentsListMessage` (`app/messages/deployments_list_message.rb`).
const DEPLOYMENT_KEYS: &[&str] = &["guids", "app_guids", "states", "status_reasons", "status_values", "label_selector"];
/// `DropletsListMessage` (`app/messages/droplets_list_message.rb`); `app_guid` and `package_guid`
/// are the nesting keys, merged in from the path (`subresource_query_params`).
const DROPLET_KEYS: &[&str] = &[
    "guids",
    "app_guid",
    "app_guids",
    "current",
    "organization_guids",
    "package_guid",
    "space_guids",
    "states",
    "label_selector",
];
/// `PackagesListMessage` (`app/messages/packages_list_message.rb`).
pub(crate) const PACKAGE_KEYS: &[&str] =
    &["guids", "states", "types", "app_guids", "app_guid", "space_guids", "organization_guids", "label_selector"];
/// `BuildpacksListMessage` (`app/messages/buildpacks_list_message.rb`), whose own keys repeat
/// `page` and `per_page`.
const BUILDPACK_KEYS: &[&str] = &["guids", "stacks", "names", "lifecycle", "page", "per_page", "label_selector"];
const CREATED_UPDATED: &[&str] = &["created_at", "updated_at"];
/// `Censorship::PRIVATE_DATA_HIDDEN_LIST` (`app/presenters/helpers/censorship.rb`).
const HIDDEN_IN_LISTS: &str = "[PRIVATE DATA HIDDEN IN LISTS]";

/// Who may read `/v3/apps/:guid/env` (cloud_controller_ng `lib/cloud_controller/permissions.rb`
/// `ROLES_FOR_APP_ENVIRONMENT_VARIABLES_READING`), and who sees `system_env_json` unredacted
/// (`ROLES_FOR_SPACE_SECRETS_READING`).
const ENV_READERS: &[Role] = &[Role::Developer, Role::Supporter];
const SECRET_READERS: &[Role] = &[Role::Developer];
/// Who may patch them: `can_manage_apps_in_active_space?`, `ROLES_FOR_APP_MANAGING` (Space
/// Developer and Space Supporter; `permissions.rb`).
const ENV_WRITERS: &[Role] = &[Role::Developer, Role::Supporter];

impl Cx<'_> {
    fn readable_app<'s>(&self, st: &'s State, g: &str) -> Option<&'s App> {
        st.app(g).filter(|a| self.can_read_space(st, &a.space_guid))
    }

    /// The `app_nested_request` check of packages and droplets: on `/v3/apps/:guid/…` the app is
    /// given by the path, and these filters are "unknown" (a second error after the others).
    pub(crate) fn nested_query(&self, rules: &Rules<'_>) -> Result<crate::pagination::ListQuery, ApiError> {
        let mut errors = Vec::new();
        let q = match crate::pagination::check(self.call.query.as_deref(), rules) {
            Ok(q) => Some(q),
            Err(e) => {
                errors = e;
                None
            }
        };
        let given: Vec<String> = form_urlencoded::parse(self.call.query.as_deref().unwrap_or("").as_bytes())
            .map(|(k, _)| k.into_owned())
            .collect();
        let nested: Vec<&str> = ["app_guids", "organization_guids", "space_guids"]
            .into_iter()
            .filter(|k| given.iter().any(|g| g == k))
            .collect();
        if !nested.is_empty() {
            errors.push(format!("Unknown query parameter(s): '{}'", nested.join("', '")));
        }
        match q {
            Some(mut q) if errors.is_empty() => {
                // Merged in from the path, and left out of the hrefs (`to_param_hash(exclude:)`).
                q.filters.remove("app_guid");
                Ok(q)
            }
            _ => Err(ApiError::bad_query(&errors.join(", "))),
        }
    }

    /// `GET /v3/builds` (builds_controller.rb#index): builds of the apps in readable spaces.
    pub(crate) fn list_builds(&self) -> Result<Response, ApiError> {
        let q = self.query(&Rules::list(BUILD_KEYS, CREATED_UPDATED))?;
        let mut st = self.st();
        st.advance();
        let items: Vec<Value> = st
            .builds
            .iter()
            .filter(|b| self.readable_app(&st, &b.app_guid).is_some())
            .filter(|b| {
                q.allows("guids", &b.guid)
                    && q.allows("app_guids", &b.app_guid)
                    && q.allows("package_guids", &b.package_guid)
                    && q.allows("states", &b.state)
                    // Builds carry no labels in the double.
                    && q.selects(&Default::default())
            })
            .map(|b| present::build(self.base(), b))
            .collect();
        Ok(self.page(&ordered(items, &q), &q, "/v3/builds"))
    }

    /// `GET /v3/deployments` (deployments_controller.rb#index).
    pub(crate) fn list_deployments(&self) -> Result<Response, ApiError> {
        let q = self.query(&Rules::list(DEPLOYMENT_KEYS, CREATED_UPDATED))?;
        let mut st = self.st();
        st.advance();
        // The filters of `DeploymentsListMessage` (cloud_controller_ng
        // `app/messages/deployments_list_message.rb`, `app/fetchers/deployment_list_fetcher.rb`):
        // `states` is the deprecated DEPLOYING/DEPLOYED/CANCELED column, which the presenter no
        // longer shows ([`crate::cc::state::Deployment::state`]).
        let items: Vec<Value> = st
            .deployments
            .iter()
            .filter(|d| self.readable_app(&st, &d.app_guid).is_some())
            .filter(|d| {
                q.allows("guids", &d.guid)
                    && q.allows("app_guids", &d.app_guid)
                    && q.allows("states", d.state())
                    && q.allows("status_reasons", &d.reason)
                    && q.allows("status_values", d.status_value())
                    // The double keeps no deployment metadata (presented empty).
                    && q.selects(&Default::default())
            })
            .map(|d| present::deployment(self.base(), &st, d))
            .collect();
        Ok(self.page(&ordered(items, &q), &q, "/v3/deployments"))
    }

    /// `GET /v3/droplets` (droplets_controller.rb#index, not nested): `current` is refused here
    /// (`not_app_nested_request`).
    pub(crate) fn list_droplets(&self) -> Result<Response, ApiError> {
        let q = match crate::pagination::check(self.call.query.as_deref(), &Rules::list(DROPLET_KEYS, CREATED_UPDATED))
        {
            Ok(q) if q.filters.contains_key("current") => {
                return Err(ApiError::bad_query("Unknown query parameter(s): 'current'"));
            }
            Ok(q) => q,
            Err(mut e) => {
                if self.call.query.as_deref().is_some_and(|raw| {
                    form_urlencoded::parse(raw.as_bytes()).any(|(k, v)| k == "current" && !v.is_empty())
                }) {
                    e.push("Unknown query parameter(s): 'current'".to_owned());
                }
                return Err(ApiError::bad_query(&e.join(", ")));
            }
        };
        let mut st = self.st();
        st.advance();
        let items = self.droplets_matching(&st, &q, None);
        Ok(self.page(&ordered(items, &q), &q, "/v3/droplets"))
    }

    /// `GET /v3/apps/:guid/droplets`: the query is validated (400) before the app is looked up
    /// (404); `current=true` keeps the app's current droplet, any other value is "Current only
    /// accepts the value 'true'".
    pub(crate) fn list_app_droplets(&self, g: &str) -> Result<Response, ApiError> {
        let q = self.nested_query(&Rules::list(DROPLET_KEYS, CREATED_UPDATED))?;
        if q.filters.get("current").is_some_and(|c| c != "true") {
            return Err(ApiError::bad_query("Current only accepts the value 'true'"));
        }
        let mut st = self.st();
        st.advance();
        let app = self.readable_app(&st, g).ok_or_else(|| ApiError::not_found("App"))?;
        let current = q.filters.contains_key("current").then(|| app.droplet_guid.clone().unwrap_or_default());
        let items = self.droplets_matching(&st, &q, Some((g, current.as_deref())));
        Ok(self.page(&ordered(items, &q), &q, &format!("/v3/apps/{g}/droplets")))
    }

    fn droplets_matching(
        &self,
        st: &State,
        q: &crate::pagination::ListQuery,
        app: Option<(&str, Option<&str>)>,
    ) -> Vec<Value> {
        st.droplets
            .iter()
            .filter(|d| {
                let Some(owner) = self.readable_app(st, &d.app_guid) else { return false };
                let org = st.space(&owner.space_guid).map(|s| s.org_guid.as_str()).unwrap_or("");
                app.is_none_or(|(a, current)| d.app_guid == a && current.is_none_or(|c| c == d.guid))
                    && q.allows("guids", &d.guid)
                    && q.allows("app_guids", &d.app_guid)
                    && q.allows("space_guids", &owner.space_guid)
                    && q.allows("organization_guids", org)
                    // Every droplet the double holds is staged.
                    && q.allows("states", "STAGED")
                    && q.selects(&Default::default())
            })
            .map(|d| {
                // PaginatedListPresenter renders with `show_secrets: false` and
                // `Censorship::PRIVATE_DATA_HIDDEN_LIST`; droplet_presenter.rb redacts these two.
                let mut v = present::droplet(self.base(), st, d);
                v["execution_metadata"] = json!(HIDDEN_IN_LISTS);
                v["process_types"] = json!({ "redacted_message": HIDDEN_IN_LISTS });
                v
            })
            .collect()
    }

    /// `GET /v3/apps/:guid/packages` (packages_controller.rb#index, nested).
    pub(crate) fn list_app_packages(&self, g: &str) -> Result<Response, ApiError> {
        let q = self.nested_query(&Rules::list(PACKAGE_KEYS, CREATED_UPDATED))?;
        let st = self.st();
        self.readable_app(&st, g).ok_or_else(|| ApiError::not_found("App"))?;
        let items: Vec<Value> = st
            .packages
            .iter()
            .filter(|p| {
                p.app_guid == g
                    && q.allows("guids", &p.guid)
                    && q.allows("states", &p.state)
                    && q.allows("types", "bits")
                    && q.selects(&Default::default())
            })
            .map(|p| present::package(self.base(), p))
            .collect();
        Ok(self.page(&ordered(items, &q), &q, &format!("/v3/apps/{g}/packages")))
    }

    /// `GET /v3/buildpacks` (buildpacks_controller.rb#index): readable by every user. The double
    /// has the one buildpack its apps stage with.
    pub(crate) fn list_buildpacks(&self) -> Result<Response, ApiError> {
        let q = self.query(&Rules::list(BUILDPACK_KEYS, &["created_at", "updated_at", "position"]))?;
        let items: Vec<Value> = [present::buildpack(self.base())]
            .into_iter()
            .filter(|b| {
                let at = |k: &str| b[k].as_str().unwrap_or("").to_owned();
                q.allows("guids", &at("guid"))
                    && q.allows("names", &at("name"))
                    && q.allows("stacks", &at("stack"))
                    && q.filters.get("lifecycle").is_none_or(|l| *l == at("lifecycle"))
                    && q.selects(&Default::default())
            })
            .collect();
        Ok(self.page(&items, &q, "/v3/buildpacks"))
    }

    /// `GET /v3/apps/:guid/env` (apps_controller.rb#show_env): 404 unless the app is readable,
    /// 403 unless admin, admin read-only, Space Developer or Space Supporter; a Supporter sees
    /// `system_env_json` as `{"redacted_message": "[PRIVATE DATA HIDDEN]"}` (`redact_hash`).
    /// The double has no service bindings and empty environment variable groups.
    pub(crate) fn app_env(&self, g: &str) -> Result<Response, ApiError> {
        let st = self.st();
        let app = self.readable_app(&st, g).ok_or_else(|| ApiError::not_found("App"))?;
        let roles = st.roles_in(&self.actor.id, &app.space_guid);
        let secrets_globally = self.actor.read_secrets;
        if !secrets_globally && !roles.iter().any(|r| ENV_READERS.contains(r)) {
            return Err(ApiError::not_authorized());
        }
        let show_secrets = secrets_globally || roles.iter().any(|r| SECRET_READERS.contains(r));
        let space = st.space(&app.space_guid);
        let org = space.and_then(|s| st.org(&s.org_guid));
        let uris: Vec<String> = st
            .routes
            .iter()
            .filter(|r| r.destinations.iter().any(|d| d.app_guid == g))
            .map(|r| st.route_url(r))
            .collect();
        let system = if show_secrets {
            json!({ "VCAP_SERVICES": {} })
        } else {
            json!({ "redacted_message": "[PRIVATE DATA HIDDEN]" })
        };
        // lib/vcap/vars_builder.rb#to_hash for an AppModel.
        let vcap_application = json!({
            "cf_api": self.base(),
            "limits": { "fds": 16384 },
            "application_name": app.name,
            "application_uris": uris,
            "name": app.name,
            "space_name": space.map(|s| s.name.clone()),
            "space_id": app.space_guid,
            "organization_id": org.map(|o| o.guid.clone()),
            "organization_name": org.map(|o| o.name.clone()),
            "uris": uris,
            "users": null,
            "application_id": app.guid,
        });
        Ok(ok(json!({
            "environment_variables": app.environment_variables,
            "staging_env_json": {},
            "running_env_json": {},
            "system_env_json": system,
            "application_env_json": { "VCAP_APPLICATION": vcap_application },
        })))
    }

    /// `GET /v3/apps/:guid/environment_variables` (`apps_controller.rb#show_environment_variables`):
    /// 404 for an app the caller cannot see, 403 for one whose environment it may not read (a
    /// Space Auditor or Manager), else `AppEnvironmentVariablesPresenter`: `{var, links}`.
    pub(crate) fn app_environment_variables(&self, g: &str) -> Result<Response, ApiError> {
        let st = self.st();
        let app = self.readable_app(&st, g).ok_or_else(|| ApiError::not_found("App"))?;
        let roles = st.roles_in(&self.actor.id, &app.space_guid);
        if !self.actor.read_secrets && !roles.iter().any(|r| ENV_READERS.contains(r)) {
            return Err(ApiError::not_authorized());
        }
        Ok(ok(env_vars(self.base(), app)))
    }

    /// `PATCH /v3/apps/:guid/environment_variables` (`apps_controller.rb#update_environment_variables`,
    /// `UpdateEnvironmentVariablesMessage`, `AppPatchEnvironmentVariables#patch`): the given keys
    /// are merged into the app's, a `null` deletes its key (`merge(new_values).compact`). Running
    /// instances keep the environment they were started with.
    pub(crate) fn patch_environment_variables(&self, g: &str) -> Result<Response, ApiError> {
        let mut st = self.st();
        let app = self.readable_app(&st, g).ok_or_else(|| ApiError::not_found("App"))?;
        let space = app.space_guid.clone();
        self.require_write(&st, &space, ENV_WRITERS)?;
        let var = validate_env_body(&self.call.body)?;
        let Some(app) = st.app_mut(g) else { return Err(ApiError::not_found("App")) };
        for (key, value) in var {
            match value {
                Some(v) => app.environment_variables.insert(key, v),
                None => app.environment_variables.remove(&key),
            };
        }
        app.updated_at = crate::clock::now_iso();
        let app = app.clone();
        Ok(ok(env_vars(self.base(), &app)))
    }
}

/// `AppEnvironmentVariablesPresenter#to_hash`.
fn env_vars(base: &str, app: &App) -> Value {
    json!({
        "var": app.environment_variables,
        "links": {
            "self": { "href": format!("{base}/v3/apps/{}/environment_variables", app.guid) },
            "app": { "href": format!("{base}/v3/apps/{}", app.guid) },
        },
    })
}

/// The body of a PATCH as `UpdateEnvironmentVariablesMessage` validates it: no key but `var`
/// (`NoAdditionalKeysValidator`), and `var` an object whose keys are not empty, do not start with
/// `VCAP_` or `VMC` (any case) and are not `PORT`, and whose values are strings or `null`
/// (`EnvironmentVariablesStringValuesValidator`, `app/messages/validators.rb`). A missing or
/// `null` `var` is "must be an object" too: an `EachValidator` validates nil unless told
/// `allow_nil`. Every error is collected, in that order, as `errors.full_messages` (`Var …` for
/// the attribute, the bare text for `:base`) joined by `, ` (`ApiError#message`).
fn validate_env_body(body: &[u8]) -> Result<Vec<(String, Option<String>)>, ApiError> {
    let text = if body.is_empty() { &b"{}"[..] } else { body };
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(text) else {
        return Err(ApiError::parse_error());
    };
    let mut errors = Vec::new();
    let extra: Vec<&str> = map.keys().map(String::as_str).filter(|k| *k != "var").collect();
    if !extra.is_empty() {
        errors.push(format!("Unknown field(s): '{}'", extra.join("', '")));
    }
    let mut out = Vec::new();
    match map.get("var") {
        Some(Value::Object(var)) => {
            for (key, value) in var {
                let upper = key.to_ascii_uppercase();
                if key.is_empty() {
                    errors.push("Var key must be a minimum length of 1".to_owned());
                } else if upper.starts_with("VCAP_") {
                    errors.push("Var cannot start with VCAP_".to_owned());
                } else if upper.starts_with("VMC") {
                    errors.push("Var cannot start with VMC_".to_owned());
                } else if upper == "PORT" {
                    errors.push("Var cannot set PORT".to_owned());
                } else {
                    match value {
                        Value::String(v) => out.push((key.clone(), Some(v.clone()))),
                        Value::Null => out.push((key.clone(), None)),
                        // Ruby's `to_json` of the value: compact, as serde_json writes it.
                        other => errors
                            .push(format!("Non-string value in environment variable for key '{key}', value '{other}'")),
                    }
                }
            }
        }
        _ => errors.push("Var must be an object".to_owned()),
    }
    if errors.is_empty() { Ok(out) } else { Err(ApiError::unprocessable(errors.join(", "))) }
}
