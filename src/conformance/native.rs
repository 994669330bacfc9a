//! Native execution of short 64-bit code sequences on the host CPU, at CPL 3, in a
//! forked child process (Linux x86-64 only).
//!
//! Layout inside the child (all addresses fixed so the emulator can reproduce them):
//!
//! * the data region at `state.data_addr` (`MAP_FIXED_NOREPLACE`, read/write);
//! * a two-page RWX block at [`CODE_ADDR`]: page 0 holds the test code at offset 0,
//!   followed immediately by the exit trampoline, the entry stub at [`ENTRY_OFF`] and the
//!   fault-return stub at [`FAULT_OFF`]; page 1 is the save area (input registers,
//!   output registers, host callee-saved registers).
//!
//! The entry stub is called like a `extern "sysv64" fn() -> u64`: it saves the host's
//! callee-saved registers and RSP, loads RFLAGS (via the host stack) and all 16 GPRs
//! with absolute-address moves, and jumps to the test code. The exit trampoline stores
//! all 16 GPRs, switches back to the host stack, stores RFLAGS, restores the host
//! registers and returns 0. A fault raises a signal; the handler copies the registers
//! from the `ucontext`, records the vector (`REG_TRAPNO`), error code and CR2
//! (`si_addr`), and redirects RIP to the fault-return stub, which returns 1. The signal
//! runs on an alternate stack because RSP points into the small data region.
//!
//! In [`ExecMode::Compat32`] the entry stub loads DS/ES with the flat user data selector
//! and far-jumps (m16:32) to CODE_ADDR through the 32-bit user code selector 0x23; the
//! 32-bit half of the exit trampoline stores EAX..EDI and far-jumps to a 64-bit tail
//! (selector 0x33) that stores R8..R15 and RFLAGS. The signal handler resumes with
//! CS = 0x33.
//!
//! Many tests run per child (one `fork` per batch); if the child dies unexpectedly
//! (timeout, harness fault) the test it was running is reported as an error and a new
//! child continues with the next test.

use super::{ExecMode, NativeOutcome, UserState, CODE_ADDR};
use std::fmt;
use std::ptr;

/// The host CPU's vendor string from CPUID leaf 0 ("GenuineIntel",
/// "AuthenticAMD", ...).
pub fn host_vendor() -> [u8; 12] {
    let r = std::arch::x86_64::__cpuid(0);
    let mut v = [0u8; 12];
    v[0..4].copy_from_slice(&r.ebx.to_le_bytes());
    v[4..8].copy_from_slice(&r.edx.to_le_bytes());
    v[8..12].copy_from_slice(&r.ecx.to_le_bytes());
    v
}

/// True when the host's FXSAVE stores FOP, FIP and FDP only while FSW.ES is
/// set (an unmasked x87 exception pending), writing zeros otherwise, as AMD
/// and Hygon CPUs do (AMD APM Vol. 2 11.4.4; measured on an EPYC 7002
/// family 17h host, which does so even though it reports CPUID Fn8000_0008
/// EBX[2] XSaveErPtr). Intel CPUs always store them, as vx86 does; the
/// differential tests then compare the pointers only where the host stored
/// them.
pub fn host_fxsave_pointers_only_on_error() -> bool {
    host_is_amd()
}

/// True on AMD and Hygon hosts, whose x87 differs from Intel's where the
/// SDM and AMD's APM leave vendors free (see the differential tests).
pub fn host_is_amd() -> bool {
    let v = host_vendor();
    &v == b"AuthenticAMD" || &v == b"HygonGenuine"
}

/// Bits of MXCSR_MASK the host reports beyond the SSE2 set vx86 implements:
/// AMD's misaligned-SSE mask MM (bit 17) on CPUs with CPUID Fn8000_0001
/// ECX[7] (MisAlignSse). vx86 does not advertise that feature.
pub fn host_mxcsr_mask_extra() -> u32 {
    let max_ext = std::arch::x86_64::__cpuid(0x8000_0000).eax;
    if max_ext >= 0x8000_0001 && std::arch::x86_64::__cpuid(0x8000_0001).ecx & (1 << 7) != 0 {
        1 << 17
    } else {
        0
    }
}

