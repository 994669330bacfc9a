//! Decoding: iced-x86 turns guest bytes into `Instruction`s once; this module
//! turns each into a compact [`Op`] (handler pointer plus pre-resolved operand
//! descriptors) and groups them into blocks for the block cache.

use super::block_cache::{Block, BlockOps, Origin, MAX_BLOCK};
use super::exec;
use super::{Bus, Cpu, Fault, Res};
use iced_x86::{Code, Decoder, DecoderOptions, Instruction, Mnemonic, OpKind, Register};

/// Entries in the RIP-indexed jump cache.
pub const JUMP_CACHE: usize = 4096;

/// One jump-cache entry: RIP -> ops, valid while `gen` matches the CPU's.
#[derive(Clone, Default)]
pub struct JumpEntry {
    pub rip: u64,
    pub gen: u64,
    pub ops: Option<BlockOps>,
}

/// Handler signature: every instruction form has one.
pub type Handler = fn(&mut Cpu, &mut dyn Bus, &Op) -> Res;

/// Operand descriptor values in [`Op::o`].
/// 0..=15: general registers RAX..R15; 16..=19: AH, CH, DH, BH.
pub const K_MEM: u8 = 0x40;
pub const K_IMM: u8 = 0x41;
/// Segment register ES..GS = 0x20..0x25.
pub const K_SEG: u8 = 0x20;
/// Another register kind (CRn, DRn, x87, MMX, XMM): the handler reads `ins`.
pub const K_OTHER: u8 = 0x42;
pub const K_NONE: u8 = 0xFF;
/// `Op::base` value meaning RIP-relative.
pub const BASE_RIP: u8 = 0x10;
pub const NO_REG: u8 = 0xFF;

/// Prefix bits in [`Op::pfx`].
pub const PFX_REP: u8 = 1;
pub const PFX_REPNE: u8 = 2;
pub const PFX_LOCK: u8 = 4;
/// The op also runs the Jcc that follows it in its block (see
/// [`exec::alu::pick_fused`]); `disp`, `base`, `index` and `aux` then hold
/// the Jcc's displacement, length, operand size and condition.
pub const PFX_FUSED: u8 = 8;

#[derive(Clone)]
pub struct Op {
    pub exec: Handler,
    /// Up to three operand descriptors.
    pub o: [u8; 3],
    pub len: u8,
    /// In a block's first op: the block is still valid (see
    /// [`BlockOps`]); meaningless in the other ops.
    pub valid: std::cell::Cell<bool>,
    /// In a block's first op: the JIT tier's word for the block (how often it
    /// ran, or which compiled function runs it; see `jit::Jit::lookup`).
    pub jit: std::cell::Cell<u32>,
    /// Offset from the block's first byte to the end of this op's (first)
    /// instruction: the run loop sets RIP from the block's start instead of
    /// from the previous op's RIP.
    pub end: u16,
    /// Operand size in bytes (1, 2, 4, 8).
    pub osz: u8,
    /// Address size in bytes (2, 4, 8).
    pub asz: u8,
    /// Effective segment of the memory operand (or the source segment of string ops).
    pub seg: u8,
    pub base: u8,
    pub index: u8,
    pub scale: u8,
    pub pfx: u8,
    /// Family-specific byte: condition code (Jcc/SETcc/CMOVcc) or source size (MOVZX/MOVSX).
    pub aux: u8,
    pub disp: u64,
    pub imm: u64,
    /// Second immediate (far pointer selector, ENTER nesting level).
    pub imm2: u64,
    /// The full decoded instruction, for rare paths and diagnostics. Boxed:
    /// it is 40 bytes and the hot paths never read it, so ops stay 56 bytes
    /// and a block's ops take fewer cache lines (dispatch on the Debian boot
    /// waits on cache misses for the ops).
    pub ins: Box<Instruction>,
}

