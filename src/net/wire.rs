//! Header layouts of Ethernet II, IPv4 (RFC 791), UDP (RFC 768), TCP
//! (RFC 9293) and ICMP (RFC 792): bounds-checked parsing of what the guest
//! sends, and building of what it receives.
//!
//! Every parser takes bytes the guest controls and returns a [`DropReason`]
//! instead of panicking; no slice is indexed without `get`.

use super::stats::DropReason;
use std::net::{Ipv4Addr, SocketAddrV4};

pub type Mac = [u8; 6];
pub const BROADCAST_MAC: Mac = [0xff; 6];

pub const ETH_HEADER: usize = 14;
/// Ethernet II frame without FCS: 14-byte header + 1500-byte payload.
pub const ETH_MAX_FRAME: usize = ETH_HEADER + IP_MTU;
pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;

/// The IP MTU of the virtual link (QEMU's slirp uses 1500 too).
pub const IP_MTU: usize = 1500;
pub const IPV4_HEADER: usize = 20;
pub const UDP_HEADER: usize = 8;
pub const TCP_HEADER: usize = 20;

pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;

// IPv4 flags and fragment offset word (RFC 791 3.1).
const IP_MORE_FRAGMENTS: u16 = 0b0010_0000_0000_0000;
const IP_FRAG_OFFSET: u16 = 0b0001_1111_1111_1111;

// TCP flags (RFC 9293 3.1).
pub const TCP_FIN: u8 = 0b0000_0001;
pub const TCP_SYN: u8 = 0b0000_0010;
pub const TCP_RST: u8 = 0b0000_0100;
pub const TCP_ACK: u8 = 0b0001_0000;

pub fn be16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

pub fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

pub fn ipv4_at(b: &[u8], at: usize) -> Option<Ipv4Addr> {
    be32(b, at).map(Ipv4Addr::from)
}

pub fn mac_at(b: &[u8], at: usize) -> Option<Mac> {
    b.get(at..at.checked_add(6)?)?.try_into().ok()
}

/// A MAC as QEMU writes it: `52:54:00:12:34:56`.
pub fn mac_text(m: Mac) -> String {
    let b: Vec<String> = m.iter().map(|b| format!("{b:02x}")).collect();
    b.join(":")
}

/// An Ethernet II frame.
pub struct Eth<'a> {
    pub dst: Mac,
    pub src: Mac,
    pub ethertype: u16,
    pub payload: &'a [u8],
}

pub fn parse_eth(frame: &[u8]) -> Result<Eth<'_>, DropReason> {
    if frame.len() > ETH_MAX_FRAME {
        return Err(DropReason::Oversize);
    }
    let (Some(dst), Some(src), Some(ethertype), Some(payload)) = (
        mac_at(frame, 0),
        mac_at(frame, 6),
        be16(frame, 12),
        frame.get(ETH_HEADER..),
    ) else {
        return Err(DropReason::Truncated);
    };
    Ok(Eth {
        dst,
        src,
        ethertype,
        payload,
    })
}

/// Builds an Ethernet II frame around `payload`.
pub fn eth_frame(dst: Mac, src: Mac, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(ETH_HEADER + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An unfragmented IPv4 datagram whose header checksum is right.
pub struct Ipv4<'a> {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub proto: u8,
    /// The whole datagram (header and payload, without link padding).
    pub packet: &'a [u8],
    pub payload: &'a [u8],
}

pub fn parse_ipv4(buf: &[u8]) -> Result<Ipv4<'_>, DropReason> {
    let first = *buf.first().ok_or(DropReason::Truncated)?;
    if first >> 4 != 4 {
        return Err(DropReason::Malformed);
    }
    let ihl = usize::from(first & 0x0f) * 4;
    if ihl < IPV4_HEADER {
        return Err(DropReason::Malformed);
    }
    let total = usize::from(be16(buf, 2).ok_or(DropReason::Truncated)?);
    // Ethernet pads short frames: bytes past the total length are ignored.
    let packet = buf.get(..total).ok_or(DropReason::Truncated)?;
    let header = packet.get(..ihl).ok_or(DropReason::Truncated)?;
    if checksum(header, 0) != 0 {
        return Err(DropReason::IpChecksum);
    }
    let frag = be16(header, 6).ok_or(DropReason::Truncated)?;
    if frag & (IP_MORE_FRAGMENTS | IP_FRAG_OFFSET) != 0 {
        return Err(DropReason::Fragment);
    }
    let (Some(src), Some(dst), Some(&proto), Some(payload)) = (
        ipv4_at(header, 12),
        ipv4_at(header, 16),
        header.get(9),
        packet.get(ihl..),
    ) else {
        return Err(DropReason::Truncated);
    };
    Ok(Ipv4 {
        src,
        dst,
        proto,
        packet,
        payload,
    })
}