/// Size of the RWX block at [`CODE_ADDR`] (code page + save-area page).
const BLOCK_SIZE: usize = 0x2000;
/// Largest test code accepted (the exit trampoline follows it on the same page).
pub const MAX_CODE_LEN: usize = 0x800;
/// Offset of the entry stub in the block.
const ENTRY_OFF: usize = 0xC00;
/// Offset of the fault-return stub in the block.
const FAULT_OFF: usize = 0xE00;
/// Offset of the 64-bit tail of the compatibility-mode exit trampoline.
const EXIT_TAIL_OFF: usize = 0xE80;
/// End of the region the test code and its exit trampoline may occupy; faults outside
/// it are harness bugs.
const CODE_REGION_END: usize = 0xA00;
/// Linux x86-64 user code selectors (GDT_ENTRY_DEFAULT_USER32_CS / USER_CS) and the
/// user data selector loaded into DS/ES for compatibility mode (null DS faults there).
const USER32_CS: u16 = 0x23;
const USER64_CS: u16 = 0x33;
const USER_DS: u8 = 0x2B;
/// Save area (page 1 of the block).
const SAVE: u64 = CODE_ADDR + 0x1000;
const IN_GPR: u64 = SAVE;
const IN_RFLAGS: u64 = SAVE + 0x80;
const OUT_GPR: u64 = SAVE + 0x100;
const OUT_RFLAGS: u64 = SAVE + 0x180;
const HOST_RSP: u64 = SAVE + 0x200;
/// Host callee-saved registers (System V: RBX, RBP, R12..R15), 8 bytes each.
const HOST_SAVED: u64 = SAVE + 0x208;
const CALLEE_SAVED: [u8; 6] = [3, 5, 12, 13, 14, 15];
/// Exception record written by the signal handler: vector, has_cr2, cr2.
const EXC_VECTOR: u64 = SAVE + 0x300;
const EXC_CR2: u64 = SAVE + 0x308;
/// Far pointer (m16:32) CODE_ADDR:USER32_CS used to enter compatibility mode.
const FAR_PTR: u64 = SAVE + 0x380;
/// FXSAVE images (16-byte aligned, 512 bytes each): the test's input state, its
/// output state, and the host's state while the test runs.
const IN_FX: u64 = SAVE + 0x400;
const OUT_FX: u64 = SAVE + 0x600;
const HOST_FX: u64 = SAVE + 0x800;

/// Seconds a batch child may run before SIGALRM kills it.
const BATCH_ALARM_SECS: u32 = 20;
/// Child exit status: the code block could not be mapped.
const CHILD_EXIT_BLOCK: i32 = 90;
/// Child exit status: alternate stack / signal setup failed.
const CHILD_EXIT_SETUP: i32 = 91;
/// Child exit status base: `base + signal` for a fault outside the test code.
const CHILD_EXIT_FAULT_BASE: i32 = 100;
/// Tests per child process.
const BATCH: usize = 1000;
/// Alternate signal stack size.
const ALT_STACK_SIZE: usize = 0x10000;
/// `RFLAGS` loaded into the signal context before resuming at the fault-return stub:
/// only the reserved bit 1 and IF (bit 9).
const RESUME_RFLAGS: i64 = 0x202;

/// Why a test could not be run natively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NativeError {
    /// The code is longer than [`MAX_CODE_LEN`].
    CodeTooLong(usize),
    /// The data region overlaps the code block, is not page aligned, or is empty.
    BadDataRegion(u64),
    /// A system call in the parent failed (fork, mmap, waitpid).
    Sys(&'static str, i32),
    /// The child died while running this test (wait status), e.g. timeout.
    ChildDied(i32),
    /// The child could not map the data region (errno).
    MapFailed(i32),
}

impl fmt::Display for NativeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NativeError::CodeTooLong(n) => write!(f, "code is {n} bytes, limit {MAX_CODE_LEN}"),
            NativeError::BadDataRegion(a) => write!(f, "unusable data region at {a:#x}"),
            NativeError::Sys(what, e) => write!(f, "{what} failed: errno {e}"),
            NativeError::ChildDied(st) => {
                let (exited, code, sig) = (
                    libc::WIFEXITED(*st),
                    libc::WEXITSTATUS(*st),
                    libc::WTERMSIG(*st),
                );
                match (exited, code) {
                    (true, CHILD_EXIT_BLOCK) => write!(
                        f,
                        "native child could not map its code block at {CODE_ADDR:#x} \
                         (address in use?)"
                    ),
                    (true, c) if c > CHILD_EXIT_FAULT_BASE => write!(
                        f,
                        "native child: harness fault, signal {} outside the test code",
                        c - CHILD_EXIT_FAULT_BASE
                    ),
                    (true, c) => write!(f, "native child exited early with status {c}"),
                    (false, _) if sig == libc::SIGALRM => {
                        write!(f, "native child timed out after {BATCH_ALARM_SECS} s")
                    }
                    (false, _) => write!(f, "native child killed by signal {sig}"),
                }
            }
            NativeError::MapFailed(e) => write!(f, "child could not map data region: errno {e}"),
        }
    }
}

impl std::error::Error for NativeError {}

/// Run one test natively (forks one child).
pub fn run_native(code: &[u8], state: &UserState) -> Result<NativeOutcome, NativeError> {
    run_native_mode(code, state, ExecMode::Long64)
}

/// Run one test natively in `mode` (forks one child).
pub fn run_native_mode(
    code: &[u8],
    state: &UserState,
    mode: ExecMode,
) -> Result<NativeOutcome, NativeError> {
    let mut v = run_native_batch_mode(&[(code, state)], mode);
    v.pop().unwrap_or(Err(NativeError::Sys("batch", 0)))
}

/// Run many tests natively, forking one child per [`BATCH`] tests (and again after a
/// child dies). Results are in input order.
pub fn run_native_batch(tests: &[(&[u8], &UserState)]) -> Vec<Result<NativeOutcome, NativeError>> {
    run_native_batch_mode(tests, ExecMode::Long64)
}

