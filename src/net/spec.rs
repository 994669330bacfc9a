//! QEMU's spellings of user networking, parsed into plain structs:
//!
//! - `-netdev user,id=ID[,hostfwd=RULE]...[,restrict=on|off][,net=ADDR[/MASK]]
//!   [,host=ADDR][,dns=ADDR][,dhcpstart=ADDR]`
//! - `-nic user[,model=virtio-net-pci][,mac=MAC][,id=ID][, the netdev keys above]`
//! - `-nic none`
//!
//! RULE is QEMU's `[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT`. Every
//! error names the flag, the option and the problem on one line, e.g.
//! `-netdev user,hostfwd=tcp::99999-:80: port 99999 out of range`.

use super::wire::Mac;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use thiserror::Error;

/// One `-netdev`/`-nic` argument that could not be parsed.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("{flag} {item}: {problem}")]
pub struct SpecError {
    /// `-netdev` or `-nic`.
    pub flag: &'static str,
    /// The backend and the offending `key=value` (`user,hostfwd=tcp::99999-:80`).
    pub item: String,
    pub problem: SpecProblem,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SpecProblem {
    #[error("unknown option (user networking takes id, net, host, dns, dhcpstart, restrict, hostfwd{0})")]
    UnknownKey(&'static str),
    #[error("backend not supported (vx86 has {0})")]
    Backend(&'static str),
    #[error("id= is required")]
    MissingId,
    #[error("given twice")]
    Duplicate,
    #[error("expected on or off")]
    Bool,
    #[error("'{0}' is not an IPv4 address")]
    Addr(String),
    #[error("'{0}' is not a netmask (a prefix length 0-28 or a dotted mask)")]
    Mask(String),
    #[error("port {0} out of range")]
    Port(String),
    #[error("expected [tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT")]
    HostfwdSyntax,
    #[error("protocol '{0}' is not tcp or udp")]
    Proto(String),
    #[error("'{0}' is not a host address")]
    HostAddr(String),
    #[error("{addr} is outside the network {net}")]
    OutsideNet { addr: Ipv4Addr, net: String },
    #[error("{0} is not usable in the network (network, broadcast, gateway or DNS address)")]
    Reserved(Ipv4Addr),
    #[error("the network {0} has host bits set")]
    HostBits(String),
    #[error("'{0}' is not a unicast MAC address like 52:54:00:12:34:56")]
    Mac(String),
    #[error("model '{0}' not supported (vx86 has virtio-net-pci)")]
    Model(String),
    #[error("-nic none takes no options")]
    NoneWithOptions,
}

/// `hostfwd` protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

/// One `hostfwd=` rule: host connections (or datagrams) to `host` go to the
/// guest's `guest_addr:guest_port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostForward {
    pub proto: Proto,
    /// Where vx86 listens; 127.0.0.1 unless the rule names an address. Port 0
    /// asks the OS for a free port (as QEMU's `bind` would).
    pub host: SocketAddr,
    /// `None`: the first DHCP address (`dhcpstart`).
    pub guest_addr: Option<Ipv4Addr>,
    pub guest_port: u16,
    /// The rule as written, for error messages.
    pub rule: String,
}

/// Addresses and options of one user-mode network (QEMU's defaults:
/// 10.0.2.0/24, gateway 10.0.2.2, DNS 10.0.2.3, leases from 10.0.2.15).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserConfig {
    pub net: Ipv4Addr,
    pub prefix_len: u8,
    /// The gateway, which also stands for the host's 127.0.0.1.
    pub host: Ipv4Addr,
    pub dns: Ipv4Addr,
    pub dhcp_start: Ipv4Addr,
    pub restrict: bool,
    pub forwards: Vec<HostForward>,
    /// Where DNS queries to `dns` go; `None`: the host's first resolver
    /// (`/etc/resolv.conf` on Unix). Not a QEMU option: the integrator's flag.
    pub host_dns: Option<SocketAddr>,
}

impl Default for UserConfig {
    fn default() -> Self {
        UserConfig::for_net(Ipv4Addr::new(10, 0, 2, 0), 24)
    }
}

impl UserConfig {
    /// QEMU's derived addresses for a network: gateway .2, DNS .3, leases from .15.
    pub fn for_net(net: Ipv4Addr, prefix_len: u8) -> Self {
        let base = u32::from(net);
        UserConfig {
            net,
            prefix_len,
            host: Ipv4Addr::from(base | 2),
            dns: Ipv4Addr::from(base | 3),
            dhcp_start: Ipv4Addr::from(base | 15),
            restrict: false,
            forwards: Vec::new(),
            host_dns: None,
        }
    }

    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(prefix_mask(self.prefix_len))
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.net) | !prefix_mask(self.prefix_len))
    }

    pub fn contains(&self, a: Ipv4Addr) -> bool {
        u32::from(a) & prefix_mask(self.prefix_len) == u32::from(self.net)
    }

    /// An address a guest may hold: inside the network, and not the network,
    /// broadcast, gateway or DNS address.
    pub fn is_guest_addr(&self, a: Ipv4Addr) -> bool {
        self.contains(a)
            && a != self.net
            && a != self.broadcast()
            && a != self.host
            && a != self.dns
    }

    fn net_text(&self) -> String {
        format!("{}/{}", self.net, self.prefix_len)
    }

    /// The network as `-netdev user` options, every default written out and
    /// each `hostfwd` in one spelling (a snapshot records it; equal
    /// configurations give equal lines). `host_dns` is left out: the host's
    /// resolver is the host's business, not the guest's network.
    pub fn canonical(&self) -> String {
        let mut s = format!(
            "user,net={},host={},dns={},dhcpstart={},restrict={}",
            self.net_text(),
            self.host,
            self.dns,
            self.dhcp_start,
            if self.restrict { "on" } else { "off" }
        );
        for f in &self.forwards {
            let proto = match f.proto {
                Proto::Tcp => "tcp",
                Proto::Udp => "udp",
            };
            s.push_str(&format!(
                ",hostfwd={proto}:{}-{}:{}",
                f.host,
                f.guest_addr.unwrap_or(self.dhcp_start),
                f.guest_port
            ));
        }
        s
    }
}