impl Op {
    /// Effective address of the memory operand (SDM Vol. 2A 2.1.5), wrapped to
    /// the address size.
    #[inline(always)]
    pub fn ea(&self, cpu: &Cpu) -> u64 {
        let mut a = self.disp;
        if (self.base as usize) < 16 {
            a = a.wrapping_add(cpu.gpr[self.base as usize]);
        } else if self.base == BASE_RIP {
            a = a.wrapping_add(cpu.rip);
        }
        if (self.index as usize) < 16 {
            a = a.wrapping_add(cpu.gpr[self.index as usize] << self.scale);
        }
        a & amask(self.asz)
    }
}

/// The mask of an address of `asz` bytes (2, 4 or 8).
#[inline(always)]
pub fn amask(asz: u8) -> u64 {
    super::flags::size_mask(asz)
}

/// Maps a general register to its operand descriptor.
pub fn gpr_index(r: Register) -> Option<u8> {
    match r {
        Register::AH => return Some(16),
        Register::CH => return Some(17),
        Register::DH => return Some(18),
        Register::BH => return Some(19),
        _ => {}
    }
    if r.is_gpr() {
        let full = r.full_register();
        return Some((full as u32 - Register::RAX as u32) as u8);
    }
    None
}

fn seg_index(r: Register) -> Option<u8> {
    if r.is_segment_register() {
        Some((r as u32 - Register::ES as u32) as u8)
    } else {
        None
    }
}

/// Reads the legacy prefixes to find the address-size override (0x67).
fn has_67(bytes: &[u8]) -> bool {
    for &b in bytes.iter().take(15) {
        match b {
            0x67 => return true,
            0x26 | 0x2E | 0x36 | 0x3E | 0x64 | 0x65 | 0x66 | 0xF0 | 0xF2 | 0xF3 => continue,
            0x40..=0x4F => return false,
            _ => return false,
        }
    }
    false
}

