//! The port I/O bus: a 64K-entry table from port number to device id, so
//! dispatch is one load and a `match`, with no hashing (STYLE.md).

/// Device ids on the port bus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Dev {
    None = 0,
    Pic,
    Pit,
    Rtc,
    Uart0,
    Uart1,
    Uart2,
    Uart3,
    Kbc,
    SysCtl,
    DebugCon,
    DebugExit,
    Post,
    Vga,
    Ata0,
    Ata1,
    BiosTrap,
    /// Port F0h: clears the FERR# latch (the coprocessor-error IRQ13 path).
    FpuErr,
}

const DEVS: [Dev; 18] = [
    Dev::None,
    Dev::Pic,
    Dev::Pit,
    Dev::Rtc,
    Dev::Uart0,
    Dev::Uart1,
    Dev::Uart2,
    Dev::Uart3,
    Dev::Kbc,
    Dev::SysCtl,
    Dev::DebugCon,
    Dev::DebugExit,
    Dev::Post,
    Dev::Vga,
    Dev::Ata0,
    Dev::Ata1,
    Dev::BiosTrap,
    Dev::FpuErr,
];

pub struct PortMap {
    map: Box<[u8; 65536]>,
}

impl Default for PortMap {
    fn default() -> Self {
        PortMap {
            map: Box::new([0; 65536]),
        }
    }
}

impl PortMap {
    pub fn add(&mut self, ports: std::ops::RangeInclusive<u16>, dev: Dev) {
        for p in ports {
            self.map[p as usize] = dev as u8;
        }
    }
    #[inline(always)]
    pub fn get(&self, port: u16) -> Dev {
        DEVS.get(self.map[port as usize] as usize)
            .copied()
            .unwrap_or(Dev::None)
    }
}