/// [`run_native_batch`] in `mode`. In [`ExecMode::Compat32`] the upper halves of the
/// eight legacy GPRs in the outcome are 0 (only the low 32 bits are architectural).
pub fn run_native_batch_mode(
    tests: &[(&[u8], &UserState)],
    mode: ExecMode,
) -> Vec<Result<NativeOutcome, NativeError>> {
    let mut results: Vec<Option<Result<NativeOutcome, NativeError>>> = vec![None; tests.len()];
    // Validate first; invalid tests are not sent to the child.
    let mut runnable = Vec::new();
    for (i, (code, st)) in tests.iter().enumerate() {
        if code.len() > MAX_CODE_LEN {
            results[i] = Some(Err(NativeError::CodeTooLong(code.len())));
        } else if !data_region_ok(st) {
            results[i] = Some(Err(NativeError::BadDataRegion(st.data_addr)));
        } else {
            runnable.push(i);
        }
    }
    let stubs = Stubs::build(mode);
    let mut start = 0;
    while start < runnable.len() {
        let end = (start + BATCH).min(runnable.len());
        let chunk = &runnable[start..end];
        match run_child(tests, chunk, &stubs) {
            Ok((outs, done)) => {
                for (k, o) in outs.into_iter().enumerate() {
                    results[chunk[k]] = Some(o);
                }
                start += done.max(1);
            }
            Err(e) => {
                for &i in chunk {
                    results[i] = Some(Err(e.clone()));
                }
                start = end;
            }
        }
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or(Err(NativeError::Sys("missing result", 0))))
        .collect()
}

fn data_region_ok(st: &UserState) -> bool {
    let len = st.data.len() as u64;
    let end = st.data_addr.checked_add(round_page(st.data.len()) as u64);
    let block_end = CODE_ADDR + BLOCK_SIZE as u64;
    len > 0
        && st.data_addr.is_multiple_of(4096)
        && st.data_addr >= 0x10000
        && matches!(end, Some(e) if e <= CODE_ADDR || st.data_addr >= block_end)
        && end.is_some_and(|e| e < 0x7000_0000_0000)
}

fn round_page(n: usize) -> usize {
    (n + 4095) & !4095
}

/// Machine code of the entry stub, exit trampoline and fault-return stub.
struct Stubs {
    entry: Vec<u8>,
    exit: Vec<u8>,
    fault: Vec<u8>,
    /// 64-bit tail of the compatibility-mode exit (empty in 64-bit mode).
    exit_tail: Vec<u8>,
}

/// `mov [abs32], r64` (store) or `mov r64, [abs32]` (load) with SIB absolute addressing
/// (ModRM mod=00 rm=100, SIB base=101 index=100: `[disp32]`, not RIP-relative).
fn mov_abs(out: &mut Vec<u8>, store: bool, reg: u8, addr: u64) {
    let rex = 0x48 | ((reg >> 3) & 1) << 2;
    out.push(rex);
    out.push(if store { 0x89 } else { 0x8B });
    out.push(((reg & 7) << 3) | 0b100);
    out.push(0x25);
    out.extend_from_slice(&(addr as u32).to_le_bytes());
}

/// `fxsave64 [abs32]` (REX.W 0F AE /0) or `fxrstor64 [abs32]` (REX.W 0F AE /1).
fn fx_abs(out: &mut Vec<u8>, restore: bool, addr: u64) {
    out.extend_from_slice(&[0x48, 0x0F, 0xAE, if restore { 0x0C } else { 0x04 }, 0x25]);
    out.extend_from_slice(&(addr as u32).to_le_bytes());
}

fn restore_host_and_ret(out: &mut Vec<u8>, ret: u8) {
    fx_abs(out, true, HOST_FX);
    mov_abs(out, false, 4, HOST_RSP);
    for (k, &r) in CALLEE_SAVED.iter().enumerate() {
        mov_abs(out, false, r, HOST_SAVED + 8 * k as u64);
    }
    out.push(0xFC); // cld: the ABI requires DF = 0 on return
    out.extend_from_slice(&[0xB8, ret, 0, 0, 0]); // mov eax, ret
    out.push(0xC3); // ret
}

