//! Running behind the site's proxy: the base path the page lives under, which peers are
//! trusted proxies (and so whose `X-Forwarded-For`/`X-Forwarded-Proto` are believed), and the
//! origins allowed to frame the page.
//!
//! Nothing a client sends is believed unless the operator said so: with no `--trust-proxy` the
//! client is the TCP peer and the scheme is the connection's.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;

use crate::error::ApiError;
use crate::App;

/// Where the page lives: `/` or e.g. `/bankid` (never with a trailing slash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasePath(String);

impl BasePath {
    /// The site root.
    pub fn root() -> BasePath {
        BasePath("/".into())
    }

    /// `/`, or `/` and segments of letters, digits, `-`, `_`, `.` and `~` (not `.` or `..`)
    /// joined by `/`, without a trailing slash: `/bankid`, `/agents/bankid`.
    pub fn parse(s: &str) -> Result<BasePath, String> {
        let bad = |why: &str| format!("{s:?}: a base path {why}, e.g. /bankid");
        if s == "/" {
            return Ok(BasePath::root());
        }
        let Some(rest) = s.strip_prefix('/') else {
            return Err(bad("starts with /"));
        };
        if s.len() > 200 {
            return Err(bad("is at most 200 characters"));
        }
        if rest.ends_with('/') {
            return Err(bad("has no trailing /"));
        }
        for segment in rest.split('/') {
            let safe = |c: char| c.is_ascii_alphanumeric() || "-_.~".contains(c);
            if segment.is_empty() || segment == "." || segment == ".." || !segment.chars().all(safe)
            {
                return Err(bad(
                    "is /-separated names of letters, digits, -, _, . and ~ (no empty, . or .. parts)",
                ));
            }
        }
        Ok(BasePath(s.to_string()))
    }

    /// `/` or `/bankid`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is the site root.
    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }

    /// The page's own address: `/` or `/bankid/`.
    pub fn page(&self) -> String {
        if self.is_root() {
            "/".into()
        } else {
            format!("{}/", self.0)
        }
    }
}

impl fmt::Display for BasePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An address block, `ADDR/PREFIX` (a bare address is the one host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `127.0.0.1/32`, `10.0.0.0/8`, `::1/128`, `fd00::/8` or a bare address. Host bits
    /// set (`10.0.0.1/8`) are refused: the operator meant something else, and guessing which
    /// block to trust is not ours to do.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let bad =
            |why: &str| format!("{s:?}: {why} (ADDR/PREFIX, e.g. 127.0.0.1/32 or 10.0.0.0/8)");
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let net: IpAddr = addr.parse().map_err(|_| bad("not an IP address"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().map_err(|_| bad("the prefix is too long"))?
            }
            Some(_) => return Err(bad("the prefix is a number")),
        };
        if prefix > max {
            return Err(bad(&format!("the prefix is at most {max}")));
        }
        if net.to_canonical() != net {
            // Peers are compared as IPv4: a mapped block would never match.
            return Err(bad("an IPv4-mapped address; write the IPv4 block"));
        }
        let cidr = Cidr { net, prefix };
        if cidr.masked(net) != bits(net) {
            return Err(bad("the address has bits set beyond the prefix"));
        }
        Ok(cidr)
    }

    fn mask(&self) -> u128 {
        let width = if self.net.is_ipv4() { 32 } else { 128 };
        if self.prefix == 0 {
            0
        } else {
            (u128::MAX << (width - u32::from(self.prefix))) & (u128::MAX >> (128 - width))
        }
    }

    fn masked(&self, ip: IpAddr) -> u128 {
        bits(ip) & self.mask()
    }

    /// Whether `ip` is in the block (an IPv4-mapped IPv6 address counts as its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.net.is_ipv4() && self.masked(ip) == self.masked(self.net)
    }
}

fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

/// An origin allowed to frame the page: `https://host` or `https://host:port`, host in lower
/// case (no wildcards, paths or plain http: the page holds identities).
pub fn parse_frame_ancestor(s: &str) -> Result<String, String> {
    let bad =
        || format!("{s:?}: a frame ancestor is an https origin, https://host or https://host:port");
    let rest = s.strip_prefix("https://").ok_or_else(bad)?;
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (rest, None),
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if host.is_empty() || host.len() > 253 || !host.split('.').all(label_ok) {
        return Err(bad());
    }
    if let Some(p) = port {
        let n: u16 = p
            .parse()
            .ok()
            .filter(|_| p.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(bad)?;
        if n == 0 {
            return Err(bad());
        }
    }
    Ok(s.to_ascii_lowercase())
}

/// Served over TLS by this process (a request extension the HTTPS accept loop adds).
#[derive(Debug, Clone, Copy)]
pub struct DirectTls;

/// Who sent a request, as far as we can tell: the client's address and whether the browser
/// talks https to us (directly or through a trusted proxy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    /// The client address: the TCP peer, or what a trusted proxy says. `None` only when the
    /// request came without a socket (unit tests).
    pub ip: Option<IpAddr>,
    /// Whether the browser's side of the connection is https.
    pub https: bool,
}

