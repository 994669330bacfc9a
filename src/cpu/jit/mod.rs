//! The JIT tier: hot blocks become host code (Cranelift), the interpreter
//! stays the reference.
//!
//! A block that has run [`Jit::threshold`] times is compiled into one host
//! function that does what the interpreter's loop does for that block, op by
//! op, in the same order: register-only integer ops (MOV, the ALU family,
//! INC/DEC, their fused compare-and-branch forms, Jcc and JMP rel at the end
//! of the block) are generated inline, with the general registers and the
//! lazy flags ([`crate::cpu::flags`]) kept in host registers between them;
//! every other op calls its interpreter handler through [`call_op`], with
//! RIP, the registers, the flags and the instruction count written back
//! first, exactly as the interpreter would have left them. So a compiled
//! block retires the same instructions, stops at the same points (faults,
//! `stop_block` after self-modifying writes or mode changes) and leaves the
//! same state: instruction counts, interrupt points and serial logs are the
//! same with and without the JIT.
//!
//! Compiled code hangs off the block's ops (`Op::jit` of the first op), so
//! it goes when the block goes: a write that invalidates the block (self-
//! modifying code, in any of the interpreter's cases) retires the compiled
//! code with it. The code memory is bounded: after [`MAX_COMPILED`]
//! functions the whole code buffer is freed and hot blocks compile again.

mod emit;

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

/// Runs a block this many times in the interpreter before compiling it.
pub const DEFAULT_THRESHOLD: u32 = 1000;

/// `Op::jit` of a block that is compiled: this bit plus the table index.
const COMPILED: u32 = 1 << 31;

/// The JIT tier's state: the code buffer and the compiled functions.
pub struct Jit {
    module: Option<JITModule>,
    ctx: cranelift_codegen::Context,
    fctx: cranelift_frontend::FunctionBuilderContext,
    /// (block identity, function) per compiled block; `Op::jit` indexes it.
    table: Vec<(usize, JitFn)>,
    /// Runs of a block before it compiles.
    pub threshold: u32,
    /// Compile every block, even one of handler calls only (threshold 1:
    /// tests and conformance runs through this tier).
    pub every_block: bool,
    /// Blocks compiled, code buffers freed (`--stats`).
    pub compiled: u64,
    pub flushes: u64,
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
            threshold: threshold.clamp(1, COMPILED - 1),
            every_block: threshold <= 1,
            compiled: 0,
            flushes: 0,
            kinds: emit::Kinds::new(),
        })
    }

    /// The compiled function of the block `ops` (identity `id`), compiling it
    /// when it has become hot; None runs it in the interpreter.
    #[inline]
    pub fn lookup(&mut self, id: usize, ops: &[Op]) -> Option<JitFn> {
        let first = ops.first()?;
        let w = first.jit.get();
        if w == u32::MAX {
            return None;
        }
        if w & COMPILED != 0 {
            if let Some(&(bid, f)) = self.table.get((w & !COMPILED) as usize) {
                if bid == id {
                    return Some(f);
                }
            }
            // The code buffer was freed since: count again.
            first.jit.set(0);
            return None;
        }
        if w + 1 < self.threshold {
            first.jit.set(w + 1);
            return None;
        }
        self.compile_block(id, ops)
    }

    #[cold]
    fn compile_block(&mut self, id: usize, ops: &[Op]) -> Option<JitFn> {
        let first = ops.first()?;
        if self.table.len() >= MAX_COMPILED {
            self.flush();
        }
        let Some(f) = self.compile(ops) else {
            first.jit.set(u32::MAX);
            return None;
        };
        first.jit.set(COMPILED | self.table.len() as u32);
        self.table.push((id, f));
        self.compiled += 1;
        Some(f)
    }

    /// Frees every compiled function (blocks compile again when hot).
    pub fn flush(&mut self) {
        self.table.clear();
        if let Some(old) = self.module.take() {
            // SAFETY: no compiled function is running (this runs between
            // blocks) and the table that held their addresses is empty, so
            // none is called after the memory is freed.
            unsafe { old.free_memory() };
        }
        self.module = new_module().ok();
        self.flushes += 1;
    }

    fn compile(&mut self, ops: &[Op]) -> Option<JitFn> {
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
        emit::build(
            &mut self.ctx.func,
            &mut self.fctx,
            sig,
            ops,
            &self.kinds,
            cfg,
            self.every_block,
        )?;
        let id = module
            .declare_anonymous_function(&self.ctx.func.signature)
            .ok()?;
        if let Err(e) = module.define_function(id, &mut self.ctx) {
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
