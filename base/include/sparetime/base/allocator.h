// Allocator tuning for programs that pass chunk-sized buffers (64 KiB to
// 4 MiB, see imaging/chunker.h) between threads.
//
// With glibc's defaults every such buffer is either mmap'd or, once freed at
// the top of a thread's arena, trimmed back to the kernel, so the next chunk
// faults its pages in again and the kernel zeroes them: a restore of 1.2 GB
// took 109k page faults and up to 1 s of system time for that alone
// (docs/performance.md, "Timelines and the allocator"). KeepChunkBuffers
// raises the mmap threshold to glibc's maximum (32 MiB, above any chunk) and
// the trim threshold with it, so freed buffers are reused in user space.
// The heap then stays at its high water mark, which the bounded pipelines
// keep small; a long-running process calls ReleaseFreeMemory when a job is
// done.
#ifndef SPARETIME_BASE_ALLOCATOR_H_
#define SPARETIME_BASE_ALLOCATOR_H_

namespace sparetime {

// Call once at the start of main(), before other threads exist.
void KeepChunkBuffers();

// Hands free heap memory back to the kernel (malloc_trim).
void ReleaseFreeMemory();

}  // namespace sparetime

#endif  // SPARETIME_BASE_ALLOCATOR_H_
