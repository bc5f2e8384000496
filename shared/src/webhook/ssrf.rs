//! The SSRF guard for webhook targets: which addresses a webhook may be sent
//! to, and a resolver that only ever hands the HTTP client checked addresses.
//!
//! # What is refused
//!
//! A target is refused when it is, or resolves to, an address in one of the
//! [`AddressClass`]es: unspecified (`0.0.0.0/8`, `::`), loopback, private
//! (RFC 1918), link-local, shared address space (CGNAT, `100.64.0.0/10`),
//! multicast, broadcast and other reserved IPv4 space, documentation and
//! benchmarking ranges, IPv6 unique-local (`fc00::/7`) and site-local, and the
//! cloud metadata endpoints (AWS IMDS `169.254.169.254` / `fd00:ec2::254`, the
//! ECS and EKS credential endpoints, Alibaba's `100.100.100.200`).
//!
//! IPv6 forms that carry an IPv4 address are unwrapped and the IPv4 address is
//! judged: IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`),
//! IPv4-translated (`::ffff:0:a.b.c.d`), NAT64 (`64:ff9b::/96`) and 6to4
//! (`2002::/16`). A NAT64 or 6to4 gateway forwards to that IPv4 address, so
//! `64:ff9b::a9fe:a9fe` reaches the metadata service just as surely as the
//! literal does. Teredo (`2001::/32`, whose embedded addresses are obfuscated)
//! and local-use NAT64 (`64:ff9b:1::/48`, whose layout is site-defined) are
//! refused outright: neither is a plausible webhook receiver.
//!
//! # No DNS rebinding
//!
//! A host name is resolved once per connection by [`GuardedResolver`], the
//! refused addresses are dropped, and only the remaining, checked addresses
//! are given to the HTTP client, which connects to exactly those (it is the
//! client's DNS resolver, not a check run beside it). A name whose every
//! address is refused is refused; a name with some public addresses is
//! connected to on those only. IP-literal hosts never reach a resolver, so
//! [`check_url`] judges them before a request is built. Redirects are not
//! followed and proxies are never used (see the client), since both would
//! move the connection to an address this guard never saw.
//!
//! # Local development
//!
//! [`AddressPolicy::local_development`] (or `ALLOW_PRIVATE_WEBHOOK_TARGETS=true`
//! read by [`AddressPolicy::from_env`]) lifts the guard so that a receiver on
//! 127.0.0.1 or a LAN can be used. Even then the cloud metadata addresses stay
//! refused: if the setting ever leaks into a deployed function, it must not
//! hand out the function's credentials.
//!
//! Ports are not restricted: a receiver on any port of a public address is as
//! public as one on 443.

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::pin::Pin;
use std::sync::Arc;

use ipnet::{Ipv4Net, Ipv6Net};
use url::{Host, Url};

/// Environment variable that, set to `true` or `1`, selects
/// [`AddressPolicy::local_development`] in [`AddressPolicy::from_env`].
pub const ALLOW_PRIVATE_ENV: &str = "ALLOW_PRIVATE_WEBHOOK_TARGETS";

/// Why an address is not a public unicast address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressClass {
    /// `0.0.0.0/8` ("this network") and `::`.
    Unspecified,
    /// `127.0.0.0/8` and `::1`.
    Loopback,
    /// RFC 1918: `10/8`, `172.16/12`, `192.168/16`.
    Private,
    /// `169.254.0.0/16` and `fe80::/10`.
    LinkLocal,
    /// RFC 6598 shared address space (carrier-grade NAT), `100.64.0.0/10`.
    SharedAddressSpace,
    /// `224.0.0.0/4` and `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// Other special-purpose space: `192.0.0.0/24`, `192.88.99.0/24`, `240.0.0.0/4`,
    /// local-use NAT64 `64:ff9b:1::/48`, discard-only `100::/64`.
    Reserved,
    /// `192.0.2.0/24`, `198.51.100.0/24`, `203.0.113.0/24`, `2001:db8::/32`.
    Documentation,
    /// `198.18.0.0/15` and `2001:2::/48`.
    Benchmarking,
    /// IPv6 unique-local `fc00::/7`, the IPv6 counterpart of private space.
    UniqueLocal,
    /// Deprecated IPv6 site-local `fec0::/10`.
    SiteLocal,
    /// Teredo `2001::/32`.
    Teredo,
    /// An instance or task metadata / credentials endpoint.
    CloudMetadata,
}