/// Builds an [`Op`] from a decoded instruction.
pub fn make_op(ins: &Instruction, bytes: &[u8], bitness: u32) -> Op {
    let code_bytes = (bitness / 8) as u8;
    let asz = match (code_bytes, has_67(bytes)) {
        (2, false) | (4, true) => 2,
        (2, true) | (4, false) | (8, true) => 4,
        _ => 8,
    };
    let mut op = Op {
        exec: exec::system::op_ud,
        o: [K_NONE; 3],
        len: ins.len() as u8,
        valid: std::cell::Cell::new(false),
        jit: std::cell::Cell::new(0),
        end: ins.len() as u16,
        osz: 0,
        asz,
        seg: 3,
        base: NO_REG,
        index: NO_REG,
        scale: 0,
        pfx: 0,
        aux: (ins.condition_code() as u8).wrapping_sub(1),
        disp: 0,
        imm: 0,
        imm2: 0,
        ins: Box::new(*ins),
    };
    if ins.has_rep_prefix() {
        op.pfx |= PFX_REP;
    }
    if ins.has_repne_prefix() {
        op.pfx |= PFX_REPNE;
    }
    if ins.has_lock_prefix() {
        op.pfx |= PFX_LOCK;
    }
    let next_ip = ins.next_ip();
    let mut imm_seen = false;
    for i in 0..ins.op_count().min(3) {
        let k = match ins.op_kind(i) {
            OpKind::Register => {
                let r = ins.op_register(i);
                if let Some(g) = gpr_index(r) {
                    if op.osz == 0 {
                        op.osz = r.size() as u8;
                    }
                    g
                } else if let Some(s) = seg_index(r) {
                    K_SEG + s
                } else {
                    K_OTHER
                }
            }
            OpKind::Memory => {
                let base = ins.memory_base();
                if base == Register::RIP || base == Register::EIP {
                    op.base = BASE_RIP;
                    op.disp = ins.memory_displacement64().wrapping_sub(next_ip);
                } else {
                    op.base = gpr_index(base).unwrap_or(NO_REG);
                    op.disp = ins.memory_displacement64();
                }
                op.index = gpr_index(ins.memory_index()).unwrap_or(NO_REG);
                op.scale = ins.memory_index_scale().trailing_zeros() as u8;
                op.seg = seg_index(ins.memory_segment()).unwrap_or(3);
                if op.osz == 0 {
                    op.osz = ins.memory_size().size() as u8;
                }
                K_MEM
            }
            OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64 => {
                op.osz = match ins.op_kind(i) {
                    OpKind::NearBranch16 => 2,
                    OpKind::NearBranch32 => 4,
                    _ => 8,
                };
                op.imm = ins.near_branch_target().wrapping_sub(next_ip);
                K_IMM
            }
            OpKind::FarBranch16 | OpKind::FarBranch32 => {
                op.imm = if ins.op_kind(i) == OpKind::FarBranch16 {
                    ins.far_branch16() as u64
                } else {
                    ins.far_branch32() as u64
                };
                op.imm2 = ins.far_branch_selector() as u64;
                K_IMM
            }
            OpKind::Immediate8
            | OpKind::Immediate8_2nd
            | OpKind::Immediate16
            | OpKind::Immediate32
            | OpKind::Immediate64
            | OpKind::Immediate8to16
            | OpKind::Immediate8to32
            | OpKind::Immediate8to64
            | OpKind::Immediate32to64 => {
                let v = ins.immediate(i);
                if imm_seen {
                    op.imm2 = v;
                } else {
                    op.imm = v;
                    imm_seen = true;
                }
                K_IMM
            }
            OpKind::MemorySegSI
            | OpKind::MemorySegESI
            | OpKind::MemorySegRSI
            | OpKind::MemorySegDI
            | OpKind::MemorySegEDI
            | OpKind::MemorySegRDI
            | OpKind::MemoryESDI
            | OpKind::MemoryESEDI
            | OpKind::MemoryESRDI => {
                if op.osz == 0 {
                    op.osz = ins.memory_size().size() as u8;
                }
                K_MEM
            }
        };
        op.o[i as usize] = k;
    }
    // String instructions: the overridable source segment.
    if ins.op_count() > 0
        && matches!(
            ins.mnemonic(),
            Mnemonic::Movsb
                | Mnemonic::Movsw
                | Mnemonic::Movsd
                | Mnemonic::Movsq
                | Mnemonic::Cmpsb
                | Mnemonic::Cmpsw
                | Mnemonic::Cmpsd
                | Mnemonic::Cmpsq
                | Mnemonic::Lodsb
                | Mnemonic::Lodsw
                | Mnemonic::Lodsd
                | Mnemonic::Lodsq
                | Mnemonic::Outsb
                | Mnemonic::Outsw
                | Mnemonic::Outsd
                | Mnemonic::Xlatb
        )
    {
        op.seg = seg_index(ins.segment_prefix()).unwrap_or(3);
    }
    // String instructions: the element size, not DX's (OUTS) or AL's size.
    if (0..ins.op_count()).any(|i| {
        matches!(
            ins.op_kind(i),
            OpKind::MemorySegSI
                | OpKind::MemorySegESI
                | OpKind::MemorySegRSI
                | OpKind::MemoryESDI
                | OpKind::MemoryESEDI
                | OpKind::MemoryESRDI
        )
    }) {
        op.osz = ins.memory_size().size() as u8;
    }
    if op.osz == 0 || matches!(op.o[0], K_IMM | K_NONE) {
        // No register or memory operand decided the size: take the opcode's
        // own operand size (PUSHFQ, LEAVE, RET, IRETQ, ...), else the default.
        let ocs = ins.op_code().operand_size();
        if ocs != 0
            && !matches!(
                ins.op0_kind(),
                OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64
            )
        {
            op.osz = (ocs / 8) as u8;
        } else if op.osz == 0 {
            op.osz = code_bytes.min(4);
        }
    }
    op.exec = if ins.has_lock_prefix() && !lockable(ins) {
        exec::system::op_ud
    } else {
        exec::handler_for(ins, &mut op)
    };
    op
}

