//! User-mode networking (QEMU's `-netdev user`, "slirp"): the guest sits
//! behind a virtual gateway that answers ARP (RFC 826), DHCP (RFC 2131),
//! ping (RFC 792) and DNS (RFC 1035, forwarded to the host's resolver) and
//! NATs TCP and UDP to host sockets; `hostfwd` rules forward host ports in.
//!
//! Addresses (QEMU's defaults): network 10.0.2.0/24, gateway 10.0.2.2 (which
//! also stands for the host's 127.0.0.1), DNS 10.0.2.3, leases from
//! 10.0.2.15. Other destinations are reached as themselves.
//!
//! Threads: [`UserNet`] lives on the machine thread; one host thread (see
//! [`host`]) owns the host sockets. Everything answered without the host is
//! answered inside `transmit`/`poll`, on virtual time.
//!
//! Bounds: at most [`TO_GUEST_QUEUE`] frames wait for the guest (past that,
//! frames are dropped and counted, and smoltcp holds its segments back);
//! connection, mapping and buffer bounds are in `tcp`, `udp`, `host`,
//! `forward`, `arp` and `dhcp`.

mod arp;
mod dhcp;
mod dns;
mod forward;
mod host;
mod icmp;
mod tcp;
mod udp;

#[cfg(test)]
mod tests;

use self::arp::{special_mac, Neighbors};
use self::dhcp::DhcpServer;
use self::forward::Forwards;
use self::host::{Command, Event, HostLink};
use self::tcp::TcpNat;
use self::udp::UdpNat;
use super::spec::UserConfig;
use super::stats::{DropReason, NetStats};
use super::wire::{self, Mac, BROADCAST_MAC, ETHERTYPE_ARP, ETHERTYPE_IPV4};
use super::NetBackend;
use crate::devices::Nanos;
use crate::snapshot::StateError;
use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::Ordering;
use thiserror::Error;

/// Frames waiting for the guest to take them.
pub const TO_GUEST_QUEUE: usize = 1024;
/// Virtual time between sweeps of idle UDP mappings.
const GC_INTERVAL: Nanos = 1_000_000_000;
/// A deadline smoltcp puts at "now" means it is waiting for queue room:
/// retry after this much virtual time instead of at once.
const RETRY_DELAY: Nanos = 1_000_000;

#[derive(Debug, Error)]
pub enum NetError {
    #[error("hostfwd={rule}: cannot listen on {addr}: {source}")]
    Forward {
        rule: String,
        addr: SocketAddr,
        source: io::Error,
    },
    #[error("user networking: cannot start the host I/O thread: {0}")]
    Start(io::Error),
}

/// The user-mode network backend.
///
/// Snapshots: what the virtual network remembers about the guest is saved
/// ([`UserNetState`]: the DHCP leases, the neighbor table and the packets
/// waiting on it, frames queued for the guest, the clock and timers), so a
/// restored guest keeps its address and continues as the uninterrupted run
/// while it has no host traffic. The NAT's TCP connections and UDP mappings
/// are not saved: each is a host socket, whose peer and kernel state cannot
/// follow the snapshot to another process or host. A load closes the ones
/// this backend has and starts the NAT empty; the guest's next segment on
/// an old connection is answered with a RST, as after a change of the
/// host's network, and its next datagram opens a new mapping. The
/// configuration (addresses, `restrict`, `hostfwd` rules) is recorded in
/// the snapshot and checked on load, and the `hostfwd` listeners are those
/// of the loading run, opened from the same rules: forwards listen again.
pub struct UserNet {
    cfg: UserConfig,
    /// Where DNS queries go; `None`: answered with SERVFAIL.
    host_dns: Option<SocketAddr>,
    gw_mac: Mac,
    arp: Neighbors,
    dhcp: DhcpServer,
    udp: UdpNat,
    tcp: TcpNat,
    fwd: Forwards,
    link: HostLink,
    to_guest: VecDeque<Vec<u8>>,
    stats: NetStats,
    now: Nanos,
    deadline: Option<Nanos>,
    ip_id: u16,
    next_gc: Nanos,
}

