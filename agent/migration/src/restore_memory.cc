// Restore of the address space into the stub: mappings at their dumped
// addresses (MAP_FIXED_NOREPLACE, so a leftover stub mapping is an error, not
// silent corruption), mapped writable while pages are written, then given
// their real protections; then prctl(PR_SET_MM_MAP).
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include <cstring>

#include "restore_internal.h"
#include "util.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

namespace sparetime::migration {
namespace {

struct PrctlMmMap {  // struct prctl_mm_map (PR_SET_MM_MAP_SIZE = 104)
  uint64_t start_code, end_code, start_data, end_data, start_brk, brk, start_stack;
  uint64_t arg_start, arg_end, env_start, env_end;
  uint64_t auxv;
  uint32_t auxv_size;
  uint32_t exe_fd;
};
static_assert(sizeof(PrctlMmMap) == 104);

constexpr size_t kPathOffset = 0;

// Opens `path` inside the stub; returns the fd number there.
Result<uint64_t> OpenInStub(Injector& in, const std::string& path, int flags) {
  ST_ASSIGN_OR_RETURN(uint64_t p, in.PutString(path, kPathOffset));
  auto fd = in.tracee().Syscall("openat " + path, SYS_openat, static_cast<uint64_t>(AT_FDCWD), p,
                                static_cast<uint64_t>(flags | O_CLOEXEC), 0);
  return fd;
}

Status MapOne(Injector& in, const ProcessImage& image, const Mapping& m) {
  Tracee& t = in.tracee();
  const bool is_file = m.kind == Mapping::Kind::kPrivateFile || m.kind == Mapping::Kind::kSharedFile;
  const bool shared = m.kind == Mapping::Kind::kSharedAnon || m.kind == Mapping::Kind::kSharedFile;
  const int map_prot = m.pages.empty() ? m.prot : (m.prot | PROT_READ | PROT_WRITE);
  uint64_t flags = (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_FIXED_NOREPLACE;
  if (m.grows_down) flags |= MAP_GROWSDOWN;
  uint64_t fd = static_cast<uint64_t>(-1);
  if (is_file) {
    int open_flags = (m.kind == Mapping::Kind::kSharedFile && m.may_write) ? O_RDWR : O_RDONLY;
    ST_ASSIGN_OR_RETURN(fd, OpenInStub(in, m.path, open_flags));
  } else {
    flags |= MAP_ANONYMOUS;
  }
  const std::string what = "mmap " + HexAddr(m.start) + "-" + HexAddr(m.end) + (is_file ? " " + m.path : "");
  auto addr = t.Syscall(what, SYS_mmap, m.start, m.end - m.start, static_cast<uint64_t>(map_prot), flags, fd,
                        m.file_offset);
  if (is_file) ST_RETURN_IF_ERROR(t.Syscall("close", SYS_close, fd).status());
  ST_RETURN_IF_ERROR(addr.status());
  if (*addr != m.start)
    return Internal(what + " landed at " + HexAddr(*addr) + " (kernel without MAP_FIXED_NOREPLACE?)");
  for (const PageRun& r : m.pages) {
    auto bytes = std::span(image.pages).subspan(r.first * kPageSize, r.count * kPageSize);
    ST_RETURN_IF_ERROR(t.Write(r.addr, bytes));
  }
  if (map_prot != m.prot)
    ST_RETURN_IF_ERROR(t.Syscall("mprotect " + HexAddr(m.start), SYS_mprotect, m.start, m.end - m.start,
                                 static_cast<uint64_t>(m.prot))
                           .status());
  return Status::Ok();
}

}  // namespace

Result<uint64_t> Injector::Put(std::span<const std::byte> data, size_t offset) {
  if (offset + data.size() > kPageSize)
    return InvalidArgument("restore: " + std::to_string(data.size()) + " bytes do not fit the scratch page");
  ST_RETURN_IF_ERROR(tracee_.Write(scratch_ + offset, data));
  return scratch_ + offset;
}

Result<uint64_t> Injector::PutString(const std::string& s, size_t offset) {
  if (s.find('\0') != std::string::npos) return InvalidArgument("restore: path contains a NUL byte: " + s);
  std::string z = s + '\0';
  return Put(std::as_bytes(std::span(z.data(), z.size())), offset);
}

Status RestoreMappings(Injector& in, const ProcessImage& image) {
  for (const Mapping& m : image.mappings) ST_RETURN_IF_ERROR(MapOne(in, image, m));
  return Status::Ok();
}

Status RestoreMmFields(Injector& in, const ProcessImage& image) {
  Tracee& t = in.tracee();
  ST_ASSIGN_OR_RETURN(uint64_t exe_fd, OpenInStub(in, image.exe_path, O_RDONLY));
  const MmFields& mm = image.mm;
  PrctlMmMap map{mm.start_code, mm.end_code, mm.start_data, mm.end_data, mm.start_brk, mm.brk, mm.start_stack,
                 mm.arg_start,  mm.arg_end,  mm.env_start,  mm.env_end,  0,            0,      0};
  map.exe_fd = static_cast<uint32_t>(exe_fd);
  map.auxv_size = static_cast<uint32_t>(image.auxv.size());
  const size_t auxv_offset = 512;  // after the struct; the path at 0 is no longer needed
  ST_ASSIGN_OR_RETURN(map.auxv, in.Put(image.auxv, auxv_offset));
  ST_ASSIGN_OR_RETURN(uint64_t map_addr, in.PutStruct(map, 0));
  Status s = t.Syscall("prctl(PR_SET_MM, PR_SET_MM_MAP)", SYS_prctl, PR_SET_MM, PR_SET_MM_MAP, map_addr,
                       sizeof map, 0)
                 .status();
  Status c = t.Syscall("close", SYS_close, exe_fd).status();
  return s.ok() ? c : s;
}

}  // namespace sparetime::migration