impl AddressClass {
    fn describe(self) -> &'static str {
        match self {
            Self::Unspecified => "an unspecified address",
            Self::Loopback => "a loopback address",
            Self::Private => "a private address",
            Self::LinkLocal => "a link-local address",
            Self::SharedAddressSpace => "a shared (carrier-grade NAT) address",
            Self::Multicast => "a multicast address",
            Self::Broadcast => "the broadcast address",
            Self::Reserved => "a reserved address",
            Self::Documentation => "a documentation address",
            Self::Benchmarking => "a benchmarking address",
            Self::UniqueLocal => "a unique-local IPv6 address",
            Self::SiteLocal => "a site-local IPv6 address",
            Self::Teredo => "a Teredo tunnel address",
            Self::CloudMetadata => "a cloud metadata address",
        }
    }
}

/// How an IPv6 address carried the IPv4 address that was judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Embedding {
    /// `::ffff:a.b.c.d`
    Ipv4Mapped,
    /// `::a.b.c.d` (deprecated)
    Ipv4Compatible,
    /// `::ffff:0:a.b.c.d`
    Ipv4Translated,
    /// `64:ff9b::a.b.c.d`
    Nat64,
    /// `2002:AABB:CCDD::/48`
    SixToFour,
}

impl Embedding {
    fn describe(self) -> &'static str {
        match self {
            Self::Ipv4Mapped => "IPv4-mapped",
            Self::Ipv4Compatible => "IPv4-compatible",
            Self::Ipv4Translated => "IPv4-translated",
            Self::Nat64 => "NAT64",
            Self::SixToFour => "6to4",
        }
    }
}

/// One refused address, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The address as given or resolved.
    pub address: IpAddr,
    /// The class that refused it (of the embedded IPv4 address when `via` is set).
    pub class: AddressClass,
    /// Set when an IPv4 address inside an IPv6 one was judged.
    pub via: Option<(Embedding, Ipv4Addr)>,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.via {
            None => write!(f, "{} is {}", self.address, self.class.describe()),
            Some((embedding, v4)) => write!(
                f,
                "{} is the {} IPv6 form of {} ({})",
                self.address,
                embedding.describe(),
                v4,
                self.class.describe()
            ),
        }
    }
}

/// Why a webhook target URL may not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SsrfError {
    #[error("webhook URL is invalid: {0}")]
    InvalidUrl(String),
    #[error("webhook URL scheme must be http or https, found `{0}`")]
    UnsupportedScheme(String),
    #[error("webhook URL has no host")]
    MissingHost,
    #[error("webhook target refused: {0}")]
    Refused(Refusal),
    #[error("webhook target `{host}` refused: every address it resolves to is refused ({})", first_reason(.refusals))]
    AllAddressesRefused {
        host: String,
        refusals: Vec<Refusal>,
    },
    #[error("webhook host `{host}` could not be resolved: {message}")]
    Resolution { host: String, message: String },
    #[error("webhook host `{host}` resolved to no address")]
    NoAddresses { host: String },
}

fn first_reason(refusals: &[Refusal]) -> String {
    refusals
        .first()
        .map(ToString::to_string)
        .unwrap_or_else(|| "no address".to_owned())
}

impl SsrfError {
    /// True when the target is refused by policy (retrying cannot help and
    /// the action should be disabled), false for resolution failures, which
    /// may be transient.
    pub fn is_policy_refusal(&self) -> bool {
        !matches!(self, Self::Resolution { .. } | Self::NoAddresses { .. })
    }
}

/// Which addresses webhooks may be sent to. The default is strict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AddressPolicy {
    allow_private: bool,
}