/// LOCK is only valid on these read-modify-write instructions with a memory
/// destination (SDM Vol. 2A LOCK); anywhere else it raises #UD.
fn lockable(ins: &Instruction) -> bool {
    use Mnemonic as M;
    ins.op0_kind() == OpKind::Memory
        && matches!(
            ins.mnemonic(),
            M::Add
                | M::Adc
                | M::And
                | M::Btc
                | M::Btr
                | M::Bts
                | M::Cmpxchg
                | M::Cmpxchg8b
                | M::Cmpxchg16b
                | M::Dec
                | M::Inc
                | M::Neg
                | M::Not
                | M::Or
                | M::Sbb
                | M::Sub
                | M::Xor
                | M::Xadd
                | M::Xchg
        )
}

/// Does this instruction end a block? Control transfers, and anything that can
/// change the mode bits, interrupt state, or the code being executed.
pub fn ends_block(ins: &Instruction) -> bool {
    use iced_x86::FlowControl::*;
    if !matches!(ins.flow_control(), Next) {
        return true;
    }
    matches!(
        ins.mnemonic(),
        Mnemonic::Mov if ins.op0_kind() == OpKind::Register && (ins.op0_register().is_cr() || ins.op0_register() == Register::SS || ins.op0_register().is_dr())
    ) || matches!(
        ins.mnemonic(),
        Mnemonic::Pop if ins.op0_kind() == OpKind::Register && ins.op0_register() == Register::SS
    ) || matches!(
        ins.mnemonic(),
        Mnemonic::Sti
            | Mnemonic::Popf
            | Mnemonic::Popfd
            | Mnemonic::Popfq
            | Mnemonic::Lmsw
            | Mnemonic::Clts
            | Mnemonic::Wrmsr
            | Mnemonic::Invlpg
            | Mnemonic::Out
            | Mnemonic::Outsb
            | Mnemonic::Outsw
            | Mnemonic::Outsd
            | Mnemonic::Lgdt
            | Mnemonic::Lidt
            | Mnemonic::Lldt
            | Mnemonic::Ltr
            | Mnemonic::Swapgs
            | Mnemonic::Fxrstor
            | Mnemonic::Fxrstor64
            | Mnemonic::Ldmxcsr
    )
}

impl Cpu {
    /// Returns the ops of the block at CS:RIP, decoding it on a miss.
    #[inline(always)]
    pub(crate) fn fetch_block(&mut self, bus: &mut dyn Bus) -> Res<BlockOps> {
        // Fast path: the jump cache maps RIP straight to a block while no TLB
        // flush happened since it was filled, the fetch context (mode, CS
        // base and limit) is the one it was filled in, and the block itself
        // is still valid (QEMU's tb_jmp_cache idea): no segment check, page
        // walk or hashing. See `Cpu::jump_gen`.
        let gen = self.jump_gen();
        let rip = self.rip;
        let idx = ((rip ^ (rip >> 10)) as usize) & (JUMP_CACHE - 1);
        if let Some(JumpEntry {
            rip: r,
            gen: g,
            ops: Some(ops),
        }) = self.jump.get(idx)
        {
            if *r == rip && *g == gen && ops.is_valid() {
                return Ok(ops.clone());
            }
        }
        self.fetch_block_slow(bus, rip, idx)
    }

