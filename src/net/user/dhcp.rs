//! The DHCP server of the virtual network (RFC 2131, options from RFC 2132):
//! leases `dhcpstart` to the first client MAC, the next addresses to the
//! next ones, with the gateway as router and server and the DNS address.
//!
//! Leases are kept for the life of the backend (a guest that reboots gets its
//! address again) and never expire inside it; the pool has [`POOL_SIZE`]
//! addresses, as QEMU's.

use crate::net::spec::UserConfig;
use crate::net::stats::DropReason;
use crate::net::wire::{self, Mac, BROADCAST_MAC};
use std::net::Ipv4Addr;

pub const SERVER_PORT: u16 = 67;
pub const CLIENT_PORT: u16 = 68;
/// QEMU's `NB_BOOTP_CLIENTS`.
const POOL_SIZE: u32 = 16;
/// QEMU's lease time: one day.
const LEASE_SECS: u32 = 24 * 3600;

// RFC 2131 figure 1: fixed BOOTP fields, then the magic cookie and options.
const OP_REQUEST: u8 = 1;
const OP_REPLY: u8 = 2;
const FIXED_LEN: usize = 236;
const MAGIC: [u8; 4] = [99, 130, 83, 99];
const OPTIONS_AT: usize = FIXED_LEN + 4;
/// RFC 2131 2: the "flags" field's broadcast bit.
const FLAG_BROADCAST: u16 = 0x8000;
/// RFC 1542 2.1: BOOTP messages are at least 300 bytes.
const MIN_MESSAGE: usize = 300;

// RFC 2132 option codes.
const OPT_PAD: u8 = 0;
const OPT_SUBNET_MASK: u8 = 1;
const OPT_ROUTER: u8 = 3;
const OPT_DNS: u8 = 6;
const OPT_BROADCAST: u8 = 28;
const OPT_REQUESTED_IP: u8 = 50;
const OPT_LEASE_TIME: u8 = 51;
const OPT_MESSAGE_TYPE: u8 = 53;
const OPT_SERVER_ID: u8 = 54;
const OPT_END: u8 = 255;

// RFC 2132 9.6: DHCP message types.
const DISCOVER: u8 = 1;
const OFFER: u8 = 2;
const REQUEST: u8 = 3;
const DECLINE: u8 = 4;
const ACK: u8 = 5;
const NAK: u8 = 6;
const RELEASE: u8 = 7;
const INFORM: u8 = 8;

/// A reply and where RFC 2131 4.1 says it goes.
pub struct Reply {
    pub dst_mac: Mac,
    pub dst_ip: Ipv4Addr,
    pub payload: Vec<u8>,
    /// The address the client now holds (an ACK), for the neighbor table.
    pub bound: Option<(Ipv4Addr, Mac)>,
}

/// The leases: plain data, saved whole in a snapshot (a restored guest
/// renews the address it holds).
#[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct DhcpServer {
    leases: Vec<(Mac, Ipv4Addr)>,
}

struct Request {
    xid: [u8; 4],
    flags: u16,
    ciaddr: Ipv4Addr,
    chaddr: Mac,
    kind: u8,
    requested: Option<Ipv4Addr>,
    server_id: Option<Ipv4Addr>,
}

