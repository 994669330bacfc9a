//! The JIT tier: hot blocks become host code (Cranelift), the interpreter
//! stays the reference.
//!
//! A block that has run [`Jit::threshold`] times is compiled into one host
//! function that does what the interpreter's loop does for that block, op by
//! op, in the same order: the common integer ops (MOV, LEA, the ALU family,
//! INC/DEC, their fused compare-and-branch forms, loads, stores, PUSH/POP
//! through the TLB, Jcc, JMP, CALL rel and RET at the end of a block) are
//! generated inline, with the general registers and the lazy flags
//! ([`crate::cpu::flags`]) kept in host registers between them; every other
//! op calls its interpreter handler through [`call_op`], with RIP, the
//! registers, the flags and the instruction count written back first,
//! exactly as the interpreter would have left them. So a compiled block
//! retires the same instructions, stops at the same points (faults,
//! `stop_block` after self-modifying writes or mode changes) and leaves the
//! same state: instruction counts, interrupt points and serial logs are the
//! same with and without the JIT.
//!
//! One function holds the hot block and the warm blocks of the same page it
//! branches to (and they to, up to [`MAX_REGION_BLOCKS`]): a branch from one
//! to another stays in host code when the run loop would have run the target
//! next anyway (budget left, no interrupt to take, no stop; see
//! `emit::Em::transition`), so loops and call/return chains within a page
//! run without a dispatch. Being in the same page, the blocks keep their
//! offsets from the first: no translation is needed, only a check that each
//! is still valid.
//!
//! Compiled code hangs off the block's ops (`Op::jit` of the first op), so
//! it goes when the block goes: a write that invalidates the block (self-
//! modifying code, in any of the interpreter's cases) retires the compiled
//! code with it. The code memory is bounded: after [`MAX_COMPILED`]
//! functions, or when the functions hold [`MAX_HELD_OPS`] ops (64 bytes
//! each: 64 MiB), the whole code buffer is freed and hot blocks compile
//! again.

mod emit;

use super::block_cache::BlockOps;
use super::decode::Op;
use super::{Bus, Cpu, Fault};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_jit::{JITBuilder, JITModule};

/// A compiled block: `(cpu, &mut &mut dyn Bus, first op) -> 0` when the block
/// ended normally, 1 when an op faulted (the fault is in `Cpu::jit_fault`,
/// RIP at the faulting instruction).
pub type JitFn = unsafe extern "C" fn(*mut Cpu, *mut &mut dyn Bus, *const Op) -> u32;

/// Compiled functions kept before the code buffer is freed and refilled.
pub const MAX_COMPILED: usize = 16384;

/// Ops the compiled functions' blocks may hold alive (blocks evicted from
/// the block cache stay allocated while a function holds them).
pub const MAX_HELD_OPS: usize = 1 << 20;

/// Runs a block this many times in the interpreter before compiling it.
/// Compiling costs about 0.5 ms a block (Cranelift, measured on the Debian
/// boot), 100 times what interpreting a typical block once does; a block
/// that ran 50,000 times is one that runs on (loops, hot paths): at 1,000 the
/// Debian boot compiled 3,300 functions for 10 s, at 50,000 332 for 0.9 s
/// and ran 12% faster than the interpreter alone.
pub const DEFAULT_THRESHOLD: u32 = 50_000;

/// Most blocks, and ops, in one compiled function.
const MAX_REGION_BLOCKS: usize = 32;
const MAX_REGION_OPS: usize = 512;

/// What to do with a block about to run.
pub enum Lookup {
    /// Run its compiled code.
    Run(JitFn),
    /// It has become hot: compile it (`Cpu::jit_compile`).
    Compile,
    /// Run it in the interpreter.
    Interpret,
}

/// `Op::jit` of a block that is compiled: this bit plus the table index.
const COMPILED: u32 = 1 << 31;

