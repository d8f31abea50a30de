/* cpuid_mask: make one process (and the processes it starts) see an AVX2-only x86 CPU.
 *
 * Loaded with LD_PRELOAD (see tools/avx2-only). Its constructor turns on Linux's CPUID faulting for
 * the process (arch_prctl(ARCH_SET_CPUID, 0): every CPUID instruction then traps with SIGSEGV) and
 * installs a SIGSEGV handler that executes the real CPUID, clears the feature bits of AVX-512, AVX-VNNI,
 * AVX512-BF16/FP16 and AMX, and resumes after the instruction. Every library that dispatches on CPUID
 * (ONNX Runtime's MLAS, oneDNN and OpenVINO, OpenCV, numpy) then picks the kernels it would pick on an
 * AVX2 + FMA CPU such as an AMD EPYC Zen 3. The setting is inherited by threads; a child process that
 * is exec'ed loads this library again through LD_PRELOAD.
 *
 * Limits: glibc chose its own string functions before the constructor ran (set GLIBC_TUNABLES, as
 * tools/avx2-only does); XGETBV is not trapped (libraries check CPUID first); a library that later
 * installs its own SIGSEGV handler without chaining would break the emulation (none of ours does).
 * Needs a CPU and kernel with CPUID faulting ("cpuid_fault" in /proc/cpuinfo); exits with status 97
 * and a message otherwise, rather than running unmasked.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#ifndef ARCH_SET_CPUID
#define ARCH_SET_CPUID 0x1012
#endif

#define BIT(n) (1u << (n))

static struct sigaction previous_action;
static volatile unsigned long emulated;

static void real_cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4]) {
    __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}

/* Clear what an AVX2-only CPU does not have. Leaf 7 bit numbers: Intel SDM Vol. 2A, CPUID. */
static void mask_features(uint32_t leaf, uint32_t sub, uint32_t r[4]) {
    if (leaf == 7 && sub == 0) {
        /* EBX: AVX512F 16, DQ 17, IFMA 21, PF 26, ER 27, CD 28, BW 30, VL 31 */
        r[1] &= ~(BIT(16) | BIT(17) | BIT(21) | BIT(26) | BIT(27) | BIT(28) | BIT(30) | BIT(31));
        /* ECX: AVX512_VBMI 1, VBMI2 6, VNNI 11, BITALG 12, VPOPCNTDQ 14 */
        r[2] &= ~(BIT(1) | BIT(6) | BIT(11) | BIT(12) | BIT(14));
        /* EDX: 4VNNIW 2, 4FMAPS 3, VP2INTERSECT 8, AMX_BF16 22, AVX512_FP16 23, AMX_TILE 24, AMX_INT8 25 */
        r[3] &= ~(BIT(2) | BIT(3) | BIT(8) | BIT(22) | BIT(23) | BIT(24) | BIT(25));
    } else if (leaf == 7 && sub == 1) {
        /* EAX: AVX_VNNI 4, AVX512_BF16 5, AMX_FP16 21, AVX_IFMA 23; EDX: AVX_VNNI_INT8 4,
         * AVX_NE_CONVERT 5, AMX_COMPLEX 8, AVX_VNNI_INT16 10, AVX10 19 */
        r[0] &= ~(BIT(4) | BIT(5) | BIT(21) | BIT(23));
        r[3] &= ~(BIT(4) | BIT(5) | BIT(8) | BIT(10) | BIT(19));
    } else if (leaf == 0xd && sub == 0) {
        /* XCR0 components the CPU supports: opmask 5, ZMM_Hi256 6, Hi16_ZMM 7, XTILECFG 17, XTILEDATA 18 */
        r[0] &= ~(BIT(5) | BIT(6) | BIT(7) | BIT(17) | BIT(18));
    } else if (leaf == 0x1d || leaf == 0x1e || leaf == 0x24) {
        r[0] = r[1] = r[2] = r[3] = 0; /* AMX tile / TMUL information, AVX10 information */
    }
}

static void on_sigsegv(int sig, siginfo_t *info, void *context) {
    ucontext_t *uc = (ucontext_t *)context;
    greg_t *g = uc->uc_mcontext.gregs;
    const unsigned char *ip = (const unsigned char *)g[REG_RIP];
    if (ip[0] == 0x0f && ip[1] == 0xa2) { /* CPUID */
        uint32_t r[4];
        uint32_t leaf = (uint32_t)g[REG_RAX], sub = (uint32_t)g[REG_RCX];
        syscall(SYS_arch_prctl, ARCH_SET_CPUID, 1);
        real_cpuid(leaf, sub, r);
        syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0);
        mask_features(leaf, sub, r);
        g[REG_RAX] = r[0];
        g[REG_RBX] = r[1];
        g[REG_RCX] = r[2];
        g[REG_RDX] = r[3];
        g[REG_RIP] += 2;
        emulated++;
        return;
    }
    /* a real fault: hand it to whoever had SIGSEGV before, or die as the process would have */
    if ((previous_action.sa_flags & SA_SIGINFO) && previous_action.sa_sigaction) {
        previous_action.sa_sigaction(sig, info, context);
    } else if (previous_action.sa_handler != SIG_DFL && previous_action.sa_handler != SIG_IGN) {
        previous_action.sa_handler(sig);
    } else {
        signal(SIGSEGV, SIG_DFL); /* returning re-executes the faulting instruction: default action */
    }
}

unsigned long cpuid_mask_emulated(void) { return emulated; }

__attribute__((constructor)) static void cpuid_mask_init(void) {
    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_sigaction = on_sigsegv;
    action.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&action.sa_mask);
    if (sigaction(SIGSEGV, &action, &previous_action) != 0 ||
        syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0) != 0) {
        fprintf(stderr, "cpuid_mask: this CPU/kernel cannot trap CPUID (no 'cpuid_fault' in /proc/cpuinfo?); "
                        "refusing to run unmasked\n");
        _exit(97);
    }
}
