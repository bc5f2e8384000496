//! Who may call which route: the scope each route needs (403 for a valid key without it) and
//! the per-tenant request buckets of each class of routes (429), both checked by the gate
//! every route function serves behind (`api::serve`), before its handler.

use serde_json::{Value, json};
use sqlx::PgPool;
use triggeriq::api::routes::{self, ROUTES, Route};
use triggeriq::api::triggers::{self, TriggerApi};
use triggeriq::api::{ApiError, Gate, firings, signing};
use triggeriq::config::{ApiConfig, RouteRate, ThrottleConfig};
use triggeriq::dynamodb::{RateDecision, RateLimit, RateLimiter, Table};
use triggeriq::pipeline::throttle::{RouteClass, Throttle};
use triggeriq::tenant::{Scope, Scopes, TenantId};
use triggeriq::testing::faults::dynamodb_failing;
use triggeriq::testing::openapi;
use triggeriq::testing::requests::call_gated;

use super::harness::{Req, Stack};

fn route(function: &str) -> &'static Route {
    routes::by_function(function).unwrap_or_else(|| panic!("no route for {function}"))
}

fn ungated_limits(gate_route: &'static Route) -> Gate {
    Gate {
        route: gate_route,
        throttle: None,
    }
}

/// Every set of scopes (the empty one too).
fn every_scope_set() -> Vec<Scopes> {
    (0..8u8)
        .map(|bits| {
            Scope::ALL
                .into_iter()
                .enumerate()
                .filter(|(i, _)| bits & (1 << i) != 0)
                .map(|(_, s)| s)
                .collect()
        })
        .collect()
}

#[test]
fn the_route_table_gives_each_route_the_scope_the_design_says() {
    let expected = [
        ("POST /v1/events", Scope::Ingest),
        ("GET /v1/events/{id}", Scope::Read),
        ("GET /v1/triggers", Scope::Read),
        ("GET /v1/triggers/{id}", Scope::Read),
        ("GET /v1/firings", Scope::Read),
        ("GET /v1/firings/{id}", Scope::Read),
        ("POST /v1/patterns/test", Scope::Read),
        ("POST /v1/triggers/test", Scope::Read),
        ("POST /v1/triggers", Scope::Admin),
        ("PUT /v1/triggers/{id}", Scope::Admin),
        ("DELETE /v1/triggers/{id}", Scope::Admin),
        ("POST /v1/triggers/draft", Scope::Admin),
        ("POST /v1/deliveries/{id}/retry", Scope::Admin),
        ("POST /v1/signing-secret/rotate", Scope::Admin),
        ("GET /v1/signing-secret", Scope::Admin),
    ];
    assert_eq!(ROUTES.len(), expected.len());
    for (key, scope) in expected {
        let route = routes::by_key(key).unwrap_or_else(|| panic!("{key} is not in the table"));
        assert_eq!(route.scope, scope, "{key}");
        let class = match scope {
            Scope::Ingest => RouteClass::Ingest,
            Scope::Read => RouteClass::Reads,
            Scope::Admin => RouteClass::Writes,
        };
        assert_eq!(route.class, class, "{key}");
    }
}

#[test]
fn every_operation_of_openapi_is_in_the_table_with_its_function_and_serves_behind_the_gate() {
    for (key, function) in openapi::operations() {
        let route = routes::by_key(&key).unwrap_or_else(|| panic!("{key} is not in api::routes"));
        assert_eq!(route.function, function, "{key}");
    }
    for route in ROUTES {
        let main = format!(
            "{}/../functions/{}/src/main.rs",
            env!("CARGO_MANIFEST_DIR"),
            route.function
        );
        // A route another branch adds may not have its function here yet.
        let Ok(code) = std::fs::read_to_string(&main) else {
            continue;
        };
        assert!(
            code.contains("api::serve(env!(\"CARGO_PKG_NAME\")"),
            "{} must serve its route behind the gate: api::serve(env!(\"CARGO_PKG_NAME\"), ...)",
            route.function
        );
        assert!(!code.contains("api::respond("), "{}", route.function);
    }
}

