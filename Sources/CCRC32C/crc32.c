// CRC-32 (IEEE 802.3, zlib's; reflected polynomial 0xEDB88320) with the CPU's help, for the
// body digest the RocketMQ protocol puts on every delivered message. The broker computed it with
// slicing-by-16 tables, ~3.4% of its CPU while serving consumers (1 KiB bodies).
//
// x86-64: carry-less multiplication (PCLMULQDQ) folds the input 64 bytes per step, and a Barrett
// reduction turns the last 128 bits into the CRC (the method of Gopal et al., "Fast CRC
// Computation for Generic Polynomials Using PCLMULQDQ Instruction", Intel, 2009). The folding
// constants are x^n mod P(x) for this polynomial, bit-reflected, as that paper derives them.
// AArch64: the CRC32X instruction (the IEEE polynomial, unlike CRC32CX).

#include "crc32c.h"

#include <string.h>

static uint32_t byte_table[256];

static void fill_byte_table(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
        byte_table[i] = c;
    }
}

// The register (not inverted) after `count` bytes, one at a time.
static inline uint32_t bytes_update(uint32_t c, const unsigned char *p, size_t count) {
    while (count--) c = byte_table[(c ^ *p++) & 0xFF] ^ (c >> 8);
    return c;
}

#if defined(__x86_64__)
#include <immintrin.h>

int rocketmq_crc32_hardware_available(void) {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("pclmul") || !__builtin_cpu_supports("sse4.1")) return 0;
    fill_byte_table();  // before any update: callers ask once, before their first update
    return 1;
}

__attribute__((target("pclmul,sse4.1")))
static inline __m128i fold(__m128i x, __m128i k, __m128i next) {
    // x.lo * k.lo ^ x.hi * k.hi: the 128 bits moved `k`'s distance ahead, added to what is there.
    return _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00), _mm_clmulepi64_si128(x, k, 0x11)), next);
}

// The register after a whole number of 16-byte blocks, at least four of them.
__attribute__((target("pclmul,sse4.1")))
static uint32_t fold_blocks(uint32_t c, const unsigned char *p, size_t count) {
    const __m128i k1k2 = _mm_set_epi64x(0x1c6e41596, 0x154442bd4);  // x^(4*128+32), x^(4*128-32) mod P
    const __m128i k3k4 = _mm_set_epi64x(0x0ccaa009e, 0x1751997d0);  // x^(128+32), x^(128-32) mod P
    const __m128i k5 = _mm_set_epi64x(0, 0x163cd6124);              // x^64 mod P
    const __m128i poly = _mm_set_epi64x(0x1f7011641, 0x1db710641);  // mu = x^64 / P, and P itself
    const __m128i mask32 = _mm_set_epi32(0, 0, 0, -1);

    __m128i x1 = _mm_xor_si128(_mm_loadu_si128((const __m128i *)p), _mm_cvtsi32_si128((int)c));
    __m128i x2 = _mm_loadu_si128((const __m128i *)(p + 16));
    __m128i x3 = _mm_loadu_si128((const __m128i *)(p + 32));
    __m128i x4 = _mm_loadu_si128((const __m128i *)(p + 48));
    p += 64;
    count -= 64;
    while (count >= 64) {
        x1 = fold(x1, k1k2, _mm_loadu_si128((const __m128i *)p));
        x2 = fold(x2, k1k2, _mm_loadu_si128((const __m128i *)(p + 16)));
        x3 = fold(x3, k1k2, _mm_loadu_si128((const __m128i *)(p + 32)));
        x4 = fold(x4, k1k2, _mm_loadu_si128((const __m128i *)(p + 48)));
        p += 64;
        count -= 64;
    }
    x1 = fold(x1, k3k4, x2);
    x1 = fold(x1, k3k4, x3);
    x1 = fold(x1, k3k4, x4);
    while (count >= 16) {
        x1 = fold(x1, k3k4, _mm_loadu_si128((const __m128i *)p));
        p += 16;
        count -= 16;
    }
    // 128 bits to 64 (appending the 32 zero bits the CRC's definition shifts in).
    x1 = _mm_xor_si128(_mm_srli_si128(x1, 8), _mm_clmulepi64_si128(x1, k3k4, 0x10));
    // 64 to 32.
    x1 = _mm_xor_si128(_mm_srli_si128(x1, 4), _mm_clmulepi64_si128(_mm_and_si128(x1, mask32), k5, 0x00));
    // Barrett reduction: the remainder modulo P without a division.
    __m128i t = _mm_clmulepi64_si128(_mm_and_si128(x1, mask32), poly, 0x10);
    t = _mm_clmulepi64_si128(_mm_and_si128(t, mask32), poly, 0x00);
    return (uint32_t)_mm_extract_epi32(_mm_xor_si128(x1, t), 1);
}

uint32_t rocketmq_crc32_hardware_update(uint32_t crc, const void *bytes, size_t count) {
    const unsigned char *p = bytes;
    uint32_t c = ~crc;
    if (count >= 64) {
        size_t bulk = count & ~(size_t)15;
        c = fold_blocks(c, p, bulk);
        p += bulk;
        count -= bulk;
    }
    return ~bytes_update(c, p, count);
}

#elif defined(__aarch64__) && defined(__linux__)
#include <arm_acle.h>
#include <asm/hwcap.h>
#include <sys/auxv.h>

int rocketmq_crc32_hardware_available(void) {
    if ((getauxval(AT_HWCAP) & HWCAP_CRC32) == 0) return 0;
    fill_byte_table();
    return 1;
}

__attribute__((target("+crc")))
uint32_t rocketmq_crc32_hardware_update(uint32_t crc, const void *bytes, size_t count) {
    const unsigned char *p = bytes;
    uint32_t c = ~crc;
    while (count >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        c = __crc32d(c, word);
        p += 8;
        count -= 8;
    }
    return ~bytes_update(c, p, count);
}

#else

int rocketmq_crc32_hardware_available(void) { return 0; }

uint32_t rocketmq_crc32_hardware_update(uint32_t crc, const void *bytes, size_t count) {
    (void)bytes;
    (void)count;
    return crc;
}

#endif