impl DhcpServer {
    /// One client message (the UDP payload to port 67). `Ok(None)`: nothing to
    /// answer (RELEASE, DECLINE, a REQUEST meant for another server).
    pub fn input(&mut self, cfg: &UserConfig, msg: &[u8]) -> Result<Option<Reply>, DropReason> {
        let req = parse(msg)?;
        match req.kind {
            DISCOVER => {
                let ip = self
                    .lease(cfg, req.chaddr, req.requested)
                    .ok_or(DropReason::Limit)?;
                Ok(Some(reply(cfg, &req, OFFER, ip)))
            }
            REQUEST => {
                if req.server_id.is_some_and(|s| s != cfg.host) {
                    return Ok(None); // RFC 2131 4.3.2: the client chose another server
                }
                let wanted = req
                    .requested
                    .or((!req.ciaddr.is_unspecified()).then_some(req.ciaddr));
                let granted = match (self.held_by(req.chaddr), wanted) {
                    (Some(held), Some(w)) if held == w => Some(held),
                    (None, Some(w)) => self.lease(cfg, req.chaddr, Some(w)).filter(|ip| *ip == w),
                    _ => None,
                };
                Ok(Some(match granted {
                    Some(ip) => reply(cfg, &req, ACK, ip),
                    None => reply(cfg, &req, NAK, Ipv4Addr::UNSPECIFIED),
                }))
            }
            RELEASE => {
                self.leases.retain(|(m, _)| *m != req.chaddr);
                Ok(None)
            }
            // RFC 2131 3.4: INFORM gets configuration only, no lease (yiaddr 0).
            INFORM => Ok(Some(reply(cfg, &req, ACK, Ipv4Addr::UNSPECIFIED))),
            DECLINE => Ok(None),
            _ => Err(DropReason::Malformed),
        }
    }

    fn held_by(&self, mac: Mac) -> Option<Ipv4Addr> {
        self.leases
            .iter()
            .find(|(m, _)| *m == mac)
            .map(|(_, ip)| *ip)
    }

    /// The client's lease; a new client gets the address it asks for if that
    /// is free and in the pool, else the first free one.
    fn lease(&mut self, cfg: &UserConfig, mac: Mac, want: Option<Ipv4Addr>) -> Option<Ipv4Addr> {
        if let Some(ip) = self.held_by(mac) {
            return Some(ip);
        }
        let start = u32::from(cfg.dhcp_start);
        let pool: Vec<Ipv4Addr> = (start..start.saturating_add(POOL_SIZE))
            .map(Ipv4Addr::from)
            .filter(|ip| cfg.is_guest_addr(*ip))
            .collect();
        let free = |ip: &Ipv4Addr| !self.leases.iter().any(|(_, l)| l == ip);
        let ip = want
            .filter(|w| pool.contains(w) && free(w))
            .or_else(|| pool.iter().copied().find(free))?;
        self.leases.push((mac, ip));
        Some(ip)
    }
}

fn parse(msg: &[u8]) -> Result<Request, DropReason> {
    if msg.len() < OPTIONS_AT {
        return Err(DropReason::Truncated);
    }
    let (Some(&op), Some(&htype), Some(&hlen), Some(xid), Some(flags), Some(ciaddr), Some(chaddr)) = (
        msg.first(),
        msg.get(1),
        msg.get(2),
        msg.get(4..8).and_then(|x| <[u8; 4]>::try_from(x).ok()),
        wire::be16(msg, 10),
        wire::ipv4_at(msg, 12),
        wire::mac_at(msg, 28),
    ) else {
        return Err(DropReason::Truncated);
    };
    if op != OP_REQUEST || htype != 1 || hlen != 6 || msg.get(FIXED_LEN..OPTIONS_AT) != Some(&MAGIC)
    {
        return Err(DropReason::Malformed);
    }
    let mut req = Request {
        xid,
        flags,
        ciaddr,
        chaddr,
        kind: 0,
        requested: None,
        server_id: None,
    };
    let mut opts = msg.get(OPTIONS_AT..).unwrap_or_default();
    while let Some((&code, rest)) = opts.split_first() {
        if code == OPT_END {
            break;
        }
        if code == OPT_PAD {
            opts = rest;
            continue;
        }
        let (&len, rest) = rest.split_first().ok_or(DropReason::Truncated)?;
        let (data, rest) = rest
            .split_at_checked(usize::from(len))
            .ok_or(DropReason::Truncated)?;
        match (code, data) {
            (OPT_MESSAGE_TYPE, [t]) => req.kind = *t,
            (OPT_REQUESTED_IP, [a, b, c, d]) => req.requested = Some(Ipv4Addr::new(*a, *b, *c, *d)),
            (OPT_SERVER_ID, [a, b, c, d]) => req.server_id = Some(Ipv4Addr::new(*a, *b, *c, *d)),
            _ => {}
        }
        opts = rest;
    }
    if req.kind == 0 {
        return Err(DropReason::Malformed); // plain BOOTP is not served
    }
    Ok(req)
}

