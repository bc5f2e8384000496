//! API Gateway's JWT authorizer, as the local stack runs it for the Cognito branch of
//! template.yaml (`--parameter CognitoIssuerUrl=http://127.0.0.1:…`): the token in the
//! identity source (`Bearer <jwt>` or the bare token) must be an RS256 JWT signed by a key of
//! the issuer's JWKS (`{issuer}/.well-known/jwks.json`, fetched on first use and again when a
//! token names an unknown key), issued by `iss` = the issuer, not expired, not used before
//! `nbf`, and meant for one of the audiences: its `aud`, or (Cognito access tokens have none)
//! its `client_id`. The route then gets `requestContext.authorizer.jwt` with the claims as
//! strings and the `scope` claim's scopes, as API Gateway passes them.
//!
//! The issuer must be on the loopback interface: the local stack talks to nothing else.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use tokio::sync::Mutex;

/// The claims and scopes a verified token hands the route.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// Every claim, strings as they are and other values as their JSON text.
    pub claims: HashMap<String, String>,
    /// The `scope` claim, split on spaces; `None` when the token has none (an ID token).
    pub scopes: Option<Vec<String>>,
}

/// Why a token is refused (API Gateway answers 401 for each).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the token is not a signed JWT: {0}")]
    Malformed(String),
    #[error("the token is not signed with RS256")]
    Algorithm,
    #[error("no key of the issuer's JWKS has the token's kid")]
    UnknownKey,
    #[error("the token does not verify: {0}")]
    Invalid(String),
    #[error("the token is for another audience")]
    Audience,
    #[error("the issuer's keys cannot be read: {0}")]
    Jwks(String),
}

/// One JWT authorizer's issuer, audiences and the issuer's keys.
#[derive(Debug)]
pub struct JwtVerifier {
    issuer: String,
    audience: Vec<String>,
    keys: Mutex<Option<JwkSet>>,
    client: reqwest::Client,
}

impl JwtVerifier {
    /// Tokens of `issuer` for one of `audience`. The issuer must be an http(s) URL on
    /// 127.0.0.0/8 or ::1.
    pub fn new(issuer: &str, audience: &[String]) -> anyhow::Result<Self> {
        let url = reqwest::Url::parse(issuer)
            .map_err(|e| anyhow::anyhow!("JWT issuer {issuer:?} is not a URL: {e}"))?;
        let loopback = match url.host() {
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
            _ => false,
        };
        if !loopback {
            anyhow::bail!(
                "JWT issuer {issuer}: the local stack fetches keys from 127.0.0.1 or [::1] only"
            );
        }
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()?;
        Ok(Self {
            issuer: issuer.trim_end_matches('/').to_owned(),
            audience: audience.iter().filter(|a| !a.is_empty()).cloned().collect(),
            keys: Mutex::new(None),
            client,
        })
    }

