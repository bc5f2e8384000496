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
//! IPv6 is global only inside `2000::/3`, minus the special-purpose blocks
//! that are not globally reachable (IETF protocol assignments `2001::/23`,
//! documentation `2001:db8::/32` and `3fff::/20`, …); everything outside it is
//! [`AddressClass::NotGlobal`], except the forms that carry an IPv4 address
//! which a host or a gateway routes (IPv4-mapped, NAT64), judged as IPv4.
//!
//! # Targets: scheme, names and ports
//!
//! [`TargetPolicy`] adds what a URL says beyond its address: `https` (plain
//! `http` only where the deployment allows it), host names that can only be
//! local (`localhost`, single-label names resolved through search domains,
//! `.local`, `.internal`, `.home.arpa`, `.localdomain`), and ports: 443, 8443
//! and, where http is allowed, 80, unless the deployment lists its own
//! (`WEBHOOK_ALLOWED_PORTS`). The trigger routes apply it when an action is
//! created or changed (no DNS there: IP literals and names only), deliver-webhooks
//! before every attempt, with the resolver behind it.
//!
//! # Local development
//!
//! [`AddressPolicy::local_development`] (`ALLOW_PRIVATE_WEBHOOK_TARGETS=true`,
//! set by the local stack) allows loopback only — `127.0.0.0/8` and `::1` —
//! so that the demo receiver and test receivers on this machine can be used;
//! private, link-local, CGNAT and metadata addresses stay refused, so a
//! tenant's trigger on a developer's stack cannot reach the LAN or the cloud's
//! credentials. Loopback targets (an IP literal or `localhost`) may use any
//! port there: test receivers listen on ports the system picks.
//!
//! # What tenants are told
//!
//! The texts of these errors are stored with the attempt and shown to the
//! tenant, so they name the rule, never what the guard learned: a name whose
//! addresses are all refused says so without listing them (the tenant would
//! otherwise learn what an internal name resolves to). The refusals themselves
//! stay in the error for logs.

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::pin::Pin;
use std::sync::Arc;

use ipnet::{Ipv4Net, Ipv6Net};
use url::{Host, Url};

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
    /// IPv6 outside the global unicast space `2000::/3`, or a deprecated form
    /// (IPv4-compatible, IPv4-translated) that no host routes.
    NotGlobal,
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
            Self::NotGlobal => "not a global unicast IPv6 address",
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
    #[error("plain http webhooks are not allowed in this deployment; use https")]
    PlainHttp,
    #[error("webhook target refused: {0}")]
    Refused(Refusal),
    #[error("webhook host `{host}` refused: {reason}")]
    RefusedName { host: String, reason: &'static str },
    #[error("webhook port {port} refused: allowed ports are {}", list_ports(.allowed))]
    PortNotAllowed { port: u16, allowed: Vec<u16> },
    /// The refusals are kept for logs; the text does not list them (see the module docs).
    #[error("webhook host `{host}` refused: it resolves only to addresses webhooks may not reach")]
    AllAddressesRefused {
        host: String,
        refusals: Vec<Refusal>,
    },
    /// The resolver's own message is kept for logs; the text is the same for every failure.
    #[error("webhook host `{host}` could not be resolved")]
    Resolution { host: String, message: String },
    #[error("webhook host `{host}` resolved to no address")]
    NoAddresses { host: String },
}

fn list_ports(ports: &[u16]) -> String {
    let names: Vec<String> = ports.iter().map(u16::to_string).collect();
    names.join(", ")
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
    allow_loopback: bool,
}

impl AddressPolicy {
    /// Refuses every class in [`AddressClass`]: the production setting.
    pub const fn strict() -> Self {
        Self {
            allow_loopback: false,
        }
    }

    /// Allows loopback (`127.0.0.0/8`, `::1`) and nothing else that strict
    /// refuses: for local development and tests, whose receivers listen on
    /// this machine. Private, link-local, CGNAT and metadata addresses stay
    /// refused, and so do loopback addresses reached through a gateway (NAT64,
    /// 6to4), which would be the gateway's loopback, not ours.
    pub const fn local_development() -> Self {
        Self {
            allow_loopback: true,
        }
    }

    /// True when this policy allows loopback targets (local development).
    pub fn allows_loopback(&self) -> bool {
        self.allow_loopback
    }

    /// Whether a connection to `address` is allowed.
    pub fn check(&self, address: IpAddr) -> Result<(), Refusal> {
        match classify(address) {
            None => Ok(()),
            Some(refusal) if self.allow_loopback && is_own_loopback(&refusal) => Ok(()),
            Some(refusal) => Err(refusal),
        }
    }
}

