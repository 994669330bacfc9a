//! TCP NAT: each guest connection ends in a smoltcp socket (the RFC 9293
//! state machine, retransmission and windows), whose byte stream is relayed
//! to a host socket by the host thread.
//!
//! A guest SYN to a new destination is held while the host thread connects
//! (as QEMU's slirp does): on success a smoltcp socket listening on that
//! destination is made and the SYN handed to it, which answers SYN-ACK; on
//! failure the SYN goes to smoltcp with no socket to take it, and smoltcp
//! answers RST (RFC 9293 3.10.7.1), so the guest sees "connection refused".
//! Connections accepted on `hostfwd` ports become smoltcp active opens from
//! the gateway address to the guest.
//!
//! smoltcp runs on the IP medium: this module feeds it IPv4 packets and takes
//! IPv4 packets out; `UserNet` does the Ethernet framing. Its clock is the
//! virtual time given to `transmit`/`poll`, and its random seed is fixed, so
//! a run without host traffic is reproducible.
//!
//! Bounds: [`MAX_CONNS`] connections (pending connects included), each with
//! [`SOCKET_BUF`] bytes of smoltcp buffer per direction, at most
//! [`TO_HOST_INFLIGHT`] bytes handed to the host thread and not yet written
//! (past that the guest's window closes), and at most `HOST_READ_CREDIT`
//! bytes read from the host ahead of the guest.

use super::host::{Command, ConnId, Event, HostLink};
use crate::devices::Nanos;
use crate::net::spec::UserConfig;
use crate::net::stats::{DropReason, NetStats};
use crate::net::wire::{self, Ipv4, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::socket::tcp::{self, State};
use smoltcp::time::Instant;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};
use std::collections::{BTreeMap, VecDeque};
use std::net::{SocketAddr, SocketAddrV4};

pub const MAX_CONNS: usize = 256;
pub const SOCKET_BUF: usize = 256 * 1024;
pub const TO_HOST_INFLIGHT: usize = 256 * 1024;
/// smoltcp's TCP initial sequence numbers come from this: fixed, for
/// reproducible runs (the guest is the only one who sees them).
const RANDOM_SEED: u64 = 0x7678_3836_2d6e_6574;
/// How long smoltcp waits for a silent guest (a SYN unanswered, data unacked).
const GUEST_TIMEOUT_SECS: u64 = 120;
/// Ports of the gateway's active opens (`hostfwd`): the IANA dynamic range.
const FIRST_PORT: u16 = 49152;

pub fn instant(now: Nanos) -> Instant {
    Instant::from_micros((now / 1000) as i64)
}

/// The smoltcp device: IPv4 packets in from the guest, out to the guest.
#[derive(Default)]
struct IpQueue {
    rx: VecDeque<Vec<u8>>,
    tx: Vec<Vec<u8>>,
    /// Packets the to-guest queue can still take; smoltcp holds back (and
    /// retries later) when it is 0.
    room: usize,
}

struct Rx(Vec<u8>);
struct Tx<'a> {
    tx: &'a mut Vec<Vec<u8>>,
    room: &'a mut usize,
}

impl RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut p = vec![0; len];
        let r = f(&mut p);
        // A reply made while the queue is full (a receive token's) is lost,
        // as on a congested link; TCP retransmits.
        if *self.room > 0 {
            *self.room -= 1;
            self.tx.push(p);
        }
        r
    }
}

impl Device for IpQueue {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, _: Instant) -> Option<(Rx, Tx<'_>)> {
        let p = self.rx.pop_front()?;
        Some((
            Rx(p),
            Tx {
                tx: &mut self.tx,
                room: &mut self.room,
            },
        ))
    }

    fn transmit(&mut self, _: Instant) -> Option<Tx<'_>> {
        (self.room > 0).then_some(Tx {
            tx: &mut self.tx,
            room: &mut self.room,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = wire::IP_MTU;
        caps
    }
}

