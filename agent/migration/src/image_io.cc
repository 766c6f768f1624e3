// Manifest serialization (see image.h and docs/migration.md "Image format"):
// every ProcessImage field but the page store, as JSON. Byte blobs
// (registers, xstate, auxv, siginfo, pipe data) are hex. The image file and
// the page chunks around it are in image_store.cc.
#include <sys/user.h>

#include <cstring>
#include <stdexcept>
#include <string_view>
#include <utility>
#include <nlohmann/json.hpp>

#include "sparetime/base/bytes.h"
#include "sparetime/base/json_numbers.h"
#include "sparetime/migration/image.h"
#include "util.h"

namespace sparetime::migration {

// Enum names. Not NLOHMANN_JSON_SERIALIZE_ENUM: it silently turns a value
// missing from its table into the first entry, in both directions (an open
// directory came back as kind "file" and was checked as a file). Here an
// unlisted value is an error: EncodeManifest checks every kind first, and an
// unknown name makes DecodeManifest fail. to_json/from_json are found by ADL,
// so they live in this namespace; `static` keeps them local.
namespace {

template <typename E>
using EnumName = std::pair<E, std::string_view>;
constexpr EnumName<Mapping::Kind> kMappingKinds[] = {{Mapping::Kind::kPrivateAnon, "private_anon"},
                                                     {Mapping::Kind::kSharedAnon, "shared_anon"},
                                                     {Mapping::Kind::kPrivateFile, "private_file"},
                                                     {Mapping::Kind::kSharedFile, "shared_file"}};
constexpr EnumName<FdEntry::Kind> kFdKinds[] = {{FdEntry::Kind::kFile, "file"},
                                                {FdEntry::Kind::kDevice, "device"},
                                                {FdEntry::Kind::kPipeRead, "pipe_read"},
                                                {FdEntry::Kind::kPipeWrite, "pipe_write"},
                                                {FdEntry::Kind::kDup, "dup"},
                                                {FdEntry::Kind::kDirectory, "directory"}};

template <typename E, size_t N>
std::string NameOf(const EnumName<E> (&names)[N], E value, std::string_view what) {
  for (const auto& [v, name] : names)
    if (v == value) return std::string(name);
  throw std::invalid_argument(std::string(what) + " kind " + std::to_string(static_cast<int>(value)) +
                              " has no name in the image format");
}

// Checked before building the JSON: a to_json that throws part-way leaks
// the half-built json (nlohmann 3.11).
template <typename E, size_t N>
bool Named(const EnumName<E> (&names)[N], E value) {
  for (const auto& [v, name] : names)
    if (v == value) return true;
  return false;
}

template <typename E, size_t N>
E ValueOf(const EnumName<E> (&names)[N], const nlohmann::json& j, std::string_view what) {
  const std::string name = j.get<std::string>();
  for (const auto& [v, n] : names)
    if (n == name) return v;
  throw std::invalid_argument("unknown " + std::string(what) + " kind '" + name +
                              "' (an image from a newer sparetime? restore it with that version)");
}

}  // namespace

static void to_json(nlohmann::json& j, const Mapping::Kind& k) { j = NameOf(kMappingKinds, k, "mapping"); }
static void from_json(const nlohmann::json& j, Mapping::Kind& k) { k = ValueOf(kMappingKinds, j, "mapping"); }
static void to_json(nlohmann::json& j, const FdEntry::Kind& k) { j = NameOf(kFdKinds, k, "fd"); }
static void from_json(const nlohmann::json& j, FdEntry::Kind& k) { k = ValueOf(kFdKinds, j, "fd"); }

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(PageRun, addr, count, first)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(FileIdentity, size, mtime_ns)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Mapping, kind, start, end, prot, grows_down, may_write, path, file_offset, file,
                                   pages)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(VdsoLayout::Area, name, start, end)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(VdsoLayout, areas, code)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(FdEntry, fd, kind, path, flags, offset, file, pipe_id, dup_of)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(SignalAction, signo, handler, flags, restorer, mask)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(ItimerValue, interval_sec, interval_usec, value_sec, value_usec)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Credentials, uids, gids, groups, cap_inheritable, cap_permitted, cap_effective,
                                   cap_bounding)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(MmFields, start_code, end_code, start_data, end_data, start_brk, brk, start_stack,
                                   arg_start, arg_end, env_start, env_end)