/// A UDP datagram whose checksum (if any) is right.
pub struct Udp<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub payload: &'a [u8],
}

pub fn parse_udp<'a>(ip: &Ipv4<'a>) -> Result<Udp<'a>, DropReason> {
    let seg = ip.payload;
    let (Some(src_port), Some(dst_port), Some(len), Some(sum)) =
        (be16(seg, 0), be16(seg, 2), be16(seg, 4), be16(seg, 6))
    else {
        return Err(DropReason::Truncated);
    };
    let len = usize::from(len);
    if len < UDP_HEADER {
        return Err(DropReason::Malformed);
    }
    let seg = seg.get(..len).ok_or(DropReason::Truncated)?;
    // RFC 768: an all-zero checksum means the sender computed none.
    if sum != 0 && checksum(seg, pseudo_header(ip.src, ip.dst, PROTO_UDP, len)) != 0 {
        return Err(DropReason::UdpChecksum);
    }
    Ok(Udp {
        src_port,
        dst_port,
        payload: seg.get(UDP_HEADER..).unwrap_or_default(),
    })
}

/// The TCP header fields the NAT looks at, from a segment whose checksum is right.
pub struct Tcp {
    pub src_port: u16,
    pub dst_port: u16,
    pub flags: u8,
}

pub fn parse_tcp(ip: &Ipv4<'_>) -> Result<Tcp, DropReason> {
    let seg = ip.payload;
    let (Some(src_port), Some(dst_port), Some(&offset), Some(&flags)) =
        (be16(seg, 0), be16(seg, 2), seg.get(12), seg.get(13))
    else {
        return Err(DropReason::Truncated);
    };
    let data_offset = usize::from(offset >> 4) * 4;
    if data_offset < TCP_HEADER {
        return Err(DropReason::Malformed);
    }
    if data_offset > seg.len() {
        return Err(DropReason::Truncated);
    }
    if checksum(seg, pseudo_header(ip.src, ip.dst, PROTO_TCP, seg.len())) != 0 {
        return Err(DropReason::TcpChecksum);
    }
    if src_port == 0 || dst_port == 0 {
        return Err(DropReason::Malformed);
    }
    Ok(Tcp {
        src_port,
        dst_port,
        flags,
    })
}

/// RFC 1071 Internet checksum of `data`, starting from the partial sum
/// `initial` (a pseudo-header): 0 when `data` holds a correct checksum.
pub fn checksum(data: &[u8], initial: u32) -> u16 {
    let mut sum = u64::from(initial);
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u64::from(*last) << 8;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The partial sum of the TCP/UDP pseudo-header (RFC 768, RFC 9293 3.1).
pub fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, len: usize) -> u32 {
    let (s, d) = (src.octets(), dst.octets());
    let words = [
        u16::from_be_bytes([s[0], s[1]]),
        u16::from_be_bytes([s[2], s[3]]),
        u16::from_be_bytes([d[0], d[1]]),
        u16::from_be_bytes([d[2], d[3]]),
        u16::from(proto),
        (len & 0xffff) as u16,
    ];
    words.iter().map(|w| u32::from(*w)).sum::<u32>() + (len >> 16) as u32
}