/// Loopback of this host: `127.0.0.0/8`, `::1`, or `127.x` written as IPv4-mapped IPv6
/// (which a dual-stack socket connects to as IPv4) — not through a NAT64 or 6to4 gateway.
fn is_own_loopback(refusal: &Refusal) -> bool {
    refusal.class == AddressClass::Loopback
        && matches!(refusal.via, None | Some((Embedding::Ipv4Mapped, _)))
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

/// The global unicast space; IPv6 outside it is never a webhook receiver.
const V6_GLOBAL: Ipv6Net = v6([0x2000, 0, 0, 0, 0, 0, 0, 0], 3);

// The first match wins: the specific blocks inside 2001::/23 come before it.
const V6_RANGES: [(Ipv6Net, AddressClass); 11] = [
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
    // IETF protocol assignments (ORCHID, AMT, anycast services…): none is a receiver.
    (
        v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23),
        AddressClass::Reserved,
    ),
    (
        v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32),
        AddressClass::Documentation,
    ),
    (
        v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20),
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
        if let Some(class) = classify_v4(inner) {
            return Some((class, Some((embedding, inner))));
        }
        // A public IPv4 address: reachable as IPv4-mapped (the socket connects to it over
        // IPv4), through the well-known NAT64 prefix and 6to4 (globally routed gateways);
        // the deprecated forms are routed by nobody.
        return match embedding {
            Embedding::Ipv4Mapped | Embedding::Nat64 | Embedding::SixToFour => None,
            Embedding::Ipv4Compatible | Embedding::Ipv4Translated => {
                Some((AddressClass::NotGlobal, None))
            }
        };
    }
    if let Some((_, class)) = V6_RANGES.iter().find(|(net, _)| net.contains(&address)) {
        return Some((*class, None));
    }
    (!V6_GLOBAL.contains(&address)).then_some((AddressClass::NotGlobal, None))
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

/// The ports webhooks may use when the deployment names none: 443 and 8443 (and 80 where
/// plain http is allowed). A webhook to a public host's SSH or database port is not a webhook.
pub const DEFAULT_PORTS: [u16; 2] = [443, 8443];

/// Which webhook targets are allowed: the scheme, the host (address or name) and the port.
/// See the module documentation; `strict` is the production setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetPolicy {
    addresses: AddressPolicy,
    allow_http: bool,
    ports: Vec<u16>,
}

impl Default for TargetPolicy {
    fn default() -> Self {
        Self::strict()
    }
}

impl TargetPolicy {
    /// https only, public addresses only, the default ports.
    pub fn strict() -> Self {
        Self::new(AddressPolicy::strict(), false, None)
    }

    /// The local stack's: plain http allowed, loopback allowed (on any port).
    pub fn local_development() -> Self {
        Self::new(AddressPolicy::local_development(), true, None)
    }

    /// `ports` replaces the default ports ([`DEFAULT_PORTS`], plus 80 when `allow_http`).
    pub fn new(addresses: AddressPolicy, allow_http: bool, ports: Option<Vec<u16>>) -> Self {
        let ports = ports.unwrap_or_else(|| {
            let mut ports = DEFAULT_PORTS.to_vec();
            if allow_http {
                ports.insert(0, 80);
            }
            ports
        });
        Self {
            addresses,
            allow_http,
            ports,
        }
    }

    /// The addresses allowed (what the resolver applies at connect time).
    pub fn addresses(&self) -> AddressPolicy {
        self.addresses
    }

    /// Whether plain `http://` targets are allowed.
    pub fn allows_http(&self) -> bool {
        self.allow_http
    }

    /// The ports allowed (loopback targets in local development may use any).
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// Parses `raw` and judges it with [`Self::check`].
    pub fn check_str(&self, raw: &str) -> Result<(Url, CheckedHost), SsrfError> {
        let url = Url::parse(raw).map_err(|e| SsrfError::InvalidUrl(e.to_string()))?;
        let host = self.check(&url)?;
        Ok((url, host))
    }

    /// Judges a target as far as it can be without DNS: the scheme, an IP-literal host's
    /// address, a name that can only be local, the port. A name's addresses are judged by
    /// [`GuardedResolver`] when it is resolved.
    pub fn check(&self, url: &Url) -> Result<CheckedHost, SsrfError> {
        let host = check_parsed_url(&self.addresses, url)?;
        if let CheckedHost::Name(name) = &host {
            check_name(&self.addresses, name)?;
        }
        if url.scheme() == "http" && !self.allow_http {
            return Err(SsrfError::PlainHttp);
        }
        // http and https always have a known default port.
        let port = url.port_or_known_default().unwrap_or(443);
        let loopback_here = self.addresses.allows_loopback() && is_loopback_host(&host);
        if !self.ports.contains(&port) && !loopback_here {
            return Err(SsrfError::PortNotAllowed {
                port,
                allowed: self.ports.clone(),
            });
        }
        Ok(host)
    }
}

