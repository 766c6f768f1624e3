// Memory dump: which pages to save, per mapping kind (pagemap bits per
// Documentation/admin-guide/mm/pagemap.rst):
//   private anon / shared anon: present or swapped pages, minus all-zero
//     private-anon pages (a fresh anonymous mapping reads as zero anyway);
//   private file: swapped pages, or present pages without bit 61 (the
//     copy-on-write copies; clean pages come back from the file);
//   shared file: nothing (the file is the contents).
// [vvar], [vvar_vclock], [vdso] are recorded as a layout (plus the vDSO code
// for comparison); [vsyscall] is skipped. Pages are read in pieces of at most
// kReadPages and handed to a PageSink at once, so the dump holds at most one
// piece whatever the process's size.
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "classify.h"
#include "dump.h"
#include "proc_files.h"
#include "sparetime/base/fd.h"
#include "util.h"

namespace sparetime::migration {
namespace {

constexpr uint64_t kPresent = 1ull << 63;
constexpr uint64_t kSwapped = 1ull << 62;
constexpr uint64_t kFileOrShared = 1ull << 61;

bool IsZeroPage(std::span<const std::byte> page) {
  return std::all_of(page.begin(), page.end(), [](std::byte b) { return b == std::byte{0}; });
}

Mapping::Kind ToKind(VmaClass c) {
  switch (c) {
    case VmaClass::kSharedAnon:
      return Mapping::Kind::kSharedAnon;
    case VmaClass::kPrivateFile:
      return Mapping::Kind::kPrivateFile;
    case VmaClass::kSharedFile:
      return Mapping::Kind::kSharedFile;
    default:
      return Mapping::Kind::kPrivateAnon;
  }
}

bool WantPage(Mapping::Kind kind, uint64_t entry) {
  switch (kind) {
    case Mapping::Kind::kPrivateAnon:
    case Mapping::Kind::kSharedAnon:
      return entry & (kPresent | kSwapped);
    case Mapping::Kind::kPrivateFile:
      return (entry & kSwapped) || ((entry & kPresent) && !(entry & kFileOrShared));
    case Mapping::Kind::kSharedFile:
      return false;
  }
  return false;
}

// Largest read from the tracee at once: a multiple of the chunk grid, so a
// long run is cut where the chunks are cut anyway. Bounds the dump's buffer.
constexpr uint64_t kReadPages = 1024;  // 4 MiB

// Sends `data` (whole pages at `addr` of mapping `m`) to the page store and
// records it as a run of `m`, extending the previous run when contiguous.
Status AddRun(ProcessImage& image, PageSink& sink, Mapping& m, uint64_t addr, std::span<const std::byte> data) {
  const uint64_t count = data.size() / kPageSize;
  ST_ASSIGN_OR_RETURN(uint64_t first, AppendPages(image, sink, m.start, addr, data));
  if (!m.pages.empty()) {
    PageRun& last = m.pages.back();
    if (last.addr + last.count * kPageSize == addr && last.first + last.count == first) {
      last.count += count;
      return Status::Ok();
    }
  }
  m.pages.push_back({addr, count, first});
  return Status::Ok();
}

// Saves [addr, addr + data.size()) into the page store as runs, dropping
// all-zero pages when `skip_zero`.
Status AddRuns(ProcessImage& image, PageSink& sink, Mapping& m, uint64_t addr, std::span<const std::byte> data,
               bool skip_zero) {
  size_t n = data.size() / kPageSize, i = 0;
  while (i < n) {
    if (skip_zero && IsZeroPage(data.subspan(i * kPageSize, kPageSize))) {
      ++i;
      continue;
    }
    size_t j = i + 1;
    while (j < n && !(skip_zero && IsZeroPage(data.subspan(j * kPageSize, kPageSize)))) ++j;
    ST_RETURN_IF_ERROR(AddRun(image, sink, m, addr + i * kPageSize, data.subspan(i * kPageSize, (j - i) * kPageSize)));
    i = j;
  }
  return Status::Ok();
}

Status DumpPages(Tracee& tracee, int pagemap, ProcessImage& image, PageSink& sink, Mapping& m) {
  const uint64_t npages = (m.end - m.start) / kPageSize;
  std::vector<uint64_t> entries(npages);
  auto got = ReadFullAt(pagemap, std::as_writable_bytes(std::span(entries)), m.start / kPageSize * 8);
  if (!got.ok()) return got.error().WithContext("read pagemap for " + HexAddr(m.start));
  if (*got != npages * 8) return IoError("short pagemap read for mapping at " + HexAddr(m.start));
  std::vector<std::byte> buf;
  for (uint64_t i = 0; i < npages;) {
    if (!WantPage(m.kind, entries[i])) {
      ++i;
      continue;
    }
    const uint64_t limit = std::min(npages, (i / kReadPages + 1) * kReadPages);
    uint64_t j = i + 1;
    while (j < limit && WantPage(m.kind, entries[j])) ++j;
    buf.resize((j - i) * kPageSize);
    const uint64_t addr = m.start + i * kPageSize;
    ST_RETURN_IF_ERROR(tracee.Read(addr, buf));
    ST_RETURN_IF_ERROR(AddRuns(image, sink, m, addr, buf, m.kind == Mapping::Kind::kPrivateAnon));
    i = j;
  }
  return Status::Ok();
}

}  // namespace

Result<uint64_t> AppendPages(ProcessImage& image, PageSink& sink, uint64_t mapping_start, uint64_t addr,
                             std::span<const std::byte> data) {
  const uint64_t first = image.page_count;
  ST_RETURN_IF_ERROR(sink.Append(mapping_start, addr, data));
  image.page_count += data.size() / kPageSize;
  return first;
}

Result<FileIdentity> StatIdentity(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return ErrnoStatus("stat " + path, errno);
  return FileIdentity{static_cast<uint64_t>(st.st_size),
                      static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
}

Status DumpMemory(Tracee& tracee, const std::string& proc_dir, ProcessImage& image, PageSink& sink) {
  ST_ASSIGN_OR_RETURN(std::vector<Vma> vmas, ReadSmaps(proc_dir));
  ST_ASSIGN_OR_RETURN(Fd pagemap, OpenFile(proc_dir + "/pagemap", O_RDONLY));
  for (const Vma& v : vmas) {
    ST_ASSIGN_OR_RETURN(VmaClass cls, ClassifyVma(v));
    if (cls == VmaClass::kSkip) continue;
    if (cls == VmaClass::kVdsoArea) {
      image.vdso.areas.push_back({v.path, v.start, v.end});
      if (v.path == "[vdso]") {
        std::vector<std::byte> code(v.end - v.start);
        ST_RETURN_IF_ERROR(tracee.Read(v.start, code));
        ST_ASSIGN_OR_RETURN(uint64_t first, AppendPages(image, sink, v.start, v.start, code));
        image.vdso.code = {v.start, code.size() / kPageSize, first};
      }
      continue;
    }
    Mapping m;
    m.kind = ToKind(cls);
    m.start = v.start;
    m.end = v.end;
    m.prot = v.prot;
    m.grows_down = v.HasFlag("gd");
    m.may_write = v.HasFlag("mw");
    if (cls == VmaClass::kPrivateFile || cls == VmaClass::kSharedFile) {
      m.path = v.path;
      m.file_offset = v.offset;
      ST_ASSIGN_OR_RETURN(m.file, StatIdentity(v.path));
    }
    ST_RETURN_IF_ERROR(DumpPages(tracee, pagemap.get(), image, sink, m));
    image.mappings.push_back(std::move(m));
  }
  if (image.vdso.code.count == 0)
    return FailedPrecondition("process " + std::to_string(tracee.pid()) + " has no [vdso] mapping");
  return Status::Ok();
}

}  // namespace sparetime::migration