impl AddressPolicy {
    /// Refuses every class in [`AddressClass`]: the production setting.
    pub const fn strict() -> Self {
        Self {
            allow_private: false,
        }
    }

    /// Allows loopback, private and other non-public addresses, except the
    /// cloud metadata endpoints. For local development and tests only.
    pub const fn local_development() -> Self {
        Self {
            allow_private: true,
        }
    }

    /// [`Self::local_development`] when [`ALLOW_PRIVATE_ENV`] is `true` or
    /// `1`, otherwise [`Self::strict`]. Any other value is strict: the guard is
    /// lifted only by an explicit setting.
    pub fn from_env() -> Self {
        match std::env::var(ALLOW_PRIVATE_ENV) {
            Ok(value) if value.eq_ignore_ascii_case("true") || value == "1" => {
                Self::local_development()
            }
            _ => Self::strict(),
        }
    }

    /// True when this policy lifts the guard for non-public addresses.
    pub fn allows_private(&self) -> bool {
        self.allow_private
    }

    /// Whether a connection to `address` is allowed.
    pub fn check(&self, address: IpAddr) -> Result<(), Refusal> {
        match classify(address) {
            None => Ok(()),
            Some(refusal) if self.allow_private && refusal.class != AddressClass::CloudMetadata => {
                Ok(())
            }
            Some(refusal) => Err(refusal),
        }
    }
}

/// The class of a non-public address, or `None` for a public unicast address.
/// Independent of any policy: [`AddressPolicy::check`] decides what to allow.
pub fn classify(address: IpAddr) -> Option<Refusal> {
    match address {
        IpAddr::V4(v4) => classify_v4(v4).map(|class| Refusal {
            address,
            class,
            via: None,
        }),
        IpAddr::V6(v6) => classify_v6(v6).map(|(class, via)| Refusal {
            address,
            class,
            via,
        }),
    }
}

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), prefix)
}

#[allow(clippy::too_many_arguments)]
const fn v6(s: [u16; 8], prefix: u8) -> Ipv6Net {
    Ipv6Net::new_assert(
        Ipv6Addr::new(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]),
        prefix,
    )
}

const METADATA_V4: [Ipv4Addr; 4] = [
    Ipv4Addr::new(169, 254, 169, 254), // EC2 IMDS (also GCP, Azure, OCI, DigitalOcean)
    Ipv4Addr::new(169, 254, 170, 2),   // ECS task metadata and credentials
    Ipv4Addr::new(169, 254, 170, 23),  // EKS Pod Identity agent
    Ipv4Addr::new(100, 100, 100, 200), // Alibaba Cloud metadata
];

const METADATA_V6: [Ipv6Addr; 2] = [
    Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254), // EC2 IMDS over IPv6
    Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0023), // EKS Pod Identity agent over IPv6
];

// Most specific first is not needed: the ranges do not overlap, except the
// metadata addresses, which are checked before this table.
const V4_RANGES: [(Ipv4Net, AddressClass); 15] = [
    (v4(0, 0, 0, 0, 8), AddressClass::Unspecified),
    (v4(10, 0, 0, 0, 8), AddressClass::Private),
    (v4(100, 64, 0, 0, 10), AddressClass::SharedAddressSpace),
    (v4(127, 0, 0, 0, 8), AddressClass::Loopback),
    (v4(169, 254, 0, 0, 16), AddressClass::LinkLocal),
    (v4(172, 16, 0, 0, 12), AddressClass::Private),
    (v4(192, 0, 0, 0, 24), AddressClass::Reserved),
    (v4(192, 0, 2, 0, 24), AddressClass::Documentation),
    (v4(192, 88, 99, 0, 24), AddressClass::Reserved),
    (v4(192, 168, 0, 0, 16), AddressClass::Private),
    (v4(198, 18, 0, 0, 15), AddressClass::Benchmarking),
    (v4(198, 51, 100, 0, 24), AddressClass::Documentation),
    (v4(203, 0, 113, 0, 24), AddressClass::Documentation),
    (v4(224, 0, 0, 0, 4), AddressClass::Multicast),
    (v4(240, 0, 0, 0, 4), AddressClass::Reserved),
];

