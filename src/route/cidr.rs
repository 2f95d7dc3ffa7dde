//! The `cidr` operator: IPv4 and IPv6 blocks as address ranges, and the parsing of the event's
//! strings as addresses (as event-ruler's `CIDR` does).

use std::net::Ipv6Addr;

/// An address family and a closed range of addresses in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct IpRange {
    v6: bool,
    low: u128,
    high: u128,
}

/// Parses a dotted IPv4 address (`[0-9]+(\.[0-9]+){3}`, each part at most 255).
fn ipv4(s: &str) -> Option<u32> {
    let mut value = 0u32;
    let mut parts = 0;
    for part in s.split('.') {
        if part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n: u32 = part.parse().ok()?;
        if n > 255 {
            return None;
        }
        value = (value << 8) | n;
        parts += 1;
    }
    (parts == 4).then_some(value)
}

/// A string as an address: `(is IPv6, address)`.
pub(crate) fn parse_ip(s: &str) -> Option<(bool, u128)> {
    if let Some(v4) = ipv4(s) {
        return Some((false, u128::from(v4)));
    }
    if s.contains(':') {
        return s.parse::<Ipv6Addr>().ok().map(|a| (true, u128::from(a)));
    }
    None
}

impl IpRange {
    /// The one-address range of a plain address (an exact string that is an IP matches every
    /// spelling of that address, as in event-ruler).
    pub(crate) fn single(s: &str) -> Option<IpRange> {
        parse_ip(s).map(|(v6, a)| IpRange {
            v6,
            low: a,
            high: a,
        })
    }

    /// Parses `address/mask`; the error is event-ruler's message. Masks of a whole address
    /// (`/32`, `/128`) are refused as event-ruler refuses them: the plain address is the way.
    pub(crate) fn parse(s: &str) -> Result<IpRange, String> {
        let mut split = s.split('/');
        let (Some(addr), Some(mask), None) = (split.next(), split.next(), split.next()) else {
            return Err("Malformed CIDR, one '/' required".into());
        };
        let mask: u32 = mask
            .parse()
            .ok()
            .filter(|_| mask.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| "mask bits must be an integer".to_string())?;
        let (v6, address) =
            parse_ip(addr).ok_or_else(|| format!("Nonstandard IP address: {addr}"))?;
        let width = if v6 { 128 } else { 32 };
        if mask >= width {
            return Err(format!(
                "mask bits must be at most {} for {addr}",
                width - 1
            ));
        }
        let host_bits = width - mask;
        let host = if host_bits == 128 {
            u128::MAX
        } else {
            (1u128 << host_bits) - 1
        };
        Ok(IpRange {
            v6,
            low: address & !host,
            high: (address & !host) | host,
        })
    }

    /// Whether the string `value` is an address inside the range.
    pub(crate) fn contains(&self, value: &[u8]) -> bool {
        let Ok(s) = std::str::from_utf8(value) else {
            return false;
        };
        matches!(parse_ip(s), Some((v6, a)) if v6 == self.v6 && self.low <= a && a <= self.high)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inside(block: &str, ip: &str) -> bool {
        IpRange::parse(block)
            .expect("valid block")
            .contains(ip.as_bytes())
    }

    #[test]
    fn blocks_include_their_edges_only() {
        assert!(inside("10.0.0.0/24", "10.0.0.0"));
        assert!(inside("10.0.0.0/24", "10.0.0.255"));
        assert!(!inside("10.0.0.0/24", "10.0.1.0"));
        assert!(!inside("10.0.0.0/24", "10.0.0.256"));
        assert!(inside("0.0.0.0/0", "255.255.255.255"));
        assert!(inside(
            "2001:db8::/32",
            "2001:0db8:0000:0000:0000:0000:0000:0001"
        ));
        assert!(!inside("10.0.0.0/8", "::ffff:10.0.0.5"));
        assert!(!inside("10.0.0.0/8", "not an ip"));
    }

    #[test]
    fn malformed_blocks_are_refused() {
        assert!(IpRange::parse("10.0.0.0").is_err());
        assert!(IpRange::parse("10.0.0.0/8/8").is_err());
        assert!(IpRange::parse("10.0.0.0/x").is_err());
        assert!(IpRange::parse("10.0.0.0/32").is_err());
        assert!(IpRange::parse("::/128").is_err());
        assert_eq!(
            IpRange::parse("xx.11.xx/8"),
            Err("Nonstandard IP address: xx.11.xx".into())
        );
    }
}
