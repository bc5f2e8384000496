//! The Cognito user pool's pre-token-generation trigger: wiring only; the logic is
//! `triggeriq::cognito`. No database, no AWS client: the tenant is a user attribute.

use triggeriq::wiring;

#[tokio::main]
async fn main() -> wiring::Result {
    wiring::init_tracing();
    triggeriq::cognito::run().await
}