impl UserNet {
    /// Binds the `hostfwd` ports and starts the host thread. The DNS
    /// resolver is `cfg.host_dns`, else the host's (a missing one is reported
    /// once, here, on stderr).
    pub fn new(cfg: &UserConfig) -> Result<UserNet, NetError> {
        // Ids 1.. are the UDP forwards' sockets; the rest are handed out after.
        let (fwd, listeners) = forward::bind_all(cfg, 1)?;
        let link =
            HostLink::start(listeners, 1 + cfg.forwards.len() as u64).map_err(NetError::Start)?;
        let host_dns = cfg.host_dns.or_else(dns::host_resolver);
        if host_dns.is_none() {
            eprintln!(
                "vx86: user networking: no host DNS resolver found (/etc/resolv.conf); DNS queries to {} will fail",
                cfg.dns
            );
        }
        Ok(UserNet {
            cfg: cfg.clone(),
            host_dns,
            gw_mac: special_mac(cfg.host),
            arp: Neighbors::default(),
            dhcp: DhcpServer::default(),
            udp: UdpNat::default(),
            tcp: TcpNat::new(cfg, 0),
            fwd,
            link,
            to_guest: VecDeque::new(),
            stats: NetStats::default(),
            now: 0,
            deadline: None,
            ip_id: 0,
            next_gc: GC_INTERVAL,
        })
    }

    /// Where each `hostfwd` rule listens, in rule order (useful with port 0).
    pub fn forward_addrs(&self) -> Vec<SocketAddr> {
        self.fwd.list.iter().map(|f| f.bound).collect()
    }

    fn frame_to_guest(&mut self, frame: Vec<u8>) {
        if self.to_guest.len() >= TO_GUEST_QUEUE {
            self.stats.drop(DropReason::QueueFull);
        } else {
            self.to_guest.push_back(frame);
        }
    }

    /// An IPv4 packet for the guest, framed for the MAC of its destination
    /// (asked for with ARP when not known yet).
    fn ip_to_guest(&mut self, packet: Vec<u8>) {
        let Some(dst) = wire::ipv4_at(&packet, 16) else {
            return;
        };
        if let Some(mac) = self.arp.lookup(dst) {
            let f = wire::eth_frame(mac, self.gw_mac, ETHERTYPE_IPV4, &packet);
            self.frame_to_guest(f);
            return;
        }
        let (request, lost) = self.arp.hold(&self.cfg, dst, packet, self.now);
        if lost {
            self.stats.drop(DropReason::Unreachable);
        }
        if let Some(r) = request {
            self.frame_to_guest(r);
        }
    }

    fn udp_to_guest(&mut self, from: SocketAddrV4, to: SocketAddrV4, data: &[u8]) {
        let seg = wire::udp_segment(from, to, data);
        self.ip_id = self.ip_id.wrapping_add(1);
        for p in wire::ipv4_packets(*from.ip(), *to.ip(), wire::PROTO_UDP, self.ip_id, &seg) {
            self.ip_to_guest(p);
        }
    }

    fn learn(&mut self, ip: Ipv4Addr, mac: Mac) {
        for p in self.arp.learn(&self.cfg, ip, mac) {
            self.ip_to_guest(p);
        }
    }

    fn frame(&mut self, frame: &[u8]) -> Result<(), DropReason> {
        let eth = wire::parse_eth(frame)?;
        let ours = eth.dst == BROADCAST_MAC
            || eth.dst == self.gw_mac
            || eth.dst == special_mac(self.cfg.dns);
        if !ours {
            return Err(DropReason::NotForUs);
        }
        match eth.ethertype {
            ETHERTYPE_ARP => {
                let out = self.arp.input(&self.cfg, eth.payload)?;
                if let Some(r) = out.reply {
                    self.frame_to_guest(r);
                }
                for p in out.released {
                    self.ip_to_guest(p);
                }
                Ok(())
            }
            ETHERTYPE_IPV4 => self.ipv4(eth.src, eth.payload),
            _ => Err(DropReason::Ethertype),
        }
    }

    fn ipv4(&mut self, src_mac: Mac, payload: &[u8]) -> Result<(), DropReason> {
        let ip = wire::parse_ipv4(payload)?;
        if ip.proto == wire::PROTO_UDP {
            let udp = wire::parse_udp(&ip)?;
            if udp.dst_port == dhcp::SERVER_PORT {
                return self.dhcp(udp.payload);
            }
        }
        if !self.cfg.is_guest_addr(ip.src) || !is_unicast(ip.dst) || ip.dst == self.cfg.broadcast()
        {
            return Err(DropReason::NotForUs);
        }
        self.learn(ip.src, src_mac);
        match ip.proto {
            wire::PROTO_TCP => {
                let tcp = wire::parse_tcp(&ip)?;
                let target = self.nat_target(SocketAddrV4::new(ip.dst, tcp.dst_port));
                self.tcp.input(
                    &ip,
                    &tcp,
                    target,
                    self.cfg.restrict,
                    &mut self.link,
                    &mut self.stats,
                )?;
                self.pump_tcp();
                Ok(())
            }
            wire::PROTO_UDP => {
                let udp = wire::parse_udp(&ip)?;
                let guest = SocketAddrV4::new(ip.src, udp.src_port);
                let remote = SocketAddrV4::new(ip.dst, udp.dst_port);
                self.udp(guest, remote, udp.payload)
            }
            wire::PROTO_ICMP => {
                let reply = icmp::input(&self.cfg, &ip)?;
                self.ip_id = self.ip_id.wrapping_add(1);
                for p in wire::ipv4_packets(ip.dst, ip.src, wire::PROTO_ICMP, self.ip_id, &reply) {
                    self.ip_to_guest(p);
                }
                Ok(())
            }
            _ => Err(DropReason::Protocol),
        }
    }