const V6_RANGES: [(Ipv6Net, AddressClass); 9] = [
    (
        v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48),
        AddressClass::Reserved,
    ),
    (v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64), AddressClass::Reserved),
    (v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 32), AddressClass::Teredo),
    (
        v6([0x2001, 2, 0, 0, 0, 0, 0, 0], 48),
        AddressClass::Benchmarking,
    ),
    (
        v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32),
        AddressClass::Documentation,
    ),
    (
        v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7),
        AddressClass::UniqueLocal,
    ),
    (
        v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10),
        AddressClass::LinkLocal,
    ),
    (
        v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10),
        AddressClass::SiteLocal,
    ),
    (
        v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8),
        AddressClass::Multicast,
    ),
];

fn classify_v4(address: Ipv4Addr) -> Option<AddressClass> {
    if METADATA_V4.contains(&address) {
        return Some(AddressClass::CloudMetadata);
    }
    if address == Ipv4Addr::BROADCAST {
        return Some(AddressClass::Broadcast);
    }
    V4_RANGES
        .iter()
        .find(|(net, _)| net.contains(&address))
        .map(|(_, class)| *class)
}

fn classify_v6(address: Ipv6Addr) -> Option<(AddressClass, Option<(Embedding, Ipv4Addr)>)> {
    if address.is_unspecified() {
        return Some((AddressClass::Unspecified, None));
    }
    if address.is_loopback() {
        return Some((AddressClass::Loopback, None));
    }
    if METADATA_V6.contains(&address) {
        return Some((AddressClass::CloudMetadata, None));
    }
    if let Some((embedding, inner)) = embedded_v4(address) {
        return classify_v4(inner).map(|class| (class, Some((embedding, inner))));
    }
    V6_RANGES
        .iter()
        .find(|(net, _)| net.contains(&address))
        .map(|(_, class)| (*class, None))
}

/// The IPv4 address an IPv6 address forwards to, for the forms a host or a
/// gateway would actually route to that IPv4 address.
fn embedded_v4(address: Ipv6Addr) -> Option<(Embedding, Ipv4Addr)> {
    let s = address.segments();
    let low32 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some((Embedding::Ipv4Mapped, low32)),
        [0, 0, 0, 0, 0xffff, 0, _, _] => Some((Embedding::Ipv4Translated, low32)),
        // `::` and `::1` were handled before; everything else in ::/96 is IPv4-compatible.
        [0, 0, 0, 0, 0, 0, _, _] => Some((Embedding::Ipv4Compatible, low32)),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some((Embedding::Nat64, low32)),
        [0x2002, hi, lo, ..] => Some((
            Embedding::SixToFour,
            Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8),
        )),
        _ => None,
    }
}

/// A webhook URL's host, judged as far as it can be without DNS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckedHost {
    /// An IP-literal host that the policy allows.
    Address(IpAddr),
    /// A host name: [`GuardedResolver`] judges its addresses at connect time.
    Name(String),
}

/// Parses and pre-checks a webhook target: an absolute `http`/`https` URL
/// whose host, when it is an IP literal (in any form the URL standard
/// accepts, such as `http://2130706433/` or `http://0x7f.1/`), is allowed.
pub fn check_url(policy: &AddressPolicy, raw: &str) -> Result<(Url, CheckedHost), SsrfError> {
    let url = Url::parse(raw).map_err(|e| SsrfError::InvalidUrl(e.to_string()))?;
    let host = check_parsed_url(policy, &url)?;
    Ok((url, host))
}

