//! Every route, in one table: its function, the scope a key needs for it, and the class of
//! routes whose per-tenant bucket it takes a token from. [`super::serve`] looks a function's
//! route up here by the function's name and checks both before the handler runs; nothing
//! else decides who may call a route. Tests hold the table to `openapi.yaml` and
//! `template.yaml`.
//!
//! Scope by route: `ingest` sends events; `read` reads (and tests patterns and triggers, which
//! read and store nothing but cost CPU like a read); `admin` changes what the tenant's triggers
//! do and where its webhooks go, sees or replaces the signing secret, and drafts triggers with a
//! model (which spends the tenant's AI budget).

use crate::pipeline::throttle::RouteClass;
use crate::tenant::Scope;

/// One route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The route key, as API Gateway names it: `METHOD /path`.
    pub key: &'static str,
    /// The function that serves it (its directory under `functions/`).
    pub function: &'static str,
    pub scope: Scope,
    pub class: RouteClass,
}

const fn route(key: &'static str, function: &'static str, scope: Scope) -> Route {
    let class = match scope {
        Scope::Ingest => RouteClass::Ingest,
        Scope::Read => RouteClass::Reads,
        Scope::Admin => RouteClass::Writes,
    };
    Route {
        key,
        function,
        scope,
        class,
    }
}

/// Every route of the API.
pub const ROUTES: &[Route] = &[
    route("POST /v1/events", "ingest-events", Scope::Ingest),
    route("GET /v1/events/{id}", "get-event", Scope::Read),
    route("GET /v1/triggers", "list-triggers", Scope::Read),
    route("GET /v1/triggers/{id}", "get-trigger", Scope::Read),
    route("GET /v1/firings", "list-firings", Scope::Read),
    route("GET /v1/firings/{id}", "get-firing", Scope::Read),
    route("POST /v1/patterns/test", "test-pattern", Scope::Read),
    route("POST /v1/triggers/test", "test-trigger", Scope::Read),
    route("POST /v1/triggers", "create-trigger", Scope::Admin),
    route("PUT /v1/triggers/{id}", "update-trigger", Scope::Admin),
    route("DELETE /v1/triggers/{id}", "delete-trigger", Scope::Admin),
    // Admin, not read: a draft spends the tenant's AI budget (docs/security.md).
    route("POST /v1/triggers/draft", "draft-trigger", Scope::Admin),
    route(
        "POST /v1/deliveries/{id}/retry",
        "retry-delivery",
        Scope::Admin,
    ),
    route(
        "POST /v1/signing-secret/rotate",
        "rotate-signing-secret",
        Scope::Admin,
    ),
    // Added by the signing-secret work (harden-secrets); admin like the rotation.
    route("GET /v1/signing-secret", "get-signing-secret", Scope::Admin),
];

/// The route `function` serves.
pub fn by_function(function: &str) -> Option<&'static Route> {
    ROUTES.iter().find(|r| r.function == function)
}

/// The route with this key (`METHOD /path`).
pub fn by_key(key: &str) -> Option<&'static Route> {
    ROUTES.iter().find(|r| r.key == key)
}