#[tokio::test]
async fn every_route_refuses_a_key_without_its_scope_and_admits_one_with_it() {
    let tenant = TenantId::new();
    for route in ROUTES {
        let gate = ungated_limits(route);
        for scopes in every_scope_set() {
            let req = Req::new("get-trigger", tenant)
                .scopes(&scopes.to_string())
                .build();
            match gate.admit(&req).await {
                Ok(admitted) => {
                    assert!(
                        scopes.contains(route.scope),
                        "{}: {scopes} admitted",
                        route.key
                    );
                    assert_eq!(admitted, tenant);
                }
                Err(ApiError::MissingScope { missing }) => {
                    assert!(
                        !scopes.contains(route.scope),
                        "{}: {scopes} refused",
                        route.key
                    );
                    assert_eq!(missing, route.scope);
                    let problem = ApiError::MissingScope { missing }.to_problem();
                    assert_eq!(problem.status, 403);
                    assert!(
                        problem.title.contains(route.scope.as_str()),
                        "{}",
                        problem.title
                    );
                }
                Err(other) => panic!("{}: {scopes}: {other}", route.key),
            }
        }
        // A context that names no scopes grants none; a request without a tenant is 401.
        let bare = Req::new("get-trigger", tenant).without_scopes().build();
        assert!(matches!(
            gate.admit(&bare).await,
            Err(ApiError::MissingScope { .. })
        ));
        let anonymous = Req::new("get-trigger", tenant).no_authorizer().build();
        assert!(matches!(
            gate.admit(&anonymous).await,
            Err(ApiError::Unauthorized)
        ));
        // Names that are not scopes are never granted, whatever their case or spelling.
        let odd = Req::new("get-trigger", tenant)
            .scopes("ADMIN Read ingest,read,admin *")
            .build();
        assert!(gate.admit(&odd).await.is_err(), "{}", route.key);
    }
}

#[tokio::test]
async fn a_cognito_access_token_grants_exactly_its_oauth_scopes() {
    let tenant = TenantId::new();
    let claims = |extra: Value| {
        let mut c = json!({"tenant_id": tenant.to_string(), "sub": "u1"});
        if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
            c.extend(extra.clone());
        }
        c
    };
    let read = ungated_limits(route("get-trigger"));
    let admin = ungated_limits(route("create-trigger"));
    let ingest = ungated_limits(route("ingest-events"));
    // The scopes API Gateway lists for the token.
    let listed = || {
        Req::new("get-trigger", tenant)
            .jwt(
                claims(json!({})),
                Some(&["triggeriq/read", "triggeriq/ingest"]),
            )
            .build()
    };
    assert_eq!(read.admit(&listed()).await.expect("read"), tenant);
    assert_eq!(ingest.admit(&listed()).await.expect("ingest"), tenant);
    assert!(matches!(
        admin.admit(&listed()).await,
        Err(ApiError::MissingScope {
            missing: Scope::Admin
        })
    ));
    // The token's own `scope` claim, when API Gateway lists none.
    let claimed = Req::new("get-trigger", tenant)
        .jwt(
            claims(json!({"scope": "https://api.example.com/admin"})),
            None,
        )
        .build();
    assert_eq!(admin.admit(&claimed).await.expect("admin"), tenant);
    assert!(read.admit(&claimed).await.is_err());
    // An ID token (no scopes) and scopes spelt otherwise grant nothing.
    for scopes in [None, Some(&["triggeriq/READ", "read/", "triggeriq/*"][..])] {
        let req = Req::new("get-trigger", tenant)
            .jwt(claims(json!({})), scopes)
            .build();
        for gate in [&read, &admin, &ingest] {
            assert!(
                matches!(gate.admit(&req).await, Err(ApiError::MissingScope { .. })),
                "{scopes:?}"
            );
        }
    }
}

fn trigger_api(pool: &PgPool) -> TriggerApi {
    let wiring = triggeriq::wiring::Clients::new()
        .with_database(triggeriq::postgres::Database::from_pool(pool.clone()));
    TriggerApi::new(ApiConfig::default(), &wiring).expect("trigger routes")
}