fn prefix_mask(len: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(len.min(32)))
        .unwrap_or(0)
}

/// `-netdev user,id=ID,...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Netdev {
    pub id: String,
    pub user: UserConfig,
}

/// The one NIC model vx86 has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NicModel {
    VirtioNetPci,
}

/// `-nic ...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Nic {
    None,
    User {
        model: NicModel,
        mac: Option<Mac>,
        id: Option<String>,
        user: UserConfig,
    },
}

/// Parses the value of `-netdev`.
pub fn parse_netdev(arg: &str) -> Result<Netdev, SpecError> {
    let mut parts = arg.split(',');
    let backend = parts.next().unwrap_or_default();
    let err = |item: String, problem| SpecError {
        flag: "-netdev",
        item,
        problem,
    };
    if backend != "user" {
        return Err(err(backend.to_string(), SpecProblem::Backend("user")));
    }
    let mut b = UserBuilder::default();
    let mut id = None;
    for kv in parts {
        let item = format!("user,{kv}");
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        let r = match k {
            "id" if id.is_some() => Err(SpecProblem::Duplicate),
            "id" => {
                id = Some(v.to_string());
                Ok(())
            }
            _ => b.key(k, v, ""),
        };
        r.map_err(|p| err(item, p))?;
    }
    let user = b.finish().map_err(|(k, p)| err(k, p))?;
    match id {
        Some(id) if !id.is_empty() => Ok(Netdev { id, user }),
        _ => Err(err(arg.to_string(), SpecProblem::MissingId)),
    }
}

