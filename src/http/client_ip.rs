//! Whose address a request comes from: the one answer every per-address limit uses (sessions,
//! and whatever else counts by address). Directly on the internet it is the TCP peer. Behind a
//! proxy every request comes from the proxy, so `X-Forwarded-For` is read, but only when the
//! peer is a proxy the operator named (`PARLEY_TRUSTED_PROXIES`): anyone else could write any
//! address there and escape every per-address limit.
//!
//! The header is read from the right, the end each proxy appends to: the first address that is
//! not a trusted proxy is the client. Addresses further left were written by the client itself
//! and prove nothing.

use std::net::{IpAddr, Ipv4Addr};

use actix_web::HttpRequest;

use crate::error::{Error, Result};

/// The proxies whose `X-Forwarded-For` is believed (none by default).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    blocks: Vec<Block>,
}

/// An address block: `addr/prefix`, a single address being a full-length prefix.
#[derive(Debug, Clone, Copy)]
struct Block {
    addr: IpAddr,
    prefix: u32,
}

impl TrustedProxies {
    /// Parses `PARLEY_TRUSTED_PROXIES`: addresses (`10.0.0.7`, `::1`) or CIDR blocks
    /// (`10.0.0.0/8`). Anything else stops the start, rather than silently trusting nobody.
    pub fn parse(entries: &[String]) -> Result<Self> {
        let blocks = entries
            .iter()
            .map(|entry| entry.trim())
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                Block::parse(entry).ok_or_else(|| {
                    Error::bad_request(format!(
                        "PARLEY_TRUSTED_PROXIES: {entry:?} is not an address or an address block (10.0.0.0/8)"
                    ))
                })
            })
            .collect::<Result<_>>()?;
        Ok(TrustedProxies { blocks })
    }

    /// Is `ip` one of the trusted proxies?
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.blocks.iter().any(|block| block.contains(ip))
    }
}

impl Block {
    fn parse(text: &str) -> Option<Block> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr.parse::<IpAddr>().ok()?, Some(prefix.parse::<u32>().ok()?)),
            None => (text.parse::<IpAddr>().ok()?, None),
        };
        let addr = addr.to_canonical();
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(bits);
        (prefix <= bits).then_some(Block { addr, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(block), IpAddr::V4(ip)) => {
                same_prefix(block.to_bits().into(), ip.to_bits().into(), self.prefix, 32)
            }
            (IpAddr::V6(block), IpAddr::V6(ip)) => same_prefix(block.to_bits(), ip.to_bits(), self.prefix, 128),
            _ => false,
        }
    }
}

/// Do `a` and `b`, numbers of `bits` bits, agree in their first `prefix` bits?
fn same_prefix(a: u128, b: u128, prefix: u32, bits: u32) -> bool {
    let shift = bits - prefix;
    // A shift of the whole width (prefix 0: every address) is out of range for `>>`.
    shift >= bits || (a >> shift) == (b >> shift)
}

/// The client's address: the TCP peer, or behind a trusted proxy the nearest address of
/// `X-Forwarded-For` that is not a trusted proxy.
pub fn client_ip(req: &HttpRequest, proxies: &TrustedProxies) -> IpAddr {
    let peer = req.peer_addr().map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |addr| addr.ip().to_canonical());
    let forwarded = req.headers().get_all("x-forwarded-for").filter_map(|value| value.to_str().ok());
    from_chain(peer, forwarded, proxies)
}

/// [`client_ip`] on its parts: `forwarded` are the header's values in the order received.
fn from_chain<'a>(peer: IpAddr, forwarded: impl Iterator<Item = &'a str>, proxies: &TrustedProxies) -> IpAddr {
    if !proxies.contains(peer) {
        return peer;
    }
    let hops: Vec<&str> = forwarded.flat_map(|value| value.split(',')).map(str::trim).collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        // A hop that is not an address ends the chain: what is left of it cannot be checked.
        let Ok(ip) = hop.parse::<IpAddr>() else { break };
        client = ip.to_canonical();
        if !proxies.contains(client) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(entries: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(&entries.iter().map(|e| e.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client() {
        let none = TrustedProxies::default();
        assert_eq!(from_chain(ip("192.0.2.1"), ["203.0.113.9"].into_iter(), &none), ip("192.0.2.1"));
    }

    #[test]
    fn behind_a_trusted_proxy_the_nearest_untrusted_hop_is_the_client() {
        let trusted = proxies(&["10.0.0.0/8", "::1"]);
        // The client wrote 198.51.100.1 itself; the proxies appended 203.0.113.9 and 10.1.1.1.
        let chain = ["198.51.100.1, 203.0.113.9", "10.1.1.1"];
        assert_eq!(from_chain(ip("10.0.0.2"), chain.into_iter(), &trusted), ip("203.0.113.9"));
        assert_eq!(from_chain(ip("::1"), ["203.0.113.9"].into_iter(), &trusted), ip("203.0.113.9"));
        // An untrusted peer's header is not read.
        assert_eq!(from_chain(ip("192.0.2.1"), ["203.0.113.9"].into_iter(), &trusted), ip("192.0.2.1"));
        // No header, or garbage: the proxy itself (it is all that is known).
        assert_eq!(from_chain(ip("10.0.0.2"), [].into_iter(), &trusted), ip("10.0.0.2"));
        assert_eq!(from_chain(ip("10.0.0.2"), ["unknown"].into_iter(), &trusted), ip("10.0.0.2"));
        // An IPv4 peer seen as IPv6 (::ffff:10.0.0.2) is the same proxy.
        assert_eq!(from_chain(ip("::ffff:10.0.0.2"), ["203.0.113.9"].into_iter(), &trusted), ip("203.0.113.9"));
    }

    #[test]
    fn blocks_parse_and_match() {
        let trusted = proxies(&["192.168.0.0/16", " 2001:db8::/32", "0.0.0.0/0"]);
        assert!(trusted.contains(ip("192.168.7.7")));
        assert!(trusted.contains(ip("2001:db8::1")));
        assert!(!trusted.contains(ip("2001:db9::1")));
        assert!(trusted.contains(ip("8.8.8.8")), "a /0 holds every address");
        for bad in ["10.0.0.0/33", "example.com", "10.0.0.0/x"] {
            assert!(TrustedProxies::parse(&[bad.to_string()]).is_err(), "{bad} accepted");
        }
    }
}
