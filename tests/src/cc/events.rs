//! Audit events (`GET /v3/audit_events`): filtered by `types`, `target_guids`, `space_guids` and
//! `organization_guids` (cloud_controller_ng `app/messages/events_list_message.rb`,
//! `app/fetchers/event_list_fetcher.rb`), visible to whoever may read the event's space.

use axum::response::Response;
use serde_json::Value;

use super::{Cx, ordered, present};
use crate::error::ApiError;

impl Cx<'_> {
    pub(crate) fn list_audit_events(&self) -> Result<Response, ApiError> {
        let q = self.list_query(
            // EventsListMessage (cloud_controller_ng app/messages/events_list_message.rb): `guids`
            // from ListMessage, then its own keys; no label_selector.
            &["guids", "types", "target_guids", "space_guids", "organization_guids"],
            &["created_at", "updated_at"],
        )?;
        let st = self.st();
        let items: Vec<Value> = st
            .audit_events
            .iter()
            .filter(|e| self.can_read_space(&st, &e.space_guid))
            .filter(|e| {
                q.allows("guids", &e.guid)
                    && q.allows("types", e.kind)
                    && q.allows("target_guids", &e.target.0)
                    && q.allows("space_guids", &e.space_guid)
                    && q.allows("organization_guids", &e.org_guid)
            })
            .map(|e| present::audit_event(self.base(), e))
            .collect();
        Ok(self.page(&ordered(items, &q), &q, "/v3/audit_events"))
    }
}