/// Builds IPv4 datagrams carrying `payload`, fragmented to the link MTU
/// (RFC 791 3.2) when it does not fit one: host UDP replies (a large DNS
/// answer) can be up to 64 KiB.
pub fn ipv4_packets(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    id: u16,
    payload: &[u8],
) -> Vec<Vec<u8>> {
    // Fragment payloads are multiples of 8 bytes except the last.
    let max = (IP_MTU - IPV4_HEADER) & !7;
    if payload.len() <= IP_MTU - IPV4_HEADER {
        return vec![ipv4_header_and(src, dst, proto, id, 0, false, payload)];
    }
    let mut out = Vec::new();
    let mut off = 0;
    for chunk in payload.chunks(max) {
        let more = off + chunk.len() < payload.len();
        out.push(ipv4_header_and(src, dst, proto, id, off, more, chunk));
        off += chunk.len();
    }
    out
}

fn ipv4_header_and(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    id: u16,
    frag_off: usize,
    more: bool,
    payload: &[u8],
) -> Vec<u8> {
    let total = IPV4_HEADER + payload.len();
    let mut p = Vec::with_capacity(total);
    p.push(0x45);
    p.push(0);
    p.extend_from_slice(&(total as u16).to_be_bytes());
    p.extend_from_slice(&id.to_be_bytes());
    let frag = ((frag_off / 8) as u16 & IP_FRAG_OFFSET) | if more { IP_MORE_FRAGMENTS } else { 0 };
    p.extend_from_slice(&frag.to_be_bytes());
    p.push(64); // TTL
    p.push(proto);
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let sum = checksum(&p, 0);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// A UDP datagram (header and payload) with its checksum (RFC 768).
pub fn udp_segment(src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
    let len = UDP_HEADER + payload.len();
    let mut u = Vec::with_capacity(len);
    u.extend_from_slice(&src.port().to_be_bytes());
    u.extend_from_slice(&dst.port().to_be_bytes());
    u.extend_from_slice(&(len as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    let mut sum = checksum(&u, pseudo_header(*src.ip(), *dst.ip(), PROTO_UDP, len));
    // RFC 768: a computed zero is sent as all ones (zero means "none").
    if sum == 0 {
        sum = 0xffff;
    }
    u[6..8].copy_from_slice(&sum.to_be_bytes());
    u
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp_packet(payload: &[u8]) -> Vec<u8> {
        let src = SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 15), 1234);
        let dst = SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 2), 7);
        let seg = udp_segment(src, dst, payload);
        ipv4_packets(*src.ip(), *dst.ip(), PROTO_UDP, 1, &seg).remove(0)
    }

    #[test]
    fn udp_round_trip() {
        let p = udp_packet(b"hello");
        let ip = parse_ipv4(&p).unwrap();
        let udp = parse_udp(&ip).unwrap();
        assert_eq!(
            (udp.src_port, udp.dst_port, udp.payload),
            (1234, 7, &b"hello"[..])
        );
    }

    #[test]
    fn bad_checksums_are_named() {
        let mut p = udp_packet(b"hello");
        p[25] ^= 1; // payload byte
        assert_eq!(
            parse_udp(&parse_ipv4(&p).unwrap()).err(),
            Some(DropReason::UdpChecksum)
        );
        p[8] ^= 1; // TTL
        assert_eq!(parse_ipv4(&p).err(), Some(DropReason::IpChecksum));
    }

    #[test]
    fn truncation_and_fragments() {
        let p = udp_packet(b"hello");
        for n in 0..p.len() {
            assert!(
                parse_ipv4(&p[..n]).and_then(|ip| parse_udp(&ip)).is_err(),
                "len {n}"
            );
        }
        let big = vec![7u8; 3000];
        let frags = ipv4_packets(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST, PROTO_UDP, 9, &big);
        assert_eq!(frags.len(), 3);
        assert!(frags.iter().all(|f| f.len() <= IP_MTU));
        assert_eq!(
            frags.iter().map(|f| f.len() - IPV4_HEADER).sum::<usize>(),
            3000
        );
        assert!(frags
            .iter()
            .all(|f| parse_ipv4(f).err() == Some(DropReason::Fragment)));
    }

    #[test]
    fn checksum_of_odd_length() {
        // RFC 1071 example bytes: 00 01 f2 03 f4 f5 f6 f7 sum to 0xddf2.
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&d, 0), !0xddf2);
        assert_eq!(checksum(&[0xab], 0), !0xab00);
    }
}
