//! The port I/O bus: a 64K-entry table from port number to the index of the
//! device that decodes it, so dispatch is one load, with no hashing and no
//! search (STYLE.md). Rebuilt from the devices' declared resources when one
//! of them moves (a PCI BAR).

/// What a port table entry points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortTarget {
    /// Nobody decodes the port: reads float high, writes vanish.
    None,
    /// The 8259 pair (the platform's interrupt controller).
    Pic,
    /// PCI configuration mechanism #1 (CONFIG_ADDRESS at 0xCF8, CONFIG_DATA at 0xCFC).
    PciConfig,
    /// A registered device, by index.
    Device(usize),
}

const NONE: u16 = 0;
const PIC: u16 = 1;
const PCI_CONFIG: u16 = 2;
const FIRST_DEVICE: u16 = 3;

pub struct PortMap {
    map: Box<[u16]>,
}

impl Default for PortMap {
    fn default() -> Self {
        PortMap {
            map: vec![NONE; 1 << 16].into_boxed_slice(),
        }
    }
}

impl PortMap {
    pub fn clear(&mut self) {
        self.map.fill(NONE);
    }

    /// Maps `ports` to `t`; later additions win where ranges overlap.
    pub fn add(&mut self, ports: std::ops::RangeInclusive<u16>, t: PortTarget) {
        let v = match t {
            PortTarget::None => NONE,
            PortTarget::Pic => PIC,
            PortTarget::PciConfig => PCI_CONFIG,
            PortTarget::Device(i) => FIRST_DEVICE.saturating_add(i as u16),
        };
        for p in ports {
            if let Some(e) = self.map.get_mut(usize::from(p)) {
                *e = v;
            }
        }
    }

    #[inline(always)]
    pub fn get(&self, port: u16) -> PortTarget {
        match self.map.get(usize::from(port)).copied().unwrap_or(NONE) {
            NONE => PortTarget::None,
            PIC => PortTarget::Pic,
            PCI_CONFIG => PortTarget::PciConfig,
            v => PortTarget::Device(usize::from(v - FIRST_DEVICE)),
        }
    }
}

/// The physical MMIO address map: non-overlapping windows sorted by start,
/// each owned by one device; a lookup is a binary search over a handful of
/// entries, on the TLB-miss path only.
#[derive(Default)]
pub struct MmioMap {
    windows: Vec<(u64, u64, usize)>,
}

impl MmioMap {
    pub fn clear(&mut self) {
        self.windows.clear();
    }

    /// Adds `[start, end)` for device `dev`; a window overlapping an earlier one
    /// is refused (returns false), as two decoders on one address would be a
    /// bus conflict.
    pub fn add(&mut self, r: std::ops::Range<u64>, dev: usize) -> bool {
        if r.end <= r.start
            || self
                .windows
                .iter()
                .any(|&(s, e, _)| r.start < e && r.end > s)
        {
            return false;
        }
        let at = self.windows.partition_point(|&(s, _, _)| s < r.start);
        self.windows.insert(at, (r.start, r.end, dev));
        true
    }

    /// The device decoding `addr`, and the end of its window.
    #[inline]
    pub fn find(&self, addr: u64) -> Option<(usize, u64)> {
        let i = self.windows.partition_point(|&(s, _, _)| s <= addr);
        let &(s, e, dev) = self.windows.get(i.checked_sub(1)?)?;
        (addr >= s && addr < e).then_some((dev, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_map_to_targets() {
        let mut m = PortMap::default();
        m.add(0x20..=0x21, PortTarget::Pic);
        m.add(0x3F8..=0x3FF, PortTarget::Device(4));
        assert_eq!(m.get(0x21), PortTarget::Pic);
        assert_eq!(m.get(0x3FF), PortTarget::Device(4));
        assert_eq!(m.get(0x400), PortTarget::None);
        m.add(0xFFFF..=0xFFFF, PortTarget::Device(0));
        assert_eq!(m.get(0xFFFF), PortTarget::Device(0));
    }

    #[test]
    fn mmio_windows_are_found_and_never_overlap() {
        let mut m = MmioMap::default();
        assert!(m.add(0xA0000..0xC0000, 1));
        assert!(m.add(0xE000_0000..0xE100_0000, 1));
        assert!(m.add(0xFEB0_0000..0xFEB0_1000, 7));
        assert!(!m.add(0xBFFFF..0xC0001, 2), "overlap refused");
        assert_eq!(m.find(0xA0000), Some((1, 0xC0000)));
        assert_eq!(m.find(0xBFFFF), Some((1, 0xC0000)));
        assert_eq!(m.find(0xC0000), None);
        assert_eq!(m.find(0xFEB0_0FFF), Some((7, 0xFEB0_1000)));
        assert_eq!(m.find(0), None);
        assert_eq!(m.find(u64::MAX), None);
    }
}
