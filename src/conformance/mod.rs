//! Instruction conformance harness: the emulator-independent half.
//!
//! Two test sources are supported:
//!
//! * **Host differential** ([`run_host_differential`]): random user-mode integer
//!   instructions ([`gen`]) are executed natively on the host CPU in a sandboxed child
//!   process ([`native`], Linux x86-64 only) and on the emulator through the
//!   [`UserModeCpu`] trait; final GPRs, RFLAGS (minus undefined flags), the data region,
//!   the x87/MMX/SSE state ([`fximage`]) and the exception vector are compared.
//! * **SingleStepTests** ([`singlestep::run_singlestep_dir`]): captured real-mode 80286
//!   results in the MOO format ([`moo`]), run through the [`singlestep::RealModeCpu`] trait.
//!
//! Both end their report with the exact line `N passed, M failed`.
//!
//! Wiring (the `vx86 conform` subcommands):
//! ```text
//! vx86 conform host --count N --seed S
//!     let s = conformance::run_host_differential(&mut cpu, n, s, &mut std::io::stdout());
//! vx86 conform singlestep DIR [--filter D3,F7.6]
//!     let s = conformance::run_singlestep_dir(&mut cpu, dir, filter, &mut std::io::stdout());
//! exit status: s.failed == 0
//! ```
//! Generated tests never use FS/GS overrides (the host's FS base is its TLS block),
//! RIP-relative operands, branches, or memory outside the data region.

pub mod fximage;
pub mod gen;
pub mod host;
pub mod moo;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub mod native;
pub mod singlestep;

pub use fximage::FxImage;
pub use host::{run_host_differential, run_tests_differential};
pub use singlestep::{run_singlestep_dir, RealModeCpu, RealModeResult, Regs286};

/// Linear address at which a test's code is placed (RIP of the first instruction).
///
/// The emulator must map the code here (user, executable) and stop when RIP reaches
/// `CODE_ADDR + code.len()`: that is where the native runner's exit trampoline begins.
pub const CODE_ADDR: u64 = 0x2000_0000;

/// Default linear address of the data region the generator uses.
pub const DATA_ADDR: u64 = 0x1000_0000;

/// Default size of the data region the generator uses (one 4 KiB page).
pub const DATA_SIZE: usize = 0x1000;

/// Register file index order used everywhere in this module (the ModRM `reg` numbering):
/// RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8..R15.
pub const GPR_NAMES: [&str; 16] = [
    "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15",
];

/// Index of RSP in [`UserState::gpr`].
pub const RSP: usize = 4;

/// Initial user-mode state of one test (64-bit mode, CPL 3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserState {
    /// General-purpose registers in [`GPR_NAMES`] order.
    pub gpr: [u64; 16],
    /// RFLAGS. Bit 1 must be set; IF is set (user mode cannot clear it), TF and AC clear.
    pub rflags: u64,
    /// Contents of the data region (writable, user).
    pub data: Vec<u8>,
    /// Linear address of the first byte of `data` (page aligned).
    pub data_addr: u64,
    /// x87/MMX/SSE state, loaded with FXRSTOR64 before the code runs. MXCSR
    /// must not set reserved bits (FXRSTOR would raise #GP).
    pub fx: FxImage,
}

/// Final state of one test, native or emulated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NativeOutcome {
    /// General-purpose registers in [`GPR_NAMES`] order. After an exception: the values
    /// at the moment the exception was delivered (for a fault, before the instruction
    /// or, for REP string instructions, after the completed iterations).
    pub gpr: [u64; 16],
    /// RFLAGS after the instruction (or at the exception).
    pub rflags: u64,
    /// Data region contents afterwards.
    pub data: Vec<u8>,
    /// `Some((vector, cr2))` if the instruction raised an exception; `cr2` is
    /// `Some(linear address)` only for #PF (vector 14).
    pub exception: Option<(u8, Option<u64>)>,
    /// x87/MMX/SSE state afterwards (FXSAVE64 image; after an exception, the
    /// state at delivery).
    pub fx: FxImage,
}

/// Execution mode of the test code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecMode {
    /// 64-bit mode (CS.L = 1).
    Long64,
    /// Compatibility mode (32-bit code segment in long mode, CS = 0x23 on Linux):
    /// the code runs as 32-bit protected-mode code; DS/ES/SS = 0x2B (flat data).
    Compat32,
}

/// A CPU that can run a short 64-bit user-mode code sequence; the vx86 CPU implements it.
pub trait UserModeCpu {
    /// Run `code` from a clean machine:
    ///
    /// * long mode, CPL 3, 64-bit code segment, flat segments (FS/GS base 0);
    /// * paging maps `state.data` at `state.data_addr` (user, writable) and `code` at
    ///   [`CODE_ADDR`] (user, read/execute); nothing else needs to be mapped;
    /// * GPRs and RFLAGS from `state`, RIP = [`CODE_ADDR`];
    /// * execute until RIP == `CODE_ADDR + code.len()` or an exception is raised
    ///   (report its vector, and CR2 for #PF; do not deliver it);
    /// * return the registers, RFLAGS, the data region and the exception.
    fn run_user64(&mut self, code: &[u8], state: &UserState) -> NativeOutcome;

    /// Like [`UserModeCpu::run_user64`], but `code` runs in compatibility mode: long
    /// mode, CPL 3, a 32-bit code segment (CS.L = 0, CS.D = 1) and flat 32-bit data
    /// segments (DS = ES = SS, base 0, limit 4 GiB). The 64-bit GPR values of `state`
    /// are loaded before the switch; only the low 32 bits of RAX..RDI are compared,
    /// R8..R15 must be preserved. Return `None` if not supported (the harness then
    /// skips the 32-bit tests and says so).
    fn run_user32(&mut self, code: &[u8], state: &UserState) -> Option<NativeOutcome> {
        let _ = (code, state);
        None
    }
}

/// Totals of a conformance run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Tests whose outcome matched.
    pub passed: u64,
    /// Tests whose outcome differed (or could not be run natively).
    pub failed: u64,
    /// Tests not compared, by a documented rule (reported separately).
    pub skipped: u64,
}

impl Summary {
    /// Adds `other`'s counts to `self`.
    pub fn add(&mut self, other: Summary) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.skipped += other.skipped;
    }
}
pub mod vx86_cpu;
