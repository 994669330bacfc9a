//! ARP (RFC 826) on the virtual link: answers for the gateway and DNS
//! addresses, learns the guest's MAC, and asks for it when a packet must go
//! to an address not yet learned (a `hostfwd` connection to a guest that has
//! not spoken yet).
//!
//! Like QEMU's slirp, each virtual address has its own MAC, `52:55` followed
//! by the IPv4 address (`52:55:0a:00:02:02` for 10.0.2.2), and every frame to
//! the guest comes from the gateway's.

use crate::devices::Nanos;
use crate::net::spec::UserConfig;
use crate::net::stats::DropReason;
use crate::net::wire::{self, Mac, BROADCAST_MAC, ETHERTYPE_ARP, ETHERTYPE_IPV4};
use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv4Addr;

const ARP_LEN: usize = 28;
const HTYPE_ETHERNET: u16 = 1;
const OP_REQUEST: u16 = 1;
const OP_REPLY: u16 = 2;

/// Addresses remembered; the oldest learned goes first past this.
const MAX_NEIGHBORS: usize = 64;
/// IP packets held while their destination's MAC is asked for.
const MAX_WAITING: usize = 32;
/// At most one request per address in this much virtual time.
const ASK_INTERVAL: Nanos = 1_000_000_000;

/// The MAC slirp gives a virtual address.
pub fn special_mac(ip: Ipv4Addr) -> Mac {
    let o = ip.octets();
    [0x52, 0x55, o[0], o[1], o[2], o[3]]
}

/// What an ARP packet from the guest gives back.
pub struct ArpOutcome {
    /// The reply frame, for a request about the gateway or DNS address.
    pub reply: Option<Vec<u8>>,
    /// IP packets that were waiting for the sender's MAC.
    pub released: Vec<Vec<u8>>,
}

/// The neighbor table: plain data, saved whole in a snapshot (the guest
/// keeps its address and MAC across a restore).
#[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Neighbors {
    table: BTreeMap<Ipv4Addr, Mac>,
    order: VecDeque<Ipv4Addr>,
    waiting: VecDeque<(Ipv4Addr, Vec<u8>)>,
    asked: BTreeMap<Ipv4Addr, Nanos>,
}

impl Neighbors {
    pub fn lookup(&self, ip: Ipv4Addr) -> Option<Mac> {
        self.table.get(&ip).copied()
    }

    /// Remembers where a guest address is; returns the packets that were
    /// waiting for it.
    pub fn learn(&mut self, cfg: &UserConfig, ip: Ipv4Addr, mac: Mac) -> Vec<Vec<u8>> {
        if !cfg.is_guest_addr(ip) || mac[0] & 1 != 0 {
            return Vec::new();
        }
        if self.table.insert(ip, mac).is_none() {
            self.order.push_back(ip);
            if self.order.len() > MAX_NEIGHBORS {
                if let Some(old) = self.order.pop_front() {
                    self.table.remove(&old);
                }
            }
        }
        self.asked.remove(&ip);
        let (ready, rest) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|(dst, _)| *dst == ip);
        self.waiting = rest;
        ready.into_iter().map(|(_, p)| p).collect()
    }

    /// Holds `packet` for `ip` and returns an ARP request to send, unless one
    /// went out recently. A packet pushed out of the full queue is dropped.
    pub fn hold(
        &mut self,
        cfg: &UserConfig,
        ip: Ipv4Addr,
        packet: Vec<u8>,
        now: Nanos,
    ) -> (Option<Vec<u8>>, bool) {
        if !cfg.is_guest_addr(ip) {
            return (None, true);
        }
        self.waiting.push_back((ip, packet));
        let overflow = self.waiting.len() > MAX_WAITING;
        if overflow {
            self.waiting.pop_front();
        }
        let due = self
            .asked
            .get(&ip)
            .is_none_or(|t| now >= t.saturating_add(ASK_INTERVAL));
        if !due {
            return (None, overflow);
        }
        if self.asked.len() >= MAX_NEIGHBORS {
            self.asked.clear();
        }
        self.asked.insert(ip, now);
        let gw = special_mac(cfg.host);
        let req = arp_packet(OP_REQUEST, gw, cfg.host, [0; 6], ip);
        (
            Some(wire::eth_frame(BROADCAST_MAC, gw, ETHERTYPE_ARP, &req)),
            overflow,
        )
    }

    /// An ARP packet from the guest: learns its sender, and answers a request
    /// for the gateway or DNS address.
    pub fn input(&mut self, cfg: &UserConfig, payload: &[u8]) -> Result<ArpOutcome, DropReason> {
        let p = payload.get(..ARP_LEN).ok_or(DropReason::Truncated)?;
        let (Some(htype), Some(ptype), Some(op), Some(sha), Some(spa), Some(tpa)) = (
            wire::be16(p, 0),
            wire::be16(p, 2),
            wire::be16(p, 6),
            wire::mac_at(p, 8),
            wire::ipv4_at(p, 14),
            wire::ipv4_at(p, 24),
        ) else {
            return Err(DropReason::Truncated);
        };
        if htype != HTYPE_ETHERNET || ptype != ETHERTYPE_IPV4 || p.get(4..6) != Some(&[6, 4]) {
            return Err(DropReason::Malformed);
        }
        if op != OP_REQUEST && op != OP_REPLY {
            return Err(DropReason::Malformed);
        }
        // RFC 826 "Packet Reception": merge the sender before looking at the target.
        let released = self.learn(cfg, spa, sha);
        if op == OP_REPLY {
            return Ok(ArpOutcome {
                reply: None,
                released,
            });
        }
        if tpa != cfg.host && tpa != cfg.dns {
            if released.is_empty() {
                return Err(DropReason::NotForUs);
            }
            return Ok(ArpOutcome {
                reply: None,
                released,
            });
        }
        let reply = arp_packet(OP_REPLY, special_mac(tpa), tpa, sha, spa);
        let frame = wire::eth_frame(sha, special_mac(cfg.host), ETHERTYPE_ARP, &reply);
        Ok(ArpOutcome {
            reply: Some(frame),
            released,
        })
    }
}