    /// Verifies the identity-source value (`Bearer <jwt>` or `<jwt>`).
    pub async fn verify(&self, identity: &str) -> Result<Verified, Refused> {
        let token = identity
            .trim()
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map_or(identity.trim(), |(_, t)| t.trim());
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| Refused::Malformed(e.to_string()))?;
        if header.alg != Algorithm::RS256 {
            return Err(Refused::Algorithm);
        }
        let kid = header.kid.ok_or(Refused::UnknownKey)?;
        let key = self.key(&kid).await?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "iss"]);
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.leeway = 0;
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
            .map_err(|e| Refused::Invalid(e.to_string()))?;
        let claims = data.claims;
        let audiences: Vec<&str> = match claims.get("aud").or_else(|| claims.get("client_id")) {
            Some(Value::String(one)) => vec![one.as_str()],
            Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !audiences
            .iter()
            .any(|a| self.audience.iter().any(|b| b == a))
        {
            return Err(Refused::Audience);
        }
        let scopes = claims
            .get("scope")
            .and_then(Value::as_str)
            .map(|s| s.split_whitespace().map(str::to_owned).collect());
        let claims = claims
            .into_iter()
            .map(|(k, v)| {
                let text = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, text)
            })
            .collect();
        Ok(Verified { claims, scopes })
    }

    /// The key `kid`, fetching the JWKS when it is not known yet (rotation adds keys).
    async fn key(&self, kid: &str) -> Result<DecodingKey, Refused> {
        let mut keys = self.keys.lock().await;
        let find = |set: &JwkSet| set.find(kid).map(DecodingKey::from_jwk);
        if let Some(found) = keys.as_ref().and_then(find) {
            return found.map_err(|e| Refused::Jwks(e.to_string()));
        }
        let url = format!("{}/.well-known/jwks.json", self.issuer);
        let body = self
            .client
            .get(&url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| Refused::Jwks(format!("{url}: {e}")))?
            .bytes()
            .await
            .map_err(|e| Refused::Jwks(format!("{url}: {e}")))?;
        let fetched: JwkSet = serde_json::from_slice(&body)
            .map_err(|e| Refused::Jwks(format!("{url}: not a JWKS: {e}")))?;
        let found = find(&fetched);
        *keys = Some(fetched);
        found
            .ok_or(Refused::UnknownKey)?
            .map_err(|e| Refused::Jwks(e.to_string()))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    use super::*;

    pub(crate) const SIGNING_KEY: &str = include_str!("../tests/data/jwt-signing-key.pem");
    const OTHER_KEY: &str = include_str!("../tests/data/jwt-other-key.pem");
    const JWKS: &str = include_str!("../tests/data/jwks.json");
    pub(crate) const TENANT: &str = "0190f0a0-0000-7000-8000-000000000001";

    /// A JWKS endpoint on 127.0.0.1; returns the issuer URL.
    pub(crate) async fn issuer() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = axum::Router::new().route(
            "/pool/.well-known/jwks.json",
            axum::routing::get(|| async {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    JWKS,
                )
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/pool")
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    /// A Cognito-shaped access token.
    pub(crate) fn claims(issuer: &str) -> Value {
        json!({
            "sub": "user-1", "iss": issuer, "client_id": "app-client", "token_use": "access",
            "scope": "triggeriq/read triggeriq/admin", "tenant_id": TENANT,
            "exp": now() + 300, "iat": now(), "auth_time": now()
        })
    }

    pub(crate) fn sign(claims: &Value, pem: &str, kid: &str, alg: Algorithm) -> String {
        let mut header = Header::new(alg);
        header.kid = Some(kid.to_owned());
        let key = EncodingKey::from_rsa_pem(pem.as_bytes()).expect("a test key");
        jsonwebtoken::encode(&header, claims, &key).expect("signed")
    }

    fn verifier(issuer: &str) -> JwtVerifier {
        JwtVerifier::new(issuer, &["app-client".to_owned()]).expect("verifier")
    }

    #[tokio::test]
    async fn a_token_signed_by_the_issuers_key_gives_its_claims_and_scopes() {
        let issuer = issuer().await;
        let token = sign(
            &claims(&issuer),
            SIGNING_KEY,
            "jwt-signing-key",
            Algorithm::RS256,
        );
        let verified = verifier(&issuer)
            .verify(&format!("Bearer {token}"))
            .await
            .expect("verified");
        assert_eq!(verified.claims["tenant_id"], TENANT);
        assert_eq!(verified.claims["client_id"], "app-client");
        assert!(
            verified.claims["exp"].parse::<i64>().is_ok(),
            "numbers as text"
        );
        assert_eq!(
            verified.scopes,
            Some(vec!["triggeriq/read".into(), "triggeriq/admin".into()])
        );
        // The bare token works too, and an ID token (aud, no scope) has no scopes.
        let mut id = claims(&issuer);
        id["aud"] = json!("app-client");
        id["token_use"] = json!("id");
        id.as_object_mut().expect("object").remove("scope");
        let token = sign(&id, SIGNING_KEY, "jwt-signing-key", Algorithm::RS256);
        let verified = verifier(&issuer).verify(&token).await.expect("verified");
        assert_eq!(verified.scopes, None);
    }

    #[tokio::test]
    async fn forged_expired_foreign_or_misaddressed_tokens_are_refused() {
        let issuer = issuer().await;
        let v = verifier(&issuer);
        let good = claims(&issuer);
        let with = |key: &str, value: Value| {
            let mut c = good.clone();
            c[key] = value;
            c
        };
        type Case = (&'static str, String, fn(&Refused) -> bool);
        let cases: Vec<Case> = vec![
            (
                "signed by a key the issuer does not publish, under its kid",
                sign(&good, OTHER_KEY, "jwt-signing-key", Algorithm::RS256),
                |r| matches!(r, Refused::Invalid(_)),
            ),
            (
                "a kid the issuer does not have",
                sign(&good, OTHER_KEY, "jwt-other-key", Algorithm::RS256),
                |r| *r == Refused::UnknownKey,
            ),
            (
                "expired",
                sign(
                    &with("exp", json!(now() - 1)),
                    SIGNING_KEY,
                    "jwt-signing-key",
                    Algorithm::RS256,
                ),
                |r| matches!(r, Refused::Invalid(_)),
            ),
            (
                "not yet valid",
                sign(
                    &with("nbf", json!(now() + 600)),
                    SIGNING_KEY,
                    "jwt-signing-key",
                    Algorithm::RS256,
                ),
                |r| matches!(r, Refused::Invalid(_)),
            ),
            (
                "another issuer",
                sign(
                    &with(
                        "iss",
                        json!("https://cognito-idp.us-east-1.amazonaws.com/other"),
                    ),
                    SIGNING_KEY,
                    "jwt-signing-key",
                    Algorithm::RS256,
                ),
                |r| matches!(r, Refused::Invalid(_)),
            ),
            (
                "another app client",
                sign(
                    &with("client_id", json!("someone-else")),
                    SIGNING_KEY,
                    "jwt-signing-key",
                    Algorithm::RS256,
                ),
                |r| *r == Refused::Audience,
            ),
            (
                "RS512 instead of RS256",
                sign(&good, SIGNING_KEY, "jwt-signing-key", Algorithm::RS512),
                |r| *r == Refused::Algorithm,
            ),
            ("not a JWT", "tiq_not-a-jwt".into(), |r| {
                matches!(r, Refused::Malformed(_))
            }),
        ];
        for (what, token, expected) in cases {
            let got = v.verify(&format!("Bearer {token}")).await;
            match got {
                Err(refused) => assert!(expected(&refused), "{what}: {refused:?}"),
                Ok(v) => panic!("{what}: accepted {v:?}"),
            }
        }
        // "alg": "none" with the signature removed.
        let token = sign(&good, SIGNING_KEY, "jwt-signing-key", Algorithm::RS256);
        let mut parts = token.split('.');
        let (_, payload) = (parts.next(), parts.next().expect("payload"));
        use base64::Engine as _;
        let none = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(r#"{"alg":"none","kid":"jwt-signing-key"}"#);
        assert!(v.verify(&format!("{none}.{payload}.")).await.is_err());
    }

    #[test]
    fn an_issuer_off_the_loopback_interface_is_refused() {
        for issuer in [
            "https://cognito-idp.us-east-1.amazonaws.com/pool",
            "http://10.0.0.5/pool",
            "http://localhost.example/pool",
        ] {
            assert!(JwtVerifier::new(issuer, &["a".into()]).is_err(), "{issuer}");
        }
        assert!(JwtVerifier::new("http://[::1]:9/pool", &["a".into()]).is_ok());
    }
}
