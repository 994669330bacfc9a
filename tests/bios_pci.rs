//! vx86's BIOS on `-M pc` (issue 11: "vx86's own BIOS enumerates PCI,
//! assigns BARs and interrupt lines, and SeaBIOS's PCI setup works under vx86
//! too"): POST gives the virtio-net card its memory BAR, decoding and the
//! interrupt line of QEMU's PIIX3 wiring (slot 3 INTA -> PIRQC -> IRQ 11),
//! programs PIRQRC and the ELCR, and a boot sector's PCI BIOS calls (INT 1Ah
//! AX=B101h-B10Dh, PCI BIOS Specification 2.1) find it and read and write its
//! configuration space. SeaBIOS does its own PCI setup on the same machine,
//! and its interrupt line agrees with the emulator's routing.

mod common;

use common::{payload, rd16, rd32, run_until, NullNet, Shared};
use iced_x86::code_asm::*;
use vx86::block::MemImage;
use vx86::machine::{Machine, MachineConfig, MachineType};
use vx86::pci::host::PIRQRC;
use vx86::pci::{pirq_line, PciAddr, BAR0, COMMAND, INTERRUPT_LINE, PIRQ_LINE_BASE};

/// Where the boot sector stores each call's results: 16 bytes a call (AX,
/// FLAGS, BX, 0, ECX, EDX).
const RES: usize = 0x9000;

/// The virtio-net card's address (slot 3, as QEMU places the first NIC).
const NIC: PciAddr = PciAddr { slot: 3, func: 0 };

fn pc_machine(machine: MachineType) -> Machine {
    let mut m = Machine::new(MachineConfig {
        ram: 64 << 20,
        machine,
        ..MachineConfig::default()
    })
    .unwrap();
    if machine == MachineType::Pc {
        m.add_virtio_net([0x52, 0x54, 0, 0x12, 0x34, 0x56], NullNet::boxed())
            .unwrap();
    }
    m
}

/// A configuration register of the function at `addr`, read from the host.
fn cfg(m: &mut Machine, addr: PciAddr, off: usize, size: u8) -> u32 {
    let id = m
        .plat
        .pci_functions()
        .into_iter()
        .find(|(a, _)| *a == addr)
        .map(|(_, id)| id)
        .expect("function present");
    m.plat.pci_function(id).unwrap().config().read(off, size)
}

/// Where the boot sector keeps the next result slot's address.
const NEXT: u32 = 0x8FFE;

/// One INT 1Ah call: `setup` loads the registers (AX last); the subroutine
/// `store` saves the results in the next slot (calls are numbered in order).
fn call(
    a: &mut CodeAssembler,
    store: CodeLabel,
    setup: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>,
) -> Result<(), IcedError> {
    setup(a)?;
    a.int(0x1A)?;
    a.call(store)
}