impl Stubs {
    fn build(mode: ExecMode) -> Stubs {
        let mut entry = Vec::new();
        if mode == ExecMode::Compat32 {
            // mov eax, USER_DS; mov ds, eax; mov es, eax
            entry.extend_from_slice(&[0xB8, USER_DS, 0, 0, 0, 0x8E, 0xD8, 0x8E, 0xC0]);
        }
        for (k, &r) in CALLEE_SAVED.iter().enumerate() {
            mov_abs(&mut entry, true, r, HOST_SAVED + 8 * k as u64);
        }
        mov_abs(&mut entry, true, 4, HOST_RSP);
        fx_abs(&mut entry, false, HOST_FX);
        fx_abs(&mut entry, true, IN_FX);
        // push qword [IN_RFLAGS]; popfq
        entry.extend_from_slice(&[0xFF, 0x34, 0x25]);
        entry.extend_from_slice(&(IN_RFLAGS as u32).to_le_bytes());
        entry.push(0x9D);
        for r in 0..16u8 {
            mov_abs(&mut entry, false, r, IN_GPR + 8 * r as u64);
        }
        if mode == ExecMode::Compat32 {
            // jmp far [FAR_PTR] (FF /5, m16:32): into the 32-bit code segment.
            entry.extend_from_slice(&[0xFF, 0x2C, 0x25]);
            entry.extend_from_slice(&(FAR_PTR as u32).to_le_bytes());
        } else {
            // jmp rel32 CODE_ADDR
            let after = CODE_ADDR as i64 + ENTRY_OFF as i64 + entry.len() as i64 + 5;
            entry.push(0xE9);
            entry.extend_from_slice(&((CODE_ADDR as i64 - after) as i32).to_le_bytes());
        }

        let mut exit = Vec::new();
        let mut exit_tail = Vec::new();
        if mode == ExecMode::Compat32 {
            // 32-bit code: mov [abs32], r32 (ModRM mod=00 rm=101 is disp32 here).
            for r in 0..8u8 {
                exit.extend_from_slice(&[0x89, (r << 3) | 0b101]);
                exit.extend_from_slice(&((OUT_GPR + 8 * r as u64) as u32).to_le_bytes());
            }
            // jmp far USER64_CS:EXIT_TAIL (EA ptr16:32)
            exit.push(0xEA);
            exit.extend_from_slice(&((CODE_ADDR + EXIT_TAIL_OFF as u64) as u32).to_le_bytes());
            exit.extend_from_slice(&USER64_CS.to_le_bytes());
            std::mem::swap(&mut exit, &mut exit_tail);
            for r in 8..16u8 {
                mov_abs(&mut exit, true, r, OUT_GPR + 8 * r as u64);
            }
            for r in 0..8u64 {
                // mov dword [OUT_GPR + 8r + 4], 0
                exit.extend_from_slice(&[0xC7, 0x04, 0x25]);
                exit.extend_from_slice(&((OUT_GPR + 8 * r + 4) as u32).to_le_bytes());
                exit.extend_from_slice(&0u32.to_le_bytes());
            }
        } else {
            for r in 0..16u8 {
                mov_abs(&mut exit, true, r, OUT_GPR + 8 * r as u64);
            }
        }
        // 64-bit code from here on in both modes.
        fx_abs(&mut exit, false, OUT_FX);
        mov_abs(&mut exit, false, 4, HOST_RSP);
        exit.push(0x9C); // pushfq
        exit.push(0x58); // pop rax
        mov_abs(&mut exit, true, 0, OUT_RFLAGS);
        // Mark "no exception".
        exit.extend_from_slice(&[0x48, 0xC7, 0x04, 0x25]); // mov qword [EXC_VECTOR], -1
        exit.extend_from_slice(&(EXC_VECTOR as u32).to_le_bytes());
        exit.extend_from_slice(&(-1i32).to_le_bytes());
        restore_host_and_ret(&mut exit, 0);

        let mut fault = Vec::new();
        restore_host_and_ret(&mut fault, 1);
        if mode == ExecMode::Compat32 {
            // `exit` holds the 64-bit tail, `exit_tail` the 32-bit head: put the head
            // after the code and the tail at EXIT_TAIL_OFF.
            std::mem::swap(&mut exit, &mut exit_tail);
        }
        Stubs {
            entry,
            exit,
            fault,
            exit_tail,
        }
    }
}

/// Per-test slot in the shared result memory.
#[repr(C)]
#[derive(Clone, Copy)]
struct Slot {
    gpr: [u64; 16],
    rflags: u64,
    /// -1 = none, else the vector.
    vector: i64,
    /// CR2 (valid for vector 14).
    cr2: u64,
    /// 0 = not run, 1 = ran, 2 = could not map the data region (errno in `cr2`).
    status: u64,
    /// FXSAVE image afterwards.
    fx: [u8; 512],
}

/// Shared (`MAP_SHARED`) memory for one batch: a done counter, slots, then data bytes.
struct Shared {
    ptr: *mut u8,
    len: usize,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // SAFETY: ptr/len came from a successful mmap and are unmapped exactly once.
        unsafe {
            libc::munmap(self.ptr.cast(), self.len);
        }
    }
}

/// Everything the child needs, computed before `fork` so that the child performs no
/// allocation (the parent may be multithreaded; only async-signal-safe work after fork).
struct ChildPlan<'a> {
    tests: Vec<(&'a [u8], &'a UserState)>,
    data_off: Vec<usize>,
    shared: *mut u8,
    stubs: &'a Stubs,
}