impl Client {
    /// The client of a request from `peer` (`None`: unknown) with `headers`, believing the
    /// forwarding headers only when `peer` is in `trusted`.
    pub fn from_headers(
        peer: Option<IpAddr>,
        direct_tls: bool,
        headers: &HeaderMap,
        trusted: &[Cidr],
    ) -> Client {
        let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
        let Some(peer) = peer.map(|p| p.to_canonical()) else {
            return Client {
                ip: None,
                https: direct_tls,
            };
        };
        if !is_trusted(peer) {
            return Client {
                ip: Some(peer),
                https: direct_tls,
            };
        }
        // Each proxy appends its own peer: walking from the right, the addresses of trusted
        // proxies are skipped and the first other one is the client. Anything left of it was
        // written by whoever that client is, and is not read. An entry that is not an address
        // stops the walk: the client is then the nearest trusted hop we know.
        let mut client = peer;
        let forwarded: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        for entry in forwarded.iter().rev() {
            let Ok(ip) = entry.parse::<IpAddr>() else {
                break;
            };
            let ip = ip.to_canonical();
            client = ip;
            if !is_trusted(ip) {
                break;
            }
        }
        // The nearest proxy's word on the scheme: the last value of the last header.
        let proto = headers
            .get_all("x-forwarded-proto")
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .map(|v| v.trim().to_ascii_lowercase());
        let https = match proto.as_deref() {
            Some("https") => true,
            Some("http") => false,
            _ => direct_tls,
        };
        Client {
            ip: Some(client),
            https,
        }
    }

    /// The client of a request to `app`.
    pub(crate) fn of(parts: &Parts, app: &App) -> Client {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let tls = parts.extensions.get::<DirectTls>().is_some();
        Client::from_headers(peer, tls, &parts.headers, &app.opts.trusted_proxies)
    }

    /// The address for logs and rate limits (`unknown` without a socket).
    pub fn addr(&self) -> String {
        self.ip
            .map_or_else(|| "unknown".into(), |ip| ip.to_string())
    }
}

impl FromRequestParts<Arc<App>> for Client {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Client, ApiError> {
        Ok(Client::of(parts, app))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn base_paths_are_slash_and_safe_names_without_a_trailing_slash() {
        for good in ["/", "/bankid", "/a/b-c_d.e~f", "/BankID2"] {
            assert_eq!(BasePath::parse(good).unwrap().as_str(), good);
        }
        assert_eq!(BasePath::parse("/").unwrap().page(), "/");
        assert_eq!(BasePath::parse("/bankid").unwrap().page(), "/bankid/");
        for bad in [
            "",
            "bankid",
            "/bankid/",
            "//",
            "/a//b",
            "/a/./b",
            "/..",
            "/bank id",
            "/bank%20id",
            "/bankid?x",
            "/bankid#x",
            "/bänkid",
            "/a\"b",
            "/a<b",
        ] {
            assert!(BasePath::parse(bad).is_err(), "{bad:?}");
        }
        assert!(BasePath::parse(&format!("/{}", "a".repeat(200))).is_err());
        assert_eq!(
            BasePath::parse("/bankid/").unwrap_err(),
            "\"/bankid/\": a base path has no trailing /, e.g. /bankid"
        );
    }