/// A host that is this machine: a loopback literal, or `localhost` (which RFC 6761 reserves
/// for loopback).
fn is_loopback_host(host: &CheckedHost) -> bool {
    match host {
        CheckedHost::Address(address) => classify(*address).is_some_and(|r| is_own_loopback(&r)),
        CheckedHost::Name(name) => is_localhost(name),
    }
}

fn is_localhost(name: &str) -> bool {
    let name = name.trim_end_matches('.');
    name.eq_ignore_ascii_case("localhost") || name.to_ascii_lowercase().ends_with(".localhost")
}

/// Suffixes of names that resolve only inside a network: mDNS (RFC 6762), ICANN's private-use
/// `.internal` (where clouds put their metadata and VPC names), RFC 8375's `.home.arpa`, and
/// the `.localdomain` of many hosts files.
const LOCAL_SUFFIXES: [&str; 4] = [".local", ".internal", ".home.arpa", ".localdomain"];

/// Refuses names that can only mean something local, before any lookup: they need no DNS to
/// judge, and the trigger routes must refuse them without one.
fn check_name(policy: &AddressPolicy, name: &str) -> Result<(), SsrfError> {
    let refuse = |reason| {
        Err(SsrfError::RefusedName {
            host: name.to_owned(),
            reason,
        })
    };
    if is_localhost(name) {
        if policy.allows_loopback() {
            return Ok(());
        }
        return refuse("a loopback name");
    }
    let bare = name.trim_end_matches('.').to_ascii_lowercase();
    if !bare.contains('.') {
        return refuse("a single-label name, resolved through local search domains");
    }
    if LOCAL_SUFFIXES
        .iter()
        .any(|suffix| bare.ends_with(suffix) || bare == suffix[1..])
    {
        return refuse("a name that resolves only inside a local network");
    }
    Ok(())
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
    fn local_development_allows_loopback_and_nothing_else() {
        let dev = AddressPolicy::local_development();
        for address in ["127.0.0.1", "127.255.255.254", "::1", "::ffff:127.0.0.1"] {
            assert_eq!(dev.check(ip(address)), Ok(()), "{address}");
        }
        for (address, class) in [
            ("10.0.0.1", AddressClass::Private),
            ("172.16.0.1", AddressClass::Private),
            ("192.168.1.10", AddressClass::Private),
            ("fd12::1", AddressClass::UniqueLocal),
            ("169.254.1.1", AddressClass::LinkLocal),
            ("fe80::1", AddressClass::LinkLocal),
            ("100.64.0.1", AddressClass::SharedAddressSpace),
            ("0.0.0.0", AddressClass::Unspecified),
            ("::", AddressClass::Unspecified),
            ("224.0.0.1", AddressClass::Multicast),
            ("169.254.169.254", AddressClass::CloudMetadata),
            ("fd00:ec2::254", AddressClass::CloudMetadata),
            ("::ffff:169.254.169.254", AddressClass::CloudMetadata),
            ("::ffff:10.0.0.1", AddressClass::Private),
            // Loopback of a NAT64 or 6to4 gateway is not this machine's.
            ("64:ff9b::7f00:1", AddressClass::Loopback),
            ("2002:7f00:1::", AddressClass::Loopback),
        ] {
            assert_eq!(
                dev.check(ip(address)).map_err(|r| r.class),
                Err(class),
                "{address}"
            );
        }
    }

    #[test]
    fn only_global_unicast_ipv6_is_allowed() {
        for (address, class) in [
            ("4000::1", AddressClass::NotGlobal),
            ("5f00::1", AddressClass::NotGlobal),
            ("1::1", AddressClass::NotGlobal),
            ("e000::1", AddressClass::NotGlobal),
            ("3fff::1", AddressClass::Documentation),
            ("2001:10::1", AddressClass::Reserved),
            ("2001:20::1", AddressClass::Reserved),
            ("2001:1ff:ffff::1", AddressClass::Reserved),
            // IPv4-compatible and IPv4-translated forms of a public address: routed by nobody.
            ("::8.8.8.8", AddressClass::NotGlobal),
            ("::ffff:0:8.8.8.8", AddressClass::NotGlobal),
        ] {
            assert_eq!(class_of(address), Some(class), "{address}");
            assert!(
                AddressPolicy::local_development()
                    .check(ip(address))
                    .is_err(),
                "{address}"
            );
        }
        for address in [
            "2001:200::1",
            "2001:4860:4860::8888",
            "2400:cb00::1",
            "2a00:1450:4001:80b::200e",
            "2c0f:ffff::1",
        ] {
            assert_eq!(classify(ip(address)), None, "{address}");
        }
    }

    fn target(policy: &TargetPolicy, url: &str) -> Result<CheckedHost, SsrfError> {
        policy.check_str(url).map(|(_, host)| host)
    }

    #[test]
    fn targets_use_the_allowed_ports_only() {
        let strict = TargetPolicy::strict();
        assert_eq!(strict.ports(), &[443, 8443]);
        for url in [
            "https://hooks.example.com/x",
            "https://hooks.example.com:443/x",
            "https://hooks.example.com:8443/x",
            "https://1.1.1.1/x",
        ] {
            assert!(target(&strict, url).is_ok(), "{url}");
        }
        for (url, port) in [
            ("https://hooks.example.com:22/x", 22),
            ("https://hooks.example.com:80/x", 80),
            ("https://1.1.1.1:6379/x", 6379),
        ] {
            assert_eq!(
                target(&strict, url),
                Err(SsrfError::PortNotAllowed {
                    port,
                    allowed: vec![443, 8443]
                }),
                "{url}"
            );
        }
        let http = TargetPolicy::new(AddressPolicy::strict(), true, None);
        assert_eq!(http.ports(), &[80, 443, 8443]);
        assert!(target(&http, "http://hooks.example.com/x").is_ok());
        assert_eq!(
            target(&strict, "http://hooks.example.com/x"),
            Err(SsrfError::PlainHttp)
        );
        let listed = TargetPolicy::new(AddressPolicy::strict(), false, Some(vec![9443]));
        assert!(target(&listed, "https://hooks.example.com:9443/x").is_ok());
        assert!(target(&listed, "https://hooks.example.com/x").is_err());
    }

    #[test]
    fn local_development_lifts_the_port_rule_for_loopback_targets_only() {
        let dev = TargetPolicy::local_development();
        for url in [
            "http://127.0.0.1:9100/hooks/demo",
            "http://[::1]:5555/x",
            "http://localhost:9100/x",
            "http://api.localhost:9100/x",
        ] {
            assert!(target(&dev, url).is_ok(), "{url}");
        }
        assert!(matches!(
            target(&dev, "https://hooks.example.com:22/x"),
            Err(SsrfError::PortNotAllowed { port: 22, .. })
        ));
        assert!(matches!(
            target(&dev, "http://10.0.0.1:9100/x"),
            Err(SsrfError::Refused(_))
        ));
    }

    #[test]
    fn names_that_can_only_be_local_are_refused_without_dns() {
        let strict = TargetPolicy::strict();
        for url in [
            "https://localhost/x",
            "https://LOCALHOST./x",
            "https://app.localhost/x",
            "https://metadata/x",
            "https://intranet./x",
            "https://printer.local/x",
            "https://metadata.google.internal/x",
            "https://ip-10-0-0-1.ec2.internal/x",
            "https://nas.home.arpa/x",
            "https://box.localdomain/x",
        ] {
            assert!(
                matches!(target(&strict, url), Err(SsrfError::RefusedName { .. })),
                "{url}: {:?}",
                target(&strict, url)
            );
        }
        // Only loopback names become allowed in local development.
        let dev = TargetPolicy::local_development();
        assert!(target(&dev, "http://localhost:9/x").is_ok());
        assert!(target(&dev, "http://printer.local/x").is_err());
        assert!(target(&strict, "https://hooks.example.com/x").is_ok());
        assert!(target(&strict, "https://internal.example.com/x").is_ok());
    }

    #[test]
    fn refusals_of_names_do_not_say_what_the_name_resolved_to() {
        let error = SsrfError::AllAddressesRefused {
            host: "db.corp.example".into(),
            refusals: vec![classify(ip("10.1.2.3")).unwrap()],
        };
        let text = error.to_string();
        assert!(!text.contains("10.1.2.3"), "{text}");
        assert!(!text.contains("private"), "{text}");
        let resolution = SsrfError::Resolution {
            host: "x.example".into(),
            message: "whatever the resolver said".into(),
        };
        assert!(!resolution.to_string().contains("whatever"));
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