/// [`check_url`] for a URL that is already parsed.
pub fn check_parsed_url(policy: &AddressPolicy, url: &Url) -> Result<CheckedHost, SsrfError> {
    match url.scheme() {
        "http" | "https" => {}
        other => return Err(SsrfError::UnsupportedScheme(other.to_owned())),
    }
    let address = match url.host() {
        None => return Err(SsrfError::MissingHost),
        Some(Host::Domain(name)) => {
            // The URL parser turns every numeric IPv4 spelling into Host::Ipv4 for
            // http(s); a Domain that still parses as an address would be a parser change.
            if let Ok(address) = name.parse::<IpAddr>() {
                address
            } else {
                return Ok(CheckedHost::Name(name.to_owned()));
            }
        }
        Some(Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(Host::Ipv6(v6)) => IpAddr::V6(v6),
    };
    policy.check(address).map_err(SsrfError::Refused)?;
    Ok(CheckedHost::Address(address))
}

/// A DNS lookup, abstracted so tests can resolve names to chosen addresses.
pub trait Lookup: Send + Sync + 'static {
    /// All addresses of `host`.
    fn lookup<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send + 'a>>;
}

/// The operating system's resolver (getaddrinfo through tokio).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send + 'a>> {
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host, 0u16)).await?;
            Ok(addrs.map(|a| a.ip()).collect())
        })
    }
}

/// Resolves a host name and keeps only the addresses the policy allows.
#[derive(Clone)]
pub struct GuardedResolver {
    policy: AddressPolicy,
    lookup: Arc<dyn Lookup>,
}

impl fmt::Debug for GuardedResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardedResolver")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl GuardedResolver {
    /// A resolver over the system's DNS.
    pub fn new(policy: AddressPolicy) -> Self {
        Self::with_lookup(policy, Arc::new(SystemLookup))
    }

    /// A resolver over a chosen lookup (tests, or a caching resolver).
    pub fn with_lookup(policy: AddressPolicy, lookup: Arc<dyn Lookup>) -> Self {
        Self { policy, lookup }
    }

    /// The policy applied to every resolved address.
    pub fn policy(&self) -> AddressPolicy {
        self.policy
    }

    /// The allowed addresses of `host`, in resolver order; an error when
    /// there are none. An IP-literal `host` is judged without a lookup.
    pub async fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, SsrfError> {
        // Hyper hands IPv6 literals over without brackets, but be liberal.
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(address) = bare.parse::<IpAddr>() {
            self.policy.check(address).map_err(SsrfError::Refused)?;
            return Ok(vec![address]);
        }
        let resolved = self
            .lookup
            .lookup(host)
            .await
            .map_err(|e| SsrfError::Resolution {
                host: host.to_owned(),
                message: e.to_string(),
            })?;
        if resolved.is_empty() {
            return Err(SsrfError::NoAddresses {
                host: host.to_owned(),
            });
        }
        let mut allowed = Vec::with_capacity(resolved.len());
        let mut refusals = Vec::new();
        for address in resolved {
            match self.policy.check(address) {
                Ok(()) if !allowed.contains(&address) => allowed.push(address),
                Ok(()) => {}
                Err(refusal) => refusals.push(refusal),
            }
        }
        if allowed.is_empty() {
            return Err(SsrfError::AllAddressesRefused {
                host: host.to_owned(),
                refusals,
            });
        }
        if !refusals.is_empty() {
            tracing::warn!(
                host,
                refused = refusals.len(),
                "webhook host resolved to some refused addresses; using the others"
            );
        }
        Ok(allowed)
    }
}

