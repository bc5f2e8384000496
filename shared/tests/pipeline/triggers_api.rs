//! Trigger API, authorizer and pattern route, driven with the API Gateway v2 samples in
//! `events/` against a fresh Postgres database per test.

use serde_json::{Value, json};
use sqlx::PgPool;
use triggeriq::api::patterns::PatternApi;
use triggeriq::api::triggers::{self, TriggerApi};
use triggeriq::authorizer::{self, Authorizer};
use triggeriq::config::ApiConfig;
use triggeriq::postgres::{Database, api_keys, tenants};
use triggeriq::tenant::{Scope, Scopes, TenantId};
use triggeriq::trigger::TriggerLimits;
use triggeriq::webhook::{AddressPolicy, TargetPolicy};
use triggeriq::wiring::Clients;

use triggeriq::testing::openapi;
use triggeriq::testing::requests::{Answer, Req, call, sample};

const DEMO_TENANT: &str = "0190f0a0-0000-7000-8000-000000000001";
const DEMO_TRIGGER: &str = "0190f0a0-0000-7000-8000-0000000000f1";

fn trigger_api(pool: &PgPool) -> TriggerApi {
    trigger_api_with(pool, ApiConfig::default())
}

fn trigger_api_with(pool: &PgPool, config: ApiConfig) -> TriggerApi {
    let wiring = Clients::new().with_database(Database::from_pool(pool.clone()));
    TriggerApi::new(config, &wiring).expect("trigger routes")
}

async fn tenant(pool: &PgPool) -> TenantId {
    tenants::create(pool, TenantId::new(), "Acme")
        .await
        .expect("tenant")
        .id
}

fn trigger_body(name: &str) -> Value {
    json!({
        "name": name,
        "pattern": {"type": ["payment.failed"]},
        "actions": [{"url": "https://hooks.example.com/a"}]
    })
}