struct Conn {
    /// The guest's endpoint and the one it talks to (as the guest sees it).
    key: (SocketAddrV4, SocketAddrV4),
    /// `None` while the host connect is pending.
    handle: Option<SocketHandle>,
    /// The guest's SYN, held until the host connect resolves.
    syn: Option<Vec<u8>>,
    to_host: usize,
    from_host: VecDeque<Vec<u8>>,
    from_off: usize,
    host_eof: bool,
    host_failed: bool,
    guest_fin_relayed: bool,
    closing: bool,
}

pub struct TcpNat {
    iface: Interface,
    sockets: SocketSet<'static>,
    dev: IpQueue,
    conns: BTreeMap<ConnId, Conn>,
    keys: BTreeMap<(SocketAddrV4, SocketAddrV4), ConnId>,
    next_port: u16,
}

impl TcpNat {
    pub fn new(cfg: &UserConfig, now: Nanos) -> TcpNat {
        let mut dev = IpQueue::default();
        let mut config = Config::new(HardwareAddress::Ip);
        config.random_seed = RANDOM_SEED;
        let mut iface = Interface::new(config, &mut dev, instant(now));
        // Any destination the guest names is ours to answer for.
        iface.set_any_ip(true);
        iface.update_ip_addrs(|a| {
            let _ = a.push(IpCidr::new(IpAddress::Ipv4(cfg.host), cfg.prefix_len));
        });
        let _ = iface.routes_mut().add_default_ipv4_route(cfg.host);
        TcpNat {
            iface,
            sockets: SocketSet::new(Vec::new()),
            dev,
            conns: BTreeMap::new(),
            keys: BTreeMap::new(),
            next_port: FIRST_PORT,
        }
    }

    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Closes every connection's host socket, pending connects included (a
    /// snapshot was loaded: the connections belonged to the run before it).
    /// The smoltcp side goes with this `TcpNat`, which the caller replaces.
    pub fn close_all(&mut self, link: &mut HostLink) {
        for &id in self.conns.keys() {
            link.send(Command::Close { id });
        }
    }