fn reply(cfg: &UserConfig, req: &Request, kind: u8, yiaddr: Ipv4Addr) -> Reply {
    let mut m = vec![0u8; OPTIONS_AT];
    m[0] = OP_REPLY;
    m[1] = 1;
    m[2] = 6;
    m[4..8].copy_from_slice(&req.xid);
    m[10..12].copy_from_slice(&req.flags.to_be_bytes());
    if kind != NAK {
        m[12..16].copy_from_slice(&req.ciaddr.octets());
        m[16..20].copy_from_slice(&yiaddr.octets());
        m[20..24].copy_from_slice(&cfg.host.octets()); // siaddr
    }
    m[28..34].copy_from_slice(&req.chaddr);
    m[FIXED_LEN..OPTIONS_AT].copy_from_slice(&MAGIC);
    let mut opt = |code: u8, data: &[u8]| {
        m.push(code);
        m.push(data.len() as u8);
        m.extend_from_slice(data);
    };
    opt(OPT_MESSAGE_TYPE, &[kind]);
    opt(OPT_SERVER_ID, &cfg.host.octets());
    if kind != NAK {
        if kind != ACK || !yiaddr.is_unspecified() {
            opt(OPT_LEASE_TIME, &LEASE_SECS.to_be_bytes());
        }
        opt(OPT_SUBNET_MASK, &cfg.netmask().octets());
        opt(OPT_ROUTER, &cfg.host.octets());
        opt(OPT_DNS, &cfg.dns.octets());
        opt(OPT_BROADCAST, &cfg.broadcast().octets());
    }
    m.push(OPT_END);
    if m.len() < MIN_MESSAGE {
        m.resize(MIN_MESSAGE, 0);
    }
    // RFC 2131 4.1: NAKs are broadcast; a client with an address (ciaddr)
    // gets unicast; else broadcast if it asked, else unicast to the new address.
    let (dst_mac, dst_ip) = if kind == NAK {
        (BROADCAST_MAC, Ipv4Addr::BROADCAST)
    } else if !req.ciaddr.is_unspecified() {
        (req.chaddr, req.ciaddr)
    } else if req.flags & FLAG_BROADCAST != 0 || yiaddr.is_unspecified() {
        (BROADCAST_MAC, Ipv4Addr::BROADCAST)
    } else {
        (req.chaddr, yiaddr)
    };
    let bound = (kind == ACK && !yiaddr.is_unspecified()).then_some((yiaddr, req.chaddr));
    Reply {
        dst_mac,
        dst_ip,
        payload: m,
        bound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(
        mac: Mac,
        kind: u8,
        flags: u16,
        requested: Option<Ipv4Addr>,
        server: Option<Ipv4Addr>,
    ) -> Vec<u8> {
        let mut m = vec![0u8; OPTIONS_AT];
        m[0] = OP_REQUEST;
        m[1] = 1;
        m[2] = 6;
        m[4..8].copy_from_slice(&[1, 2, 3, 4]);
        m[10..12].copy_from_slice(&flags.to_be_bytes());
        m[28..34].copy_from_slice(&mac);
        m[FIXED_LEN..OPTIONS_AT].copy_from_slice(&MAGIC);
        m.extend_from_slice(&[OPT_MESSAGE_TYPE, 1, kind]);
        if let Some(r) = requested {
            m.extend_from_slice(&[OPT_REQUESTED_IP, 4]);
            m.extend_from_slice(&r.octets());
        }
        if let Some(s) = server {
            m.extend_from_slice(&[OPT_SERVER_ID, 4]);
            m.extend_from_slice(&s.octets());
        }
        m.push(OPT_END);
        m
    }

    fn option(reply: &[u8], code: u8) -> Option<Vec<u8>> {
        let mut o = &reply[OPTIONS_AT..];
        while let [c, len, rest @ ..] = o {
            let data = rest.get(..usize::from(*len))?;
            if *c == code {
                return Some(data.to_vec());
            }
            o = &rest[usize::from(*len)..];
        }
        None
    }

    #[test]
    fn discover_request_ack_for_two_clients() {
        let cfg = UserConfig::default();
        let mut s = DhcpServer::default();
        let a = [0x52, 0x54, 0, 0, 0, 1];
        let b = [0x52, 0x54, 0, 0, 0, 2];
        let offer = s
            .input(&cfg, &msg(a, DISCOVER, FLAG_BROADCAST, None, None))
            .unwrap()
            .unwrap();
        assert_eq!(
            wire::ipv4_at(&offer.payload, 16),
            Some(Ipv4Addr::new(10, 0, 2, 15))
        );
        assert_eq!(
            (offer.dst_mac, offer.dst_ip),
            (BROADCAST_MAC, Ipv4Addr::BROADCAST)
        );
        assert_eq!(option(&offer.payload, OPT_MESSAGE_TYPE), Some(vec![OFFER]));
        assert_eq!(option(&offer.payload, OPT_ROUTER), Some(vec![10, 0, 2, 2]));
        assert_eq!(option(&offer.payload, OPT_DNS), Some(vec![10, 0, 2, 3]));
        assert_eq!(
            option(&offer.payload, OPT_SUBNET_MASK),
            Some(vec![255, 255, 255, 0])
        );
        assert_eq!(
            option(&offer.payload, OPT_LEASE_TIME),
            Some(86400u32.to_be_bytes().to_vec())
        );
        assert!(offer.payload.len() >= MIN_MESSAGE);

        let lease = Ipv4Addr::new(10, 0, 2, 15);
        let ack = s
            .input(&cfg, &msg(a, REQUEST, 0, Some(lease), Some(cfg.host)))
            .unwrap()
            .unwrap();
        assert_eq!(option(&ack.payload, OPT_MESSAGE_TYPE), Some(vec![ACK]));
        assert_eq!(
            (ack.dst_mac, ack.dst_ip),
            (a, lease),
            "unicast without the broadcast bit"
        );
        assert_eq!(ack.bound, Some((lease, a)));

        let offer_b = s
            .input(&cfg, &msg(b, DISCOVER, 0, None, None))
            .unwrap()
            .unwrap();
        assert_eq!(
            wire::ipv4_at(&offer_b.payload, 16),
            Some(Ipv4Addr::new(10, 0, 2, 16))
        );
        // b asking for a's address is refused.
        let nak = s
            .input(&cfg, &msg(b, REQUEST, 0, Some(lease), None))
            .unwrap()
            .unwrap();
        assert_eq!(option(&nak.payload, OPT_MESSAGE_TYPE), Some(vec![NAK]));
        assert_eq!(nak.dst_mac, BROADCAST_MAC);
        // A request for another server is not answered.
        assert!(s
            .input(
                &cfg,
                &msg(b, REQUEST, 0, Some(lease), Some(Ipv4Addr::new(10, 0, 2, 9)))
            )
            .unwrap()
            .is_none());
    }

    #[test]
    fn pool_runs_out_and_bad_messages_are_drops() {
        let cfg = UserConfig::default();
        let mut s = DhcpServer::default();
        for i in 0..POOL_SIZE as u8 {
            assert!(s
                .input(&cfg, &msg([2, 0, 0, 0, 0, i], DISCOVER, 0, None, None))
                .is_ok());
        }
        let r = s.input(&cfg, &msg([2, 0, 0, 0, 1, 0], DISCOVER, 0, None, None));
        assert_eq!(r.err(), Some(DropReason::Limit));
        let good = msg([2, 0, 0, 0, 0, 1], DISCOVER, 0, None, None);
        for n in 0..OPTIONS_AT + 3 {
            assert!(s.input(&cfg, &good[..n]).is_err(), "{n}");
        }
        let mut bad = good.clone();
        bad[FIXED_LEN] = 0;
        assert_eq!(s.input(&cfg, &bad).err(), Some(DropReason::Malformed));
    }
}
