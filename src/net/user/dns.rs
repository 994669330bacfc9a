//! DNS (RFC 1035) at the virtual DNS address: queries to port 53 are
//! forwarded over UDP to the host's resolver, found once at start-up. With
//! none, every query is answered at once with SERVFAIL so guest lookups fail
//! fast instead of timing out.

use crate::net::wire;
use std::net::{IpAddr, SocketAddr};

pub const PORT: u16 = 53;

const HEADER: usize = 12;
/// RFC 1035 4.1.1: QR (response), RA (recursion available), RCODE 2 (server failure).
const FLAG_QR: u16 = 0x8000;
const FLAG_RD: u16 = 0x0100;
const FLAG_RA: u16 = 0x0080;
const RCODE_SERVFAIL: u16 = 2;

/// The host's first resolver: the first `nameserver` of `/etc/resolv.conf`
/// on Unix. Windows keeps its resolvers in the registry, which vx86 does not
/// read: give `host_dns` there.
pub fn host_resolver() -> Option<SocketAddr> {
    if cfg!(unix) {
        let text = std::fs::read_to_string("/etc/resolv.conf").ok()?;
        first_nameserver(&text)
    } else {
        None
    }
}

fn first_nameserver(resolv_conf: &str) -> Option<SocketAddr> {
    resolv_conf.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            return None;
        }
        // Drop an IPv6 zone ("fe80::1%eth0"): std cannot parse it.
        let addr = words.next()?.split('%').next()?;
        addr.parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, PORT))
    })
}

/// A SERVFAIL answer to `query` (header and question copied), or `None` if
/// `query` is not a well-formed query.
pub fn servfail(query: &[u8]) -> Option<Vec<u8>> {
    let flags = wire::be16(query, 2)?;
    let qdcount = wire::be16(query, 4)?;
    if flags & FLAG_QR != 0 {
        return None;
    }
    // Skip each question: a name (labels, or a compression pointer) + type + class.
    let mut at = HEADER;
    for _ in 0..qdcount {
        loop {
            let len = *query.get(at)?;
            match len {
                0 => {
                    at += 1;
                    break;
                }
                l if l & 0xc0 == 0xc0 => {
                    at += 2;
                    break;
                }
                l if l & 0xc0 == 0 => at += 1 + usize::from(l),
                _ => return None,
            }
        }
        at += 4;
    }
    let mut r = query.get(..at)?.to_vec();
    let flags = FLAG_QR | (flags & FLAG_RD) | FLAG_RA | RCODE_SERVFAIL | (flags & 0x7800);
    r[2..4].copy_from_slice(&flags.to_be_bytes());
    r[6..12].copy_from_slice(&[0; 6]); // no answers, authority or additional records
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_first_nameserver() {
        let text = "# comment\nsearch example.org\nnameserver 192.0.2.53\nnameserver 192.0.2.54\n";
        assert_eq!(
            first_nameserver(text),
            Some("192.0.2.53:53".parse().unwrap())
        );
        assert_eq!(
            first_nameserver("nameserver fe80::1%eth0\n"),
            Some("[fe80::1]:53".parse().unwrap())
        );
        assert_eq!(first_nameserver("search x\n"), None);
    }

    #[test]
    fn servfail_copies_id_and_question() {
        // id 0xbeef, RD, one question "a.b" A IN.
        let q = [
            0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 1, b'b', 0, 0, 1, 0, 1,
        ];
        let r = servfail(&q).unwrap();
        assert_eq!(r.len(), q.len());
        assert_eq!(&r[..2], &[0xbe, 0xef]);
        assert_eq!(wire::be16(&r, 2), Some(0x8182));
        assert_eq!(&r[12..], &q[12..]);
        for n in 0..q.len() {
            assert!(servfail(&q[..n]).is_none(), "{n}");
        }
    }
}