namespace {

std::vector<std::byte> Unhex(const nlohmann::json& j, const char* field) {
  auto v = FromHex(j.at(field).get<std::string>());
  if (!v) throw std::runtime_error(std::string("field ") + field + " is not hex");
  return *v;
}

Status CheckRun(const PageRun& r, uint64_t start, uint64_t end, uint64_t page_count, const std::string& where) {
  if (r.addr % kPageSize || r.addr < start || r.count > (end - r.addr) / kPageSize || r.first > page_count ||
      r.count > page_count - r.first)
    return Corruption("image: page run at " + HexAddr(r.addr) + " lies outside " + where + " or the page store");
  return Status::Ok();
}

bool KnownVersion(uint32_t v) { return v >= kOldestImageFormatVersion && v <= kImageFormatVersion; }

nlohmann::json PendingJson(const std::vector<PendingSignal>& pending) {
  nlohmann::json out = nlohmann::json::array();
  for (const PendingSignal& p : pending) out.push_back({{"shared", p.shared}, {"info", ToHex(p.info)}});
  return out;
}

std::vector<PendingSignal> PendingFromJson(const nlohmann::json& j) {
  std::vector<PendingSignal> out;
  for (const auto& p : j) {
    PendingSignal s;
    s.shared = p.at("shared").get<bool>();
    auto info = Unhex(p, "info");
    if (info.size() != s.info.size()) throw std::runtime_error("pending siginfo has the wrong size");
    std::memcpy(s.info.data(), info.data(), info.size());
    out.push_back(s);
  }
  return out;
}

nlohmann::json ThreadJson(const ThreadImage& t) {
  return {{"tid", t.tid},
          {"comm", t.comm},
          {"regs", ToHex(t.regs)},
          {"xstate", ToHex(t.xstate)},
          {"blocked", t.blocked},
          {"pending", PendingJson(t.pending)},
          {"altstack", {{"sp", t.altstack_sp}, {"size", t.altstack_size}, {"flags", t.altstack_flags}}},
          {"tid_address", t.tid_address},
          {"robust_list", t.robust_list},
          {"robust_list_len", t.robust_list_len},
          {"rseq", {{"addr", t.rseq_addr}, {"len", t.rseq_len}, {"sig", t.rseq_sig}}}};
}

ThreadImage ThreadFromJson(const nlohmann::json& j) {
  ThreadImage t;
  j.at("tid").get_to(t.tid);
  j.at("comm").get_to(t.comm);
  t.regs = Unhex(j, "regs");
  t.xstate = Unhex(j, "xstate");
  j.at("blocked").get_to(t.blocked);
  t.pending = PendingFromJson(j.at("pending"));
  j.at("altstack").at("sp").get_to(t.altstack_sp);
  j.at("altstack").at("size").get_to(t.altstack_size);
  j.at("altstack").at("flags").get_to(t.altstack_flags);
  j.at("tid_address").get_to(t.tid_address);
  j.at("robust_list").get_to(t.robust_list);
  j.at("robust_list_len").get_to(t.robust_list_len);
  j.at("rseq").at("addr").get_to(t.rseq_addr);
  j.at("rseq").at("len").get_to(t.rseq_len);
  j.at("rseq").at("sig").get_to(t.rseq_sig);
  return t;
}

Status Validate(const ProcessImage& im) {
  if (!KnownVersion(im.version))
    return Corruption("image format version " + std::to_string(im.version) + " is not supported: this sparetime reads " +
                      "versions " + std::to_string(kOldestImageFormatVersion) + " to " +
                      std::to_string(kImageFormatVersion) +
                      "; checkpoint the process with the same sparetime version as the restore");
  if (im.regs.size() != sizeof(user_regs_struct)) return Corruption("image: register block has the wrong size");
  pid_t prev_tid = im.pid;
  for (const ThreadImage& t : im.threads) {
    if (t.tid <= prev_tid)
      return Corruption("image: thread " + std::to_string(t.tid) + " is out of order, a duplicate or the leader");
    prev_tid = t.tid;
    if (t.regs.size() != sizeof(user_regs_struct) || t.xstate.size() != im.xstate.size())
      return Corruption("image: thread " + std::to_string(t.tid) + " has a register block of the wrong size");
    for (const PendingSignal& p : t.pending)
      if (p.shared) return Corruption("image: thread " + std::to_string(t.tid) + " holds a process-wide signal");
  }
  if (!im.pages.empty() && im.pages.size() != im.page_count * kPageSize)
    return Corruption("image: the page store holds " + std::to_string(im.pages.size()) + " bytes, not " +
                      std::to_string(im.page_count) + " pages");
  uint64_t prev_end = 0;
  for (const Mapping& m : im.mappings) {
    if (m.start % kPageSize || m.end % kPageSize || m.start >= m.end || m.start < prev_end)
      return Corruption("image: mapping " + HexAddr(m.start) + "-" + HexAddr(m.end) + " is misaligned or overlaps");
    prev_end = m.end;
    for (const PageRun& r : m.pages) ST_RETURN_IF_ERROR(CheckRun(r, m.start, m.end, im.page_count, "its mapping"));
  }
  if (im.vdso.areas.empty()) return Corruption("image: no vDSO layout");
  ST_RETURN_IF_ERROR(CheckRun(im.vdso.code, im.vdso.code.addr, ~0ull, im.page_count, "the vDSO"));
  return Status::Ok();
}

}  // namespace

