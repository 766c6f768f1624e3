// The consistency step's decision (which mode applies to which device) and
// the direct source; the freeze is in fs_freeze.cc, LVM snapshots in
// lvm_snapshot.cc. See ops/consistency.h for the modes and invariants.
//
// Invariants: the decision reads only mountinfo and sysfs (never changes
// anything); a device that is mounted read-write anywhere counts as
// read-write; auto never reads a mounted read-write filesystem live.
#include "sparetime/ops/consistency.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cctype>
#include <sstream>
#include <vector>

#include "consistency_internal.h"
#include "sparetime/base/fd.h"

namespace sparetime::ops {
namespace {

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string Unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && std::isdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isdigit(static_cast<unsigned char>(s[i + 2])) &&
        std::isdigit(static_cast<unsigned char>(s[i + 3]))) {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

bool HasOption(const std::string& options, const std::string& name) {
  std::stringstream in(options);
  std::string o;
  while (std::getline(in, o, ',')) {
    if (o == name) return true;
  }
  return false;
}

class DirectSource final : public ConsistentSource {
 public:
  DirectSource(std::string device, const char* taken, const std::atomic<bool>* cancel)
      : device_(std::move(device)), taken_(taken), cancel_(cancel) {}
  const std::string& read_path() const override { return device_; }
  const char* taken() const override { return taken_; }
  const std::atomic<bool>* cancel_flag() const override { return cancel_; }
  Status Finish() override { return Status::Ok(); }
  Status Explain(const Status& error) override { return error; }

 private:
  const std::string device_;
  const char* const taken_;
  const std::atomic<bool>* const cancel_;
};

}  // namespace

Result<ConsistencyMode> ParseConsistencyMode(const std::string& text) {
  const std::string t = Lower(text);
  if (t == "auto") return ConsistencyMode::kAuto;
  if (t == "snapshot") return ConsistencyMode::kSnapshot;
  if (t == "freeze") return ConsistencyMode::kFreeze;
  if (t == "crash") return ConsistencyMode::kCrash;
  return InvalidArgument("'" + text +
                         "' is not a consistency mode; a valid value is auto, snapshot, freeze "
                         "or crash");
}

const char* ConsistencyModeName(ConsistencyMode mode) {
  switch (mode) {
    case ConsistencyMode::kAuto: return "auto";
    case ConsistencyMode::kSnapshot: return "snapshot";
    case ConsistencyMode::kFreeze: return "freeze";
    case ConsistencyMode::kCrash: return "crash";
  }
  return "?";
}

Result<std::optional<DeviceMount>> FindMount(const std::string& device, const std::string& proc_root) {
  struct stat st;
  if (::stat(device.c_str(), &st) != 0) return ErrnoStatus("stat " + device, errno);
  if (!S_ISBLK(st.st_mode)) return std::optional<DeviceMount>();  // an image file
  const std::string want =
      std::to_string(major(st.st_rdev)) + ":" + std::to_string(minor(st.st_rdev));
  const std::string path = (proc_root.empty() ? "/proc" : proc_root) + "/self/mountinfo";
  ST_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  std::optional<DeviceMount> found;
  std::stringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    // ID PARENT MAJ:MIN ROOT MOUNT_POINT MOUNT_OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER_OPTIONS
    std::stringstream in(line);
    std::vector<std::string> f;
    std::string w;
    while (in >> w) f.push_back(w);
    size_t dash = 0;
    for (size_t i = 6; i < f.size(); ++i) {
      if (f[i] == "-") {
        dash = i;
        break;
      }
    }
    if (dash == 0 || dash + 3 >= f.size() || f[2] != want) continue;
    const bool ro = HasOption(f[5], "ro") || HasOption(f[dash + 3], "ro");
    if (!found) {
      found = DeviceMount{Unescape(f[4]), f[dash + 1], ro};
    } else if (!ro && found->read_only) {
      // A read-write mount wins: it is the one that changes under us.
      found = DeviceMount{Unescape(f[4]), f[dash + 1], false};
    }
  }
  return found;
}

ConsistentSource::~ConsistentSource() = default;

Result<std::unique_ptr<ConsistentSource>> ConsistentSource::Prepare(
    const std::string& device, const ConsistencyOptions& options, const std::atomic<bool>* cancel) {
  if (options.mode == ConsistencyMode::kCrash) {
    return detail::MakeDirectSource(device, kTakenCrash, cancel);
  }
  ST_ASSIGN_OR_RETURN(std::optional<DeviceMount> mount, FindMount(device, options.proc_root));
  const std::string dm = detail::LvmDmName(device, options.sys_root);
  switch (options.mode) {
    case ConsistencyMode::kSnapshot:
      if (dm.empty()) {
        return FailedPrecondition(device +
                                  " is not an LVM logical volume, so --consistency snapshot "
                                  "cannot be used; use --consistency freeze (a mounted "
                                  "filesystem) or crash (read live, recorded as inconsistent)");
      }
      return detail::MakeLvmSnapshotSource(device, dm, options, cancel);
    case ConsistencyMode::kFreeze:
      if (!mount) {
        // Nothing can change a filesystem that is not mounted (from here).
        return detail::MakeDirectSource(device, kTakenDirect, cancel);
      }
      if (mount->read_only) return detail::MakeDirectSource(device, kTakenDirect, cancel);
      return detail::MakeFreezeSource(device, *mount, options, cancel);
    case ConsistencyMode::kAuto:
      if (!dm.empty()) return detail::MakeLvmSnapshotSource(device, dm, options, cancel);
      if (!mount || mount->read_only) return detail::MakeDirectSource(device, kTakenDirect, cancel);
      return FailedPrecondition(
          device + " is mounted read-write on " + mount->mount_point + " (" + mount->fs_type +
          ") and is not an LVM logical volume, so --consistency auto will not read it live; "
          "choose one: --consistency freeze (FIFREEZE the filesystem for the time of the image), "
          "--consistency snapshot (LVM only: move it onto an LVM volume), or --consistency crash "
          "(read live; the snapshot is recorded as inconsistent); policy: "
          "sparetimeConsistencyMode");
    case ConsistencyMode::kCrash:
      break;
  }
  return detail::MakeDirectSource(device, kTakenCrash, cancel);
}

namespace detail {

std::unique_ptr<ConsistentSource> MakeDirectSource(const std::string& device, const char* taken,
                                                   const std::atomic<bool>* cancel) {
  return std::make_unique<DirectSource>(device, taken, cancel);
}

std::string LvmDmName(const std::string& device, const std::string& sys_root) {
  struct stat st;
  if (::stat(device.c_str(), &st) != 0 || !S_ISBLK(st.st_mode)) return "";
  const std::string dir = (sys_root.empty() ? "/sys" : sys_root) + "/dev/block/" +
                          std::to_string(major(st.st_rdev)) + ":" +
                          std::to_string(minor(st.st_rdev)) + "/dm/";
  Result<std::string> uuid = ReadFileToString(dir + "uuid");
  if (!uuid.ok() || uuid->rfind("LVM-", 0) != 0) return "";
  Result<std::string> name = ReadFileToString(dir + "name");
  if (!name.ok()) return "";
  std::string n = *name;
  while (!n.empty() && (n.back() == '\n' || n.back() == ' ')) n.pop_back();
  return n;
}

}  // namespace detail
}  // namespace sparetime::ops