    /// A guest segment (checksum already checked). `target` is where a new
    /// connection goes on the host, or why it cannot.
    #[allow(clippy::too_many_arguments)]
    pub fn input(
        &mut self,
        ip: &Ipv4<'_>,
        tcp: &wire::Tcp,
        target: Result<SocketAddr, DropReason>,
        restrict: bool,
        link: &mut HostLink,
        stats: &mut NetStats,
    ) -> Result<(), DropReason> {
        let key = (
            SocketAddrV4::new(ip.src, tcp.src_port),
            SocketAddrV4::new(ip.dst, tcp.dst_port),
        );
        if let Some(&id) = self.keys.get(&key) {
            let Some(c) = self.conns.get_mut(&id) else {
                return Ok(());
            };
            if c.handle.is_none() {
                // Connecting: SYN retransmits wait for the host; a RST cancels.
                if tcp.flags & TCP_RST != 0 {
                    link.send(Command::Close { id });
                    self.forget(id);
                }
                return Ok(());
            }
            self.dev.rx.push_back(ip.packet.to_vec());
            return Ok(());
        }
        let syn_only = tcp.flags & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN) == TCP_SYN;
        if !syn_only {
            // No such connection: smoltcp resets it (and ignores a RST).
            self.dev.rx.push_back(ip.packet.to_vec());
            return Ok(());
        }
        if restrict {
            return Err(DropReason::Restricted);
        }
        let addr = match target {
            Ok(a) => a,
            Err(DropReason::Unreachable) => {
                // Nothing to connect to (10.0.2.3:80, say): refuse at once.
                stats.tcp_refused += 1;
                self.dev.rx.push_back(ip.packet.to_vec());
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        if self.conns.len() >= MAX_CONNS {
            return Err(DropReason::Limit);
        }
        let id = link.new_id();
        link.send(Command::Connect { id, addr });
        stats.tcp_connects += 1;
        self.keys.insert(key, id);
        self.conns
            .insert(id, Conn::new(key, None, Some(ip.packet.to_vec())));
        Ok(())
    }

    /// A connection accepted on a `hostfwd` port: open one from the gateway
    /// (`from`, a free port) to `guest`.
    pub fn accept_forward(
        &mut self,
        id: ConnId,
        from: std::net::Ipv4Addr,
        guest: SocketAddrV4,
        link: &mut HostLink,
    ) {
        let Some(port) = self.free_port(from, guest) else {
            link.send(Command::Close { id });
            return;
        };
        if self.conns.len() >= MAX_CONNS {
            link.send(Command::Close { id });
            return;
        }
        let local = SocketAddrV4::new(from, port);
        let mut s = new_socket();
        if s.connect(self.iface.context(), guest, local).is_err() {
            link.send(Command::Close { id });
            return;
        }
        let h = self.sockets.add(s);
        self.keys.insert((guest, local), id);
        self.conns
            .insert(id, Conn::new((guest, local), Some(h), None));
    }

    fn free_port(&mut self, from: std::net::Ipv4Addr, guest: SocketAddrV4) -> Option<u16> {
        let span = u32::from(u16::MAX - FIRST_PORT) + 1;
        for _ in 0..span {
            let p = self.next_port;
            self.next_port = if p == u16::MAX { FIRST_PORT } else { p + 1 };
            if !self.keys.contains_key(&(guest, SocketAddrV4::new(from, p))) {
                return Some(p);
            }
        }
        None
    }

    /// What the host thread said about a TCP connection.
    pub fn host_event(&mut self, ev: Event, stats: &mut NetStats, link: &mut HostLink) {
        match ev {
            Event::Connected { id } => {
                let Some(c) = self.conns.get_mut(&id) else {
                    return;
                };
                let Some(syn) = c.syn.take() else {
                    return;
                };
                let mut s = new_socket();
                if s.listen(c.key.1).is_err() {
                    link.send(Command::Close { id });
                    self.forget(id);
                    return;
                }
                c.handle = Some(self.sockets.add(s));
                // A socket that is still listening after this SYN is dropped by `relay`.
                self.dev.rx.push_back(syn);
            }
            Event::ConnectFailed { id } => {
                if let Some(syn) = self.conns.get_mut(&id).and_then(|c| c.syn.take()) {
                    stats.tcp_refused += 1;
                    self.dev.rx.push_back(syn);
                }
                self.forget(id);
            }
            Event::Data { id, data } => {
                if let Some(c) = self.conns.get_mut(&id) {
                    c.from_host.push_back(data);
                }
            }
            Event::Eof { id } => {
                if let Some(c) = self.conns.get_mut(&id) {
                    c.host_eof = true;
                }
            }
            Event::Reset { id } => {
                if let Some(c) = self.conns.get_mut(&id) {
                    c.host_failed = true;
                }
            }
            Event::Written { id, bytes } => {
                if let Some(c) = self.conns.get_mut(&id) {
                    c.to_host = c.to_host.saturating_sub(bytes);
                }
            }
            Event::Accepted { .. } | Event::Datagram { .. } => {}
        }
    }

    /// Runs smoltcp and the relay; returns the IPv4 packets for the guest.
    /// `room`: how many the to-guest queue can take.
    pub fn pump(&mut self, now: Nanos, room: usize, link: &mut HostLink) -> Vec<Vec<u8>> {
        self.dev.room = room;
        let t = instant(now);
        self.iface.poll(t, &mut self.dev, &mut self.sockets);
        if self.relay(link) {
            self.iface.poll(t, &mut self.dev, &mut self.sockets);
        }
        std::mem::take(&mut self.dev.tx)
    }

    /// When smoltcp next needs `pump` (a retransmit, a delayed ACK, TIME-WAIT).
    pub fn poll_at(&mut self, now: Nanos) -> Option<Nanos> {
        let at = self.iface.poll_at(instant(now), &self.sockets)?;
        Some(at.total_micros().max(0) as u64 * 1000)
    }

    /// Moves bytes between smoltcp sockets and the host thread, and ends
    /// finished connections. True if a socket may have something to send.
    fn relay(&mut self, link: &mut HostLink) -> bool {
        let mut again = false;
        let mut finished = Vec::new();
        for (&id, c) in self.conns.iter_mut() {
            let Some(h) = c.handle else {
                continue;
            };
            let s = self.sockets.get_mut::<tcp::Socket>(h);
            // Guest to host, bounded by what the host thread holds.
            while s.can_recv() && c.to_host < TO_HOST_INFLIGHT {
                let room = TO_HOST_INFLIGHT - c.to_host;
                let data = s
                    .recv(|b| {
                        let n = b.len().min(room);
                        (n, b.get(..n).unwrap_or_default().to_vec())
                    })
                    .unwrap_or_default();
                if data.is_empty() {
                    break;
                }
                again = true; // the window opened: smoltcp may announce it
                c.to_host += data.len();
                link.send(Command::Send { id, data });
            }
            let state = s.state();
            let guest_fin = matches!(
                state,
                State::CloseWait | State::LastAck | State::Closing | State::TimeWait
            );
            if guest_fin && !c.guest_fin_relayed && s.recv_queue() == 0 {
                c.guest_fin_relayed = true;
                link.send(Command::ShutdownWrite { id });
            }
            // Host to guest, as far as smoltcp's send buffer takes it.
            let mut credit = 0;
            while let Some(front) = c.from_host.front() {
                let rest = front.get(c.from_off..).unwrap_or_default();
                let n = if s.can_send() {
                    s.send_slice(rest).unwrap_or(0)
                } else {
                    0
                };
                if n == 0 {
                    break;
                }
                credit += n;
                c.from_off += n;
                if c.from_off >= front.len() {
                    c.from_host.pop_front();
                    c.from_off = 0;
                }
            }
            if credit > 0 {
                again = true;
                link.send(Command::Credit { id, bytes: credit });
            }
            if c.host_eof && c.from_host.is_empty() && !c.closing && s.may_send() {
                c.closing = true;
                again = true;
                s.close();
            }
            if c.host_failed && state != State::Closed {
                again = true;
                s.abort();
            }
            // Closed, the RST (if any) sent, and every guest byte passed on:
            // smoltcp can reach CLOSED (LAST-ACK acked) with data still unread.
            let drained = s.recv_queue() == 0;
            if matches!(s.state(), State::Closed | State::Listen) && !rst_pending(s) && drained {
                finished.push(id);
            }
        }
        for id in finished {
            link.send(Command::Close { id });
            self.forget(id);
        }
        again
    }

    fn forget(&mut self, id: ConnId) {
        if let Some(c) = self.conns.remove(&id) {
            self.keys.remove(&c.key);
            if let Some(h) = c.handle {
                self.sockets.remove(h);
            }
        }
    }
}

/// An aborted socket keeps its remote endpoint until smoltcp has sent the
/// RST: keep it until then.
fn rst_pending(s: &tcp::Socket<'_>) -> bool {
    s.state() == State::Closed && s.remote_endpoint().is_some()
}

fn new_socket() -> tcp::Socket<'static> {
    let mut s = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; SOCKET_BUF]),
        tcp::SocketBuffer::new(vec![0; SOCKET_BUF]),
    );
    // The host side already coalesces; Nagle here would only add latency.
    s.set_nagle_enabled(false);
    // A guest that stops answering (crashed, or no listener for a forward)
    // loses the connection after this much virtual time, freeing the host socket.
    s.set_timeout(Some(smoltcp::time::Duration::from_secs(GUEST_TIMEOUT_SECS)));
    s
}

impl Conn {
    fn new(
        key: (SocketAddrV4, SocketAddrV4),
        handle: Option<SocketHandle>,
        syn: Option<Vec<u8>>,
    ) -> Conn {
        Conn {
            key,
            handle,
            syn,
            to_host: 0,
            from_host: VecDeque::new(),
            from_off: 0,
            host_eof: false,
            host_failed: false,
            guest_fin_relayed: false,
            closing: false,
        }
    }
}
