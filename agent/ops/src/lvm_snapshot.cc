// The LVM snapshot source (see ops/consistency.h): lvcreate a snapshot of
// the LV, image the snapshot, check it did not fill up, lvremove it. Uses the
// lvm2 command-line tools (lvs with --reportformat json, lvcreate, lvremove);
// LVM exists only in the VM lab (tests/vm/scenarios/lvm_snapshot.sh).
//
// Invariants:
//   - The snapshot's name is <lv>-sparetime-snap: one per LV; one found
//     before creating is a killed agent's and is removed first.
//   - A snapshot this source created is removed on every path (Finish,
//     Explain, destructor); a failed removal is reported, never ignored.
//   - A classic snapshot that became invalid (lv_attr state 'I', or
//     snap_percent 100) fails Finish(): nothing is recorded.
//   - Tools run without a shell (argv only), so LV names are never parsed
//     by one.
//   - Thin LVs: the snapshot is removed unless Keep() makes it the base
//     (<lv>-sparetime-base, tagged sparetime_snapshot_<id>) after the image
//     was recorded; the old base goes then, so there is at most one base per
//     LV. A base is never taken for a stale snapshot.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "consistency_internal.h"
#include "sparetime/base/fd.h"

namespace sparetime::ops::detail {
namespace {

constexpr char kSnapSuffix[] = "-sparetime-snap";
constexpr char kBaseSuffix[] = "-sparetime-base";
constexpr char kTagPrefix[] = "sparetime_snapshot_";
constexpr uint64_t kMinCowBytes = 64ull << 20;

const char kNoTools[] =
    "the LVM tools (lvs, lvcreate, lvremove from the lvm2 package) are not installed, so no LVM "
    "snapshot can be taken; install lvm2, or use --consistency freeze (a mounted filesystem) or "
    "crash (read live, recorded as inconsistent)";

bool IsExecutable(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/sbin:/usr/bin:/sbin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    const std::string dir = dirs.substr(start, end - start);
    if (!dir.empty() && ::access((dir + "/" + name).c_str(), X_OK) == 0) return true;
    start = end + 1;
  }
  return false;
}

Result<std::string> ReadAll(int fd) {
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus("read a tool's output", errno);
    if (n == 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

struct Lv {
  std::string vg, name, pool, dm_path, attr, origin, tags;
  uint64_t size = 0, thin_id = 0;
  double snap_percent = 0;
};

// `lvs` of one LV (a VG/LV name or a device path); nullopt when it does not exist.
Result<std::optional<Lv>> Lvs(const std::string& which) {
  ST_ASSIGN_OR_RETURN(
      ToolResult r,
      RunTool({"lvs", "--reportformat", "json", "--units", "b", "--nosuffix", "-o",
               "vg_name,lv_name,lv_size,pool_lv,lv_dm_path,lv_attr,snap_percent,origin,lv_tags,thin_id",
               which}));
  if (r.exit_code != 0) return std::optional<Lv>();  // "Failed to find logical volume"
  nlohmann::json j = nlohmann::json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  try {
    if (j.is_discarded()) throw std::runtime_error("not JSON");
    const nlohmann::json& lvs = j.at("report").at(0).at("lv");
    if (lvs.empty()) return std::optional<Lv>();
    const nlohmann::json& e = lvs.at(0);
    Lv lv;
    lv.vg = e.at("vg_name").get<std::string>();
    lv.name = e.at("lv_name").get<std::string>();
    lv.pool = e.value("pool_lv", "");
    lv.dm_path = e.value("lv_dm_path", "");
    lv.attr = e.value("lv_attr", "");
    lv.origin = e.value("origin", "");
    lv.tags = e.value("lv_tags", "");
    lv.size = std::strtoull(e.value("lv_size", "0").c_str(), nullptr, 10);
    lv.thin_id = std::strtoull(e.value("thin_id", "0").c_str(), nullptr, 10);
    const std::string pct = e.value("snap_percent", "");
    lv.snap_percent = pct.empty() ? 0 : std::strtod(pct.c_str(), nullptr);
    return std::optional<Lv>(lv);
  } catch (const std::exception& e) {
    return Internal("cannot read the output of `lvs " + which + "` (" + e.what() + "): " +
                    r.out.substr(0, 200));
  }
}

Status Lvremove(const std::string& vg_lv) {
  ST_ASSIGN_OR_RETURN(ToolResult r, RunTool({"lvremove", "-f", "-y", vg_lv}));
  if (r.exit_code != 0) {
    return IoError("lvremove " + vg_lv + " failed (" + r.err.substr(0, 300) +
                   "); remove it by hand with `lvremove -f " + vg_lv + "`");
  }
  return Status::Ok();
}

class LvmSnapshotSource final : public ConsistentSource {
 public:
  LvmSnapshotSource(std::string device, std::string vg_snap, std::string path, bool thin,
                    uint64_t cow_bytes, const std::atomic<bool>* cancel,
                    std::optional<ThinChain> chain)
      : device_(std::move(device)), vg_snap_(std::move(vg_snap)), path_(std::move(path)),
        thin_(thin), cow_bytes_(cow_bytes), cancel_(cancel), chain_(std::move(chain)) {}
  ~LvmSnapshotSource() override { (void)Release(); }

  const std::string& read_path() const override { return path_; }
  const char* taken() const override { return kTakenSnapshot; }
  const std::atomic<bool>* cancel_flag() const override { return cancel_; }

  const ThinChain* thin_chain() const override { return chain_ ? &*chain_ : nullptr; }

  Status Finish() override {
    Status valid = CheckValid();
    if (thin_ && valid.ok()) return valid;  // kept until Keep() or the destructor
    Status removed = Release();
    if (!valid.ok()) return valid;
    return removed;
  }
  Status Explain(const Status& error) override {
    Status valid = CheckValid();
    Status removed = Release();
    if (!valid.ok()) return valid;
    if (!removed.ok()) return error.WithContext(removed.message());
    return error;
  }

 private:
  // The recorded thin snapshot becomes the base: tag it, drop the old base,
  // rename. On a failure the new snapshot is removed (the next backup of the
  // LV then reads in full).
  Status Keep(const std::string& snapshot_id) override {
    if (!thin_ || removed_) return Status::Ok();
    const size_t slash = vg_snap_.find('/');
    const std::string vg = vg_snap_.substr(0, slash);
    const std::string lv = vg_snap_.substr(slash + 1, vg_snap_.size() - slash - 1 -
                                                         (sizeof kSnapSuffix - 1));
    const std::string base = lv + kBaseSuffix;
    Status st = Tool({"lvchange", "--addtag", kTagPrefix + snapshot_id, vg_snap_});
    if (st.ok()) {
      Result<std::optional<Lv>> old = Lvs(vg + "/" + base);
      if (!old.ok()) st = old.status();
      else if (*old) st = Lvremove(vg + "/" + base);
    }
    if (st.ok()) st = Tool({"lvrename", vg, vg_snap_.substr(slash + 1), base});
    if (!st.ok()) {
      Status removed = Release();
      return st.WithContext("keeping " + vg_snap_ + " as the base of the next incremental" +
                            (removed.ok() ? "" : "; " + removed.message()));
    }
    removed_ = true;  // it is the base now
    return Status::Ok();
  }

  static Status Tool(const std::vector<std::string>& argv) {
    ST_ASSIGN_OR_RETURN(ToolResult r, RunTool(argv));
    if (r.exit_code == 0) return Status::Ok();
    return IoError(argv[0] + " " + argv[1] + " failed (" + r.err.substr(0, 300) + ")");
  }

  Status CheckValid() {
    if (removed_ || thin_) return Status::Ok();  // a thin snapshot cannot overflow on its own
    ST_ASSIGN_OR_RETURN(std::optional<Lv> lv, Lvs(vg_snap_));
    if (!lv) return IoError("the LVM snapshot " + vg_snap_ + " vanished during the backup");
    const bool invalid = (lv->attr.size() > 4 && lv->attr[4] == 'I') || lv->snap_percent >= 100;
    if (!invalid) return Status::Ok();
    return NoSpace("the LVM snapshot " + vg_snap_ + " of " + device_ + " filled up (its " +
                   std::to_string(cow_bytes_ >> 20) +
                   " MiB of copy-on-write space were used by writes during the backup), so its "
                   "image is not consistent; it was removed and no snapshot was recorded; raise "
                   "sparetimeSnapshotSize (or --snapshot-size) or free space in the volume group, "
                   "and run the backup again");
  }

  Status Release() {
    if (removed_) return Status::Ok();
    removed_ = true;
    return Lvremove(vg_snap_);
  }

  const std::string device_, vg_snap_, path_;
  const bool thin_;
  const uint64_t cow_bytes_;
  const std::atomic<bool>* const cancel_;
  const std::optional<ThinChain> chain_;
  bool removed_ = false;
};

// The kept base of a thin origin, or why there is none (ThinChain::broken).
Result<ThinChain> ThinBase(const Lv& origin) {
  ThinChain chain;
  chain.base_lv = origin.vg + "/" + origin.name + kBaseSuffix;
  ST_ASSIGN_OR_RETURN(std::optional<Lv> base, Lvs(chain.base_lv));
  ST_ASSIGN_OR_RETURN(std::optional<Lv> pool, Lvs(origin.vg + "/" + origin.pool));
  if (pool) chain.pool_dm_path = pool->dm_path;
  if (!base) {
    chain.broken = "there is no earlier thin snapshot " + chain.base_lv;
  } else if (base->pool != origin.pool || base->origin != origin.name) {
    chain.broken = chain.base_lv + " is not a snapshot of " + origin.vg + "/" + origin.name +
                   " in pool " + origin.pool + " (origin '" + base->origin + "', pool '" +
                   base->pool + "')";
  } else if (!pool || pool->dm_path.empty()) {
    chain.broken = "the pool " + origin.vg + "/" + origin.pool + " has no device-mapper path";
  } else {
    chain.base_thin_id = base->thin_id;
    for (size_t at = 0; at < base->tags.size();) {
      size_t end = base->tags.find(',', at);
      if (end == std::string::npos) end = base->tags.size();
      const std::string tag = base->tags.substr(at, end - at);
      if (tag.rfind(kTagPrefix, 0) == 0) chain.base_snapshot_id = tag.substr(sizeof kTagPrefix - 1);
      at = end + 1;
    }
    if (chain.base_snapshot_id.empty()) {
      chain.broken = chain.base_lv + " has no sparetime_snapshot_<id> tag";
    }
  }
  return chain;
}

}  // namespace

Result<ToolResult> RunTool(const std::vector<std::string>& argv) {
  if (!IsExecutable(argv.at(0))) return NotFound(argv[0] + " is not installed (not in PATH)");
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return ErrnoStatus("pipe", errno);
  Fd out_r(out[0]), out_w(out[1]);
  if (::pipe2(err, O_CLOEXEC) != 0) return ErrnoStatus("pipe", errno);
  Fd err_r(err[0]), err_w(err[1]);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) return ErrnoStatus("fork " + argv[0], errno);
  if (pid == 0) {
    ::dup2(out_w.get(), 1);
    ::dup2(err_w.get(), 2);
    ::setenv("LVM_SUPPRESS_FD_WARNINGS", "1", 1);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  out_w = Fd();
  err_w = Fd();
  // stderr of the lvm tools is short: read stdout fully, then stderr.
  Result<std::string> o = ReadAll(out_r.get());
  Result<std::string> e = ReadAll(err_r.get());
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  ToolResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (o.ok()) r.out = std::move(*o);
  if (e.ok()) r.err = std::move(*e);
  return r;
}

Result<std::unique_ptr<ConsistentSource>> MakeLvmSnapshotSource(const std::string& device,
                                                                const std::string& dm_name,
                                                                const ConsistencyOptions& options,
                                                                const std::atomic<bool>* cancel) {
  for (const char* tool : {"lvs", "lvcreate", "lvremove"}) {
    if (!IsExecutable(tool)) return FailedPrecondition(kNoTools);
  }
  ST_ASSIGN_OR_RETURN(std::optional<Lv> origin, Lvs("/dev/mapper/" + dm_name));
  if (!origin) {
    return FailedPrecondition(device + " looks like an LVM volume (device-mapper " + dm_name +
                              ") but `lvs` does not know it; check `lvs`, or use "
                              "--consistency freeze or crash");
  }
  // A classic snapshot LV (lv_attr 's': snapshot) is already a
  // point-in-time image, and LVM cannot snapshot it again: read it as it is.
  if (!origin->attr.empty() && origin->attr[0] == 's') {
    return MakeDirectSource(device, kTakenDirect, cancel);
  }
  const std::string snap = origin->name + kSnapSuffix;
  const std::string vg_snap = origin->vg + "/" + snap;
  if (origin->name.ends_with(kSnapSuffix) || origin->name.ends_with(kBaseSuffix)) {
    return FailedPrecondition(device + " is itself a sparetime snapshot (" + vg_snap +
                              "); back up its origin instead");
  }
  // A killed agent's snapshot: remove it before taking ours.
  ST_ASSIGN_OR_RETURN(std::optional<Lv> stale, Lvs(vg_snap));
  if (stale) ST_RETURN_IF_ERROR(Lvremove(vg_snap).WithContext("removing a stale snapshot"));
  const bool thin = !origin->pool.empty();
  uint64_t cow = 0;
  std::vector<std::string> create = {"lvcreate", "-y", "-s", "-n", snap};
  std::optional<ThinChain> chain;
  if (thin) {
    ST_ASSIGN_OR_RETURN(chain, ThinBase(*origin));
    create.push_back("-kn");  // thin snapshots skip activation by default
  } else {
    cow = options.snapshot_bytes != 0 ? options.snapshot_bytes
                                      : std::max(kMinCowBytes, origin->size / 10);
    create.push_back("-L");
    create.push_back(std::to_string((cow + 1023) / 1024) + "k");
  }
  create.push_back(origin->vg + "/" + origin->name);
  ST_ASSIGN_OR_RETURN(ToolResult made, RunTool(create));
  if (made.exit_code != 0) {
    return FailedPrecondition("lvcreate of the snapshot " + vg_snap + " failed (" +
                              made.err.substr(0, 300) + "); free space in volume group " +
                              origin->vg + " or lower sparetimeSnapshotSize, or use "
                              "--consistency freeze or crash");
  }
  Result<std::optional<Lv>> created = Lvs(vg_snap);
  std::string path = "/dev/" + origin->vg + "/" + snap;
  if (created.ok() && *created && !(*created)->dm_path.empty()) path = (*created)->dm_path;
  if (chain && created.ok() && *created) chain->new_thin_id = (*created)->thin_id;
  if (chain && chain->broken.empty() && chain->new_thin_id == 0) {
    chain->broken = "lvs gave no thin_id for " + vg_snap;
  }
  return std::unique_ptr<ConsistentSource>(std::make_unique<LvmSnapshotSource>(
      device, vg_snap, path, thin, cow, cancel, std::move(chain)));
}

}  // namespace sparetime::ops::detail