/// Parses the value of `-nic`.
pub fn parse_nic(arg: &str) -> Result<Nic, SpecError> {
    let mut parts = arg.split(',');
    let backend = parts.next().unwrap_or_default();
    let err = |item: String, problem| SpecError {
        flag: "-nic",
        item,
        problem,
    };
    match backend {
        "none" if arg == "none" => return Ok(Nic::None),
        "none" => return Err(err(arg.to_string(), SpecProblem::NoneWithOptions)),
        "user" => {}
        _ => {
            return Err(err(
                backend.to_string(),
                SpecProblem::Backend("user and none"),
            ))
        }
    }
    let mut b = UserBuilder::default();
    let (mut id, mut mac, mut model) = (None, None, None);
    for kv in parts {
        let item = format!("user,{kv}");
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        let r = match k {
            "id" if id.is_some() => Err(SpecProblem::Duplicate),
            "mac" if mac.is_some() => Err(SpecProblem::Duplicate),
            "model" if model.is_some() => Err(SpecProblem::Duplicate),
            "id" => {
                id = Some(v.to_string());
                Ok(())
            }
            "mac" => parse_mac(v).map(|m| mac = Some(m)),
            "model" => match v {
                "virtio-net-pci" | "virtio" => {
                    model = Some(NicModel::VirtioNetPci);
                    Ok(())
                }
                _ => Err(SpecProblem::Model(v.to_string())),
            },
            _ => b.key(k, v, ", model, mac"),
        };
        r.map_err(|p| err(item, p))?;
    }
    let user = b.finish().map_err(|(k, p)| err(k, p))?;
    Ok(Nic::User {
        model: model.unwrap_or(NicModel::VirtioNetPci),
        mac,
        id,
        user,
    })
}

/// The user-networking keys of `-netdev user` and `-nic user`, gathered
/// before the addresses are checked against each other.
#[derive(Default)]
struct UserBuilder {
    net: Option<(Ipv4Addr, u8, String)>,
    host: Option<(Ipv4Addr, String)>,
    dns: Option<(Ipv4Addr, String)>,
    dhcp_start: Option<(Ipv4Addr, String)>,
    restrict: Option<bool>,
    forwards: Vec<HostForward>,
}

impl UserBuilder {
    /// `more_keys`: what else the flag accepts, for the unknown-key message.
    fn key(&mut self, k: &str, v: &str, more_keys: &'static str) -> Result<(), SpecProblem> {
        let item = format!("user,{k}={v}");
        match k {
            "net" if self.net.is_some() => Err(SpecProblem::Duplicate),
            "net" => {
                let (a, len) = parse_net(v)?;
                self.net = Some((a, len, item));
                Ok(())
            }
            "host" | "dns" | "dhcpstart" => {
                let slot = match k {
                    "host" => &mut self.host,
                    "dns" => &mut self.dns,
                    _ => &mut self.dhcp_start,
                };
                if slot.is_some() {
                    return Err(SpecProblem::Duplicate);
                }
                *slot = Some((parse_ipv4(v)?, item));
                Ok(())
            }
            "restrict" if self.restrict.is_some() => Err(SpecProblem::Duplicate),
            "restrict" => {
                self.restrict = Some(parse_bool(v)?);
                Ok(())
            }
            "hostfwd" => {
                self.forwards.push(parse_hostfwd(v)?);
                Ok(())
            }
            _ => Err(SpecProblem::UnknownKey(more_keys)),
        }
    }

    /// Checks the addresses against the network; an error carries the item to blame.
    fn finish(self) -> Result<UserConfig, (String, SpecProblem)> {
        let mut c = match &self.net {
            Some((a, len, _)) => UserConfig::for_net(*a, *len),
            None => UserConfig::default(),
        };
        if let Some((a, len, item)) = &self.net {
            if u32::from(*a) & !prefix_mask(*len) != 0 {
                return Err((item.clone(), SpecProblem::HostBits(format!("{a}/{len}"))));
            }
        }
        for (slot, item) in [
            (&mut c.host, &self.host),
            (&mut c.dns, &self.dns),
            (&mut c.dhcp_start, &self.dhcp_start),
        ] {
            if let Some((a, _)) = item {
                *slot = *a;
            }
        }
        let net = c.net_text();
        for (a, item) in [&self.host, &self.dns, &self.dhcp_start]
            .into_iter()
            .flatten()
        {
            if !c.contains(*a) {
                let problem = SpecProblem::OutsideNet { addr: *a, net };
                return Err((item.clone(), problem));
            }
        }
        if let Some((a, item)) = &self.dhcp_start {
            if !c.is_guest_addr(*a) {
                return Err((item.clone(), SpecProblem::Reserved(*a)));
            }
        }
        for f in &self.forwards {
            if let Some(a) = f.guest_addr {
                if !c.contains(a) {
                    let problem = SpecProblem::OutsideNet { addr: a, net };
                    return Err((format!("user,hostfwd={}", f.rule), problem));
                }
            }
        }
        c.restrict = self.restrict.unwrap_or(false);
        c.forwards = self.forwards;
        Ok(c)
    }
}