#[cfg(feature = "webhook-client")]
impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let resolver = self.clone();
        Box::pin(async move {
            let addresses = GuardedResolver::resolve(&resolver, name.as_str()).await?;
            // Port 0 is replaced by the URL's port (or the scheme's default) by reqwest.
            let addrs: reqwest::dns::Addrs = Box::new(
                addresses
                    .into_iter()
                    .map(|ip| std::net::SocketAddr::new(ip, 0)),
            );
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn class_of(s: &str) -> Option<AddressClass> {
        classify(ip(s)).map(|r| r.class)
    }

    #[test]
    fn every_refused_ipv4_class_is_refused() {
        let cases = [
            ("0.0.0.0", AddressClass::Unspecified),
            ("0.1.2.3", AddressClass::Unspecified),
            ("127.0.0.1", AddressClass::Loopback),
            ("127.255.255.254", AddressClass::Loopback),
            ("10.0.0.1", AddressClass::Private),
            ("172.16.0.1", AddressClass::Private),
            ("172.31.255.255", AddressClass::Private),
            ("192.168.1.1", AddressClass::Private),
            ("169.254.0.1", AddressClass::LinkLocal),
            ("169.254.169.254", AddressClass::CloudMetadata),
            ("169.254.170.2", AddressClass::CloudMetadata),
            ("100.100.100.200", AddressClass::CloudMetadata),
            ("100.64.0.1", AddressClass::SharedAddressSpace),
            ("100.127.255.255", AddressClass::SharedAddressSpace),
            ("224.0.0.1", AddressClass::Multicast),
            ("239.255.255.250", AddressClass::Multicast),
            ("255.255.255.255", AddressClass::Broadcast),
            ("240.0.0.1", AddressClass::Reserved),
            ("192.0.0.8", AddressClass::Reserved),
            ("192.0.2.1", AddressClass::Documentation),
            ("198.51.100.7", AddressClass::Documentation),
            ("203.0.113.9", AddressClass::Documentation),
            ("198.18.0.1", AddressClass::Benchmarking),
        ];
        for (address, class) in cases {
            assert_eq!(class_of(address), Some(class), "{address}");
            assert!(
                AddressPolicy::strict().check(ip(address)).is_err(),
                "{address}"
            );
        }
    }

    #[test]
    fn public_addresses_next_to_refused_ranges_are_allowed() {
        for address in [
            "1.1.1.1",
            "8.8.8.8",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.167.255.255",
            "192.169.0.0",
            "169.253.255.255",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "2002:0808:0808::1", // 6to4 of 8.8.8.8
            "64:ff9b::808:808",  // NAT64 of 8.8.8.8
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(classify(ip(address)), None, "{address}");
            assert_eq!(
                AddressPolicy::strict().check(ip(address)),
                Ok(()),
                "{address}"
            );
        }
    }

    #[test]
    fn every_refused_ipv6_class_is_refused() {
        let cases = [
            ("::", AddressClass::Unspecified),
            ("::1", AddressClass::Loopback),
            ("fe80::1", AddressClass::LinkLocal),
            ("febf::1", AddressClass::LinkLocal),
            ("fc00::1", AddressClass::UniqueLocal),
            ("fdff::1", AddressClass::UniqueLocal),
            ("fd00:ec2::254", AddressClass::CloudMetadata),
            ("fd00:ec2::23", AddressClass::CloudMetadata),
            ("fec0::1", AddressClass::SiteLocal),
            ("ff02::1", AddressClass::Multicast),
            ("ff0e::1", AddressClass::Multicast),
            ("2001:db8::1", AddressClass::Documentation),
            ("2001::1", AddressClass::Teredo),
            ("2001:2::1", AddressClass::Benchmarking),
            ("100::1", AddressClass::Reserved),
            ("64:ff9b:1::a00:1", AddressClass::Reserved),
        ];
        for (address, class) in cases {
            assert_eq!(class_of(address), Some(class), "{address}");
        }
    }

    #[test]
    fn ipv4_addresses_inside_ipv6_forms_are_judged_as_ipv4() {
        let cases = [
            (
                "::ffff:127.0.0.1",
                Embedding::Ipv4Mapped,
                AddressClass::Loopback,
            ),
            (
                "::ffff:169.254.169.254",
                Embedding::Ipv4Mapped,
                AddressClass::CloudMetadata,
            ),
            (
                "::ffff:a9fe:a9fe",
                Embedding::Ipv4Mapped,
                AddressClass::CloudMetadata,
            ),
            (
                "::ffff:10.1.2.3",
                Embedding::Ipv4Mapped,
                AddressClass::Private,
            ),
            (
                "::ffff:100.64.0.1",
                Embedding::Ipv4Mapped,
                AddressClass::SharedAddressSpace,
            ),
            (
                "::ffff:0.0.0.0",
                Embedding::Ipv4Mapped,
                AddressClass::Unspecified,
            ),
            (
                "::ffff:224.0.0.1",
                Embedding::Ipv4Mapped,
                AddressClass::Multicast,
            ),
            (
                "::ffff:169.254.1.1",
                Embedding::Ipv4Mapped,
                AddressClass::LinkLocal,
            ),
            (
                "::127.0.0.1",
                Embedding::Ipv4Compatible,
                AddressClass::Loopback,
            ),
            (
                "::169.254.169.254",
                Embedding::Ipv4Compatible,
                AddressClass::CloudMetadata,
            ),
            (
                "::ffff:0:192.168.0.1",
                Embedding::Ipv4Translated,
                AddressClass::Private,
            ),
            (
                "64:ff9b::169.254.169.254",
                Embedding::Nat64,
                AddressClass::CloudMetadata,
            ),
            ("64:ff9b::7f00:1", Embedding::Nat64, AddressClass::Loopback),
            (
                "2002:a9fe:a9fe::",
                Embedding::SixToFour,
                AddressClass::CloudMetadata,
            ),
            (
                "2002:0a00:0001::1",
                Embedding::SixToFour,
                AddressClass::Private,
            ),
        ];
        for (address, embedding, class) in cases {
            let refusal = classify(ip(address)).unwrap_or_else(|| panic!("{address} allowed"));
            assert_eq!(refusal.class, class, "{address}");
            assert_eq!(refusal.via.map(|v| v.0), Some(embedding), "{address}");
        }
    }

    #[test]
    fn refusal_explains_itself() {
        let refusal = classify(ip("::ffff:169.254.169.254")).unwrap();
        assert_eq!(
            refusal.to_string(),
            "::ffff:169.254.169.254 is the IPv4-mapped IPv6 form of 169.254.169.254 (a cloud metadata address)"
        );
    }

    #[test]
    fn local_development_allows_private_but_never_metadata() {
        let dev = AddressPolicy::local_development();
        for address in ["127.0.0.1", "::1", "10.0.0.1", "192.168.1.10", "fd12::1"] {
            assert_eq!(dev.check(ip(address)), Ok(()), "{address}");
        }
        for address in [
            "169.254.169.254",
            "fd00:ec2::254",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "169.254.170.2",
        ] {
            assert_eq!(
                dev.check(ip(address)).map_err(|r| r.class),
                Err(AddressClass::CloudMetadata),
                "{address}"
            );
        }
    }

    #[test]
    fn check_url_judges_every_ip_literal_spelling() {
        let strict = AddressPolicy::strict();
        for url in [
            "http://127.0.0.1/hook",
            "http://2130706433/", // decimal
            "http://0x7f.1/",     // hex + short form
            "http://0177.0.0.1/", // octal
            "http://127.1/",
            "https://[::1]:8443/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://169.254.169.254/latest/meta-data/",
            "http://[fd00:ec2::254]/",
            "http://0.0.0.0:8080/",
            "http://100.64.1.1/",
            "http://224.0.0.1/",
            "http://[fe80::1]/",
        ] {
            match check_url(&strict, url) {
                Err(SsrfError::Refused(_)) => {}
                other => panic!("{url}: {other:?}"),
            }
        }
    }

    #[test]
    fn check_url_rejects_other_schemes_and_garbage() {
        let strict = AddressPolicy::strict();
        assert_eq!(
            check_url(&strict, "file:///etc/passwd").unwrap_err(),
            SsrfError::UnsupportedScheme("file".into())
        );
        assert_eq!(
            check_url(&strict, "gopher://example.com/").unwrap_err(),
            SsrfError::UnsupportedScheme("gopher".into())
        );
        assert!(matches!(
            check_url(&strict, "not a url").unwrap_err(),
            SsrfError::InvalidUrl(_)
        ));
    }

    #[test]
    fn check_url_leaves_names_to_the_resolver() {
        let (_, host) = check_url(&AddressPolicy::strict(), "https://hooks.example.com/x").unwrap();
        assert_eq!(host, CheckedHost::Name("hooks.example.com".into()));
        let (_, host) = check_url(&AddressPolicy::strict(), "https://1.1.1.1/x").unwrap();
        assert_eq!(host, CheckedHost::Address(ip("1.1.1.1")));
    }

    struct FakeDns(HashMap<&'static str, Vec<IpAddr>>);

    impl Lookup for FakeDns {
        fn lookup<'a>(
            &'a self,
            host: &'a str,
        ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send + 'a>> {
            let found = self.0.get(host).cloned();
            Box::pin(async move {
                found.ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::NotFound, "no such host")
                })
            })
        }
    }

    fn fake(entries: &[(&'static str, &[&str])]) -> Arc<dyn Lookup> {
        Arc::new(FakeDns(
            entries
                .iter()
                .map(|(name, addrs)| (*name, addrs.iter().map(|a| ip(a)).collect()))
                .collect(),
        ))
    }

    #[tokio::test]
    async fn names_resolving_only_to_refused_addresses_are_refused() {
        let targets = [
            "127.0.0.1",
            "::1",
            "10.0.0.5",
            "172.20.0.1",
            "192.168.0.1",
            "169.254.10.10",
            "fe80::1",
            "100.64.0.9",
            "224.0.0.251",
            "ff02::fb",
            "0.0.0.0",
            "::",
            "169.254.169.254",
            "fd00:ec2::254",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
            "fd11::1",
        ];
        for target in targets {
            let resolver = GuardedResolver::with_lookup(
                AddressPolicy::strict(),
                fake(&[("evil.test", &[target])]),
            );
            match resolver.resolve("evil.test").await {
                Err(SsrfError::AllAddressesRefused { host, refusals }) => {
                    assert_eq!(host, "evil.test");
                    assert_eq!(refusals.len(), 1, "{target}");
                    assert_eq!(refusals[0].address, ip(target));
                }
                other => panic!("{target}: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn mixed_answers_keep_only_the_allowed_addresses() {
        let resolver = GuardedResolver::with_lookup(
            AddressPolicy::strict(),
            fake(&[(
                "mixed.test",
                &[
                    "169.254.169.254",
                    "93.184.216.34",
                    "10.0.0.1",
                    "93.184.216.34",
                ],
            )]),
        );
        assert_eq!(
            resolver.resolve("mixed.test").await.unwrap(),
            vec![ip("93.184.216.34")]
        );
    }

    #[tokio::test]
    async fn lookup_failures_are_not_policy_refusals() {
        let resolver =
            GuardedResolver::with_lookup(AddressPolicy::strict(), fake(&[("empty.test", &[])]));
        let missing = resolver.resolve("missing.test").await.unwrap_err();
        assert!(matches!(missing, SsrfError::Resolution { .. }));
        assert!(!missing.is_policy_refusal());
        let empty = resolver.resolve("empty.test").await.unwrap_err();
        assert!(matches!(empty, SsrfError::NoAddresses { .. }));
    }

    #[tokio::test]
    async fn the_system_resolver_refuses_localhost() {
        let resolver = GuardedResolver::new(AddressPolicy::strict());
        assert!(matches!(
            resolver.resolve("localhost").await,
            Err(SsrfError::AllAddressesRefused { .. })
        ));
        let dev = GuardedResolver::new(AddressPolicy::local_development());
        let addresses = dev.resolve("localhost").await.unwrap();
        assert!(addresses.iter().all(|a| a.is_loopback()), "{addresses:?}");
    }

    #[tokio::test]
    async fn ip_literals_given_to_the_resolver_are_judged_too() {
        let resolver = GuardedResolver::new(AddressPolicy::strict());
        assert!(matches!(
            resolver.resolve("127.0.0.1").await,
            Err(SsrfError::Refused(_))
        ));
        assert!(matches!(
            resolver.resolve("[::1]").await,
            Err(SsrfError::Refused(_))
        ));
    }
}
