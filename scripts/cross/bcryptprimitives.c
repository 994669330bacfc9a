/* A stand-in for Windows' bcryptprimitives.dll under Wine 8, which lacks it:
 * Rust's std (1.78+) imports ProcessPrng from it for HashMap seeds and
 * random numbers. Built by scripts/cross-hosts.sh with Debian's mingw-w64 and
 * placed beside the test executables; real Windows has its own DLL and never
 * loads this one. ProcessPrng fills the buffer from RtlGenRandom
 * (advapi32!SystemFunction036), which Wine has. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
