//! The `lambda_http` hello world the cold-start harness compares every API route with: what
//! `cargo lambda new --http` generates, built by the same release profile as the functions.

use lambda_http::{Body, Error, Request, Response, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    lambda_http::run(service_fn(|_request: Request| async {
        Response::builder()
            .status(200)
            .header("content-type", "text/plain")
            .body(Body::from("hello world"))
            .map_err(Error::from)
    }))
    .await
}