/// QEMU's boolean spellings.
fn parse_bool(v: &str) -> Result<bool, SpecProblem> {
    match v {
        "on" | "yes" | "true" | "y" => Ok(true),
        "off" | "no" | "false" | "n" => Ok(false),
        _ => Err(SpecProblem::Bool),
    }
}

fn parse_ipv4(v: &str) -> Result<Ipv4Addr, SpecProblem> {
    v.parse().map_err(|_| SpecProblem::Addr(v.to_string()))
}

/// `ADDR/LEN` or `ADDR/DOTTED-MASK`; a bare `ADDR` is a /24 (QEMU's default
/// network size). Prefixes longer than /28 leave no room for the .15 lease.
fn parse_net(v: &str) -> Result<(Ipv4Addr, u8), SpecProblem> {
    let (addr, mask) = v.split_once('/').unwrap_or((v, "24"));
    let addr = parse_ipv4(addr)?;
    let bad = || SpecProblem::Mask(mask.to_string());
    let len = match mask.parse::<u8>() {
        Ok(n) => n,
        Err(_) => {
            let m = u32::from(mask.parse::<Ipv4Addr>().map_err(|_| bad())?);
            if m.leading_ones() + m.trailing_zeros() != 32 {
                return Err(bad());
            }
            m.leading_ones() as u8
        }
    };
    if len > 28 {
        return Err(bad());
    }
    Ok((addr, len))
}