/// The boot sector: each PCI BIOS call of the test in turn, then HLT.
fn boot_sector() -> Vec<u8> {
    fn build() -> Result<Vec<u8>, IcedError> {
        let mut a = CodeAssembler::new(16)?;
        let mut idle = a.create_label();
        let mut store = a.create_label();
        a.xor(ax, ax)?;
        a.mov(ds, ax)?;
        a.mov(word_ptr(NEXT), RES as u32)?;
        // A stack in a page of its own, away from the code.
        a.cli()?;
        a.mov(ss, ax)?;
        a.mov(sp, 0x6000u32)?;
        a.sti()?;
        // 0: installation check.
        call(&mut a, store, |a| a.mov(ax, 0xB101u32))?;
        // 1: find 1AF4:1041 (virtio-net, modern), index 0.
        call(&mut a, store, |a| {
            a.mov(cx, 0x1041u32)?;
            a.mov(dx, 0x1AF4u32)?;
            a.xor(si, si)?;
            a.mov(ax, 0xB102u32)
        })?;
        // 2: index 1 of the same: not found.
        call(&mut a, store, |a| {
            a.mov(cx, 0x1041u32)?;
            a.mov(dx, 0x1AF4u32)?;
            a.mov(si, 1u32)?;
            a.mov(ax, 0xB102u32)
        })?;
        // 3: vendor FFFFh: bad vendor ID.
        call(&mut a, store, |a| {
            a.mov(dx, 0xFFFFu32)?;
            a.mov(ax, 0xB102u32)
        })?;
        // 4: find class 02/00/00 (Ethernet).
        call(&mut a, store, |a| {
            a.mov(ecx, 0x02_00_00u32)?;
            a.xor(si, si)?;
            a.mov(ax, 0xB103u32)
        })?;
        // 5: find class 06/01/00 (ISA bridge: the PIIX3).
        call(&mut a, store, |a| {
            a.mov(ecx, 0x06_01_00u32)?;
            a.xor(si, si)?;
            a.mov(ax, 0xB103u32)
        })?;
        // 6: read dword: the NIC's BAR0.
        call(&mut a, store, |a| {
            a.mov(bx, 0x18u32)?;
            a.mov(di, 0x10u32)?;
            a.mov(ax, 0xB10Au32)
        })?;
        // 7: read byte: its interrupt line.
        call(&mut a, store, |a| {
            a.mov(bx, 0x18u32)?;
            a.mov(di, 0x3Cu32)?;
            a.mov(ax, 0xB108u32)
        })?;
        // 8: read word: its command register.
        call(&mut a, store, |a| {
            a.mov(bx, 0x18u32)?;
            a.mov(di, 0x04u32)?;
            a.mov(ax, 0xB109u32)
        })?;
        // 9: write byte 40h to the latency timer (0Dh), 10: write word
        // 2010h at 0Ch... read back as a dword in 11.
        call(&mut a, store, |a| {
            a.mov(bx, 0x18u32)?;
            a.mov(di, 0x0Du32)?;
            a.mov(cl, 0x40u32)?;
            a.mov(ax, 0xB10Bu32)
        })?;
        call(&mut a, store, |a| {
            a.mov(bx, 0x18u32)?;
            a.mov(di, 0x0Cu32)?;
            a.mov(cx, 0x2010u32)?;
            a.mov(ax, 0xB10Cu32)
        })?;
        call(&mut a, store, |a| {
            a.mov(bx, 0x18u32)?;
            a.mov(di, 0x0Cu32)?;
            a.mov(ax, 0xB10Au32)
        })?;
        // 12: write dword: the interrupt line (only its low byte is writable).
        call(&mut a, store, |a| {
            a.mov(bx, 0x18u32)?;
            a.mov(di, 0x3Cu32)?;
            a.mov(ecx, 0xFFFF_FF0Bu32)?;
            a.mov(ax, 0xB10Du32)
        })?;
        // 13: an odd register for a word read: bad register number.
        call(&mut a, store, |a| {
            a.mov(bx, 0x18u32)?;
            a.mov(di, 0x3Du32)?;
            a.mov(ax, 0xB109u32)
        })?;
        // 14: an unknown function.
        call(&mut a, store, |a| a.mov(ax, 0xB1FFu32))?;
        // 15: the PIIX3's PIRQRC[A:D].
        call(&mut a, store, |a| {
            a.mov(bx, 0x08u32)?;
            a.mov(di, 0x60u32)?;
            a.mov(ax, 0xB10Au32)
        })?;
        a.mov(word_ptr((RES + 0x1FE) as u32), 0xBEEFu32)?;
        a.set_label(&mut idle)?;
        a.hlt()?;
        a.jmp(idle)?;
        // store: AX, FLAGS, BX, 0, ECX, EDX at [NEXT]; NEXT += 16.
        a.set_label(&mut store)?;
        a.mov(word_ptr(NEXT - 2), si)?;
        a.mov(si, word_ptr(NEXT))?;
        a.mov(word_ptr(si), ax)?;
        a.pushf()?;
        a.pop(ax)?;
        a.mov(word_ptr(si + 2), ax)?;
        a.mov(word_ptr(si + 4), bx)?;
        a.mov(dword_ptr(si + 8), ecx)?;
        a.mov(dword_ptr(si + 12), edx)?;
        a.add(word_ptr(NEXT), 16)?;
        a.mov(si, word_ptr(NEXT - 2))?;
        a.ret()?;
        let mut s = a.assemble(0x7C00)?;
        assert!(s.len() <= 510, "boot sector of {} bytes", s.len());
        s.resize(512, 0);
        s[510] = 0x55;
        s[511] = 0xAA;
        Ok(s)
    }
    build().unwrap()
}