    #[test]
    fn cidrs_parse_and_match() {
        let c = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(c.contains("10.1.255.3".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        assert!(
            c.contains("::ffff:10.1.0.9".parse().unwrap()),
            "IPv4-mapped"
        );
        assert!(!c.contains("::1".parse().unwrap()));
        let host = Cidr::parse("127.0.0.1").unwrap();
        assert_eq!(host, Cidr::parse("127.0.0.1/32").unwrap());
        assert!(host.contains("127.0.0.1".parse().unwrap()));
        assert!(!host.contains("127.0.0.2".parse().unwrap()));
        let all = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(all.contains("203.0.113.9".parse().unwrap()));
        let v6 = Cidr::parse("fd00::/8").unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("fe80::1".parse().unwrap()));
        assert!(Cidr::parse("::1/128")
            .unwrap()
            .contains("::1".parse().unwrap()));
        assert_eq!(Cidr::parse("10.0.0.0/8").unwrap().to_string(), "10.0.0.0/8");
        for bad in [
            "",
            "10.0.0.1/8",
            "10.0.0.0/33",
            "::1/129",
            "10.0.0.0/",
            "10.0.0.0/-1",
            "10.0.0.0/+8",
            "10.0.0/8",
            "localhost/32",
            "10.0.0.0/8/8",
            " 10.0.0.0/8",
            "::ffff:127.0.0.1/128",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn frame_ancestors_are_https_origins() {
        assert_eq!(
            parse_frame_ancestor("https://Desktop.Example.com").unwrap(),
            "https://desktop.example.com"
        );
        assert!(parse_frame_ancestor("https://desktop.example.com:8443").is_ok());
        for bad in [
            "http://desktop.example.com",
            "https://",
            "https://*.example.com",
            "https://desktop.example.com/",
            "https://desktop.example.com/path",
            "https://desktop.example.com:0",
            "https://desktop.example.com:99999",
            "https://desktop.example.com:",
            "https://a..b",
            "https://-a.b",
            "https://a b",
            "https://a;b",
            "'self'",
            "*",
            "desktop.example.com",
        ] {
            assert!(parse_frame_ancestor(bad).is_err(), "{bad:?}");
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
        let spoofed = headers(&[
            ("x-forwarded-for", "203.0.113.7"),
            ("x-forwarded-proto", "https"),
        ]);
        let trusted = [Cidr::parse("127.0.0.1/32").unwrap()];
        for trust in [&[][..], &trusted[..]] {
            let c = Client::from_headers(ip("198.51.100.2"), false, &spoofed, trust);
            assert_eq!(
                c,
                Client {
                    ip: ip("198.51.100.2"),
                    https: false
                }
            );
        }
        let direct = Client::from_headers(ip("198.51.100.2"), true, &spoofed, &trusted);
        assert!(
            direct.https,
            "a direct TLS connection is https whatever is said"
        );
    }

    #[test]
    fn a_trusted_proxy_names_the_right_most_address_that_is_not_a_proxy() {
        let trusted = [
            Cidr::parse("127.0.0.1/32").unwrap(),
            Cidr::parse("10.0.0.0/8").unwrap(),
        ];
        let from = |pairs: &[(&'static str, &'static str)]| {
            Client::from_headers(ip("127.0.0.1"), false, &headers(pairs), &trusted)
        };
        // The client put a made-up address first; nginx appended the real one.
        let c = from(&[
            ("x-forwarded-for", "203.0.113.7, 198.51.100.2"),
            ("x-forwarded-proto", "https"),
        ]);
        assert_eq!(
            c,
            Client {
                ip: ip("198.51.100.2"),
                https: true
            }
        );
        // Two proxies of ours, in two headers.
        let c = from(&[
            ("x-forwarded-for", "6.6.6.6, 198.51.100.2"),
            ("x-forwarded-for", "10.0.0.5"),
        ]);
        assert_eq!(c.ip, ip("198.51.100.2"));
        assert!(!c.https, "no X-Forwarded-Proto: the connection's scheme");
        // No header: the proxy itself is the client.
        assert_eq!(from(&[]).ip, ip("127.0.0.1"));
        // Only proxies: the left-most of them.
        assert_eq!(
            from(&[("x-forwarded-for", "10.0.0.9, 10.0.0.5")]).ip,
            ip("10.0.0.9")
        );
        // Garbage stops the walk at the nearest hop known.
        assert_eq!(
            from(&[("x-forwarded-for", "198.51.100.2, bogus, 10.0.0.5")]).ip,
            ip("10.0.0.5")
        );
        assert_eq!(
            from(&[("x-forwarded-for", "::ffff:198.51.100.2")]).ip,
            ip("198.51.100.2")
        );
        for (proto, https) in [
            ("https", true),
            ("HTTPS", true),
            ("http", false),
            ("http, https", true),
            ("https, http", false),
            ("gopher", false),
        ] {
            let mut h = HeaderMap::new();
            h.insert("x-forwarded-proto", HeaderValue::from_static(proto));
            let c = Client::from_headers(ip("127.0.0.1"), false, &h, &trusted);
            assert_eq!(c.https, https, "{proto}");
        }
    }
}