    fn dhcp(&mut self, msg: &[u8]) -> Result<(), DropReason> {
        let Some(r) = self.dhcp.input(&self.cfg, msg)? else {
            return Ok(());
        };
        if let Some((addr, mac)) = r.bound {
            self.learn(addr, mac);
        }
        let from = SocketAddrV4::new(self.cfg.host, dhcp::SERVER_PORT);
        let to = SocketAddrV4::new(r.dst_ip, dhcp::CLIENT_PORT);
        let seg = wire::udp_segment(from, to, &r.payload);
        self.ip_id = self.ip_id.wrapping_add(1);
        for p in wire::ipv4_packets(self.cfg.host, r.dst_ip, wire::PROTO_UDP, self.ip_id, &seg) {
            let f = wire::eth_frame(r.dst_mac, self.gw_mac, ETHERTYPE_IPV4, &p);
            self.frame_to_guest(f);
        }
        Ok(())
    }

    fn udp(
        &mut self,
        guest: SocketAddrV4,
        remote: SocketAddrV4,
        data: &[u8],
    ) -> Result<(), DropReason> {
        if *remote.ip() == self.cfg.host {
            if let Some((id, peer)) = self.fwd.reply_target(guest, remote.port()) {
                let data = data.to_vec();
                self.link.send(Command::UdpSend {
                    id,
                    to: Some(peer),
                    data,
                });
                return Ok(());
            }
        }
        if self.cfg.restrict {
            return Err(DropReason::Restricted);
        }
        let dns = *remote.ip() == self.cfg.dns && remote.port() == dns::PORT;
        if dns && self.host_dns.is_none() {
            let answer = dns::servfail(data).ok_or(DropReason::Malformed)?;
            self.udp_to_guest(remote, guest, &answer);
            return Ok(());
        }
        let target = self.nat_target(remote)?;
        let now = self.now;
        self.udp.output(
            guest,
            remote,
            target,
            dns,
            data,
            now,
            &mut self.link,
            &mut self.stats,
        );
        Ok(())
    }

    /// Where a guest destination is on the host side: the gateway is the
    /// host's loopback, the DNS address port 53 the host's resolver, other
    /// virtual addresses nothing, anything else itself.
    fn nat_target(&self, dst: SocketAddrV4) -> Result<SocketAddr, DropReason> {
        let ip = *dst.ip();
        if ip == self.cfg.host {
            return Ok(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), dst.port()));
        }
        if ip == self.cfg.dns {
            return match self.host_dns {
                Some(d) if dst.port() == dns::PORT => Ok(d),
                _ => Err(DropReason::Unreachable),
            };
        }
        if self.cfg.contains(ip) {
            return Err(DropReason::Unreachable);
        }
        if ip.is_loopback() || ip.is_unspecified() || ip.octets()[0] == 0 {
            return Err(DropReason::NotForUs);
        }
        Ok(SocketAddr::V4(dst))
    }

    fn pump_tcp(&mut self) {
        let room = TO_GUEST_QUEUE.saturating_sub(self.to_guest.len());
        for p in self.tcp.pump(self.now, room, &mut self.link) {
            self.ip_to_guest(p);
        }
    }

    fn host_event(&mut self, ev: Event) {
        match ev {
            Event::Datagram { id, from, data } => {
                self.link.signal.udp_queued.fetch_sub(1, Ordering::AcqRel);
                if let Some((src, dst)) = self.udp.reply(id, self.now) {
                    self.udp_to_guest(src, dst, &data);
                } else if let Some(i) = self.fwd.udp_forward(id) {
                    let port = self.fwd.port_for(i, from);
                    let guest = self.fwd.list.get(i).map(|f| f.guest);
                    if let Some(guest) = guest {
                        self.udp_to_guest(SocketAddrV4::new(self.cfg.host, port), guest, &data);
                    }
                }
            }
            Event::Accepted { id, forward } => {
                self.stats.tcp_forwarded += 1;
                match self.fwd.list.get(forward) {
                    Some(f) => self
                        .tcp
                        .accept_forward(id, self.cfg.host, f.guest, &mut self.link),
                    None => self.link.send(Command::Close { id }),
                }
            }
            ev => self.tcp.host_event(ev, &mut self.stats, &mut self.link),
        }
    }

    fn advance(&mut self, now: Nanos) {
        // smoltcp needs a monotonic clock.
        self.now = self.now.max(now);
    }

    fn finish(&mut self) {
        self.link.flush();
        let now = self.now;
        self.deadline = self
            .tcp
            .poll_at(now)
            .map(|d| if d <= now { now + RETRY_DELAY } else { d });
    }

    /// Connections and mappings alive (tests, `--stats`).
    pub fn flows(&self) -> (usize, usize) {
        (self.tcp.connections(), self.udp.mappings())
    }
}