/// Boots the boot sector on `machine` through vx86's BIOS; returns the
/// machine when it has run every call.
fn run_calls(machine: MachineType) -> Machine {
    let mut m = pc_machine(machine);
    vx86::boot::builtin::load_bios(&mut m).unwrap();
    let mut disk = boot_sector();
    disk.resize(2048 * 512, 0);
    m.attach_drive(0, Box::new(MemImage::writable(disk)))
        .unwrap();
    run_until(&mut m, 300_000_000);
    assert_eq!(
        rd16(&m, RES + 0x1FE),
        0xBEEF,
        "the boot sector did not finish"
    );
    m
}

/// AX, CF and BX of call `n`.
fn res(m: &Machine, n: usize) -> (u16, bool, u16) {
    let at = RES + 16 * n;
    (rd16(m, at), rd16(m, at + 2) & 1 != 0, rd16(m, at + 4))
}
fn ecx_of(m: &Machine, n: usize) -> u32 {
    rd32(m, RES + 16 * n + 8)
}
fn edx_of(m: &Machine, n: usize) -> u32 {
    rd32(m, RES + 16 * n + 12)
}

#[test]
fn bios_assigns_bars_and_interrupt_lines_on_pc() {
    let mut m = pc_machine(MachineType::Pc);
    vx86::boot::builtin::load_bios(&mut m).unwrap();
    let serial = Shared::default();
    m.sinks.serial = Some(Box::new(serial.clone()));
    run_until(&mut m, 300_000_000);
    // The NIC's memory BAR (BAR0: 16 KiB for the virtio 1.0 structures) in
    // the memory window, naturally aligned; decoding and bus mastering on.
    let bar0 = cfg(&mut m, NIC, BAR0, 4);
    eprintln!("virtio-net BAR0 {bar0:#010x}");
    assert_eq!(bar0, 0xFE00_0000);
    assert_eq!(cfg(&mut m, NIC, COMMAND, 2) & 0b111, 0b111);
    // PIRQA-D -> 10, 10, 11, 11 and slot 3 INTA -> PIRQC: IRQ 11.
    assert_eq!(
        cfg(&mut m, PciAddr { slot: 1, func: 0 }, PIRQRC, 4),
        0x0B0B_0A0A
    );
    assert_eq!(cfg(&mut m, NIC, INTERRUPT_LINE, 1), 11);
    assert_eq!(pirq_line(NIC.slot, 1), PIRQ_LINE_BASE + 2);
    // IRQ 10 and 11 level-triggered (ELCR2 bits 2 and 3).
    use vx86::devices::PortDevice;
    assert_eq!(m.plat.pic.io_read(0x4D1, 1, 0) & 0b1100, 0b1100);
    assert_eq!(m.plat.pic.io_read(0x4D0, 1, 0) & 0xFF, 0);
    // POST still boots as before.
    assert!(serial.text().starts_with("vx86 BIOS"), "{}", serial.text());
}

#[test]
fn pci_bios_calls_find_devices_and_access_configuration_space() {
    let m = run_calls(MachineType::Pc);
    // B101h: AH=0, AL=1 (mechanism #1), BX=0210h, CL=0 (last bus), EDX="PCI ".
    assert_eq!(res(&m, 0), (0x0001, false, 0x0210));
    assert_eq!(ecx_of(&m, 0) & 0xFF, 0);
    assert_eq!(edx_of(&m, 0), 0x2049_4350);
    // B102h: the NIC at bus 0, device 3, function 0 (BL=18h).
    let (r_ax, r_cf, r_bx) = res(&m, 1);
    assert_eq!((r_ax >> 8, r_cf, r_bx), (0, false, 0x0018));
    assert_eq!(res(&m, 2).0 >> 8, 0x86, "index 1: device not found");
    assert!(res(&m, 2).1);
    assert_eq!(res(&m, 3).0 >> 8, 0x83, "vendor FFFFh: bad vendor ID");
    assert!(res(&m, 3).1);
    // B103h: by class code.
    assert_eq!(res(&m, 4), (0x0003, false, 0x0018));
    assert_eq!(res(&m, 5).2, 0x0008, "the PIIX3 at 00:01.0");
    // B10Ah/B108h/B109h: what POST assigned.
    assert_eq!(ecx_of(&m, 6), 0xFE00_0000);
    assert_eq!(ecx_of(&m, 7) & 0xFF, 11);
    assert_eq!(ecx_of(&m, 8) & 0b111, 0b111);
    // Writes B10Bh, B10Ch, read back with B10Ah (cache line size 10h,
    // latency timer 20h after the word write over the byte one).
    assert_eq!(res(&m, 9).0 >> 8, 0);
    assert_eq!(res(&m, 10).0 >> 8, 0);
    assert_eq!(ecx_of(&m, 11) & 0xFFFF, 0x2010);
    // B10Dh: a dword write at 3Ch changes only the interrupt line.
    assert_eq!(res(&m, 12).0 >> 8, 0);
    // Errors: bad register number, function not supported, CF set.
    assert_eq!(res(&m, 13).0 >> 8, 0x87);
    assert!(res(&m, 13).1);
    assert_eq!(res(&m, 14).0 >> 8, 0x81);
    assert!(res(&m, 14).1);
    assert_eq!(ecx_of(&m, 15), 0x0B0B_0A0A);
}

