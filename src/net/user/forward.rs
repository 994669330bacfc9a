//! `hostfwd`: host ports forwarded into the guest.
//!
//! The listeners are bound by the constructor, so a port already in use is
//! its error, naming the rule. A TCP connection accepted on one becomes a
//! smoltcp connection from the gateway address to the guest (see `tcp`). A
//! datagram on a UDP forward reaches the guest from the gateway address and
//! a port standing for its sender (the sender's own port when free); the
//! guest's replies to that port go back to the sender. At most
//! [`MAX_PEERS`] senders per UDP forward are remembered (past that the one
//! with the lowest port is forgotten).

use super::host::{ConnId, Listener};
use super::NetError;
use crate::net::spec::{Proto, UserConfig};
use std::collections::BTreeMap;
use std::net::{SocketAddr, SocketAddrV4};

pub const MAX_PEERS: usize = 64;

pub struct Forward {
    /// Where the guest is reached.
    pub guest: SocketAddrV4,
    /// Where the host side listens (the OS's port if the rule said 0).
    pub bound: SocketAddr,
    /// The UDP socket's id (UDP forwards).
    pub udp: Option<ConnId>,
}

#[derive(Default)]
pub struct Forwards {
    pub list: Vec<Forward>,
    /// (forward, sender) -> the gateway port standing for it, and back.
    ports: BTreeMap<(usize, SocketAddr), u16>,
    peers: BTreeMap<(usize, u16), SocketAddr>,
}

/// Binds every forward's host socket. UDP sockets take ids from `first_id` on.
pub fn bind_all(cfg: &UserConfig, first_id: ConnId) -> Result<(Forwards, Vec<Listener>), NetError> {
    let mut fw = Forwards::default();
    let mut listeners = Vec::new();
    for (i, rule) in cfg.forwards.iter().enumerate() {
        let guest = SocketAddrV4::new(rule.guest_addr.unwrap_or(cfg.dhcp_start), rule.guest_port);
        let err = |source| NetError::Forward {
            rule: rule.rule.clone(),
            addr: rule.host,
            source,
        };
        let (bound, udp) = match rule.proto {
            Proto::Tcp => {
                let l = std::net::TcpListener::bind(rule.host).map_err(err)?;
                l.set_nonblocking(true).map_err(err)?;
                let bound = l.local_addr().map_err(err)?;
                let sock = mio::net::TcpListener::from_std(l);
                listeners.push(Listener::Tcp { sock, forward: i });
                (bound, None)
            }
            Proto::Udp => {
                let s = std::net::UdpSocket::bind(rule.host).map_err(err)?;
                s.set_nonblocking(true).map_err(err)?;
                let bound = s.local_addr().map_err(err)?;
                let id = first_id + i as ConnId;
                let sock = mio::net::UdpSocket::from_std(s);
                listeners.push(Listener::Udp { sock, id });
                (bound, Some(id))
            }
        };
        fw.list.push(Forward { guest, bound, udp });
    }
    Ok((fw, listeners))
}

impl Forwards {
    /// Forgets the UDP forwards' senders (host addresses of the run before a
    /// snapshot was loaded); the listening sockets stay.
    pub fn forget_peers(&mut self) {
        self.ports.clear();
        self.peers.clear();
    }

    pub fn udp_forward(&self, id: ConnId) -> Option<usize> {
        self.list.iter().position(|f| f.udp == Some(id))
    }

    /// The gateway port standing for `peer` on UDP forward `fwd`.
    pub fn port_for(&mut self, fwd: usize, peer: SocketAddr) -> u16 {
        if let Some(&p) = self.ports.get(&(fwd, peer)) {
            return p;
        }
        let taken = |p: u16| self.peers.contains_key(&(fwd, p));
        let port = std::iter::once(peer.port())
            .chain(49152..=u16::MAX)
            .find(|p| *p != 0 && !taken(*p))
            .unwrap_or(peer.port());
        if self.peers.range((fwd, 0)..=(fwd, u16::MAX)).count() >= MAX_PEERS {
            let evict = self
                .peers
                .range((fwd, 0)..=(fwd, u16::MAX))
                .next()
                .map(|(k, v)| (*k, *v));
            if let Some((k, v)) = evict {
                self.peers.remove(&k);
                self.ports.remove(&(fwd, v));
            }
        }
        self.ports.insert((fwd, peer), port);
        self.peers.insert((fwd, port), peer);
        port
    }

    /// A guest datagram from `guest` to gateway port `port`: the UDP forward
    /// socket and the sender it replies to, if it is a forward's reply.
    pub fn reply_target(&self, guest: SocketAddrV4, port: u16) -> Option<(ConnId, SocketAddr)> {
        self.list.iter().enumerate().find_map(|(i, f)| {
            let id = f.udp?;
            if f.guest != guest {
                return None;
            }
            self.peers.get(&(i, port)).map(|p| (id, *p))
        })
    }
}
