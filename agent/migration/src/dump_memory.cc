// Memory dump: which pages to save, per mapping kind (pagemap bits per
// Documentation/admin-guide/mm/pagemap.rst):
//   private anon / shared anon: present or swapped pages, minus all-zero
//     private-anon pages (a fresh anonymous mapping reads as zero anyway);
//   private file: swapped pages, or present pages without bit 61 (the
//     copy-on-write copies; clean pages come back from the file);
//   shared file: nothing (the file is the contents).
// [vvar], [vvar_vclock], [vdso] are recorded as a layout (plus the vDSO code
// for comparison); [vsyscall] is skipped.
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

// Saves [addr, addr + data.size()) into the page store as runs, dropping
// all-zero pages when `skip_zero`.
void AddRuns(ProcessImage& image, Mapping& m, uint64_t addr, std::span<const std::byte> data, bool skip_zero) {
  size_t n = data.size() / kPageSize, i = 0;
  while (i < n) {
    if (skip_zero && IsZeroPage(data.subspan(i * kPageSize, kPageSize))) {
      ++i;
      continue;
    }
    size_t j = i + 1;
    while (j < n && !(skip_zero && IsZeroPage(data.subspan(j * kPageSize, kPageSize)))) ++j;
    uint64_t first = AppendPages(image, data.subspan(i * kPageSize, (j - i) * kPageSize));
    m.pages.push_back({addr + i * kPageSize, j - i, first});
    i = j;
  }
}

Status DumpPages(Tracee& tracee, int pagemap, ProcessImage& image, Mapping& m) {
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
    uint64_t j = i + 1;
    while (j < npages && WantPage(m.kind, entries[j])) ++j;
    buf.resize((j - i) * kPageSize);
    const uint64_t addr = m.start + i * kPageSize;
    ST_RETURN_IF_ERROR(tracee.Read(addr, buf));
    AddRuns(image, m, addr, buf, m.kind == Mapping::Kind::kPrivateAnon);
    i = j;
  }
  return Status::Ok();
}

}  // namespace

uint64_t AppendPages(ProcessImage& image, std::span<const std::byte> data) {
  uint64_t first = image.page_count();
  image.pages.insert(image.pages.end(), data.begin(), data.end());
  image.pages.resize((image.pages.size() + kPageSize - 1) / kPageSize * kPageSize);
  return first;
}

Result<FileIdentity> StatIdentity(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return ErrnoStatus("stat " + path, errno);
  return FileIdentity{static_cast<uint64_t>(st.st_size),
                      static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
}

Status DumpMemory(Tracee& tracee, const std::string& proc_dir, ProcessImage& image) {
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
        image.vdso.code = {v.start, code.size() / kPageSize, AppendPages(image, code)};
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
    ST_RETURN_IF_ERROR(DumpPages(tracee, pagemap.get(), image, m));
    image.mappings.push_back(std::move(m));
  }
  if (image.vdso.code.count == 0)
    return FailedPrecondition("process " + std::to_string(tracee.pid()) + " has no [vdso] mapping");
  return Status::Ok();
}

}  // namespace sparetime::migration
