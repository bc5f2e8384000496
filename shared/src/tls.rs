//! The TLS client configuration every outbound HTTPS connection uses: the AWS SDK clients
//! ([`crate::sdk_http`]) and the webhook client.
//!
//! - **One crypto library, ring.** sqlx already links it for Postgres; the SDK's default client
//!   would add aws-lc beside it (about 0.6 MB more per zip, measured).
//! - **Compiled-in roots.** The trust anchors are the Mozilla root program's, as shipped by
//!   `webpki-roots`, already in parsed form. Nothing is read from disk and nothing is parsed at
//!   init: loading the system store (rustls-native-certs) took most of an SDK-using
//!   function's cold start, and the SDK parsed it again for every client it built.
//!
//! The roots are only as current as the `webpki-roots` release in `Cargo.lock`; updating it
//! (with every other dependency) is how a root change reaches the functions.

use std::sync::Arc;

/// The ring provider, TLS 1.2 and 1.3, the compiled-in roots, no client certificate.
pub fn client_config() -> rustls::ClientConfig {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        // The versions are rustls' own defaults, which its ring provider always supports: this
        // depends on no input and cannot fail.
        .expect("the ring provider supports rustls' default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

#[cfg(test)]
mod tests {

    fn trusts_subject(name: &str) -> bool {
        webpki_roots::TLS_SERVER_ROOTS.iter().any(|anchor| {
            anchor
                .subject
                .as_ref()
                .windows(name.len())
                .any(|w| w == name.as_bytes())
        })
    }

    #[test]
    fn trusts_the_roots_aws_endpoints_chain_to() {
        // AWS service endpoints present Amazon Trust Services certificates; the Starfield root
        // cross-signs them for older clients.
        for name in [
            "Amazon Root CA 1",
            "Amazon Root CA 2",
            "Amazon Root CA 3",
            "Amazon Root CA 4",
            "Starfield Services Root Certificate Authority - G2",
        ] {
            assert!(trusts_subject(name), "{name} is not a trust anchor");
        }
        assert!(!trusts_subject("TriggerIQ Test CA"));
    }
}