/// The JIT tier's state: the code buffer and the compiled functions.
pub struct Jit {
    module: Option<JITModule>,
    ctx: cranelift_codegen::Context,
    fctx: cranelift_frontend::FunctionBuilderContext,
    /// (block identity, function, the blocks compiled into it) per compiled
    /// block; `Op::jit` indexes it. Holding the blocks keeps the ops that
    /// the code points to alive; a block that left the block cache or was
    /// invalidated is no longer valid, and the code checks that before it
    /// runs one.
    table: Vec<(usize, JitFn, Vec<BlockOps>)>,
    /// Ops of the blocks `table` holds.
    held_ops: usize,
    /// Runs of a block before it compiles.
    pub threshold: u32,
    /// Compile every block, even one of handler calls only (threshold 1:
    /// tests and conformance runs through this tier).
    pub every_block: bool,
    /// Blocks compiled, code buffers freed (`--stats`).
    pub compiled: u64,
    pub flushes: u64,
    /// Blocks in the compiled functions (each function holds the block it
    /// is entered at and the blocks it branches to), time spent compiling.
    pub region_blocks: u64,
    pub compile_time: std::time::Duration,
    /// Interpreter handlers the emitter generates inline (by address).
    kinds: emit::Kinds,
}

impl std::fmt::Debug for Jit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jit")
            .field("compiled", &self.compiled)
            .field("threshold", &self.threshold)
            .finish()
    }
}

fn new_module() -> Result<JITModule, String> {
    let mut flags = settings::builder();
    let set = |f: &mut settings::Builder, k: &str, v: &str| {
        f.set(k, v)
            .map_err(|e| format!("cranelift setting {k}: {e}"))
    };
    set(&mut flags, "use_colocated_libcalls", "false")?;
    set(&mut flags, "is_pic", "false")?;
    set(&mut flags, "opt_level", "speed")?;
    // Cranelift's IR verifier costs about a seventh of the compile time
    // (measured on the Debian boot); it runs when debugging the emitter.
    let verify = std::env::var_os("VX86_JIT_DEBUG").is_some();
    set(
        &mut flags,
        "enable_verifier",
        if verify { "true" } else { "false" },
    )?;
    let isa = cranelift_native::builder()
        .map_err(|e| format!("this host has no JIT code generator: {e}"))?
        .finish(settings::Flags::new(flags))
        .map_err(|e| format!("JIT code generator: {e}"))?;
    Ok(JITModule::new(JITBuilder::with_isa(
        isa,
        cranelift_module::default_libcall_names(),
    )))
}

impl Jit {
    /// A JIT for this host, or why there is none.
    pub fn new(threshold: u32) -> Result<Jit, String> {
        let module = new_module()?;
        let ctx = cranelift_module::Module::make_context(&module);
        Ok(Jit {
            module: Some(module),
            ctx,
            fctx: cranelift_frontend::FunctionBuilderContext::new(),
            table: Vec::new(),
            held_ops: 0,
            threshold: threshold.clamp(1, COMPILED - 1),
            every_block: threshold <= 1,
            compiled: 0,
            flushes: 0,
            region_blocks: 0,
            compile_time: std::time::Duration::ZERO,
            kinds: emit::Kinds::new(),
        })
    }

    /// What to do with the block `ops` (identity `id`): its compiled code,
    /// or compile it now that it is hot, or interpret it.
    #[inline]
    pub fn lookup(&mut self, id: usize, ops: &[Op]) -> Lookup {
        let Some(first) = ops.first() else {
            return Lookup::Interpret;
        };
        let w = first.jit.get();
        if w == u32::MAX {
            return Lookup::Interpret;
        }
        if w & COMPILED != 0 {
            if let Some((bid, f, _)) = self.table.get((w & !COMPILED) as usize) {
                if *bid == id {
                    return Lookup::Run(*f);
                }
            }
            // The code buffer was freed since: count again.
            first.jit.set(0);
            return Lookup::Interpret;
        }
        if w + 1 < self.threshold {
            first.jit.set(w + 1);
            return Lookup::Interpret;
        }
        Lookup::Compile
    }