#[test]
fn pci_bios_is_absent_on_isapc() {
    let m = run_calls(MachineType::IsaPc);
    let (r_ax, r_cf, _) = res(&m, 0);
    assert_eq!((r_ax >> 8, r_cf), (0x81, true));
    assert_ne!(edx_of(&m, 0), 0x2049_4350);
}

/// SeaBIOS's own PCI setup under vx86 `-M pc`: it finds the bus, logs the
/// NIC's initialisation and BAR on port 402h, and writes an interrupt line
/// that is where the emulator routes the NIC's INTA (PIRQ of QEMU's
/// wiring, through the PIRQRC SeaBIOS programmed).
#[test]
fn seabios_sets_up_pci_on_pc() {
    let Some(bios) = payload("seabios.bin") else {
        return;
    };
    let mut m = pc_machine(MachineType::Pc);
    let img = std::fs::read(&bios).unwrap();
    m.mem.load_bios(&bios.display().to_string(), &img).unwrap();
    let debugcon = Shared::default();
    m.sinks.debugcon = Some(Box::new(debugcon.clone()));
    let mut done = false;
    for _ in 0..150 {
        m.cfg.max_insns = Some(m.cpu.icount + 20_000_000);
        m.run();
        if debugcon.text().contains("All threads complete.") {
            done = true;
            break;
        }
    }
    let log = debugcon.text();
    eprintln!("{log}");
    assert!(done, "SeaBIOS did not finish POST");
    assert!(log.contains("PCI: init bdf=00:03.0 id=1af4:1041"), "{log}");
    assert!(log.contains("PCI: map device bdf=00:03.0"), "{log}");
    let bar0 = cfg(&mut m, NIC, BAR0, 4);
    assert_ne!(bar0 & 0xFFFF_FFF0, 0, "BAR0 unassigned");
    assert_ne!(
        cfg(&mut m, NIC, COMMAND, 2) & 0b10,
        0,
        "memory decoding off"
    );
    let line = cfg(&mut m, NIC, INTERRUPT_LINE, 1);
    let pirq = usize::from(pirq_line(NIC.slot, 1) - PIRQ_LINE_BASE);
    let route = cfg(&mut m, PciAddr { slot: 1, func: 0 }, PIRQRC + pirq, 1);
    eprintln!(
        "SeaBIOS: BAR0 {bar0:#x}, interrupt line {line}, PIRQ{} -> {route:#x}",
        (b'A' + pirq as u8) as char
    );
    assert_eq!(line, 11);
    assert_eq!(
        route, line,
        "SeaBIOS's interrupt line is not where the emulator routes INTA"
    );
}

/// A direct kernel boot (no BIOS runs: vx86 does the firmware's PCI setup
/// itself) tells the kernel the same as the BIOS: the same PIRQ routing, the
/// same interrupt line for the NIC, IRQ 10 and 11 level-triggered.
#[test]
fn direct_kernel_boot_sets_up_pci_as_the_bios_does() {
    let mut m = pc_machine(MachineType::Pc);
    m.setup_pci_as_firmware();
    assert_eq!(
        cfg(&mut m, PciAddr { slot: 1, func: 0 }, PIRQRC, 4),
        0x0B0B_0A0A
    );
    assert_eq!(cfg(&mut m, NIC, INTERRUPT_LINE, 1), 11);
    assert_eq!(cfg(&mut m, NIC, BAR0, 4), 0xFE00_0000);
    use vx86::devices::PortDevice;
    assert_eq!(m.plat.pic.io_read(0x4D1, 1, 0) & 0b1100, 0b1100);
    assert_eq!(m.plat.pic.io_read(0x4D0, 1, 0) & 0xFF, 0);
}
