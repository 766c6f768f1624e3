// Allocator tuning: glibc mallopt / malloc_trim (see allocator.h).
#include "sparetime/base/allocator.h"

#include <malloc.h>

namespace sparetime {

namespace {

// glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit: the largest value mallopt
// accepts for M_MMAP_THRESHOLD.
constexpr int kMmapThreshold = 32 << 20;
// Freed memory at the top of an arena is kept up to this much.
constexpr int kTrimThreshold = 2 * kMmapThreshold;

}  // namespace

void KeepChunkBuffers() {
  // Failures leave glibc's defaults: slower, never wrong.
  (void)::mallopt(M_MMAP_THRESHOLD, kMmapThreshold);
  (void)::mallopt(M_TRIM_THRESHOLD, kTrimThreshold);
}

void ReleaseFreeMemory() { (void)::malloc_trim(0); }

}  // namespace sparetime