Result<std::string> EncodeManifest(const ProcessImage& im) try {
  for (const Mapping& m : im.mappings)
    if (!Named(kMappingKinds, m.kind))
      return InvalidArgument("cannot encode the image manifest: mapping " + HexAddr(m.start) + " has kind " +
                             std::to_string(static_cast<int>(m.kind)) + ", which has no name in the image format");
  for (const FdEntry& e : im.fds)
    if (!Named(kFdKinds, e.kind))
      return InvalidArgument("cannot encode the image manifest: fd " + std::to_string(e.fd) + " has fd kind " +
                             std::to_string(static_cast<int>(e.kind)) + ", which has no name in the image format");
  nlohmann::json j;
  j["version"] = im.version;
  j["pid"] = im.pid;
  j["comm"] = im.comm;
  j["kernel_release"] = im.kernel_release;
  j["regs"] = ToHex(im.regs);
  j["xstate"] = ToHex(im.xstate);
  j["xcr0"] = im.xcr0;
  j["mappings"] = im.mappings;
  j["vdso"] = im.vdso;
  j["mm"] = im.mm;
  j["auxv"] = ToHex(im.auxv);
  j["exe_path"] = im.exe_path;
  j["exe"] = im.exe;
  j["tid_address"] = im.tid_address;
  j["robust_list"] = im.robust_list;
  j["robust_list_len"] = im.robust_list_len;
  j["rseq"] = {{"addr", im.rseq_addr}, {"len", im.rseq_len}, {"sig", im.rseq_sig}};
  j["actions"] = im.actions;
  j["blocked"] = im.blocked;
  if (!im.pending.empty()) j["pending"] = PendingJson(im.pending);
  j["altstack"] = {{"sp", im.altstack_sp}, {"size", im.altstack_size}, {"flags", im.altstack_flags}};
  j["itimers"] = im.itimers;
  j["fds"] = im.fds;
  for (const PipeContents& p : im.pipes)
    j["pipes"].push_back({{"pipe_id", p.pipe_id}, {"capacity", p.capacity}, {"data", ToHex(p.data)}});
  j["cwd"] = im.cwd;
  j["umask"] = im.umask;
  j["personality"] = im.personality;
  j["rlimits"] = im.rlimits;
  j["creds"] = im.creds;
  if (im.version >= 4) {
    if (!im.names.empty())
      j["names"] = {{"users", im.names.users}, {"groups", im.names.groups}, {"supplementary", im.names.supplementary}};
    j["threads"] = nlohmann::json::array();
    for (const ThreadImage& t : im.threads) j["threads"].push_back(ThreadJson(t));
  } else if (!im.threads.empty()) {
    return InvalidArgument("cannot encode a multi-threaded process as image format " + std::to_string(im.version));
  }
  j["page_count"] = im.page_count;
  return j.dump();
} catch (const std::exception& e) {  // dump(): a path that is not UTF-8
  return InvalidArgument(std::string("cannot encode the image manifest of process ") + std::to_string(im.pid) +
                         ": " + e.what());
}