/// The part of [`UserNet`] a snapshot holds (see its doc): plain data,
/// encoded with the snapshot's codec.
#[derive(serde::Serialize, serde::Deserialize)]
struct UserNetState {
    arp: Neighbors,
    dhcp: DhcpServer,
    to_guest: VecDeque<Vec<u8>>,
    now: Nanos,
    deadline: Option<Nanos>,
    ip_id: u16,
    next_gc: Nanos,
}

fn is_unicast(ip: Ipv4Addr) -> bool {
    !(ip.is_broadcast() || ip.is_multicast() || ip.is_unspecified())
}

impl NetBackend for UserNet {
    fn transmit(&mut self, frame: &[u8], now: Nanos) {
        self.advance(now);
        self.stats.from_guest.add(frame.len());
        if let Err(reason) = self.frame(frame) {
            self.stats.drop(reason);
        }
        self.finish();
    }

    fn receive(&mut self) -> Option<Vec<u8>> {
        let f = self.to_guest.pop_front()?;
        self.stats.to_guest.add(f.len());
        Some(f)
    }

    fn poll(&mut self, now: Nanos) {
        self.advance(now);
        self.link.signal.clear();
        while let Some(ev) = self.link.try_event() {
            self.host_event(ev);
        }
        if self.now >= self.next_gc {
            self.next_gc = self.now + GC_INTERVAL;
            self.udp.expire(self.now, &mut self.link);
        }
        self.pump_tcp();
        self.finish();
    }

    fn next_deadline(&self) -> Option<Nanos> {
        self.deadline
    }

    fn host_pending(&self) -> bool {
        self.link.signal.pending()
    }

    fn host_wakeup(&self) -> crossbeam_channel::Receiver<()> {
        self.link.signal.wake_rx.clone()
    }

    fn stats(&self) -> NetStats {
        let mut s = self.stats.clone();
        s.drops[DropReason::QueueFull as usize] +=
            self.link.signal.udp_dropped.load(Ordering::Relaxed);
        s
    }

    fn snapshot_config(&self) -> String {
        self.cfg.canonical()
    }

    fn save_state(&self) -> Result<Vec<u8>, StateError> {
        crate::snapshot::encode(&UserNetState {
            arp: self.arp.clone(),
            dhcp: self.dhcp.clone(),
            to_guest: self.to_guest.clone(),
            now: self.now,
            deadline: self.deadline,
            ip_id: self.ip_id,
            next_gc: self.next_gc,
        })
    }

    /// The saved network comes back; the NAT's connections and mappings of
    /// this run are closed and not replaced (see [`UserNet`]).
    fn load_state(&mut self, state: &[u8]) -> Result<(), StateError> {
        let s: UserNetState = crate::snapshot::decode(state)?;
        if s.to_guest.len() > TO_GUEST_QUEUE {
            return Err(StateError::Mismatch(format!(
                "user networking: {} frames queued for the guest (at most {TO_GUEST_QUEUE})",
                s.to_guest.len()
            )));
        }
        self.tcp.close_all(&mut self.link);
        self.udp.close_all(&mut self.link);
        self.link.flush();
        self.fwd.forget_peers();
        self.tcp = TcpNat::new(&self.cfg, s.now);
        self.udp = UdpNat::default();
        self.arp = s.arp;
        self.dhcp = s.dhcp;
        self.to_guest = s.to_guest;
        self.now = s.now;
        self.deadline = s.deadline;
        self.ip_id = s.ip_id;
        self.next_gc = s.next_gc;
        Ok(())
    }
}