fn run_child(
    all: &[(&[u8], &UserState)],
    chunk: &[usize],
    stubs: &Stubs,
) -> Result<(Vec<Result<NativeOutcome, NativeError>>, usize), NativeError> {
    let slots_off = 64usize;
    let data_base = slots_off + chunk.len() * std::mem::size_of::<Slot>();
    let mut data_off = Vec::with_capacity(chunk.len());
    let mut total = data_base;
    for &i in chunk {
        data_off.push(total);
        total += (all[i].1.data.len() + 7) & !7;
    }
    // SAFETY: anonymous shared mapping of `total` bytes; checked for MAP_FAILED.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            total,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(NativeError::Sys("mmap shared", errno()));
    }
    let shared = Shared {
        ptr: p.cast(),
        len: total,
    };
    let plan = ChildPlan {
        tests: chunk.iter().map(|&i| all[i]).collect(),
        data_off,
        shared: shared.ptr,
        stubs,
    };
    // SAFETY: fork; the child only runs `child_main`, which uses raw memory and
    // async-signal-safe system calls and never returns (it calls `_exit`).
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(NativeError::Sys("fork", errno()));
    }
    if pid == 0 {
        // SAFETY: we are the freshly forked child; see `child_main`.
        unsafe { child_main(&plan, slots_off) }
    }
    let mut status = 0i32;
    loop {
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        if r < 0 && errno() != libc::EINTR {
            return Err(NativeError::Sys("waitpid", errno()));
        }
    }
    // SAFETY: the child has exited; the shared memory is ours, sized as computed above.
    let done = unsafe { ptr::read_volatile(shared.ptr.cast::<u64>()) } as usize;
    let mut outs = Vec::new();
    for k in 0..chunk.len().min(done) {
        // SAFETY: slot k lies within the mapping (slots_off + k*size < data_base <= total).
        let slot: Slot = unsafe {
            ptr::read_unaligned(
                shared
                    .ptr
                    .add(slots_off + k * std::mem::size_of::<Slot>())
                    .cast(),
            )
        };
        let len = plan.tests[k].1.data.len();
        let off = plan.data_off[k];
        // SAFETY: [off, off+len) lies within the mapping by construction of data_off.
        let data = unsafe { std::slice::from_raw_parts(shared.ptr.add(off), len) }.to_vec();
        if slot.status == 2 {
            outs.push(Err(NativeError::MapFailed(slot.cr2 as i32)));
            continue;
        }
        let exception = if slot.vector < 0 {
            None
        } else {
            let v = slot.vector as u8;
            Some((v, (v == 14).then_some(slot.cr2)))
        };
        outs.push(Ok(NativeOutcome {
            gpr: slot.gpr,
            rflags: slot.rflags,
            data,
            exception,
            fx: super::FxImage(slot.fx),
        }));
    }
    if done < chunk.len() {
        outs.push(Err(NativeError::ChildDied(status)));
    }
    let consumed = outs.len();
    Ok((outs, consumed))
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Signal handler: record the exception from the ucontext and resume at the
/// fault-return stub. Faults outside the code page are harness bugs: exit at once.
extern "C" fn on_fault(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: installed with SA_SIGINFO, so `info` and `ctx` are valid kernel-provided
    // pointers; the save area at SAVE is mapped in the child for its whole life.
    unsafe {
        let uc = &mut *ctx.cast::<libc::ucontext_t>();
        let g = &mut uc.uc_mcontext.gregs;
        let rip = g[libc::REG_RIP as usize] as u64;
        if !(CODE_ADDR..CODE_ADDR + CODE_REGION_END as u64).contains(&rip) {
            libc::_exit(CHILD_EXIT_FAULT_BASE + sig);
        }
        let order = [
            libc::REG_RAX,
            libc::REG_RCX,
            libc::REG_RDX,
            libc::REG_RBX,
            libc::REG_RSP,
            libc::REG_RBP,
            libc::REG_RSI,
            libc::REG_RDI,
            libc::REG_R8,
            libc::REG_R9,
            libc::REG_R10,
            libc::REG_R11,
            libc::REG_R12,
            libc::REG_R13,
            libc::REG_R14,
            libc::REG_R15,
        ];
        let out = OUT_GPR as *mut u64;
        for (k, &r) in order.iter().enumerate() {
            ptr::write_volatile(out.add(k), g[r as usize] as u64);
        }
        ptr::write_volatile(OUT_RFLAGS as *mut u64, g[libc::REG_EFL as usize] as u64);
        let trapno = g[libc::REG_TRAPNO as usize];
        let vector: i64 = if (0..32).contains(&trapno) {
            trapno
        } else {
            match sig {
                libc::SIGFPE => 0,
                libc::SIGILL => 6,
                libc::SIGBUS => 17,
                libc::SIGTRAP => 3,
                _ => 13,
            }
        };
        ptr::write_volatile(EXC_VECTOR as *mut i64, vector);
        ptr::write_volatile(EXC_CR2 as *mut u64, (*info).si_addr() as u64);
        // The FP/SIMD state at the fault: the kernel saved it into the signal
        // frame, whose first 512 bytes are in FXSAVE format.
        let fp = uc.uc_mcontext.fpregs;
        if fp.is_null() {
            ptr::write_bytes(OUT_FX as *mut u8, 0, 512);
        } else {
            ptr::copy_nonoverlapping(fp.cast::<u8>(), OUT_FX as *mut u8, 512);
        }
        g[libc::REG_RIP as usize] = (CODE_ADDR + FAULT_OFF as u64) as i64;
        // Resume in 64-bit mode (the fault may have come from compatibility mode).
        let csgsfs = &mut g[libc::REG_CSGSFS as usize];
        *csgsfs = (*csgsfs & !0xFFFF) | USER64_CS as i64;
        g[libc::REG_EFL as usize] = RESUME_RFLAGS;
    }
}

