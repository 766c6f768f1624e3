// ReadHolds (see read_holds.h): a small sorted table of holds, written whole
// to one file on every change.
#include "sparetime/peerstore/read_holds.h"

#include <algorithm>
#include <ctime>
#include <sstream>
#include <tuple>

#include "sparetime/peerstore/peer_store.h"

namespace sparetime::peerstore {
namespace {

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>((c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c);
  return s;
}

Status CheckSnapshotName(const std::string& s) {
  bool ok = !s.empty() && s.size() <= 64;
  for (char c : s) {
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '.' || c == '_' || c == '-');
  }
  return ok ? Status::Ok()
            : InvalidArgument("a held snapshot is named by 1-64 characters of [A-Za-z0-9._-]");
}

auto Key(const ReadHold& h) { return std::tie(h.owner, h.holder, h.snapshot); }

std::string UtcText(int64_t unix_seconds) {
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return text;
}

}  // namespace

Result<std::unique_ptr<ReadHolds>> ReadHolds::Open(const std::string& path, const Clock& clock,
                                                   Env* env) {
  std::unique_ptr<ReadHolds> holds(new ReadHolds(path, clock, env));
  Result<std::string> text = ReadFileToString(*env, path);
  if (!text.ok()) {
    if (text.status().code() == ErrorCode::kNotFound) return holds;
    return text.status().WithContext("read holds");
  }
  std::istringstream in(*text);
  std::string line;
  int n = 0;
  std::vector<ReadHold> loaded;
  while (std::getline(in, line)) {
    ++n;
    std::istringstream fields(line);
    ReadHold h;
    std::string rest;
    bool ok = static_cast<bool>(fields >> h.owner >> h.holder >> h.snapshot >> h.expires) &&
              !(fields >> rest) && PeerStore::CheckOwnerName(h.owner).ok() &&
              PeerStore::CheckOwnerName(h.holder).ok() && CheckSnapshotName(h.snapshot).ok();
    if (!ok) {
      return Corruption("the read holds file " + path + " is damaged at line " + std::to_string(n) +
                        " (\"" + line.substr(0, 80) +
                        "\"); delete it and restart sparetimed: mounts renew their holds within "
                        "a third of their hold time");
    }
    loaded.push_back(std::move(h));
  }
  std::sort(loaded.begin(), loaded.end(), [](const ReadHold& a, const ReadHold& b) { return Key(a) < Key(b); });
  MutexLock l(holds->mu_);
  holds->holds_ = std::move(loaded);
  return holds;
}

Status ReadHolds::Hold(const std::string& owner_name, const std::string& holder_name,
                       const std::string& snapshot, uint32_t seconds) {
  ST_RETURN_IF_ERROR(PeerStore::CheckOwnerName(owner_name));
  ST_RETURN_IF_ERROR(PeerStore::CheckOwnerName(holder_name));
  ST_RETURN_IF_ERROR(CheckSnapshotName(snapshot));
  const std::string owner = Lower(owner_name), holder = Lower(holder_name);
  const int64_t now = Now();
  MutexLock l(mu_);
  std::erase_if(holds_, [now](const ReadHold& h) { return h.expires <= now; });
  ReadHold wanted{owner, holder, snapshot, now + std::min(seconds, kMaxHoldSeconds)};
  auto it = std::find_if(holds_.begin(), holds_.end(),
                         [&](const ReadHold& h) { return Key(h) == Key(wanted); });
  if (seconds == 0) {
    if (it != holds_.end()) holds_.erase(it);
  } else if (it != holds_.end()) {
    it->expires = wanted.expires;
  } else {
    size_t of_owner = std::count_if(holds_.begin(), holds_.end(),
                                    [&](const ReadHold& h) { return h.owner == owner; });
    if (of_owner >= kMaxHoldsPerOwner) {
      return NoSpace("this peer already keeps " + std::to_string(of_owner) + " read holds on the "
                     "backups of " + owner + " (the limit); unmount a snapshot of " + owner +
                     " elsewhere first");
    }
    holds_.insert(std::upper_bound(holds_.begin(), holds_.end(), wanted,
                                   [](const ReadHold& a, const ReadHold& b) { return Key(a) < Key(b); }),
                  wanted);
  }
  return Save();
}

Status ReadHolds::Save() {
  std::string text;
  for (const ReadHold& h : holds_) {
    text += h.owner + " " + h.holder + " " + h.snapshot + " " + std::to_string(h.expires) + "\n";
  }
  return WriteFileAtomic(*env_, path_, text, 0600).WithContext("save read holds");
}

Status ReadHolds::CheckRelease(const std::string& owner_name) const {
  const std::string owner = Lower(owner_name);
  const int64_t now = Now();
  MutexLock l(mu_);
  const ReadHold* longest = nullptr;
  size_t live = 0;
  for (const ReadHold& h : holds_) {
    if (h.owner != owner || h.expires <= now) continue;
    ++live;
    if (longest == nullptr || h.expires > longest->expires) longest = &h;
  }
  if (longest == nullptr) return Status::Ok();
  return Unavailable("deferred: snapshot " + longest->snapshot + " of " + owner + " is mounted by " +
                     longest->holder + " until " + UtcText(longest->expires) +
                     (live > 1 ? " (" + std::to_string(live) + " read holds in all)" : "") +
                     "; this peer keeps every chunk of " + owner + " until the mount ends, and the "
                     "next prune after that releases them");
}

std::vector<ReadHold> ReadHolds::Live(const std::string& owner_name) const {
  const std::string owner = Lower(owner_name);
  const int64_t now = Now();
  MutexLock l(mu_);
  std::vector<ReadHold> out;
  for (const ReadHold& h : holds_) {
    if (h.expires > now && (owner.empty() || h.owner == owner)) out.push_back(h);
  }
  return out;
}

}  // namespace sparetime::peerstore
