//! Counters of a network backend: traffic per direction and drops by reason,
//! shown by `--stats` and asserted by the tests.

use std::fmt;

/// Why a frame was dropped. Frames from the guest are dropped for every reason
/// but `QueueFull`; frames to the guest only for `QueueFull` (the guest does not
/// take them fast enough) and `NoNeighbor` (its MAC address is unknown).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// Shorter than its headers, or than its own length fields say.
    Truncated,
    /// Longer than an Ethernet frame without FCS (1514 bytes).
    Oversize,
    /// An ethertype other than IPv4 and ARP (IPv6, VLAN tags, ...).
    Ethertype,
    /// Not addressed to the gateway: another MAC, a broadcast or multicast
    /// other than DHCP, an ARP question about another address.
    NotForUs,
    /// Header fields that make no sense (IP version, IHL, TCP data offset, ARP sizes).
    Malformed,
    /// RFC 791 header checksum wrong.
    IpChecksum,
    /// RFC 9293 3.1 checksum wrong.
    TcpChecksum,
    /// RFC 768 checksum wrong.
    UdpChecksum,
    /// RFC 792 checksum wrong.
    IcmpChecksum,
    /// An IP fragment: user networking does not reassemble (guests with a
    /// 1500-byte MTU do not fragment TCP, and DNS fits one datagram).
    Fragment,
    /// An IP protocol or ICMP message that is not handled (IGMP, echo to a
    /// host outside, ICMP errors from the guest).
    Protocol,
    /// `restrict=on`: the guest may reach only its forwards.
    Restricted,
    /// A table is full (TCP connections, UDP mappings, DHCP pool).
    Limit,
    /// A bounded queue is full (frames to the guest, datagrams from the host).
    QueueFull,
    /// No way to deliver: no host DNS resolver, a destination that cannot be
    /// NATed (10.0.2.x other than gateway and DNS), a guest MAC never learned.
    Unreachable,
}

impl DropReason {
    pub const COUNT: usize = 15;
    pub const ALL: [DropReason; Self::COUNT] = [
        DropReason::Truncated,
        DropReason::Oversize,
        DropReason::Ethertype,
        DropReason::NotForUs,
        DropReason::Malformed,
        DropReason::IpChecksum,
        DropReason::TcpChecksum,
        DropReason::UdpChecksum,
        DropReason::IcmpChecksum,
        DropReason::Fragment,
        DropReason::Protocol,
        DropReason::Restricted,
        DropReason::Limit,
        DropReason::QueueFull,
        DropReason::Unreachable,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DropReason::Truncated => "truncated",
            DropReason::Oversize => "oversize",
            DropReason::Ethertype => "ethertype",
            DropReason::NotForUs => "not-for-us",
            DropReason::Malformed => "malformed",
            DropReason::IpChecksum => "ip-checksum",
            DropReason::TcpChecksum => "tcp-checksum",
            DropReason::UdpChecksum => "udp-checksum",
            DropReason::IcmpChecksum => "icmp-checksum",
            DropReason::Fragment => "fragment",
            DropReason::Protocol => "protocol",
            DropReason::Restricted => "restricted",
            DropReason::Limit => "limit",
            DropReason::QueueFull => "queue-full",
            DropReason::Unreachable => "unreachable",
        }
    }
}

/// Frames and bytes in one direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    pub frames: u64,
    pub bytes: u64,
}

impl Traffic {
    pub fn add(&mut self, len: usize) {
        self.frames += 1;
        self.bytes += len as u64;
    }
}

/// What a backend has seen since it was made.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Every frame the guest transmitted, dropped or not.
    pub from_guest: Traffic,
    /// Every frame handed to the guest by `receive`.
    pub to_guest: Traffic,
    /// Frames dropped, indexed by `DropReason as usize`.
    pub drops: [u64; DropReason::COUNT],
    /// TCP connections to the host made for the guest, and those refused.
    pub tcp_connects: u64,
    pub tcp_refused: u64,
    /// Host connections accepted on `hostfwd` ports.
    pub tcp_forwarded: u64,
    /// UDP NAT mappings made (DNS included).
    pub udp_mappings: u64,
}

impl NetStats {
    pub fn drop(&mut self, reason: DropReason) {
        self.drops[reason as usize] += 1;
    }

    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize]
    }

    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }
}

impl fmt::Display for NetStats {
    /// One line for `--stats`: traffic, connections, then nonzero drops by name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "net: from guest {} frames/{} bytes, to guest {} frames/{} bytes, tcp {} (refused {}, forwarded {}), udp {}",
            self.from_guest.frames,
            self.from_guest.bytes,
            self.to_guest.frames,
            self.to_guest.bytes,
            self.tcp_connects,
            self.tcp_refused,
            self.tcp_forwarded,
            self.udp_mappings
        )?;
        let mut first = true;
        for r in DropReason::ALL {
            let n = self.dropped(r);
            if n != 0 {
                write!(
                    f,
                    "{} {}={n}",
                    if first { "; drops" } else { "," },
                    r.name()
                )?;
                first = false;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_reasons_listed_in_order() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
    }

    #[test]
    fn display_names_nonzero_drops() {
        let mut s = NetStats::default();
        s.from_guest.add(60);
        s.drop(DropReason::Fragment);
        s.drop(DropReason::Fragment);
        s.drop(DropReason::TcpChecksum);
        let line = s.to_string();
        assert!(line.contains("from guest 1 frames/60 bytes"), "{line}");
        assert!(
            line.ends_with("; drops tcp-checksum=1, fragment=2"),
            "{line}"
        );
        assert_eq!(s.total_drops(), 3);
    }
}
