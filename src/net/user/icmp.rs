//! ICMP (RFC 792): echo requests to the gateway and DNS addresses are
//! answered on the spot (no host traffic, so `ping 10.0.2.2` works with
//! `restrict=on` too). Echo to other hosts would need raw or "ping" sockets,
//! which are not portable: those requests are dropped and counted.

use crate::net::spec::UserConfig;
use crate::net::stats::DropReason;
use crate::net::wire::{self, Ipv4};

const ECHO_REPLY: u8 = 0;
const ECHO_REQUEST: u8 = 8;
const ICMP_HEADER: usize = 8;

/// The echo reply payload (ICMP message) for an echo request, to be sent
/// from `ip.dst` back to `ip.src`.
pub fn input(cfg: &UserConfig, ip: &Ipv4<'_>) -> Result<Vec<u8>, DropReason> {
    let msg = ip.payload;
    if msg.len() < ICMP_HEADER {
        return Err(DropReason::Truncated);
    }
    if wire::checksum(msg, 0) != 0 {
        return Err(DropReason::IcmpChecksum);
    }
    let (Some(&kind), Some(&code)) = (msg.first(), msg.get(1)) else {
        return Err(DropReason::Truncated);
    };
    if kind != ECHO_REQUEST || code != 0 || (ip.dst != cfg.host && ip.dst != cfg.dns) {
        return Err(DropReason::Protocol);
    }
    // RFC 792 "Echo or Echo Reply": same identifier, sequence and data, type 0.
    let mut reply = msg.to_vec();
    reply[0] = ECHO_REPLY;
    reply[2..4].copy_from_slice(&[0, 0]);
    let sum = wire::checksum(&reply, 0);
    reply[2..4].copy_from_slice(&sum.to_be_bytes());
    Ok(reply)
}
