// CRC-32C with the CPU's own instruction, for RocketMQStore's CRC32C (which keeps its table
// version for CPUs without one). C because Swift cannot ask for one function to be compiled
// for an instruction-set extension: the target attribute below does that here, so the rest of
// the program still runs on any x86-64 or AArch64 CPU.

#include "crc32c.h"

#include <string.h>

#if defined(__x86_64__)
#include <nmmintrin.h>

// Long inputs are split into three lanes of LANE bytes whose CRCs are computed side by side:
// the instruction has a latency of 3 cycles but issues every cycle, so one dependent chain uses
// a third of it. The CRC register is linear over GF(2): crc(s, A||B) = shift(crc(s, A), |B|) ^
// crc(0, B), where shift(r, n) is the register after n zero bytes. shift by LANE bytes is a
// table per byte of the register (four tables of 256), filled once when the CPU's instruction
// is found.
#define LANE 256
static uint32_t lane_shift[4][256];

__attribute__((target("sse4.2")))
static void fill_lane_shift(void) {
    for (int k = 0; k < 4; k++) {
        for (uint32_t b = 0; b < 256; b++) {
            uint64_t r = (uint64_t)b << (8 * k);
            for (int i = 0; i < LANE / 8; i++) r = _mm_crc32_u64(r, 0);
            lane_shift[k][b] = (uint32_t)r;
        }
    }
}

static inline uint32_t shift_lane(uint32_t r) {
    return lane_shift[0][r & 0xFF] ^ lane_shift[1][(r >> 8) & 0xFF] ^ lane_shift[2][(r >> 16) & 0xFF] ^ lane_shift[3][r >> 24];
}

int rocketmq_crc32c_hardware_available(void) {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("sse4.2")) return 0;
    fill_lane_shift();  // before any update: callers ask once, before their first update
    return 1;
}

__attribute__((target("sse4.2")))
uint32_t rocketmq_crc32c_hardware_update(uint32_t crc, const void *bytes, size_t count) {
    const unsigned char *p = bytes;
    uint32_t c = ~crc;
    while (count > 0 && ((uintptr_t)p & 7) != 0) {
        c = _mm_crc32_u8(c, *p++);
        count--;
    }
    uint64_t c64 = c;
    while (count >= 3 * LANE) {
        uint64_t a = c64, b = 0, d = 0;
        for (int i = 0; i < LANE; i += 8) {
            uint64_t wa, wb, wd;
            memcpy(&wa, p + i, 8);
            memcpy(&wb, p + LANE + i, 8);
            memcpy(&wd, p + 2 * LANE + i, 8);
            a = _mm_crc32_u64(a, wa);
            b = _mm_crc32_u64(b, wb);
            d = _mm_crc32_u64(d, wd);
        }
        c64 = shift_lane(shift_lane((uint32_t)a) ^ (uint32_t)b) ^ (uint32_t)d;
        p += 3 * LANE;
        count -= 3 * LANE;
    }
    while (count >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        c64 = _mm_crc32_u64(c64, word);
        p += 8;
        count -= 8;
    }
    c = (uint32_t)c64;
    while (count > 0) {
        c = _mm_crc32_u8(c, *p++);
        count--;
    }
    return ~c;
}

#elif defined(__aarch64__) && defined(__linux__)
#include <arm_acle.h>
#include <asm/hwcap.h>
#include <sys/auxv.h>

int rocketmq_crc32c_hardware_available(void) {
    return (getauxval(AT_HWCAP) & HWCAP_CRC32) != 0;
}

__attribute__((target("+crc")))
uint32_t rocketmq_crc32c_hardware_update(uint32_t crc, const void *bytes, size_t count) {
    const unsigned char *p = bytes;
    uint32_t c = ~crc;
    while (count > 0 && ((uintptr_t)p & 7) != 0) {
        c = __crc32cb(c, *p++);
        count--;
    }
    while (count >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        c = __crc32cd(c, word);
        p += 8;
        count -= 8;
    }
    while (count > 0) {
        c = __crc32cb(c, *p++);
        count--;
    }
    return ~c;
}

#else

int rocketmq_crc32c_hardware_available(void) { return 0; }

uint32_t rocketmq_crc32c_hardware_update(uint32_t crc, const void *bytes, size_t count) {
    (void)bytes;
    (void)count;
    return crc;
}

#endif