/// The child: set up the fixed mappings and signal handlers, run every test of the
/// plan, write results to shared memory, `_exit(0)`.
///
/// # Safety
/// Must only be called in a freshly forked child; never returns.
unsafe fn child_main(plan: &ChildPlan<'_>, slots_off: usize) -> ! {
    // SAFETY (whole function): raw system calls and writes to memory this child maps
    // itself or to the shared mapping, at offsets computed by the parent.
    unsafe {
        // The parent may ignore SIGALRM or block signals; the child needs the default
        // (terminate) action for its timeout and must receive its fault signals.
        libc::signal(libc::SIGALRM, libc::SIG_DFL);
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, ptr::null_mut());
        libc::alarm(BATCH_ALARM_SECS);
        let block = libc::mmap(
            CODE_ADDR as *mut libc::c_void,
            BLOCK_SIZE,
            libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        );
        if block != CODE_ADDR as *mut libc::c_void {
            libc::_exit(CHILD_EXIT_BLOCK);
        }
        let block = block.cast::<u8>();
        let s = plan.stubs;
        ptr::copy_nonoverlapping(s.entry.as_ptr(), block.add(ENTRY_OFF), s.entry.len());
        ptr::copy_nonoverlapping(s.fault.as_ptr(), block.add(FAULT_OFF), s.fault.len());
        let tail = s.exit_tail.len().min(0x1000 - EXIT_TAIL_OFF);
        ptr::copy_nonoverlapping(s.exit_tail.as_ptr(), block.add(EXIT_TAIL_OFF), tail);
        ptr::write_unaligned(FAR_PTR as *mut u32, CODE_ADDR as u32);
        ptr::write_unaligned((FAR_PTR + 4) as *mut u16, USER32_CS);

        let alt = libc::mmap(
            ptr::null_mut(),
            ALT_STACK_SIZE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if alt == libc::MAP_FAILED {
            libc::_exit(CHILD_EXIT_SETUP);
        }
        let ss = libc::stack_t {
            ss_sp: alt,
            ss_flags: 0,
            ss_size: ALT_STACK_SIZE,
        };
        if libc::sigaltstack(&ss, ptr::null_mut()) != 0 {
            libc::_exit(CHILD_EXIT_SETUP);
        }
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_fault as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        libc::sigemptyset(&mut sa.sa_mask);
        for sig in [
            libc::SIGSEGV,
            libc::SIGBUS,
            libc::SIGFPE,
            libc::SIGILL,
            libc::SIGTRAP,
        ] {
            if libc::sigaction(sig, &sa, ptr::null_mut()) != 0 {
                libc::_exit(CHILD_EXIT_SETUP);
            }
        }

        let entry: extern "sysv64" fn() -> u64 =
            std::mem::transmute(CODE_ADDR as usize + ENTRY_OFF);
        let mut mapped: (u64, usize) = (0, 0);
        for (k, (code, st)) in plan.tests.iter().enumerate() {
            let slot = plan
                .shared
                .add(slots_off + k * std::mem::size_of::<Slot>())
                .cast::<Slot>();
            let want = (st.data_addr, round_page(st.data.len()));
            if mapped != want {
                if mapped.1 != 0 {
                    libc::munmap(mapped.0 as *mut libc::c_void, mapped.1);
                    mapped = (0, 0);
                }
                let p = libc::mmap(
                    want.0 as *mut libc::c_void,
                    want.1,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
                    -1,
                    0,
                );
                if p as u64 != want.0 {
                    let e = *libc::__errno_location();
                    if p != libc::MAP_FAILED {
                        libc::munmap(p, want.1);
                    }
                    (*slot).status = 2;
                    (*slot).cr2 = e as u64;
                    ptr::write_volatile(plan.shared.cast::<u64>(), k as u64 + 1);
                    continue;
                }
                mapped = want;
            }
            let data = st.data_addr as *mut u8;
            ptr::copy_nonoverlapping(st.data.as_ptr(), data, st.data.len());
            ptr::write_bytes(data.add(st.data.len()), 0, want.1 - st.data.len());
            ptr::copy_nonoverlapping(code.as_ptr(), block, code.len());
            ptr::copy_nonoverlapping(s.exit.as_ptr(), block.add(code.len()), s.exit.len());
            ptr::copy_nonoverlapping(st.gpr.as_ptr(), IN_GPR as *mut u64, 16);
            ptr::write_volatile(IN_RFLAGS as *mut u64, st.rflags);
            ptr::copy_nonoverlapping(st.fx.0.as_ptr(), IN_FX as *mut u8, 512);

            entry();

            ptr::copy_nonoverlapping(OUT_GPR as *const u64, (*slot).gpr.as_mut_ptr(), 16);
            (*slot).rflags = ptr::read_volatile(OUT_RFLAGS as *const u64);
            (*slot).vector = ptr::read_volatile(EXC_VECTOR as *const i64);
            (*slot).cr2 = ptr::read_volatile(EXC_CR2 as *const u64);
            (*slot).status = 1;
            ptr::copy_nonoverlapping(OUT_FX as *const u8, (*slot).fx.as_mut_ptr(), 512);
            ptr::copy_nonoverlapping(data, plan.shared.add(plan.data_off[k]), st.data.len());
            ptr::write_volatile(plan.shared.cast::<u64>(), k as u64 + 1);
        }
        libc::_exit(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::{DATA_ADDR, DATA_SIZE, RSP};

    fn state() -> UserState {
        let mut gpr = [0u64; 16];
        for (i, g) in gpr.iter_mut().enumerate() {
            *g = 0x1111_1111_1111_1111u64.wrapping_mul(i as u64 + 1);
        }
        gpr[RSP] = DATA_ADDR + 0x800;
        UserState {
            gpr,
            rflags: 0x202,
            data: vec![0xAA; DATA_SIZE],
            data_addr: DATA_ADDR,
            fx: crate::conformance::FxImage::default(),
        }
    }

    #[test]
    fn add_sets_registers_and_flags() {
        let mut st = state();
        st.gpr[0] = u64::MAX;
        st.gpr[1] = 1;
        // add rax, rcx
        let o = run_native(&[0x48, 0x01, 0xC8], &st).expect("native run");
        assert_eq!(o.gpr[0], 0);
        assert_eq!(o.gpr[1], 1);
        assert_eq!(o.gpr[RSP], DATA_ADDR + 0x800);
        // CF, PF, AF, ZF set; SF, OF clear.
        assert_eq!(o.rflags & 0x8D5, 0x55);
        assert_eq!(o.exception, None);
        assert_eq!(o.gpr[15], st.gpr[15]);
    }

    #[test]
    fn push_writes_data_region() {
        let mut st = state();
        st.gpr[3] = 0x0102_0304_0506_0708;
        // push rbx
        let o = run_native(&[0x53], &st).expect("native run");
        assert_eq!(o.gpr[RSP], DATA_ADDR + 0x7F8);
        assert_eq!(
            &o.data[0x7F8..0x800],
            &0x0102_0304_0506_0708u64.to_le_bytes()
        );
        assert_eq!(o.data[0x7F7], 0xAA);
    }

    #[test]
    fn divide_by_zero_is_de_and_state_is_kept() {
        let mut st = state();
        st.gpr[1] = 0;
        // div rcx
        let o = run_native(&[0x48, 0xF7, 0xF1], &st).expect("native run");
        assert_eq!(o.exception, Some((0, None)));
        assert_eq!(o.gpr, st.gpr);
    }

    #[test]
    fn faults_map_to_vectors() {
        let mut st = state();
        st.gpr[0] = 0x50; // unmapped low page
        st.gpr[1] = 0x8000_0000_0000_0000; // non-canonical
        let tests: Vec<(Vec<u8>, UserState)> = vec![
            (vec![0x8B, 0x18], st.clone()),       // mov ebx,[rax]  -> #PF cr2=0x50
            (vec![0x0F, 0x0B], st.clone()),       // ud2            -> #UD
            (vec![0x8B, 0x19], st.clone()),       // mov ebx,[rcx]  -> #GP
            (vec![0xCC], st.clone()),             // int3           -> #BP
            (vec![0x48, 0x01, 0xC8], st.clone()), // still works after faults
        ];
        let refs: Vec<(&[u8], &UserState)> = tests.iter().map(|(c, s)| (&c[..], s)).collect();
        let r = run_native_batch(&refs);
        assert_eq!(
            r[0].as_ref().map(|o| o.exception),
            Ok(Some((14, Some(0x50))))
        );
        assert_eq!(r[1].as_ref().map(|o| o.exception), Ok(Some((6, None))));
        assert_eq!(r[2].as_ref().map(|o| o.exception), Ok(Some((13, None))));
        assert_eq!(r[3].as_ref().map(|o| o.exception), Ok(Some((3, None))));
        let last = r[4].as_ref().expect("ran");
        assert_eq!(last.exception, None);
        assert_eq!(last.gpr[0], st.gpr[0].wrapping_add(st.gpr[1]));
    }

    #[test]
    fn stubs_fit_their_slots() {
        for mode in [ExecMode::Long64, ExecMode::Compat32] {
            let s = Stubs::build(mode);
            assert!(s.entry.len() <= FAULT_OFF - ENTRY_OFF);
            assert!(s.fault.len() <= EXIT_TAIL_OFF - FAULT_OFF);
            assert!(s.exit_tail.len() <= 0x1000 - EXIT_TAIL_OFF);
            assert!(MAX_CODE_LEN + s.exit.len() <= CODE_REGION_END);
        }
    }

    #[test]
    fn compatibility_mode_runs_32_bit_code() {
        let mut st = state();
        st.gpr[0] = 0xDEAD_BEEF_FFFF_FFFF;
        st.gpr[1] = 1;
        st.gpr[3] = 0x1122_3344_5566_7788;
        let tests: Vec<(Vec<u8>, UserState)> = vec![
            (vec![0x01, 0xC8], st.clone()), // add eax, ecx
            (vec![0x53], st.clone()),       // push ebx (4 bytes)
            (vec![0x40], st.clone()),       // inc eax (not a REX prefix here)
            (vec![0xF7, 0xF7], {
                // div edi with edi = 0
                let mut s = st.clone();
                s.gpr[7] = 0xFFFF_FFFF_0000_0000;
                s
            }),
            (vec![0x8B, 0x18], {
                // mov ebx, [eax] with eax = 0x50
                let mut s = st.clone();
                s.gpr[0] = 0x50;
                s
            }),
        ];
        let refs: Vec<(&[u8], &UserState)> = tests.iter().map(|(c, s)| (&c[..], s)).collect();
        let r = run_native_batch_mode(&refs, ExecMode::Compat32);
        let add = r[0].as_ref().expect("add");
        assert_eq!(add.exception, None);
        assert_eq!(add.gpr[0], 0);
        assert_eq!(add.rflags & 0x41, 0x41, "CF and ZF");
        for i in 8..16 {
            assert_eq!(add.gpr[i], st.gpr[i], "r{i} preserved");
        }
        let push = r[1].as_ref().expect("push");
        assert_eq!(push.gpr[RSP], (DATA_ADDR + 0x800 - 4) & 0xFFFF_FFFF);
        assert_eq!(&push.data[0x7FC..0x800], &0x5566_7788u32.to_le_bytes());
        assert_eq!(push.data[0x7FB], 0xAA);
        let inc = r[2].as_ref().expect("inc");
        assert_eq!(inc.gpr[0], 0, "inc eax wraps; upper half not reported");
        assert_eq!(r[3].as_ref().map(|o| o.exception), Ok(Some((0, None))));
        assert_eq!(
            r[4].as_ref().map(|o| o.exception),
            Ok(Some((14, Some(0x50))))
        );
        // A 64-bit test still works after the 32-bit batch (separate child, same API).
        let o = run_native(&[0x48, 0x01, 0xC8], &st).expect("64-bit");
        assert_eq!(o.gpr[0], st.gpr[0].wrapping_add(1));
    }

    #[test]
    fn fp_state_is_loaded_and_stored() {
        let mut st = state();
        st.fx.set_xmm(1, 0x1122_3344_5566_7788_99AA_BBCC_DDEE_FF00);
        st.fx.set_xmm(15, 7);
        st.fx.set_mxcsr(0x1F80 | 0x6000); // round toward zero
        st.fx.set_st(3, 0xC000_0000_0000_0000, 0x4000);
        st.fx.0[4] = 0x08; // R3 (= ST3 with TOP 0) valid
        let tests: Vec<(Vec<u8>, UserState)> = vec![
            (vec![0x0F, 0x28, 0xC1], st.clone()), // movaps xmm0, xmm1
            (vec![0x0F, 0x0B], st.clone()),       // ud2: state at the fault
            (vec![0x90], state()),                // default image
        ];
        let refs: Vec<(&[u8], &UserState)> = tests.iter().map(|(c, s)| (&c[..], s)).collect();
        for mode in [ExecMode::Long64, ExecMode::Compat32] {
            let r = run_native_batch_mode(&refs, mode);
            let mov = r[0].as_ref().expect("movaps");
            assert_eq!(mov.fx.xmm(0), st.fx.xmm(1));
            assert_eq!(mov.fx.xmm(1), st.fx.xmm(1));
            assert_eq!(mov.fx.xmm(15), 7);
            assert_eq!(mov.fx.mxcsr(), 0x7F80);
            assert_eq!(mov.fx.st(3), (0xC000_0000_0000_0000, 0x4000));
            assert_eq!(mov.fx.0[4], 0x08);
            let ud = r[1].as_ref().expect("ud2");
            assert_eq!(ud.exception, Some((6, None)));
            assert_eq!(ud.fx.xmm(1), st.fx.xmm(1));
            assert_eq!(ud.fx.mxcsr(), 0x7F80);
            assert_eq!(ud.fx.st(3), (0xC000_0000_0000_0000, 0x4000));
            let nop = r[2].as_ref().expect("nop");
            let d = crate::conformance::fximage::diff(
                &nop.fx,
                &crate::conformance::FxImage::default(),
                &crate::conformance::FxImage::zeroed(),
            );
            assert!(d.is_empty(), "{d:?}");
            assert_eq!(
                nop.fx.u32_at(28) & !host_mxcsr_mask_extra(),
                crate::cpu::simd::MXCSR_MASK,
                "MXCSR_MASK"
            );
        }
    }

    #[test]
    fn overlong_code_is_rejected_without_fork() {
        // A code length over the limit is rejected without forking.
        let st = state();
        let big = vec![0x90; MAX_CODE_LEN + 1];
        assert_eq!(
            run_native(&big, &st),
            Err(NativeError::CodeTooLong(MAX_CODE_LEN + 1))
        );
    }
}