    /// Compiles `region` (its first block is the one entered; the others are
    /// blocks in the same page it can branch to, `(offset from the first
    /// block's start, block)`), or marks the first block as not worth it.
    #[cold]
    fn compile_region(&mut self, region: &[(i64, BlockOps)]) -> Option<JitFn> {
        let (_, head) = region.first()?;
        let first = head.first()?;
        let ops: usize = region.iter().map(|(_, b)| b.len()).sum();
        if self.table.len() >= MAX_COMPILED || self.held_ops + ops > MAX_HELD_OPS {
            self.flush();
        }
        let t0 = std::time::Instant::now();
        let f = self.compile(region);
        self.compile_time += t0.elapsed();
        let Some(f) = f else {
            first.jit.set(u32::MAX);
            return None;
        };
        self.region_blocks += region.len() as u64;
        self.held_ops += ops;
        first.jit.set(COMPILED | self.table.len() as u32);
        self.table.push((
            head.id(),
            f,
            region.iter().map(|(_, b)| b.clone()).collect(),
        ));
        self.compiled += 1;
        Some(f)
    }

    /// Whether block `ops` ran often enough to be worth compiling into a
    /// hot block's function: half the threshold, or compiled itself (its
    /// count is gone then), or judged not worth compiling alone (a block of
    /// handler calls still saves a dispatch inside a function).
    fn is_warm(&self, ops: &[Op]) -> bool {
        let w = ops.first().map_or(0, |op| op.jit.get());
        w & COMPILED != 0 || w >= self.threshold / 2 || self.every_block
    }

    fn kinds(&self) -> &emit::Kinds {
        &self.kinds
    }

    /// Frees every compiled function (blocks compile again when hot).
    pub fn flush(&mut self) {
        self.table.clear();
        self.held_ops = 0;
        if let Some(old) = self.module.take() {
            // SAFETY: no compiled function is running (this runs between
            // blocks) and the table that held their addresses is empty, so
            // none is called after the memory is freed.
            unsafe { old.free_memory() };
        }
        self.module = new_module().ok();
        self.flushes += 1;
    }

    fn compile(&mut self, region: &[(i64, BlockOps)]) -> Option<JitFn> {
        use cranelift_module::Module;
        let module = self.module.as_mut()?;
        module.clear_context(&mut self.ctx);
        let ptr = module.target_config().pointer_type();
        let mut sig = module.make_signature();
        for _ in 0..3 {
            sig.params.push(cranelift_codegen::ir::AbiParam::new(ptr));
        }
        sig.returns.push(cranelift_codegen::ir::AbiParam::new(
            cranelift_codegen::ir::types::I32,
        ));
        self.ctx.func.signature = sig.clone();
        let cfg = module.target_config();
        let blocks: Vec<emit::RegionBlock<'_>> = region
            .iter()
            .map(|(d, b)| emit::RegionBlock {
                ops: b,
                d: *d,
                id: b.id(),
            })
            .collect();
        emit::build(
            &mut self.ctx.func,
            &mut self.fctx,
            sig,
            &blocks,
            &self.kinds,
            cfg,
            self.every_block,
        )?;
        let id = module
            .declare_anonymous_function(&self.ctx.func.signature)
            .ok()?;
        if std::env::var_os("VX86_JIT_DEBUG").is_some_and(|v| v == "2") {
            for (d, b) in region {
                let n = b.len();
                let list: Vec<String> = b
                    .iter()
                    .enumerate()
                    .map(|(i, op)| {
                        let inline = if self.kinds.is_inline(op, i, n) {
                            ""
                        } else {
                            "*"
                        };
                        format!("{:?}{inline}", op.ins.mnemonic())
                    })
                    .collect();
                eprintln!("vx86: JIT: block {d:+}: {}", list.join(" "));
            }
            eprintln!("{}", self.ctx.func.display());
        }
        let r = module.define_function(id, &mut self.ctx);
        if let Err(e) = r {
            if std::env::var_os("VX86_JIT_DEBUG").is_some() {
                eprintln!("vx86: JIT: {e:?}\n{}", self.ctx.func.display());
            }
            module.clear_context(&mut self.ctx);
            return None;
        }
        module.clear_context(&mut self.ctx);
        module.finalize_definitions().ok()?;
        let code = module.get_finalized_function(id);
        // SAFETY: `code` is the function just defined with the JitFn
        // signature (three pointer arguments, an i32 result, the host's C
        // calling convention).
        Some(unsafe { std::mem::transmute::<*const u8, JitFn>(code) })
    }
}