/// A MAC address in QEMU's `52:54:00:12:34:56` form; multicast addresses
/// (low bit of the first byte set) cannot be a NIC's.
pub fn parse_mac(v: &str) -> Result<Mac, SpecProblem> {
    let bad = || SpecProblem::Mac(v.to_string());
    let mut mac = [0u8; 6];
    let mut parts = v.split(':');
    for b in &mut mac {
        let p = parts.next().ok_or_else(bad)?;
        if p.len() != 2 {
            return Err(bad());
        }
        *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    if parts.next().is_some() || mac[0] & 1 != 0 {
        return Err(bad());
    }
    Ok(mac)
}

/// QEMU's `[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT`; an IPv6
/// host address goes in brackets (`tcp:[::1]:8080-:80`).
pub fn parse_hostfwd(rule: &str) -> Result<HostForward, SpecProblem> {
    let (proto, rest) = rule.split_once(':').ok_or(SpecProblem::HostfwdSyntax)?;
    let proto = match proto {
        "" | "tcp" => Proto::Tcp,
        "udp" => Proto::Udp,
        _ => return Err(SpecProblem::Proto(proto.to_string())),
    };
    let (host, guest) = rest.split_once('-').ok_or(SpecProblem::HostfwdSyntax)?;
    let (host_addr, host_port) = host.rsplit_once(':').ok_or(SpecProblem::HostfwdSyntax)?;
    let (guest_addr, guest_port) = guest.rsplit_once(':').ok_or(SpecProblem::HostfwdSyntax)?;
    let host_ip: IpAddr = match host_addr {
        "" => Ipv4Addr::LOCALHOST.into(),
        a => a
            .strip_prefix('[')
            .and_then(|a| a.strip_suffix(']'))
            .unwrap_or(a)
            .parse()
            .map_err(|_| SpecProblem::HostAddr(a.to_string()))?,
    };
    let guest_addr = match guest_addr {
        "" => None,
        a => Some(parse_ipv4(a)?),
    };
    let port = |p: &str, min: u32| match p.parse::<u32>() {
        Ok(n) if (min..=65535).contains(&n) => Ok(n as u16),
        _ if p.is_empty() => Err(SpecProblem::HostfwdSyntax),
        _ => Err(SpecProblem::Port(p.to_string())),
    };
    Ok(HostForward {
        proto,
        host: SocketAddr::new(host_ip, port(host_port, 0)?),
        guest_addr,
        guest_port: port(guest_port, 1)?,
        rule: rule.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn netdev_err(s: &str) -> String {
        parse_netdev(s).unwrap_err().to_string()
    }

    #[test]
    fn qemu_defaults() {
        let n = parse_netdev("user,id=n0").unwrap();
        assert_eq!(n.id, "n0");
        let c = n.user;
        assert_eq!(c, UserConfig::default());
        assert_eq!(c.host, Ipv4Addr::new(10, 0, 2, 2));
        assert_eq!(c.dns, Ipv4Addr::new(10, 0, 2, 3));
        assert_eq!(c.dhcp_start, Ipv4Addr::new(10, 0, 2, 15));
        assert_eq!(c.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(c.broadcast(), Ipv4Addr::new(10, 0, 2, 255));
        assert!(!c.restrict);
    }

    #[test]
    fn hostfwd_forms() {
        let f = parse_hostfwd("tcp::5555-:22").unwrap();
        assert_eq!(f.proto, Proto::Tcp);
        assert_eq!(f.host, "127.0.0.1:5555".parse().unwrap());
        assert_eq!((f.guest_addr, f.guest_port), (None, 22));
        let f = parse_hostfwd("udp:0.0.0.0:6000-10.0.2.20:7000").unwrap();
        assert_eq!(f.proto, Proto::Udp);
        assert_eq!(f.host, "0.0.0.0:6000".parse().unwrap());
        assert_eq!(f.guest_addr, Some(Ipv4Addr::new(10, 0, 2, 20)));
        let f = parse_hostfwd(":[::1]:8080-:80").unwrap();
        assert_eq!(f.host, "[::1]:8080".parse().unwrap());
        assert_eq!(f.rule, ":[::1]:8080-:80");
    }

    #[test]
    fn several_forwards_restrict_and_addresses() {
        let n = parse_netdev(
            "user,id=u,hostfwd=tcp::2222-:22,hostfwd=udp::5353-:53,restrict=on,net=192.168.76.0/255.255.255.0,dhcpstart=192.168.76.9",
        )
        .unwrap();
        let c = n.user;
        assert_eq!(c.forwards.len(), 2);
        assert!(c.restrict);
        assert_eq!(c.net, Ipv4Addr::new(192, 168, 76, 0));
        assert_eq!(c.host, Ipv4Addr::new(192, 168, 76, 2));
        assert_eq!(c.dns, Ipv4Addr::new(192, 168, 76, 3));
        assert_eq!(c.dhcp_start, Ipv4Addr::new(192, 168, 76, 9));
        assert_eq!(
            parse_netdev("user,id=u,net=10.9.0.0/16")
                .unwrap()
                .user
                .prefix_len,
            16
        );
    }

    #[test]
    fn errors_name_flag_option_and_problem() {
        assert_eq!(
            netdev_err("user,id=n,hostfwd=tcp::99999-:80"),
            "-netdev user,hostfwd=tcp::99999-:80: port 99999 out of range"
        );
        assert_eq!(
            netdev_err("user,id=n,hostfwd=tcp::22-:0"),
            "-netdev user,hostfwd=tcp::22-:0: port 0 out of range"
        );
        assert_eq!(
            netdev_err("user,id=n,hostfwd=sctp::1-:2"),
            "-netdev user,hostfwd=sctp::1-:2: protocol 'sctp' is not tcp or udp"
        );
        assert!(netdev_err("user,id=n,hostfwd=tcp:5555:22")
            .ends_with("expected [tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT"));
        assert!(netdev_err("user,id=n,hostfwd=tcp:nohost:1-:2")
            .ends_with("'nohost' is not a host address"));
        assert!(netdev_err("user,id=n,hostfwd=tcp::1-10.0.3.1:2").ends_with(
            "user,hostfwd=tcp::1-10.0.3.1:2: 10.0.3.1 is outside the network 10.0.2.0/24"
        ));
        assert!(
            netdev_err("user,id=n,smb=/tmp").starts_with("-netdev user,smb=/tmp: unknown option")
        );
        assert_eq!(
            netdev_err("tap,id=n"),
            "-netdev tap: backend not supported (vx86 has user)"
        );
        assert_eq!(
            netdev_err("user,restrict=on"),
            "-netdev user,restrict=on: id= is required"
        );
        assert_eq!(
            netdev_err("user,id=n,restrict=maybe"),
            "-netdev user,restrict=maybe: expected on or off"
        );
        assert_eq!(
            netdev_err("user,id=n,restrict=on,restrict=off"),
            "-netdev user,restrict=off: given twice"
        );
        assert_eq!(
            netdev_err("user,id=n,net=10.0.2.300/24"),
            "-netdev user,net=10.0.2.300/24: '10.0.2.300' is not an IPv4 address"
        );
        assert_eq!(
            netdev_err("user,id=n,net=10.0.2.0/255.0.255.0"),
            "-netdev user,net=10.0.2.0/255.0.255.0: '255.0.255.0' is not a netmask (a prefix length 0-28 or a dotted mask)"
        );
        assert_eq!(
            netdev_err("user,id=n,net=10.0.2.1/24"),
            "-netdev user,net=10.0.2.1/24: the network 10.0.2.1/24 has host bits set"
        );
        assert_eq!(
            netdev_err("user,id=n,dhcpstart=10.0.3.15"),
            "-netdev user,dhcpstart=10.0.3.15: 10.0.3.15 is outside the network 10.0.2.0/24"
        );
        assert!(netdev_err("user,id=n,dhcpstart=10.0.2.2").ends_with(
            "10.0.2.2 is not usable in the network (network, broadcast, gateway or DNS address)"
        ));
    }

    #[test]
    fn nic_forms() {
        assert_eq!(parse_nic("none").unwrap(), Nic::None);
        let Nic::User {
            model,
            mac,
            id,
            user,
        } = parse_nic("user,model=virtio-net-pci,mac=52:54:00:12:34:56,hostfwd=tcp::2222-:22")
            .unwrap()
        else {
            panic!("not user")
        };
        assert_eq!(model, NicModel::VirtioNetPci);
        assert_eq!(mac, Some([0x52, 0x54, 0, 0x12, 0x34, 0x56]));
        assert_eq!(id, None);
        assert_eq!(user.forwards.len(), 1);
        assert!(matches!(
            parse_nic("user").unwrap(),
            Nic::User { mac: None, .. }
        ));
    }

    #[test]
    fn nic_errors() {
        let e = |s| parse_nic(s).unwrap_err().to_string();
        assert_eq!(
            e("none,mac=52:54:00:12:34:56"),
            "-nic none,mac=52:54:00:12:34:56: -nic none takes no options"
        );
        assert_eq!(
            e("user,model=e1000"),
            "-nic user,model=e1000: model 'e1000' not supported (vx86 has virtio-net-pci)"
        );
        assert_eq!(e("user,mac=01:00:5e:00:00:01"), "-nic user,mac=01:00:5e:00:00:01: '01:00:5e:00:00:01' is not a unicast MAC address like 52:54:00:12:34:56");
        assert!(e("user,mac=52:54:00:12:34")
            .ends_with("is not a unicast MAC address like 52:54:00:12:34:56"));
        assert_eq!(
            e("user,mac=52:54:00:12:34:56,mac=52:54:00:12:34:57"),
            "-nic user,mac=52:54:00:12:34:57: given twice"
        );
        assert_eq!(
            e("tap"),
            "-nic tap: backend not supported (vx86 has user and none)"
        );
        assert!(e("user,bogus=1").ends_with("unknown option (user networking takes id, net, host, dns, dhcpstart, restrict, hostfwd, model, mac)"));
    }
}