fn arp_packet(op: u16, sha: Mac, spa: Ipv4Addr, tha: Mac, tpa: Ipv4Addr) -> Vec<u8> {
    let mut p = Vec::with_capacity(ARP_LEN);
    p.extend_from_slice(&HTYPE_ETHERNET.to_be_bytes());
    p.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    p.extend_from_slice(&[6, 4]);
    p.extend_from_slice(&op.to_be_bytes());
    p.extend_from_slice(&sha);
    p.extend_from_slice(&spa.octets());
    p.extend_from_slice(&tha);
    p.extend_from_slice(&tpa.octets());
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUEST_MAC: Mac = [0x52, 0x54, 0, 0x12, 0x34, 0x56];

    #[test]
    fn answers_gateway_and_dns_only() {
        let cfg = UserConfig::default();
        let mut n = Neighbors::default();
        let guest = Ipv4Addr::new(10, 0, 2, 15);
        for (target, answered) in [
            (cfg.host, true),
            (cfg.dns, true),
            (Ipv4Addr::new(10, 0, 2, 9), false),
        ] {
            let req = arp_packet(OP_REQUEST, GUEST_MAC, guest, [0; 6], target);
            let r = n.input(&cfg, &req);
            assert_eq!(r.is_ok(), answered, "{target}");
            if let Ok(ArpOutcome {
                reply: Some(frame), ..
            }) = r
            {
                let reply = &frame[14..];
                assert_eq!(wire::be16(reply, 6), Some(OP_REPLY));
                assert_eq!(wire::mac_at(reply, 8), Some(special_mac(target)));
                assert_eq!(wire::ipv4_at(reply, 14), Some(target));
                assert_eq!(wire::mac_at(reply, 18), Some(GUEST_MAC));
            }
        }
        assert_eq!(special_mac(cfg.host), [0x52, 0x55, 0x0a, 0x00, 0x02, 0x02]);
        assert_eq!(n.lookup(guest), Some(GUEST_MAC));
    }

    #[test]
    fn held_packets_flow_once_learned() {
        let cfg = UserConfig::default();
        let mut n = Neighbors::default();
        let guest = Ipv4Addr::new(10, 0, 2, 15);
        let (req, _) = n.hold(&cfg, guest, vec![1], 0);
        assert!(req.is_some());
        let (again, _) = n.hold(&cfg, guest, vec![2], 1000);
        assert!(again.is_none(), "one request a second");
        let reply = arp_packet(OP_REPLY, GUEST_MAC, guest, special_mac(cfg.host), cfg.host);
        let released = n.input(&cfg, &reply).unwrap().released;
        assert_eq!(released, vec![vec![1], vec![2]]);
        assert_eq!(
            n.input(&cfg, &reply[..20]).err(),
            Some(DropReason::Truncated)
        );
    }
}