    /// The jump cache missed: translate, look in the block cache, decode.
    #[inline(never)]
    fn fetch_block_slow(&mut self, bus: &mut dyn Bus, rip: u64, idx: usize) -> Res<BlockOps> {
        let lin = self.code_lin(rip)?;
        let phys = self.translate_exec(bus, lin)?;
        let mode = self.mode_key();
        if self.no_block_cache {
            return self.decode_block(bus, lin, phys, mode);
        }
        let ops = match self.cache.lookup(phys, mode) {
            Some(ops) => ops,
            None => self.decode_block(bus, lin, phys, mode)?,
        };
        // Recompute: decoding may have flushed TLB entries.
        let gen = self.jump_gen();
        if let Some(e) = self.jump.get_mut(idx) {
            *e = JumpEntry {
                rip,
                gen,
                ops: Some(ops.clone()),
            };
        }
        Ok(ops)
    }

    fn decode_block(&mut self, bus: &mut dyn Bus, lin: u64, phys: u64, mode: u32) -> Res<BlockOps> {
        // Bytes from the start address to the end of its page, plus up to 15
        // bytes of the next page for an instruction that crosses it.
        let page_left = 0x1000 - (phys & 0xFFF) as usize;
        let limit = if self.no_block_cache { 1 } else { MAX_BLOCK };
        // At most 15 bytes per instruction: never read more than a full block needs.
        let want = page_left.min(limit * 15);
        let a20 = self.a20_mask;
        let hot = !self.no_block_cache && self.cache.is_smc_hot(phys);
        if hot {
            if let Some(ops) = self.revive_block(phys, mode, want) {
                return Ok(ops);
            }
        }
        self.stats.blocks_decoded += 1;
        let mut buf = Vec::with_capacity(want + 15);
        let mut from_ram = false;
        match self
            .mem
            .ram()
            .get(((phys & a20) as usize)..((phys & a20) as usize + want))
        {
            Some(bytes)
                if self.mem.is_ram(phys & a20)
                    && self.mem.is_ram((phys + want as u64 - 1) & a20)
                    && (phys & a20) + want as u64 - 1 == (phys + want as u64 - 1) & a20 =>
            {
                buf.extend_from_slice(bytes);
                from_ram = true;
            }
            _ => {
                for i in 0..want as u64 {
                    buf.push(self.phys_read(bus, phys + i, 1) as u8);
                }
            }
        }
        let bitness = self.code_bits as u32;
        let mut ops: Vec<Op> = Vec::with_capacity(16);
        let mut second_page: Option<u64> = None;
        let mut next_fault: Option<Fault> = None;
        let mut fetched_next = false;
        let mut off = 0usize;
        let mut ip = self.rip;
        while ops.len() < limit && off < want {
            if !fetched_next && want == page_left && off + 15 > page_left {
                fetched_next = true;
                let next_lin = (lin & !0xFFF).wrapping_add(0x1000);
                match self.translate_exec(bus, next_lin) {
                    Ok(p2) => {
                        for i in 0..15u64 {
                            buf.push(self.phys_read(bus, (p2 & !0xFFF) + i, 1) as u8);
                        }
                        second_page = Some(p2 & !0xFFF);
                    }
                    Err(f) => next_fault = Some(f),
                }
            }
            // The code segment limit bounds fetch too (SDM Vol. 3A 5.3).
            let lim_left = if self.long64 {
                15
            } else {
                ((self.seg[super::state::CS].limit as u64).saturating_sub(ip & 0xFFFF_FFFF) + 1)
                    .min(15) as usize
            };
            let avail = buf.len().min(off + 15);
            let end = avail.min(off + lim_left);
            let slice = buf.get(off..end).unwrap_or(&[]);
            let mut d = Decoder::with_ip(bitness, slice, ip, DecoderOptions::NONE);
            let ins = d.decode();
            if ins.is_invalid() {
                let truncated = d.last_error() == iced_x86::DecoderError::NoMoreBytes;
                let mut op = make_op(&ins, slice, bitness);
                op.len = 0;
                op.end = off as u16;
                if truncated && end < avail {
                    op.exec = exec::system::op_gp0;
                } else if truncated && next_fault.is_some() {
                    if ops.is_empty() {
                        if let Some(f) = next_fault {
                            return Err(f);
                        }
                    }
                    break;
                } else {
                    op.exec = exec::system::op_ud;
                }
                ops.push(op);
                break;
            }
            let n = ins.len();
            let mut op = make_op(&ins, slice, bitness);
            op.end = (off + n) as u16;
            let stop = ends_block(&ins);
            if limit > 1 && ins.is_jcc_short_or_near() && op.o[0] == K_IMM {
                if let Some(prev) = ops.last_mut() {
                    exec::alu::fuse_jcc(prev, &op);
                }
            }
            ops.push(op);
            off += n;
            ip = ip.wrapping_add(n as u64);
            if stop {
                break;
            }
        }
        let end1 = phys + off.min(page_left) as u64;
        let ranges = [
            (phys, end1),
            match second_page {
                Some(p) if p != u64::MAX && off > page_left => (p, p + (off - page_left) as u64),
                _ => (0, 0),
            },
        ];
        let ops = BlockOps::new(ops);
        if !self.no_block_cache {
            // Kept for reviving (block_cache module doc): one page, from RAM.
            let origin = match buf.get(..off) {
                Some(bytes) if hot && from_ram && !fetched_next && off <= page_left => {
                    Some(Box::new(Origin {
                        rip: self.rip,
                        cs_base: self.seg[super::state::CS].base,
                        cs_limit: self.seg[super::state::CS].limit,
                        bytes: bytes.into(),
                    }))
                }
                _ => None,
            };
            let new_pages = self.cache.insert(Block {
                phys,
                mode,
                ranges,
                ops: ops.clone(),
                origin,
            });
            for p in new_pages {
                self.tlb.protect_phys(p);
            }
        }
        Ok(ops)
    }
}

