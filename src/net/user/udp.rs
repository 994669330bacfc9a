//! UDP NAT: each (guest endpoint, destination) pair gets a host UDP socket
//! connected to the translated destination; datagrams from it go back to the
//! guest as if from the destination it named. DNS queries to the virtual DNS
//! address are mappings to the host's resolver.
//!
//! Mappings idle for [`IDLE`] ([`DNS_IDLE`] for DNS, which is one exchange)
//! of virtual time are closed; past [`MAX_MAPPINGS`] the least recently used
//! one is.

use super::host::{Command, ConnId, HostLink};
use crate::devices::Nanos;
use crate::net::stats::NetStats;
use std::collections::BTreeMap;
use std::net::{SocketAddr, SocketAddrV4};

pub const MAX_MAPPINGS: usize = 256;
pub const IDLE: Nanos = 60_000_000_000;
pub const DNS_IDLE: Nanos = 10_000_000_000;

struct Mapping {
    guest: SocketAddrV4,
    remote: SocketAddrV4,
    last: Nanos,
    idle: Nanos,
}

#[derive(Default)]
pub struct UdpNat {
    by_flow: BTreeMap<(SocketAddrV4, SocketAddrV4), ConnId>,
    maps: BTreeMap<ConnId, Mapping>,
}

impl UdpNat {
    /// Sends a guest datagram from `guest` to `remote` (the guest's view) to
    /// `host` (where it really goes).
    #[allow(clippy::too_many_arguments)]
    pub fn output(
        &mut self,
        guest: SocketAddrV4,
        remote: SocketAddrV4,
        host: SocketAddr,
        dns: bool,
        data: &[u8],
        now: Nanos,
        link: &mut HostLink,
        stats: &mut NetStats,
    ) {
        let id = match self.by_flow.get(&(guest, remote)) {
            Some(&id) => id,
            None => {
                if self.maps.len() >= MAX_MAPPINGS {
                    let lru = self
                        .maps
                        .iter()
                        .min_by_key(|(_, m)| m.last)
                        .map(|(id, _)| *id);
                    if let Some(id) = lru {
                        self.close(id, link);
                    }
                }
                let id = link.new_id();
                link.send(Command::UdpOpen { id, peer: host });
                stats.udp_mappings += 1;
                self.by_flow.insert((guest, remote), id);
                let idle = if dns { DNS_IDLE } else { IDLE };
                self.maps.insert(
                    id,
                    Mapping {
                        guest,
                        remote,
                        last: now,
                        idle,
                    },
                );
                id
            }
        };
        if let Some(m) = self.maps.get_mut(&id) {
            m.last = now;
        }
        link.send(Command::UdpSend {
            id,
            to: None,
            data: data.to_vec(),
        });
    }

    /// For a datagram from the host on mapping `id`: (from, to) as the guest sees them.
    pub fn reply(&mut self, id: ConnId, now: Nanos) -> Option<(SocketAddrV4, SocketAddrV4)> {
        let m = self.maps.get_mut(&id)?;
        m.last = now;
        Some((m.remote, m.guest))
    }

    pub fn expire(&mut self, now: Nanos, link: &mut HostLink) {
        let old: Vec<ConnId> = self
            .maps
            .iter()
            .filter(|(_, m)| now.saturating_sub(m.last) >= m.idle)
            .map(|(id, _)| *id)
            .collect();
        for id in old {
            self.close(id, link);
        }
    }

    pub fn mappings(&self) -> usize {
        self.maps.len()
    }

    /// Closes every mapping's host socket (a snapshot was loaded: the
    /// mappings belonged to the run before it).
    pub fn close_all(&mut self, link: &mut HostLink) {
        let ids: Vec<ConnId> = self.maps.keys().copied().collect();
        for id in ids {
            self.close(id, link);
        }
    }

    fn close(&mut self, id: ConnId, link: &mut HostLink) {
        if let Some(m) = self.maps.remove(&id) {
            self.by_flow.remove(&(m.guest, m.remote));
            link.send(Command::Close { id });
        }
    }
}
