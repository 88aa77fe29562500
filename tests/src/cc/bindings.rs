//! Service route bindings, read-only: `GET /v3/service_route_bindings` and
//! `GET /v3/service_route_bindings/:guid` (cloud_controller_ng
//! `app/controllers/v3/service_route_bindings_controller.rb`). Bindings are seeded with
//! [`CfDouble::bind_route_service`](crate::CfDouble::bind_route_service); creating one through the
//! API (a broker's job, or a user-provided instance) is not modelled.
//!
//! The list accepts `route_guids`, `service_instance_guids`, `service_instance_names`, `guids`,
//! `label_selector` and `include` (`route`, `service_instance`) besides pagination
//! (`app/messages/service_route_bindings_list_message.rb` over `MetadataListMessage` and
//! `ListMessage`); anything else is 400 `CF-BadQueryParameter`, as is an include CC does not know
//! (`IncludeParamValidator` in `app/messages/base_message.rb`, reported through `invalid_param!`).
//! A caller sees the bindings whose service instance is in a space it can read
//! (`RouteBindingListFetcher.fetch_some` joins the spaces on the service instance).

use axum::response::Response;
use serde_json::{Value, json};

use super::{Cx, ok, ordered, present, state::RouteBinding};
use crate::{error::ApiError, pagination::Rules};

/// In CC's order, which its "Valid parameters are" text follows: `ListMessage`'s `guids`, the
/// message's `QUERY_PARAMS`, then `MetadataListMessage`'s `label_selector`.
const LIST_KEYS: &[&str] =
    &["guids", "service_instance_guids", "service_instance_names", "route_guids", "include", "label_selector"];

/// `ServiceRouteBindingsListMessage`'s `IncludeParamValidator` values, in CC's order.
const INCLUDES: &[&str] = &["route", "service_instance"];

impl Cx<'_> {
    fn binding_visible(&self, st: &super::state::State, b: &RouteBinding) -> bool {
        self.can_read_space(st, &b.space_guid)
    }

    pub(crate) fn list_route_bindings(&self) -> Result<Response, ApiError> {
        let q = self.query(&Rules::list(LIST_KEYS, &["created_at", "updated_at"]).with_include(INCLUDES))?;
        let include: Vec<&str> = q.include.iter().map(String::as_str).collect();
        let st = self.st();
        let bindings: Vec<&RouteBinding> = st
            .route_bindings
            .iter()
            .filter(|b| self.binding_visible(&st, b))
            .filter(|b| {
                q.allows("guids", &b.guid)
                    && q.allows("route_guids", &b.route_guid)
                    && q.allows("service_instance_guids", &b.service_instance_guid)
                    && q.allows("service_instance_names", &b.service_instance_name)
                    && q.selects(&b.metadata.labels)
            })
            .collect();
        let items: Vec<Value> = bindings.iter().map(|b| present::route_binding(self.base(), b)).collect();
        let items = ordered(items, &q);
        let (resources, pagination) =
            crate::pagination::paginate(&items, &q, self.base(), "/v3/service_route_bindings");
        let shown: Vec<&RouteBinding> =
            bindings.into_iter().filter(|b| resources.iter().any(|r| r["guid"] == b.guid.as_str())).collect();
        let mut v = json!({ "pagination": pagination, "resources": resources });
        self.binding_includes(&st, &shown, &include, &mut v);
        Ok(ok(v))
    }

    pub(crate) fn get_route_binding(&self, g: &str) -> Result<Response, ApiError> {
        let q = self.query(&Rules::show(&["include"], INCLUDES))?;
        let include: Vec<&str> = q.include.iter().map(String::as_str).collect();
        let st = self.st();
        let b = st
            .route_bindings
            .iter()
            .find(|b| b.guid == g && self.binding_visible(&st, b))
            .ok_or_else(|| ApiError::not_found("Service route binding"))?;
        let mut v = present::route_binding(self.base(), b);
        self.binding_includes(&st, &[b], &include, &mut v);
        Ok(ok(v))
    }

    /// `IncludeBindingRouteDecorator` (routes ordered by creation) and
    /// `IncludeBindingServiceInstanceDecorator`.
    fn binding_includes(&self, st: &super::state::State, shown: &[&RouteBinding], include: &[&str], v: &mut Value) {
        if include.contains(&"route") {
            let routes: Vec<Value> = st
                .routes
                .iter()
                .filter(|r| shown.iter().any(|b| b.route_guid == r.guid))
                .map(|r| present::route(self.base(), st, r))
                .collect();
            v["included"]["routes"] = json!(routes);
        }
        if include.contains(&"service_instance") {
            // UNCONFIRMED: the double keeps no service instances, so this is a minimal
            // `ServiceInstancePresenter` shape (guid, name, type, space), not the full object.
            let mut seen = Vec::new();
            let instances: Vec<Value> = shown
                .iter()
                .filter(|b| {
                    let new = !seen.contains(&b.service_instance_guid);
                    seen.push(b.service_instance_guid.clone());
                    new
                })
                .map(|b| {
                    json!({
                        "guid": b.service_instance_guid,
                        "name": b.service_instance_name,
                        "type": if b.managed { "managed" } else { "user-provided" },
                        "route_service_url": b.route_service_url,
                        "relationships": { "space": { "data": { "guid": b.space_guid } } },
                    })
                })
                .collect();
            v["included"]["service_instances"] = json!(instances);
        }
    }
}