Result<ProcessImage> DecodeManifest(std::string_view json, uint64_t page_count) {
  ProcessImage im;
  try {
    nlohmann::json j = nlohmann::json::parse(json);
    ST_RETURN_IF_ERROR(CheckJsonIntegers(j, "process manifest"));
    j.at("version").get_to(im.version);
    if (!KnownVersion(im.version)) return Validate(im);
    j.at("pid").get_to(im.pid);
    j.at("comm").get_to(im.comm);
    j.at("kernel_release").get_to(im.kernel_release);
    im.regs = Unhex(j, "regs");
    im.xstate = Unhex(j, "xstate");
    j.at("xcr0").get_to(im.xcr0);
    j.at("mappings").get_to(im.mappings);
    j.at("vdso").get_to(im.vdso);
    j.at("mm").get_to(im.mm);
    im.auxv = Unhex(j, "auxv");
    j.at("exe_path").get_to(im.exe_path);
    j.at("exe").get_to(im.exe);
    j.at("tid_address").get_to(im.tid_address);
    j.at("robust_list").get_to(im.robust_list);
    j.at("robust_list_len").get_to(im.robust_list_len);
    j.at("rseq").at("addr").get_to(im.rseq_addr);
    j.at("rseq").at("len").get_to(im.rseq_len);
    j.at("rseq").at("sig").get_to(im.rseq_sig);
    j.at("actions").get_to(im.actions);
    j.at("blocked").get_to(im.blocked);
    im.pending = PendingFromJson(j.value("pending", nlohmann::json::array()));
    j.at("altstack").at("sp").get_to(im.altstack_sp);
    j.at("altstack").at("size").get_to(im.altstack_size);
    j.at("altstack").at("flags").get_to(im.altstack_flags);
    j.at("itimers").get_to(im.itimers);
    j.at("fds").get_to(im.fds);
    for (const auto& p : j.value("pipes", nlohmann::json::array()))
      im.pipes.push_back({p.at("pipe_id").get<uint64_t>(), p.at("capacity").get<uint32_t>(), Unhex(p, "data")});
    j.at("cwd").get_to(im.cwd);
    j.at("umask").get_to(im.umask);
    j.at("personality").get_to(im.personality);
    j.at("rlimits").get_to(im.rlimits);
    j.at("creds").get_to(im.creds);
    if (im.version >= 4) {
      for (const auto& t : j.at("threads")) im.threads.push_back(ThreadFromJson(t));
      if (j.contains("names")) {
        j["names"].at("users").get_to(im.names.users);
        j["names"].at("groups").get_to(im.names.groups);
        j["names"].at("supplementary").get_to(im.names.supplementary);
      }
    }
    if (j.at("page_count").get<uint64_t>() != page_count)
      return Corruption("image: manifest expects " + std::to_string(j.at("page_count").get<uint64_t>()) +
                        " pages, the page store holds " + std::to_string(page_count));
  } catch (const std::exception& e) {
    return Corruption(std::string("image manifest: ") + e.what());
  }
  im.page_count = page_count;  // the caller fills `pages` when it wants them
  ST_RETURN_IF_ERROR(Validate(im));
  return im;
}

ThreadImage LeaderThread(const ProcessImage& im) {
  ThreadImage t;
  t.tid = im.pid;
  t.comm = im.comm;
  t.regs = im.regs;
  t.xstate = im.xstate;
  t.blocked = im.blocked;
  for (const PendingSignal& p : im.pending)
    if (!p.shared) t.pending.push_back(p);
  t.altstack_sp = im.altstack_sp;
  t.altstack_size = im.altstack_size;
  t.altstack_flags = im.altstack_flags;
  t.tid_address = im.tid_address;
  t.robust_list = im.robust_list;
  t.robust_list_len = im.robust_list_len;
  t.rseq_addr = im.rseq_addr;
  t.rseq_len = im.rseq_len;
  t.rseq_sig = im.rseq_sig;
  return t;
}

void SetLeaderThread(ProcessImage& im, ThreadImage t) {
  im.regs = std::move(t.regs);
  im.xstate = std::move(t.xstate);
  im.blocked = t.blocked;
  std::erase_if(im.pending, [](const PendingSignal& p) { return !p.shared; });
  im.pending.insert(im.pending.begin(), t.pending.begin(), t.pending.end());
  im.altstack_sp = t.altstack_sp;
  im.altstack_size = t.altstack_size;
  im.altstack_flags = t.altstack_flags;
  im.tid_address = t.tid_address;
  im.robust_list = t.robust_list;
  im.robust_list_len = t.robust_list_len;
  im.rseq_addr = t.rseq_addr;
  im.rseq_len = t.rseq_len;
  im.rseq_sig = t.rseq_sig;
}

}  // namespace sparetime::migration
