//! The HTTPS client every AWS SDK client uses: hyper 1 with rustls over ring and the
//! compiled-in roots of [`crate::tls`].
//!
//! Why not the SDK's default client (`default-https-client`): it loads the system trust store
//! when a service client is built, and builds its root store again for each client (and once
//! more for the first request), which was most of an SDK-using function's init (8–13 ms against
//! a hello world's 2.4 ms); and it links aws-lc, a second crypto library next to the ring that
//! sqlx uses. Here the roots come pre-parsed, one TLS configuration is shared by every client,
//! and nothing happens at build time but allocating a connection pool.
//!
//! What the SDK asks of a client is kept: the connect timeout (`HttpConnectorSettings`) bounds
//! the TCP connection, the read timeout bounds the wait for the response head, and errors are
//! classified the way the SDK's retry strategy expects (connection failures and closed
//! connections are transient I/O errors, timeouts are timeouts). One thing the SDK's client
//! has that this one does not: "connection poisoning" (the SDK marking a pooled connection not
//! to be reused after some failures). The gap is small: hyper drops a connection whose request
//! failed or was abandoned (a timeout drops the request's future, and the connection with it).

use std::collections::HashMap;
use std::error::Error as StdError;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::ErrorKind;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;
use hyper_util::client::legacy::{Client, Error as ClientError};
use hyper_util::rt::{TokioExecutor, TokioTimer};

type Pool = Client<HttpsConnector<TcpConnector>, SdkBody>;

/// The client to hand to `aws_config::ConfigLoader::http_client` or a service config builder.
pub fn http_client() -> SharedHttpClient {
    SharedHttpClient::new(SdkHttpClient {
        tls: Arc::new(crate::tls::client_config()),
        pools: Arc::default(),
    })
}

/// One connection pool per connect timeout the SDK asks for (in practice one: every client is
/// built from the same `SdkConfig`).
#[derive(Debug, Clone)]
struct SdkHttpClient {
    tls: Arc<rustls::ClientConfig>,
    pools: Arc<Mutex<HashMap<Option<Duration>, Pool>>>,
}

impl SdkHttpClient {
    fn pool(&self, connect_timeout: Option<Duration>) -> Pool {
        let mut pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
        pools
            .entry(connect_timeout)
            .or_insert_with(|| {
                let mut tcp = TcpConnector::new();
                tcp.enforce_http(false);
                tcp.set_nodelay(true);
                tcp.set_connect_timeout(connect_timeout);
                let https = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(rustls::ClientConfig::clone(&self.tls))
                    // http for an emulator's endpoint (moto on 127.0.0.1), https for AWS.
                    .https_or_http()
                    .enable_http1()
                    .wrap_connector(tcp);
                Client::builder(TokioExecutor::new())
                    .pool_timer(TokioTimer::new())
                    .timer(TokioTimer::new())
                    .build(https)
            })
            .clone()
    }
}

impl HttpClient for SdkHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(Connector {
            pool: self.pool(settings.connect_timeout()),
            read_timeout: settings.read_timeout(),
        })
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        Some(ConnectorMetadata::new("hyper", Some("1.x".into())))
    }
}

#[derive(Debug)]
struct Connector {
    pool: Pool,
    read_timeout: Option<Duration>,
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let request = match request.try_into_http1x() {
            Ok(request) => request,
            Err(err) => return HttpConnectorFuture::ready(Err(ConnectorError::user(err.into()))),
        };
        let sent = self.pool.request(request);
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(async move {
            let response = match read_timeout {
                Some(limit) => tokio::time::timeout(limit, sent)
                    .await
                    .map_err(|elapsed| ConnectorError::timeout(elapsed.into()))?,
                None => sent.await,
            }
            .map_err(classify)?;
            HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                .map_err(|err| ConnectorError::other(err.into(), None))
        })
    }
}

/// Sorts hyper's errors the way the SDK's retry classifier reads them.
fn classify(err: ClientError) -> ConnectorError {
    if err.is_connect() {
        // DNS, TCP connect (including its timeout) and the TLS handshake: nothing was sent.
        return ConnectorError::io(err.into());
    }
    if let Some(hyper_err) = find_source::<hyper::Error>(&err) {
        if hyper_err.is_timeout() {
            return ConnectorError::timeout(err.into());
        }
        if hyper_err.is_user() {
            return ConnectorError::user(err.into());
        }
        if hyper_err.is_incomplete_message() {
            // The connection closed before a whole response arrived (S3 does this).
            return ConnectorError::other(err.into(), Some(ErrorKind::TransientError));
        }
        if hyper_err.is_closed() || hyper_err.is_canceled() {
            return ConnectorError::io(err.into());
        }
    }
    if find_source::<std::io::Error>(&err).is_some() {
        return ConnectorError::io(err.into());
    }
    ConnectorError::other(err.into(), None)
}

fn find_source<'a, E: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a E> {
    let mut next = Some(err);
    while let Some(err) = next {
        if let Some(found) = err.downcast_ref::<E>() {
            return Some(found);
        }
        next = err.source();
    }
    None
}