/// What compiled code calls for an op it does not generate inline: the
/// interpreter's handler, with the fault (if any) left in `Cpu::jit_fault`.
///
/// # Safety
/// `cpu`, `bus` and `op` are the pointers the run loop passed to the
/// compiled block (valid, unaliased for the call).
pub(crate) unsafe extern "C" fn call_op(
    cpu: *mut Cpu,
    bus: *mut &mut dyn Bus,
    op: *const Op,
) -> u32 {
    // SAFETY: see the function's contract; the run loop does not touch the
    // CPU, the bus or the block while the compiled block runs.
    let (cpu, bus, op) = unsafe { (&mut *cpu, &mut **bus, &*op) };
    match (op.exec)(cpu, bus, op) {
        Ok(()) => 0,
        Err(f) => {
            cpu.jit_fault = Some(f);
            1
        }
    }
}

/// Condition code `cc` (0..15) of the flags in memory, as 0/1.
///
/// # Safety
/// `cpu` is the pointer the run loop passed to the compiled block.
pub(crate) unsafe extern "C" fn cond_of(cpu: *const Cpu, cc: u32) -> u32 {
    // SAFETY: see the function's contract; compiled code holds no other
    // reference to the CPU across the call.
    let cpu = unsafe { &*cpu };
    cpu.flags.cond(cc as u8) as u32
}

impl Cpu {
    /// Turns the JIT tier on (`threshold` runs before a block compiles) or
    /// off (None). Err when this host has no code generator.
    pub fn set_jit(&mut self, threshold: Option<u32>) -> Result<(), String> {
        self.jit = match threshold {
            Some(t) => Some(Box::new(Jit::new(t)?)),
            None => None,
        };
        Ok(())
    }

    /// Compiles the hot block `ops` (at CS:RIP) together with the blocks of
    /// the same page it branches to that are decoded already (and those
    /// they branch to, up to [`MAX_REGION_BLOCKS`]): branches between them
    /// stay in compiled code. Their offsets from this block are fixed (same
    /// page, so same translation); the code checks each is still valid and
    /// that RIP did not wrap before it goes there.
    #[cold]
    #[inline(never)]
    pub(super) fn jit_compile(&mut self, bus: &mut dyn Bus, ops: &BlockOps) -> Option<JitFn> {
        let mut region = vec![(0i64, ops.clone())];
        let mut jit = self.jit.take()?;
        if let Ok(lin) = self.code_lin(self.rip) {
            if let Ok(phys) = self.translate_exec(bus, lin) {
                let mode = self.mode_key();
                let off = (phys & 0xFFF) as i64;
                let page = phys & !0xFFF;
                let mut total = ops.len();
                let mut i = 0;
                while i < region.len() && region.len() < MAX_REGION_BLOCKS {
                    let d = region[i].0;
                    for s in jit.kinds().successors(&region[i].1) {
                        let t = d + s;
                        let at = off + t;
                        if !(0..0x1000).contains(&at)
                            || region.iter().any(|(x, _)| *x == t)
                            || region.len() >= MAX_REGION_BLOCKS
                        {
                            continue;
                        }
                        if let Some(b) = self.cache.lookup(page + at as u64, mode) {
                            if b.is_valid() && jit.is_warm(&b) && total + b.len() <= MAX_REGION_OPS
                            {
                                total += b.len();
                                region.push((t, b));
                            }
                        }
                    }
                    i += 1;
                }
            }
        }
        let f = jit.compile_region(&region);
        self.jit = Some(jit);
        f
    }

    /// Runs a compiled block (the JIT's counterpart of the loop in
    /// `step_block`).
    #[inline(never)]
    pub(super) fn run_compiled(
        &mut self,
        bus: &mut dyn Bus,
        f: JitFn,
        ops: *const Op,
    ) -> Result<(), super::Exit> {
        let r = {
            let mut b: &mut dyn Bus = bus;
            let cpu: *mut Cpu = self;
            // SAFETY: `f` was compiled from the block whose ops `ops` points
            // to (kept alive by the caller's reference); the compiled code only
            // touches the CPU through these pointers and hands them to
            // `call_op`, while this function holds the only references.
            unsafe { f(cpu, &mut b, ops) }
        };
        if r != 0 {
            let f = self.jit_fault.take().unwrap_or(Fault::gp(0));
            return self.deliver_event(bus, f.vector, super::exception::Source::Fault(f.error()));
        }
        Ok(())
    }
}