impl Cpu {
    /// A block retired by a write whose bytes are back (see the
    /// block_cache module doc): valid again and back in the cache, with no
    /// decode. `want`: the bytes a decode would read from `phys` on.
    fn revive_block(&mut self, phys: u64, mode: u32, want: usize) -> Option<BlockOps> {
        let key = Origin {
            rip: self.rip,
            cs_base: self.seg[super::state::CS].base,
            cs_limit: self.seg[super::state::CS].limit,
            bytes: Box::new([]),
        };
        let a20 = self.a20_mask;
        let at = (phys & a20) as usize;
        if !self.mem.is_ram(phys & a20) || !self.mem.is_ram((phys + want as u64 - 1) & a20) {
            return None;
        }
        let mem = self.mem.ram().get(at..at + want)?;
        let block = self.cache.revive(phys, mode, &key, mem)?;
        let ops = block.ops.clone();
        self.stats.blocks_revived += 1;
        for p in self.cache.insert(block) {
            self.tlb.protect_phys(p);
        }
        Some(ops)
    }
}

/// Whether vx86 implements the instruction at the start of `bytes` (decoded at
/// `bitness`): false for undecodable bytes and for forms that would reach
/// [`exec::system::op_unimplemented`]. The conformance harnesses use it to report
/// instructions that are not implemented yet apart from wrong results.
pub fn is_implemented(bytes: &[u8], bitness: u32) -> bool {
    let ins = decode_one(bytes, bitness, 0);
    if ins.is_invalid() {
        return false;
    }
    let mut op = make_op(&ins, bytes, bitness);
    exec::implemented_handler(&ins, &mut op).is_some()
}

/// Convenience for tests and tools: decode one instruction at the given bitness.
pub fn decode_one(bytes: &[u8], bitness: u32, ip: u64) -> Instruction {
    Decoder::with_ip(bitness, bytes, ip, DecoderOptions::NONE).decode()
}

#[allow(dead_code)]
fn _assert_code_size() {
    let _ = Code::INVALID;
    let _ = Fault::ud();
}

/// Ops are read on every dispatch: keep them within one 64-byte line (the rare data
/// lives behind `ins`).
const _: () = assert!(std::mem::size_of::<Op>() <= 64);