async fn create(api: &TriggerApi, tenant: TenantId, body: &Value) -> Answer {
    call(
        api,
        triggers::create,
        Req::new("create-trigger", tenant).body(body),
    )
    .await
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn create_trigger_returns_201_with_the_stored_trigger(pool: PgPool) {
    let api = trigger_api(&pool);
    let t = tenant(&pool).await;
    let created = call(&api, triggers::create, Req::new("create-trigger", t)).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().expect("id").to_owned();
    assert_eq!(
        created.header("location"),
        Some(format!("/v1/triggers/{id}").as_str())
    );
    assert_eq!(created.header("etag"), Some("\"1\""));
    assert_eq!(created.body["name"], "Payment failed");
    assert_eq!(created.body["version"], 1);
    assert_eq!(created.body["cooldown"], "1m");
    assert_eq!(created.body["condition"], json!({"kind": "every"}));
    assert_eq!(
        created.body["actions"][0]["url"],
        "https://hooks.example.com/triggeriq"
    );
    assert_eq!(created.body["actions"][0]["enabled"], true);
    assert!(created.body["actions"][0]["id"].is_string());

    let fetched = call(&api, triggers::get, Req::new("get-trigger", t).id(&id)).await;
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.body, created.body);
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn create_trigger_returns_422_listing_every_problem_with_its_path(pool: PgPool) {
    let api = trigger_api(&pool);
    let t = tenant(&pool).await;
    let body = json!({
        "name": "",
        "enabled": "yes",
        "pattern": "type = payment.failed",
        "condition": {"kind": "sometimes"},
        "cooldown": "a while",
        "actions": [{"url": "not a url"}, {"type": "email", "url": "https://x.example"}],
        "owner": "me"
    });
    let got = create(&api, t, &body).await;
    assert_eq!(got.status, 422, "{}", got.body);
    assert_eq!(
        got.error_paths(),
        vec![
            "$.actions[0].url",
            "$.actions[1].type",
            "$.condition.kind",
            "$.cooldown",
            "$.enabled",
            "$.name",
            "$.owner",
            "$.pattern"
        ]
    );
    let listed = call(
        &api,
        triggers::list,
        Req::new("list-triggers", t).query(&[]),
    )
    .await;
    assert_eq!(listed.body["items"], json!([]), "nothing was written");
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn create_trigger_returns_422_when_required_fields_are_missing(pool: PgPool) {
    let api = trigger_api(&pool);
    let got = create(&api, tenant(&pool).await, &json!({})).await;
    assert_eq!(got.status, 422);
    assert_eq!(got.error_paths(), vec!["$.actions", "$.name", "$.pattern"]);
    let got = create(&api, tenant(&pool).await, &json!([1, 2])).await;
    assert_eq!(got.status, 422);
    assert_eq!(got.error_paths(), vec!["$"]);
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn create_trigger_returns_422_for_an_invalid_pattern_naming_its_path(pool: PgPool) {
    let api = trigger_api(&pool);
    let mut body = trigger_body("bad pattern");
    body["pattern"] = json!({"data": {"amount": [{"numeric": ["!=", 5]}]}});
    let got = create(&api, tenant(&pool).await, &body).await;
    assert_eq!(got.status, 422, "{}", got.body);
    let paths = got.error_paths();
    assert!(
        paths.iter().all(|p| p.starts_with("$.pattern.data.amount")),
        "pattern errors are rooted at $.pattern: {paths:?}"
    );
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn create_trigger_enforces_the_name_and_pattern_size_limits(pool: PgPool) {
    let api = trigger_api(&pool);
    let t = tenant(&pool).await;
    let got = create(&api, t, &trigger_body(&"n".repeat(201))).await;
    assert_eq!(got.status, 422);
    assert_eq!(got.body["errors"][0]["path"], "$.name");
    assert_eq!(
        got.body["errors"][0]["message"],
        "must be at most 200 characters"
    );

    let mut body = trigger_body("big pattern");
    body["pattern"] = json!({"type": (0..600).map(|i| format!("type-{i}")).collect::<Vec<_>>()});
    assert!(body["pattern"].to_string().len() > 4096);
    let got = create(&api, t, &body).await;
    assert_eq!(got.status, 422, "{}", got.body);
    assert!(
        got.error_paths().iter().all(|p| p.starts_with("$.pattern")),
        "{}",
        got.body
    );
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn create_trigger_returns_400_for_malformed_json(pool: PgPool) {
    let api = trigger_api(&pool);
    let got = call(
        &api,
        triggers::create,
        Req::new("create-trigger", tenant(&pool).await).raw_body("{\"name\": "),
    )
    .await;
    assert_eq!(got.status, 400);
    assert_eq!(
        got.body["type"],
        "https://triggeriq.dev/problems/malformed-json"
    );
    assert!(
        got.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("line 1")),
        "{}",
        got.body
    );
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn create_trigger_returns_413_for_a_body_over_256_kb(pool: PgPool) {
    let api = trigger_api(&pool);
    let mut body = trigger_body("huge");
    body["description"] = json!("x".repeat(256 * 1024));
    let got = create(&api, tenant(&pool).await, &body).await;
    assert_eq!(got.status, 413);
    assert!(
        got.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("262144"))
    );
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn create_trigger_returns_415_for_a_body_that_is_not_json(pool: PgPool) {
    let api = trigger_api(&pool);
    let t = tenant(&pool).await;
    let got = call(
        &api,
        triggers::create,
        Req::new("create-trigger", t).header("content-type", "text/plain"),
    )
    .await;
    assert_eq!(got.status, 415);
    let got = call(
        &api,
        triggers::create,
        Req::new("create-trigger", t).without_header("content-type"),
    )
    .await;
    assert_eq!(got.status, 415);
    let got = call(
        &api,
        triggers::create,
        Req::new("create-trigger", t).header("content-type", "application/json; charset=utf-8"),
    )
    .await;
    assert_eq!(got.status, 201, "a charset parameter is fine");
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn create_trigger_refuses_http_webhooks_unless_the_deployment_allows_them(pool: PgPool) {
    let mut body = trigger_body("plain http");
    body["actions"][0]["url"] = json!("http://hooks.example.com/hook");
    let t = tenant(&pool).await;
    let strict = trigger_api(&pool);
    let got = create(&strict, t, &body).await;
    assert_eq!(got.status, 422);
    assert_eq!(got.error_paths(), vec!["$.actions[0].url"]);

    let mut config = ApiConfig::default();
    config.triggers.webhook_targets = TargetPolicy::new(AddressPolicy::strict(), true, None);
    let local = trigger_api_with(&pool, config);
    assert_eq!(create(&local, t, &body).await.status, 201);
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn create_and_update_refuse_unroutable_webhook_targets_with_their_paths(pool: PgPool) {
    let api = trigger_api(&pool);
    let t = tenant(&pool).await;
    let unroutable = [
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/",
        "https://10.0.0.1/",
        "https://localhost/hook",
        "https://metadata.google.internal/",
        "https://hooks.example.com:6379/",
    ];
    let mut body = trigger_body("unroutable");
    body["actions"] = json!(
        unroutable
            .iter()
            .map(|url| json!({"url": url}))
            .chain([json!({"url": "https://hooks.example.com/fine"})])
            .collect::<Vec<_>>()
    );
    let got = create(&api, t, &body).await;
    assert_eq!(got.status, 422, "{}", got.body);
    let expected: Vec<String> = (0..unroutable.len())
        .map(|i| format!("$.actions[{i}].url"))
        .collect();
    assert_eq!(got.error_paths(), expected);

    // The same rule on update: a trigger that is fine cannot be pointed at the metadata service.
    let created = create(&api, t, &trigger_body("fine")).await;
    assert_eq!(created.status, 201);
    let mut replaced = created.body.clone();
    replaced["actions"][0]["url"] = json!("https://[fd00:ec2::254]/");
    let id = created.body["id"].as_str().unwrap().to_owned();
    let got = call(
        &api,
        triggers::update,
        Req::new("update-trigger", t).id(&id).body(&replaced),
    )
    .await;
    assert_eq!(got.status, 422, "{}", got.body);
    assert_eq!(got.error_paths(), vec!["$.actions[0].url"]);

    // The local stack's setting allows its receivers on this machine, and nothing else private.
    let mut config = ApiConfig::default();
    config.triggers.webhook_targets = TargetPolicy::local_development();
    let local = trigger_api_with(&pool, config);
    let mut body = trigger_body("local receiver");
    body["actions"][0]["url"] = json!("http://127.0.0.1:9100/hooks/demo");
    assert_eq!(create(&local, t, &body).await.status, 201);
    body["actions"][0]["url"] = json!("http://192.168.1.20:9100/hooks/demo");
    let got = create(&local, t, &body).await;
    assert_eq!(got.status, 422);
    assert_eq!(got.error_paths(), vec!["$.actions[0].url"]);
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn create_trigger_refuses_more_triggers_than_the_tenant_limit(pool: PgPool) {
    let mut config = ApiConfig::default();
    config.triggers.max_triggers_per_tenant = 3;
    let api = trigger_api_with(&pool, config);
    let t = tenant(&pool).await;
    for i in 0..3 {
        assert_eq!(
            create(&api, t, &trigger_body(&format!("t{i}")))
                .await
                .status,
            201
        );
    }
    let got = create(&api, t, &trigger_body("one too many")).await;
    assert_eq!(got.status, 409);
    assert_eq!(
        got.body["type"],
        "https://triggeriq.dev/problems/limit-reached"
    );
    assert!(
        got.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("at most 3 triggers"))
    );
    // The limit is per tenant.
    assert_eq!(
        create(&api, tenant(&pool).await, &trigger_body("other tenant"))
            .await
            .status,
        201
    );
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn a_trigger_that_would_take_the_tenants_patterns_over_their_budget_is_refused(pool: PgPool) {
    let mut config = ApiConfig::default();
    // Each pattern below holds 4 values to match ($or cases expanded: 2 x (1 + 1)).
    config.triggers.max_pattern_cost_per_tenant = 10;
    let api = trigger_api_with(&pool, config);
    let t = tenant(&pool).await;
    let body = |name: &str, enabled: bool| {
        json!({
            "name": name,
            "enabled": enabled,
            "pattern": {"type": ["payment.failed"], "$or": [{"a": [1]}, {"b": [2]}]},
            "actions": [{"url": "https://hooks.example.com/a"}]
        })
    };
    assert_eq!(create(&api, t, &body("one", true)).await.status, 201);
    assert_eq!(create(&api, t, &body("two", true)).await.status, 201);
    let over = create(&api, t, &body("three", true)).await;
    assert_eq!(over.status, 409, "{}", over.body);
    assert!(
        over.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("12 values") && d.contains("budget of 10")),
        "{}",
        over.body
    );
    // Disabled triggers are not compiled, so they do not count; enabling one does.
    let disabled = create(&api, t, &body("three", false)).await;
    assert_eq!(disabled.status, 201, "{}", disabled.body);
    let id = disabled.body["id"].as_str().unwrap().to_owned();
    let enable = call(
        &api,
        triggers::update,
        Req::new("update-trigger", t).id(&id).body(
            &json!({"version": 1, "name": "three", "enabled": true,
                          "pattern": {"type": ["payment.failed"], "$or": [{"a": [1]}, {"b": [2]}]},
                          "actions": [{"url": "https://hooks.example.com/a"}]}),
        ),
    )
    .await;
    assert_eq!(enable.status, 409, "{}", enable.body);
    // The budget is per tenant.
    assert_eq!(
        create(&api, tenant(&pool).await, &body("x", true))
            .await
            .status,
        201
    );
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn another_tenants_trigger_answers_404_exactly_like_a_missing_one(pool: PgPool) {
    let api = trigger_api(&pool);
    let owner = tenant(&pool).await;
    let intruder = tenant(&pool).await;
    let created = create(&api, owner, &trigger_body("mine")).await;
    let id = created.body["id"].as_str().expect("id").to_owned();

    let missing = call(
        &api,
        triggers::get,
        Req::new("get-trigger", intruder).id(DEMO_TRIGGER),
    )
    .await;
    let foreign = call(
        &api,
        triggers::get,
        Req::new("get-trigger", intruder).id(&id),
    )
    .await;
    assert_eq!(foreign.status, 404);
    assert_eq!(foreign.body["title"], missing.body["title"]);
    assert_eq!(foreign.body["type"], missing.body["type"]);

    let update = Req::new("update-trigger", intruder)
        .id(&id)
        .header("if-match", "\"1\"");
    assert_eq!(call(&api, triggers::update, update).await.status, 404);
    assert_eq!(
        call(
            &api,
            triggers::delete,
            Req::new("delete-trigger", intruder).id(&id)
        )
        .await
        .status,
        404
    );
    let listed = call(
        &api,
        triggers::list,
        Req::new("list-triggers", intruder).query(&[]),
    )
    .await;
    assert_eq!(listed.body["items"], json!([]));

    let still = call(&api, triggers::get, Req::new("get-trigger", owner).id(&id)).await;
    assert_eq!(still.status, 200);
    assert_eq!(still.body["version"], 1, "the intruder changed nothing");
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn a_malformed_trigger_id_answers_404(pool: PgPool) {
    let api = trigger_api(&pool);
    let got = call(
        &api,
        triggers::get,
        Req::new("get-trigger", tenant(&pool).await).id("not-a-uuid"),
    )
    .await;
    assert_eq!(got.status, 404);
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn requests_without_a_tenant_in_the_authorizer_context_answer_401(pool: PgPool) {
    let api = trigger_api(&pool);
    let got = call(
        &api,
        triggers::list,
        Req::new("list-triggers", tenant(&pool).await).no_authorizer(),
    )
    .await;
    assert_eq!(got.status, 401);
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn a_cognito_jwt_tenant_id_claim_identifies_the_tenant(pool: PgPool) {
    let api = trigger_api(&pool);
    let t = tenant(&pool).await;
    create(&api, t, &trigger_body("via jwt")).await;
    let mut req = Req::new("list-triggers", t).query(&[]);
    req.0["requestContext"]["authorizer"] =
        json!({"jwt": {"claims": {"tenant_id": t.to_string(), "sub": "u1"}, "scopes": null}});
    let got = call(&api, triggers::list, req).await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.body["items"].as_array().map(Vec::len), Some(1));
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn list_triggers_pages_with_a_cursor_and_filters_on_enabled(pool: PgPool) {
    let api = trigger_api(&pool);
    let t = tenant(&pool).await;
    for i in 0..5 {
        let mut body = trigger_body(&format!("t{i}"));
        body["enabled"] = json!(i % 2 == 0);
        assert_eq!(create(&api, t, &body).await.status, 201);
    }
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut query = vec![("limit", "2")];
        if let Some(c) = &cursor {
            query.push(("cursor", c.as_str()));
        }
        let page = call(
            &api,
            triggers::list,
            Req::new("list-triggers", t).query(&query),
        )
        .await;
        assert_eq!(page.status, 200, "{}", page.body);
        pages += 1;
        for item in page.body["items"].as_array().expect("items") {
            names.push(item["name"].as_str().expect("name").to_owned());
        }
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(
        names,
        vec!["t0", "t1", "t2", "t3", "t4"],
        "creation order, no repeats"
    );

    let enabled = call(
        &api,
        triggers::list,
        Req::new("list-triggers", t).query(&[("enabled", "true")]),
    )
    .await;
    let names: Vec<_> = enabled.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("t0"), json!("t2"), json!("t4")]);
    let disabled = call(
        &api,
        triggers::list,
        Req::new("list-triggers", t).query(&[("enabled", "false")]),
    )
    .await;
    assert_eq!(disabled.body["items"].as_array().map(Vec::len), Some(2));
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn list_triggers_answers_400_for_a_bad_cursor_limit_or_filter(pool: PgPool) {
    let api = trigger_api(&pool);
    let t = tenant(&pool).await;
    let got = call(
        &api,
        triggers::list,
        Req::new("list-triggers", t).query(&[
            ("limit", "1000"),
            ("cursor", "%%%"),
            ("enabled", "yes"),
        ]),
    )
    .await;
    assert_eq!(got.status, 400);
    assert_eq!(got.error_paths(), vec!["?cursor", "?enabled", "?limit"]);
}

async fn created_id(api: &TriggerApi, t: TenantId) -> String {
    create(api, t, &trigger_body("to change")).await.body["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn update_trigger_with_the_current_version_replaces_it_and_increments_the_version(
    pool: PgPool,
) {
    let api = trigger_api(&pool);
    let t = tenant(&pool).await;
    let id = created_id(&api, t).await;
    let got = call(
        &api,
        triggers::update,
        Req::new("update-trigger", t).id(&id),
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.body["version"], 2);
    assert_eq!(got.body["enabled"], false);
    assert_eq!(got.header("etag"), Some("\"2\""));
    // The body's version works as well as If-Match.
    let mut body = got.body.clone();
    body["name"] = json!("renamed");
    let got = call(
        &api,
        triggers::update,
        Req::new("update-trigger", t)
            .id(&id)
            .without_header("if-match")
            .body(&body),
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.body["version"], 3);
    assert_eq!(got.body["name"], "renamed");
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn update_trigger_keeps_the_ids_of_actions_sent_back(pool: PgPool) {
    let api = trigger_api(&pool);
    let t = tenant(&pool).await;
    let id = created_id(&api, t).await;
    let current = call(&api, triggers::get, Req::new("get-trigger", t).id(&id))
        .await
        .body;
    let mut body = current.clone();
    body["actions"]
        .as_array_mut()
        .expect("actions")
        .push(json!({"type": "webhook", "url": "https://hooks.example.com/second"}));
    let got = call(
        &api,
        triggers::update,
        Req::new("update-trigger", t)
            .id(&id)
            .without_header("if-match")
            .body(&body),
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.body["actions"][0]["id"], current["actions"][0]["id"]);
    assert_ne!(got.body["actions"][1]["id"], current["actions"][0]["id"]);
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn update_trigger_with_a_stale_body_version_answers_409(pool: PgPool) {
    let api = trigger_api(&pool);
    let t = tenant(&pool).await;
    let id = created_id(&api, t).await;
    assert_eq!(
        call(
            &api,
            triggers::update,
            Req::new("update-trigger", t).id(&id)
        )
        .await
        .status,
        200
    );
    let mut body = trigger_body("stale");
    body["version"] = json!(1);
    let got = call(
        &api,
        triggers::update,
        Req::new("update-trigger", t)
            .id(&id)
            .without_header("if-match")
            .body(&body),
    )
    .await;
    assert_eq!(got.status, 409);
    assert!(
        got.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("version 2")),
        "{}",
        got.body
    );
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn update_trigger_with_a_stale_if_match_answers_412(pool: PgPool) {
    let api = trigger_api(&pool);
    let t = tenant(&pool).await;
    let id = created_id(&api, t).await;
    let got = call(
        &api,
        triggers::update,
        Req::new("update-trigger", t)
            .id(&id)
            .header("if-match", "\"7\""),
    )
    .await;
    assert_eq!(got.status, 412);
    let unchanged = call(&api, triggers::get, Req::new("get-trigger", t).id(&id)).await;
    assert_eq!(unchanged.body["version"], 1);
    assert_eq!(unchanged.body["enabled"], true);
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn update_trigger_without_any_version_answers_428(pool: PgPool) {
    let api = trigger_api(&pool);
    let t = tenant(&pool).await;
    let id = created_id(&api, t).await;
    let got = call(
        &api,
        triggers::update,
        Req::new("update-trigger", t)
            .id(&id)
            .without_header("if-match"),
    )
    .await;
    assert_eq!(got.status, 428);
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn update_trigger_validates_like_create_and_checks_the_echoed_id(pool: PgPool) {
    let api = trigger_api(&pool);
    let t = tenant(&pool).await;
    let id = created_id(&api, t).await;
    let mut body = trigger_body("x");
    body["id"] = json!(DEMO_TRIGGER);
    body["actions"] = json!([]);
    let got = call(
        &api,
        triggers::update,
        Req::new("update-trigger", t).id(&id).body(&body),
    )
    .await;
    assert_eq!(got.status, 422);
    assert_eq!(got.error_paths(), vec!["$.actions"]);
    body["actions"] = json!([{"url": "https://hooks.example.com/a"}]);
    let got = call(
        &api,
        triggers::update,
        Req::new("update-trigger", t).id(&id).body(&body),
    )
    .await;
    assert_eq!(got.status, 422);
    assert_eq!(got.error_paths(), vec!["$.id"]);
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn delete_trigger_removes_it_and_a_second_delete_answers_404(pool: PgPool) {
    let api = trigger_api(&pool);
    let t = tenant(&pool).await;
    let id = created_id(&api, t).await;
    let stale = call(
        &api,
        triggers::delete,
        Req::new("delete-trigger", t)
            .id(&id)
            .header("if-match", "\"5\""),
    )
    .await;
    assert_eq!(stale.status, 412);
    let got = call(
        &api,
        triggers::delete,
        Req::new("delete-trigger", t).id(&id),
    )
    .await;
    assert_eq!(got.status, 204);
    assert_eq!(
        call(&api, triggers::get, Req::new("get-trigger", t).id(&id))
            .await
            .status,
        404
    );
    assert_eq!(
        call(
            &api,
            triggers::delete,
            Req::new("delete-trigger", t).id(&id)
        )
        .await
        .status,
        404
    );
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn every_change_to_triggers_bumps_the_tenants_revision(pool: PgPool) {
    let api = trigger_api(&pool);
    let t = tenant(&pool).await;
    let revision = || async {
        tenants::trigger_revision(&pool, t)
            .await
            .expect("query")
            .expect("tenant")
    };
    assert_eq!(revision().await, 0);
    let id = created_id(&api, t).await;
    assert_eq!(revision().await, 1);
    call(
        &api,
        triggers::update,
        Req::new("update-trigger", t).id(&id),
    )
    .await;
    assert_eq!(revision().await, 2);
    call(
        &api,
        triggers::delete,
        Req::new("delete-trigger", t).id(&id),
    )
    .await;
    assert_eq!(revision().await, 3);
    // A refused change leaves it alone.
    create(&api, t, &json!({})).await;
    assert_eq!(revision().await, 3);
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn every_trigger_sample_in_events_works_against_the_demo_tenant(pool: PgPool) {
    let api = trigger_api(&pool);
    let demo = TenantId::parse(DEMO_TENANT).expect("uuid");
    tenants::create(&pool, demo, "demo")
        .await
        .expect("demo tenant");
    let spec = triggeriq::trigger::TriggerBody::parse(
        &trigger_body("demo"),
        triggeriq::trigger::BodyKind::Create,
        &Default::default(),
    )
    .expect("spec")
    .spec;
    let demo_trigger = triggeriq::trigger::TriggerId(DEMO_TRIGGER.parse().expect("uuid"));
    triggeriq::postgres::triggers::create_with_id(
        &pool,
        demo,
        demo_trigger,
        &spec,
        (&TriggerLimits::default()).into(),
    )
    .await
    .expect("demo trigger");

    let plain = |name: &str| Req(sample(name));
    assert_eq!(
        call(&api, triggers::create, plain("create-trigger"))
            .await
            .status,
        201
    );
    let listed = call(&api, triggers::list, plain("list-triggers")).await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.body["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        call(&api, triggers::get, plain("get-trigger")).await.status,
        200
    );
    assert_eq!(
        call(&api, triggers::update, plain("update-trigger"))
            .await
            .status,
        200
    );
    assert_eq!(
        call(&api, triggers::delete, plain("delete-trigger"))
            .await
            .status,
        204
    );
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn the_test_pattern_sample_matches_and_bad_patterns_answer_422(_pool: PgPool) {
    let api = PatternApi {
        max_request_bytes: 256 * 1024,
        limits: Default::default(),
    };
    let run = |req: Req| call(&api, triggeriq::api::patterns::test, req);
    let got = run(Req(sample("test-pattern"))).await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.body, json!({"matches": true}));

    let mut other = Req(sample("test-pattern"));
    let body =
        json!({"pattern": {"type": ["payment.failed"]}, "event": {"type": "payment.succeeded"}});
    other = other.body(&body);
    assert_eq!(run(other).await.body, json!({"matches": false}));

    let bad = Req(sample("test-pattern"))
        .body(&json!({"pattern": {"type": [{"prefix": 5}]}, "extra": 1}));
    let got = run(bad).await;
    assert_eq!(got.status, 422, "{}", got.body);
    let paths = got.error_paths();
    assert!(
        paths.contains(&"$.event".to_owned()) && paths.contains(&"$.extra".to_owned()),
        "{paths:?}"
    );
    assert!(
        paths.iter().any(|p| p.starts_with("$.pattern.type")),
        "{paths:?}"
    );
}

mod authorizer_tests {
    use super::*;
    use aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerV2Request;

    fn request_with(authorization: Option<&str>) -> ApiGatewayV2CustomAuthorizerV2Request {
        let mut event = sample("authorize-request");
        match authorization {
            Some(value) => event["headers"]["authorization"] = json!(value),
            None => {
                if let Some(h) = event["headers"].as_object_mut() {
                    h.remove("authorization");
                }
            }
        }
        serde_json::from_value(event).expect("authorizer event")
    }

    #[sqlx::test(migrator = "triggeriq::MIGRATOR")]
    async fn a_valid_key_authorizes_its_tenant_and_a_revoked_one_does_not(pool: PgPool) {
        let db = Authorizer {
            db: Database::from_pool(pool.clone()),
        };
        let t = tenant(&pool).await;
        let (key_id, key) = api_keys::create(&pool, t, "ci", Scopes::ALL)
            .await
            .expect("key");
        let yes = authorizer::authorize(&db, &request_with(Some(&format!("Bearer {}", key.plain))))
            .await
            .expect("ok");
        assert!(yes.is_authorized);
        let context = yes.context.expect("context");
        assert_eq!(context.tenant_id, t.to_string());
        assert_eq!(context.api_key_id, key_id.to_string());
        assert_eq!(context.scopes, "ingest read admin");
        let lower =
            authorizer::authorize(&db, &request_with(Some(&format!("bearer {}", key.plain))))
                .await
                .expect("ok");
        assert!(lower.is_authorized, "the scheme is case-insensitive");

        assert!(api_keys::revoke(&pool, t, key_id).await.expect("revoke"));
        let no = authorizer::authorize(&db, &request_with(Some(&format!("Bearer {}", key.plain))))
            .await
            .expect("ok");
        assert!(!no.is_authorized);
        assert_eq!(no.context, None);
    }

    #[sqlx::test(migrator = "triggeriq::MIGRATOR")]
    async fn the_context_carries_exactly_the_keys_scopes(pool: PgPool) {
        let db = Authorizer {
            db: Database::from_pool(pool.clone()),
        };
        let t = tenant(&pool).await;
        for (scopes, expected) in [
            (Scopes::NONE.with(Scope::Ingest), "ingest"),
            (Scopes::NONE.with(Scope::Read), "read"),
            (
                Scopes::NONE.with(Scope::Admin).with(Scope::Ingest),
                "ingest admin",
            ),
            (Scopes::ALL, "ingest read admin"),
        ] {
            let (_, key) = api_keys::create(&pool, t, "scoped", scopes)
                .await
                .expect("key");
            let got =
                authorizer::authorize(&db, &request_with(Some(&format!("Bearer {}", key.plain))))
                    .await
                    .expect("ok");
            assert!(got.is_authorized);
            let context = got.context.expect("context");
            assert_eq!(context.scopes, expected);
            // The wire form the routes read.
            let wire = serde_json::to_value(&context).expect("json");
            assert_eq!(wire["scopes"], expected);
            assert_eq!(Scopes::from_context(&context.scopes), scopes);
        }
        // A key with no scope cannot exist: the column refuses it.
        assert!(
            api_keys::create(&pool, t, "none", Scopes::NONE)
                .await
                .is_err()
        );
    }

    #[sqlx::test(migrator = "triggeriq::MIGRATOR")]
    async fn a_suspended_tenants_keys_are_refused_until_it_is_resumed(pool: PgPool) {
        let db = Authorizer {
            db: Database::from_pool(pool.clone()),
        };
        let a = tenant(&pool).await;
        let b = tenant(&pool).await;
        let (_, key_a) = api_keys::create(&pool, a, "a", Scopes::ALL)
            .await
            .expect("key");
        let (_, key_b) = api_keys::create(&pool, b, "b", Scopes::ALL)
            .await
            .expect("key");
        let bearer = |k: &str| format!("Bearer {k}");
        let authorized = |key: String| {
            let db = &db;
            async move {
                authorizer::authorize(db, &request_with(Some(&key)))
                    .await
                    .expect("ok")
                    .is_authorized
            }
        };
        assert!(authorized(bearer(&key_a.plain)).await);

        assert_eq!(
            tenants::suspend(&pool, a).await.expect("suspend"),
            Some(true)
        );
        assert_eq!(
            tenants::suspend(&pool, a).await.expect("again"),
            Some(false)
        );
        let refused = authorizer::authorize(&db, &request_with(Some(&bearer(&key_a.plain))))
            .await
            .expect("ok");
        assert!(
            !refused.is_authorized,
            "a suspended tenant's key is refused"
        );
        assert_eq!(refused.context, None);
        assert!(
            authorized(bearer(&key_b.plain)).await,
            "another tenant is not affected"
        );
        let stored = tenants::get(&pool, a).await.expect("get").expect("tenant");
        assert!(stored.suspended_at.is_some());

        assert_eq!(tenants::resume(&pool, a).await.expect("resume"), Some(true));
        assert_eq!(tenants::resume(&pool, a).await.expect("again"), Some(false));
        assert!(
            authorized(bearer(&key_a.plain)).await,
            "resumed: the key works again"
        );
        assert_eq!(
            tenants::suspend(&pool, TenantId::new())
                .await
                .expect("query"),
            None,
            "no such tenant"
        );
    }

    #[sqlx::test(migrations = false)]
    async fn keys_made_before_scopes_keep_every_scope(pool: PgPool) {
        // Every migration before 0006, a key as they stored it, then 0006.
        for migration in triggeriq::MIGRATOR.iter() {
            if migration.version >= 6 {
                continue;
            }
            sqlx::raw_sql(&migration.sql)
                .execute(&pool)
                .await
                .expect("migration");
        }
        let t = TenantId::new();
        tenants::create(&pool, t, "Old").await.expect("tenant");
        let old = triggeriq::tenant::NewApiKey::generate();
        sqlx::query(
            "INSERT INTO api_keys (id, tenant_id, name, key_hash, key_prefix) VALUES ($1, $2, 'old', $3, $4)",
        )
        .bind(uuid::Uuid::now_v7())
        .bind(t.as_uuid())
        .bind(&old.hash[..])
        .bind(&old.display_prefix)
        .execute(&pool)
        .await
        .expect("old key");
        let scopes = triggeriq::MIGRATOR
            .iter()
            .find(|m| m.version == 6)
            .expect("migration 0006");
        sqlx::raw_sql(&scopes.sql)
            .execute(&pool)
            .await
            .expect("0006");
        let owner = api_keys::authenticate(&pool, &old.plain)
            .await
            .expect("query")
            .expect("the old key still works");
        assert_eq!(owner.scopes, Scopes::ALL);
        // And a new key must name its scopes: there is no default any more.
        let no_scopes = sqlx::query(
            "INSERT INTO api_keys (id, tenant_id, key_hash, key_prefix) VALUES ($1, $2, 'x', 'x')",
        )
        .bind(uuid::Uuid::now_v7())
        .bind(t.as_uuid())
        .execute(&pool)
        .await;
        assert!(no_scopes.is_err(), "a key without scopes was stored");
    }

    #[sqlx::test(migrator = "triggeriq::MIGRATOR")]
    async fn missing_malformed_and_unknown_keys_are_refused(pool: PgPool) {
        let db = Authorizer {
            db: Database::from_pool(pool.clone()),
        };
        let unknown = triggeriq::tenant::NewApiKey::generate();
        for header in [
            None,
            Some("tiq_notbearer"),
            Some("Basic dXNlcjpwYXNz"),
            Some("Bearer tiq_short"),
            Some(format!("Bearer {}", unknown.plain).as_str()),
        ] {
            let answer = authorizer::authorize(&db, &request_with(header))
                .await
                .expect("ok");
            assert!(!answer.is_authorized, "{header:?}");
        }
    }

    #[sqlx::test(migrator = "triggeriq::MIGRATOR")]
    async fn a_key_of_another_tenant_never_yields_this_tenant(pool: PgPool) {
        let db = Authorizer {
            db: Database::from_pool(pool.clone()),
        };
        let a = tenant(&pool).await;
        let b = tenant(&pool).await;
        let (_, key_b) = api_keys::create(&pool, b, "b", Scopes::ALL)
            .await
            .expect("key");
        let got =
            authorizer::authorize(&db, &request_with(Some(&format!("Bearer {}", key_b.plain))))
                .await
                .expect("ok");
        assert_eq!(got.context.map(|c| c.tenant_id), Some(b.to_string()));
        assert_ne!(a, b);
    }
}

#[test]
fn every_openapi_operation_has_a_function_and_a_sample_with_its_route() {
    let operations = openapi::operations();
    assert!(!operations.is_empty());
    for (route_key, function) in &operations {
        let main = format!(
            "{}/../functions/{function}/src/main.rs",
            env!("CARGO_MANIFEST_DIR")
        );
        assert!(
            std::path::Path::new(&main).exists(),
            "{route_key}: no function {function}"
        );
        let event = sample(function);
        assert_eq!(
            event["routeKey"].as_str(),
            Some(route_key.as_str()),
            "events/{function}.json routeKey"
        );
    }
    // And every route sample is described.
    let dir = format!("{}/../events", env!("CARGO_MANIFEST_DIR"));
    for entry in std::fs::read_dir(&dir).expect("events dir").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(function) = name.strip_suffix(".json") else {
            continue;
        };
        let event = sample(function);
        if event["version"] == "2.0"
            && event.get("type").is_none()
            && let Some(route_key) = event["routeKey"].as_str()
        {
            assert!(
                operations
                    .iter()
                    .any(|(r, f)| r == route_key && function.starts_with(f.as_str())),
                "events/{name} ({route_key}) is not an operation of openapi.yaml"
            );
        }
    }
}

#[sqlx::test(migrator = "triggeriq::MIGRATOR")]
async fn conditions_over_time_are_stored_as_sent_and_hostile_ones_refused_by_path(pool: PgPool) {
    let api = trigger_api(&pool);
    let t = tenant(&pool).await;
    for condition in [
        json!({"kind": "threshold", "count": 3, "within": "1h", "group_by": ["$.data.customer.id"]}),
        json!({"kind": "threshold", "sum": "$.data.amount", "at_least": 500.5, "within": "1d", "group_by": []}),
        json!({"kind": "debounce", "quiet": "5m", "max_wait": "1h", "deliver": "all", "group_by": ["$.subject"]}),
        json!({"kind": "sequence", "steps": [{"type": ["a"]}, {"data": {"n": [{"numeric": [">", 1]}]}}], "within": "7d", "group_by": ["$.data.account"]}),
        json!({"kind": "absence", "every": "10m", "grace": "2m", "recovered": false, "group_by": ["$[\"odd key\"]"]}),
        json!({"kind": "sequence", "steps": [{"type": ["cart.created"]}], "then_not": {"type": ["checkout.completed"]}, "within": "1h", "group_by": ["$.data.cart"]}),
        json!({"kind": "absence", "schedule": "cron(0 9 * * MON-FRI)", "timezone": "Europe/Berlin", "grace": "30m", "recovered": true,
               "quiet": [{"schedule": "cron(0 2 * * SUN)", "for": "4h"}], "group_by": []}),
    ] {
        let body = json!({"name": "t", "pattern": {"type": ["x"]}, "condition": condition,
                          "actions": [{"url": "https://hooks.example.com/a"}]});
        let created = create(&api, t, &body).await;
        assert_eq!(created.status, 201, "{}", created.body);
        assert_eq!(created.body["condition"], condition);
    }
    let huge = "a".repeat(100_000);
    for (condition, path) in [
        (
            json!({"kind": "threshold", "count": 3, "within": "1h", "group_by": ["$[\"a\\u0000\"]"]}),
            "$.condition.group_by[0]",
        ),
        (
            json!({"kind": "threshold", "count": 3, "within": "1h", "group_by": [format!("$.{huge}")]}),
            "$.condition.group_by[0]",
        ),
        (
            json!({"kind": "threshold", "count": 3, "within": "400d"}),
            "$.condition.within",
        ),
        (
            json!({"kind": "threshold", "count": 1e300, "within": "1h"}),
            "$.condition.count",
        ),
        (
            json!({"kind": "absence", "every": "10s"}),
            "$.condition.every",
        ),
        (
            json!({"kind": "sequence", "within": "1h", "steps": [{"type": ["a"]}, {"type": [{"prefix": 3}]}]}),
            "$.condition.steps[1].type[0].prefix",
        ),
        (
            json!({"kind": "sequence", "within": "1h", "steps": vec![json!({"type": ["a"]}); 6]}),
            "$.condition.steps",
        ),
        (
            json!({"kind": "debounce", "quiet": huge}),
            "$.condition.quiet",
        ),
        (
            json!({"kind": "sequence", "within": "1h", "steps": [{"type": ["a"]}], "then_not": {"type": ["b\u{0}"]}}),
            "$.condition.then_not.type[0]",
        ),
        (
            json!({"kind": "sequence", "within": "1h", "steps": [{"type": ["a"]}], "then_not": {"type": [huge]}}),
            "$.condition.then_not",
        ),
        (
            json!({"kind": "absence", "schedule": format!("cron(0 9 * * {huge})")}),
            "$.condition.schedule",
        ),
        (
            json!({"kind": "absence", "schedule": "cron(0 9 * * \u{0})"}),
            "$.condition.schedule",
        ),
        (
            json!({"kind": "absence", "schedule": "cron(0 9 * * *)", "timezone": "Europe/Berlin\u{0}"}),
            "$.condition.timezone",
        ),
        (
            json!({"kind": "absence", "every": "10m", "quiet": vec![json!({"schedule": "cron(0 2 * * SUN)", "for": "1h"}); 6]}),
            "$.condition.quiet",
        ),
    ] {
        let body = json!({"name": "t", "pattern": {"type": ["x"]}, "condition": condition,
                          "actions": [{"url": "https://hooks.example.com/a"}]});
        let got = create(&api, t, &body).await;
        assert_eq!(got.status, 422, "{}", got.body);
        assert!(
            got.error_paths().contains(&path.to_owned()),
            "{path}: {}",
            got.body
        );
    }
}
