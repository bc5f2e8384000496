//! A TLS server on 127.0.0.1 with a self-signed certificate (a root nobody trusts) that answers
//! every request with a fixed response, and reports each handshake's result: a client that
//! verifies certificates fails the handshake; one that did not would get the answer.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::sync::mpsc::UnboundedReceiver;

/// Starts the server; `answer` is the raw HTTP response. The receiver yields `Ok(())` for a
/// completed handshake, `Err(reason)` for a failed one.
pub async fn untrusted_tls_server(
    answer: &'static [u8],
) -> (SocketAddr, UnboundedReceiver<Result<(), String>>) {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.key_pair.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (handshakes, outcomes) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let handshakes = handshakes.clone();
            tokio::spawn(async move {
                match acceptor.accept(socket).await {
                    Ok(mut tls) => {
                        let _ = handshakes.send(Ok(()));
                        let mut buf = [0u8; 8192];
                        let _ = tls.read(&mut buf).await;
                        let _ = tls.write_all(answer).await;
                        let _ = tls.shutdown().await;
                    }
                    Err(err) => {
                        let _ = handshakes.send(Err(err.to_string()));
                    }
                }
            });
        }
    });
    (address, outcomes)
}
