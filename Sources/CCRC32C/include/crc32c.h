#ifndef ROCKETMQ_CRC32C_H
#define ROCKETMQ_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/// Whether this CPU has a CRC-32C instruction this file uses (x86-64 SSE4.2, ARMv8 CRC).
/// Decided once; cheap to call again.
int rocketmq_crc32c_hardware_available(void);

/// The CRC-32C of `count` bytes at `bytes`, continuing from `crc` (0 to start), with the CPU's
/// instruction. Only call it when `rocketmq_crc32c_hardware_available()` returned non-zero.
uint32_t rocketmq_crc32c_hardware_update(uint32_t crc, const void *bytes, size_t count);

/// Whether this CPU can speed up CRC-32 (IEEE, zlib's): x86-64 PCLMULQDQ with SSE4.1, ARMv8 CRC.
/// Decided once; cheap to call again.
int rocketmq_crc32_hardware_available(void);

/// The CRC-32 (IEEE, zlib's) of `count` bytes at `bytes`, continuing from `crc` (0 to start), with
/// the CPU's help. Only call it when `rocketmq_crc32_hardware_available()` returned non-zero.
uint32_t rocketmq_crc32_hardware_update(uint32_t crc, const void *bytes, size_t count);

#endif