async fn tenant(pool: &PgPool) -> TenantId {
    triggeriq::postgres::tenants::create(pool, TenantId::new(), "Acme")
        .await
        .expect("tenant")
        .id
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn a_read_key_reads_but_cannot_write_and_an_ingest_key_cannot_read(pool: PgPool) {
    let api = trigger_api(&pool);
    let t = tenant(&pool).await;
    let other = tenant(&pool).await;
    let create = ungated_limits(route("create-trigger"));
    let get = ungated_limits(route("get-trigger"));
    let list = ungated_limits(route("list-triggers"));
    let delete = ungated_limits(route("delete-trigger"));

    let refused = call_gated(
        &create,
        &api,
        triggers::create,
        Req::new("create-trigger", t).scopes("read ingest"),
    )
    .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(
        refused.body["type"],
        "https://triggeriq.dev/problems/missing-scope"
    );
    assert!(
        refused.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("admin")),
        "{}",
        refused.body
    );
    let none = call_gated(&list, &api, triggers::list, Req::new("list-triggers", t)).await;
    assert_eq!(none.body["items"], json!([]), "nothing was created");

    let created = call_gated(
        &create,
        &api,
        triggers::create,
        Req::new("create-trigger", t).scopes("admin"),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().expect("id").to_owned();

    let read = call_gated(
        &get,
        &api,
        triggers::get,
        Req::new("get-trigger", t).scopes("read").id(&id),
    )
    .await;
    assert_eq!(read.status, 200, "{}", read.body);
    let not_theirs = call_gated(
        &get,
        &api,
        triggers::get,
        Req::new("get-trigger", other).scopes("read").id(&id),
    )
    .await;
    assert_eq!(not_theirs.status, 404, "another tenant's id is not found");
    let ingest_only = call_gated(
        &get,
        &api,
        triggers::get,
        Req::new("get-trigger", t).scopes("ingest").id(&id),
    )
    .await;
    assert_eq!(ingest_only.status, 403);
    let not_deleted = call_gated(
        &delete,
        &api,
        triggers::delete,
        Req::new("delete-trigger", t).scopes("read").id(&id),
    )
    .await;
    assert_eq!(not_deleted.status, 403);
    let still = call_gated(
        &get,
        &api,
        triggers::get,
        Req::new("get-trigger", t).scopes("read").id(&id),
    )
    .await;
    assert_eq!(still.status, 200, "a refused delete deleted nothing");
}

// ------------------------------------------------------------------ rate limits per route

fn tight(stack: &Stack, reads: u32, writes: u32) -> Throttle {
    let config = ThrottleConfig {
        table_name: stack.table.clone(),
        // A token every 1,000 s: nothing refills during the test.
        reads: RouteRate {
            per_second: 0.001,
            burst: reads,
        },
        writes: RouteRate {
            per_second: 0.001,
            burst: writes,
        },
    };
    Throttle::with_table(
        Table::new(stack.clients.dynamodb.clone(), &stack.table),
        &config,
    )
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn a_tenant_over_its_read_limit_gets_429_while_other_tenants_and_classes_go_on(pool: PgPool) {
    let stack = Stack::new(pool).await;
    let reads = stack.reads();
    let triggers_api = trigger_api(&stack.pool);
    let a = stack.tenant().await;
    let b = stack.tenant().await;
    let throttle = tight(&stack, 3, 2);
    let list = Gate {
        route: route("list-firings"),
        throttle: Some(throttle.clone()),
    };
    let create = Gate {
        route: route("create-trigger"),
        throttle: Some(throttle.clone()),
    };

    for n in 0..3 {
        let ok = call_gated(&list, &reads, firings::list, Req::new("list-firings", a)).await;
        assert_eq!(ok.status, 200, "read {n}: {}", ok.body);
    }
    let limited = call_gated(&list, &reads, firings::list, Req::new("list-firings", a)).await;
    assert_eq!(limited.status, 429, "{}", limited.body);
    assert_eq!(
        limited.body["type"],
        "https://triggeriq.dev/problems/rate-limited"
    );
    let retry_after: u64 = limited
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!(retry_after >= 1, "{retry_after}");

    // Tenant B's bucket is its own.
    for _ in 0..3 {
        let ok = call_gated(&list, &reads, firings::list, Req::new("list-firings", b)).await;
        assert_eq!(ok.status, 200, "tenant B is not limited by A: {}", ok.body);
    }
    // A's writes have their own bucket, and so do its events (ingest's bucket).
    let created = call_gated(
        &create,
        &triggers_api,
        triggers::create,
        Req::new("create-trigger", a),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let events = RateLimiter::new(Table::new(stack.clients.dynamodb.clone(), &stack.table));
    let event_limit = RateLimit {
        capacity: 1,
        per_second: 0.001,
    };
    assert_eq!(
        events
            .acquire(a, event_limit, 1, chrono::Utc::now())
            .await
            .expect("bucket"),
        RateDecision::Allowed,
        "reads did not use the tenant's event tokens"
    );
    // And the read bucket is still empty for A.
    let again = call_gated(&list, &reads, firings::list, Req::new("list-firings", a)).await;
    assert_eq!(again.status, 429);
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn a_refused_scope_takes_no_token_and_writes_are_limited_too(pool: PgPool) {
    let stack = Stack::new(pool).await;
    let api = trigger_api(&stack.pool);
    let a = stack.tenant().await;
    let throttle = tight(&stack, 2, 2);
    let create = Gate {
        route: route("create-trigger"),
        throttle: Some(throttle),
    };
    for _ in 0..5 {
        let refused = call_gated(
            &create,
            &api,
            triggers::create,
            Req::new("create-trigger", a).scopes("read"),
        )
        .await;
        assert_eq!(refused.status, 403);
    }
    for n in 0..2 {
        let created = call_gated(
            &create,
            &api,
            triggers::create,
            Req::new("create-trigger", a),
        )
        .await;
        assert_eq!(created.status, 201, "write {n}: {}", created.body);
    }
    let limited = call_gated(
        &create,
        &api,
        triggers::create,
        Req::new("create-trigger", a),
    )
    .await;
    assert_eq!(limited.status, 429, "{}", limited.body);
    assert!(limited.header("retry-after").is_some());
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn the_limit_fails_closed_when_its_table_does_not_answer(pool: PgPool) {
    let stack = Stack::new(pool).await;
    let reads = stack.reads();
    let a = stack.tenant().await;
    let (dynamodb, failing) = dynamodb_failing(&stack.clients.dynamodb, "UpdateItem");
    let throttle = Throttle::with_table(
        Table::new(dynamodb, &stack.table),
        &ThrottleConfig {
            table_name: stack.table.clone(),
            reads: ThrottleConfig::DEFAULT_READS,
            writes: ThrottleConfig::DEFAULT_WRITES,
        },
    );
    let list = Gate {
        route: route("list-firings"),
        throttle: Some(throttle),
    };
    let down = call_gated(&list, &reads, firings::list, Req::new("list-firings", a)).await;
    assert_eq!(down.status, 503, "{}", down.body);
    assert_eq!(down.header("retry-after"), Some("1"));
    assert!(failing.calls() >= 1);
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn only_an_admin_key_reads_the_signing_secret(pool: PgPool) {
    let stack = Stack::new(pool).await;
    let api = stack.signing();
    let t = stack.tenant_without_secret().await;
    let get = ungated_limits(route("get-signing-secret"));
    for scopes in ["read", "ingest", "read ingest"] {
        let refused = call_gated(
            &get,
            &api,
            signing::get,
            Req::new("get-signing-secret", t).scopes(scopes),
        )
        .await;
        assert_eq!(refused.status, 403, "{scopes}: {}", refused.body);
        assert_eq!(
            refused.body["type"],
            "https://triggeriq.dev/problems/missing-scope"
        );
        assert!(refused.text.find("whsec_").is_none(), "{}", refused.text);
    }
    assert!(
        stack.secrets().get(t).await.expect("read").is_none(),
        "a refused request made no secret"
    );
    let shown = call_gated(
        &get,
        &api,
        signing::get,
        Req::new("get-signing-secret", t).scopes("admin"),
    )
    .await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    let stored = stack.secrets().get(t).await.expect("read").expect("made");
    assert_eq!(shown.body["secret"], stored.current.expose());
}
