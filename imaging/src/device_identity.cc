// Device identity: which physical disk, partition, loop device or image a
// device is, from sysfs (serial, WWID, loop backing file/offset/sizelimit,
// partition number/start/UUID) and the filesystem superblock (ext2/3/4, XFS
// UUID, a hint only), plus its key and JSON form.
//
// Invariants: probing never fails an open — a missing attribute just leaves
// its field empty; Key() follows the rules in device.h (a legacy key wins;
// partitions always carry ":part=N:start=S"; the fs UUID is never in it) and
// always ends in ":size=<bytes>".
#include <sys/sysmacros.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <type_traits>

#include "device_sysfs.h"
#include "sparetime/base/bytes.h"
#include "sparetime/base/fd.h"
#include "sparetime/imaging/device.h"

namespace sparetime {
namespace detail {
namespace {

namespace fs = std::filesystem;

// ext2/3/4: superblock at 1024; s_magic (le16) at +56, s_uuid[16] at +104.
constexpr size_t kExtSuperblock = 1024;
constexpr size_t kExtMagicOffset = kExtSuperblock + 56;
constexpr size_t kExtUuidOffset = kExtSuperblock + 104;
// XFS: "XFSB" at 0, sb_uuid[16] at 32.
constexpr size_t kXfsUuidOffset = 32;
constexpr size_t kUuidSize = 16;

std::string Trim(std::string s) {
  const char* ws = " \t\r\n";
  size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(ws);
  return s.substr(b, e - b + 1);
}

// The trimmed contents of the first attribute that exists and is non-empty.
std::string ReadAttr(const fs::path& dir, std::initializer_list<const char*> names) {
  for (const char* name : names) {
    Result<std::string> v = ReadFileToString((dir / name).string());
    if (v.ok()) {
      std::string t = Trim(*v);
      if (!t.empty()) return t;
    }
  }
  return "";
}

std::string FormatUuid(std::span<const std::byte> u) {
  if (std::all_of(u.begin(), u.end(), [](std::byte b) { return b == std::byte{0}; })) return "";
  std::string hex = ToHex(u);
  return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" +
         hex.substr(16, 4) + "-" + hex.substr(20, 12);
}

// A decimal attribute; 0 when missing or not a number.
uint64_t ReadNumber(const fs::path& dir, const char* name) {
  std::string text = ReadAttr(dir, {name});
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return 0;
  return value;
}

// The value of `KEY=value` in a uevent file, or "".
std::string UeventValue(const fs::path& dir, std::string_view key) {
  Result<std::string> text = ReadFileToString((dir / "uevent").string());
  if (!text.ok()) return "";
  size_t pos = 0;
  while (pos < text->size()) {
    size_t end = text->find('\n', pos);
    if (end == std::string::npos) end = text->size();
    std::string_view line(text->data() + pos, end - pos);
    if (line.size() > key.size() && line.substr(0, key.size()) == key && line[key.size()] == '=')
      return Trim(std::string(line.substr(key.size() + 1)));
    pos = end + 1;
  }
  return "";
}

constexpr uint64_t kSysfsSector = 512;  // sysfs `start` is in 512-byte units

}  // namespace

SysfsIdentity ReadSysfsIdentity(dev_t rdev, const std::string& sysfs_root) {
  SysfsIdentity id;
  fs::path link = fs::path(sysfs_root) / "dev" / "block" /
                  (std::to_string(major(rdev)) + ":" + std::to_string(minor(rdev)));
  std::error_code ec;
  fs::path dir = fs::canonical(link, ec);
  if (ec) return id;
  if (fs::exists(dir / "partition", ec)) {
    id.partition = static_cast<uint32_t>(ReadNumber(dir, "partition"));
    id.start = ReadNumber(dir, "start") * kSysfsSector;
    id.part_uuid = UeventValue(dir, "PARTUUID");
    dir = dir.parent_path();
  }
  id.serial = ReadAttr(dir, {"device/serial", "serial"});
  id.wwid = ReadAttr(dir, {"device/wwid", "wwid"});
  id.backing_file = ReadAttr(dir, {"loop/backing_file"});
  id.loop_offset = ReadNumber(dir, "loop/offset");
  id.loop_sizelimit = ReadNumber(dir, "loop/sizelimit");
  return id;
}

void ApplySysfsIdentity(SysfsIdentity sys, DeviceIdentity& id) {
  id.serial = std::move(sys.serial);
  id.wwid = std::move(sys.wwid);
  id.backing_file = std::move(sys.backing_file);
  id.loop_offset = sys.loop_offset;
  id.loop_sizelimit = sys.loop_sizelimit;
  id.partition = sys.partition;
  id.start = sys.start;
  id.part_uuid = std::move(sys.part_uuid);
}

std::string FsUuidFromSuperblock(std::span<const std::byte> head) {
  if (head.size() >= kXfsUuidOffset + kUuidSize && head[0] == std::byte{'X'} &&
      head[1] == std::byte{'F'} && head[2] == std::byte{'S'} && head[3] == std::byte{'B'}) {
    return FormatUuid(head.subspan(kXfsUuidOffset, kUuidSize));
  }
  if (head.size() >= kExtUuidOffset + kUuidSize && head[kExtMagicOffset] == std::byte{0x53} &&
      head[kExtMagicOffset + 1] == std::byte{0xEF}) {
    return FormatUuid(head.subspan(kExtUuidOffset, kUuidSize));
  }
  return "";
}

}  // namespace detail

std::string DeviceIdentity::Key() const {
  if (!legacy_key.empty()) return legacy_key;
  std::string key;
  if (!wwid.empty()) {
    key = "wwid:" + wwid;
  } else if (!serial.empty()) {
    key = "serial:" + serial;
  } else if (!backing_file.empty()) {
    key = "loopfile:" + backing_file;
    if (loop_offset != 0 || loop_sizelimit != 0)
      key += ":offset=" + std::to_string(loop_offset) +
             ":sizelimit=" + std::to_string(loop_sizelimit);
  } else if (partition != 0 && !part_uuid.empty()) {
    key = "partuuid:" + part_uuid;
  } else {
    key = "path:" + (kind == "file" && !real_path.empty() ? real_path : path);
  }
  if (partition != 0)
    key += ":part=" + std::to_string(partition) + ":start=" + std::to_string(start);
  return key + ":size=" + std::to_string(size);
}

nlohmann::json DeviceIdentity::ToJson() const {
  nlohmann::json j{{"path", path},
                   {"kind", kind},
                   {"size", size},
                   {"logical_block_size", logical_block_size},
                   {"serial", serial},
                   {"wwid", wwid},
                   {"backing_file", backing_file},
                   {"fs_uuid", fs_uuid},
                   {"partition", partition},
                   {"start", start},
                   {"part_uuid", part_uuid},
                   {"loop_offset", loop_offset},
                   {"loop_sizelimit", loop_sizelimit},
                   {"real_path", real_path}};
  if (!legacy_key.empty()) j["legacy_key"] = legacy_key;
  if (legacy_ambiguous) j["legacy_ambiguous"] = true;
  return j;
}

namespace {

// Reads field `name` into `out`. Required fields must be present; optional
// ones keep their default when absent.
template <typename T>
Status GetField(const nlohmann::json& j, const char* name, bool required, T& out) {
  auto it = j.find(name);
  if (it == j.end()) {
    if (!required) return Status::Ok();
    return Corruption(std::string("device identity: missing field \"") + name + "\"");
  }
  Status bad = Corruption(std::string("device identity: field \"") + name +
                          "\" has a wrong type or value: " + it->dump());
  if constexpr (std::is_same_v<T, bool>) {
    if (!it->is_boolean()) return bad;
  } else if constexpr (std::is_integral_v<T>) {
    // get<unsigned>() would silently wrap negative or oversized numbers.
    if (!it->is_number_unsigned() || it->get<uint64_t>() > std::numeric_limits<T>::max())
      return bad;
  }
  try {
    out = it->get<T>();
  } catch (const nlohmann::json::exception&) {
    return bad;
  }
  return Status::Ok();
}

}  // namespace

Result<DeviceIdentity> DeviceIdentity::FromJson(const nlohmann::json& j) {
  if (!j.is_object()) return Corruption("device identity: expected a JSON object, got " + j.dump());
  DeviceIdentity id;
  ST_RETURN_IF_ERROR(GetField(j, "path", true, id.path));
  ST_RETURN_IF_ERROR(GetField(j, "kind", true, id.kind));
  ST_RETURN_IF_ERROR(GetField(j, "size", true, id.size));
  ST_RETURN_IF_ERROR(GetField(j, "logical_block_size", true, id.logical_block_size));
  ST_RETURN_IF_ERROR(GetField(j, "serial", false, id.serial));
  ST_RETURN_IF_ERROR(GetField(j, "wwid", false, id.wwid));
  ST_RETURN_IF_ERROR(GetField(j, "backing_file", false, id.backing_file));
  ST_RETURN_IF_ERROR(GetField(j, "fs_uuid", false, id.fs_uuid));
  ST_RETURN_IF_ERROR(GetField(j, "partition", false, id.partition));
  ST_RETURN_IF_ERROR(GetField(j, "start", false, id.start));
  ST_RETURN_IF_ERROR(GetField(j, "part_uuid", false, id.part_uuid));
  ST_RETURN_IF_ERROR(GetField(j, "loop_offset", false, id.loop_offset));
  ST_RETURN_IF_ERROR(GetField(j, "loop_sizelimit", false, id.loop_sizelimit));
  ST_RETURN_IF_ERROR(GetField(j, "real_path", false, id.real_path));
  ST_RETURN_IF_ERROR(GetField(j, "legacy_key", false, id.legacy_key));
  ST_RETURN_IF_ERROR(GetField(j, "legacy_ambiguous", false, id.legacy_ambiguous));
  if (id.kind != "block" && id.kind != "file") {
    return Corruption("device identity: kind is \"" + id.kind +
                      "\", expected \"block\" or \"file\"");
  }
  return id;
}

}  // namespace sparetime
