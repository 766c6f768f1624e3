// Change notification: RFC 4533 refreshAndPersist when the server offers it,
// entryCSN/modifyTimestamp polling otherwise. See ldap_watch.h.
#include "ldap_watch.h"

#include <sodium.h>

#include <algorithm>
#include <vector>

#include "ldap_search.h"

namespace sparetime::directory::ldap {
namespace {

using std::chrono::milliseconds;

// At most this many sync messages are consumed in one go after a change.
constexpr int kMaxBurst = 100000;

milliseconds Remaining(std::chrono::steady_clock::time_point deadline, const Clock& clock) {
  const auto left = deadline - clock.MonoNow();
  return left.count() <= 0 ? milliseconds(0) : std::chrono::ceil<milliseconds>(left);
}

// Reads an optional syncCookie at the current position of `ber`.
void ReadCookie(BerElement* ber, std::string& cookie) {
  ber_len_t len = 0;
  berval value{0, nullptr};
  if (ber_peek_tag(ber, &len) == LDAP_TAG_SYNC_COOKIE && ber_scanf(ber, "m", &value) != LBER_ERROR &&
      value.bv_val != nullptr) {
    cookie.assign(value.bv_val, value.bv_len);
  }
}

// The cookie of an entry's Sync State control, if it carries one.
void ReadEntryCookie(LDAP* ld, LDAPMessage* message, std::string& cookie) {
  LDAPControl** raw = nullptr;
  if (ldap_get_entry_controls(ld, message, &raw) != LDAP_SUCCESS) return;
  ControlsPtr controls(raw);
  if (!controls) return;
  LDAPControl* state = ldap_control_find(LDAP_CONTROL_SYNC_STATE, controls.get(), nullptr);
  if (state == nullptr) return;
  BerPtr ber(ber_init(&state->ldctl_value));
  ber_int_t sync_state = 0;
  berval uuid{0, nullptr};
  if (ber && ber_scanf(ber.get(), "{em", &sync_state, &uuid) != LBER_ERROR) {
    ReadCookie(ber.get(), cookie);
  }
}

}  // namespace

Result<bool> ChangeWatcher::Wait(milliseconds max_wait) {
  const Deadline deadline = clock_.MonoNow() + max_wait;
  for (int attempt = 0;; ++attempt) {
    Result<bool> changed = WaitOnce(deadline);
    if (changed.ok() || changed.error().code() != ErrorCode::kUnavailable) return changed;
    const milliseconds left = Remaining(deadline, clock_);
    if (left.count() == 0) return changed;
    clock_.SleepFor(std::min(Backoff(attempt), left));
  }
}

Result<bool> ChangeWatcher::WaitOnce(Deadline deadline) {
  if (mode_ == Mode::kUnknown) {
    bool sync = false;
    ST_RETURN_IF_ERROR(session_.Run(
        "reading the server's supported controls",
        [&](LDAP* ld) -> Status {
          ST_ASSIGN_OR_RETURN(sync, SupportsControl(ld, settings_, LDAP_CONTROL_SYNC));
          return Status::Ok();
        },
        deadline));
    mode_ = sync ? Mode::kSync : Mode::kPoll;
  }
  return mode_ == Mode::kSync ? WaitSync(deadline) : WaitPoll(deadline);
}

Status ChangeWatcher::StartSync() {
  ST_ASSIGN_OR_RETURN(sync_ld_, Connect(settings_));
  BerPtr ber(ber_alloc_t(LBER_USE_DER));
  if (!ber) return Internal("out of memory encoding the LDAP sync request");
  const ber_int_t mode = LDAP_SYNC_REFRESH_AND_PERSIST;
  berval cookie{static_cast<ber_len_t>(cookie_.size()), cookie_.data()};
  const int printed = cookie_.empty() ? ber_printf(ber.get(), "{e}", mode)
                                      : ber_printf(ber.get(), "{eO}", mode, &cookie);
  berval value{0, nullptr};
  if (printed < 0 || ber_flatten2(ber.get(), &value, 0) < 0) {
    sync_ld_.reset();
    return Internal("cannot encode the LDAP sync request control");
  }
  LDAPControl control{};
  control.ldctl_oid = const_cast<char*>(LDAP_CONTROL_SYNC);
  control.ldctl_value = value;
  control.ldctl_iscritical = 1;
  LDAPControl* controls[] = {&control, nullptr};
  char no_attributes[] = LDAP_NO_ATTRS;  // "1.1": DNs only, changes are all we need
  char* attrs[] = {no_attributes, nullptr};
  const std::string& base = settings_.config.base_dn;
  int rc = ldap_search_ext(sync_ld_.get(), base.c_str(), LDAP_SCOPE_SUBTREE, "(objectClass=*)",
                           attrs, 0, controls, nullptr, nullptr, LDAP_NO_LIMIT, &sync_msgid_);
  if (rc != LDAP_SUCCESS) {
    Status st = LdapStatus(sync_ld_.get(), rc, settings_.config.uri, "sync search under", base);
    sync_ld_.reset();
    return st;
  }
  resumed_ = !cookie_.empty();
  refresh_done_ = false;
  return Status::Ok();
}

Result<bool> ChangeWatcher::WaitSync(Deadline deadline) {
  if (!sync_ld_) {
    ST_RETURN_IF_ERROR(StartSync());
    // Without a cookie nothing tells what changed before this session.
    if (!resumed_) return true;
  }
  // Once a change is seen (and any refresh is over), the messages already
  // received are consumed too, so that a burst of changes is one "true".
  bool changed = false;
  for (int consumed = 0; consumed < kMaxBurst; ++consumed) {
    const bool settle = changed && refresh_done_;
    timeval timeout = ToTimeval(settle ? milliseconds(0) : Remaining(deadline, clock_));
    LDAPMessage* raw = nullptr;
    const int type = ldap_result(sync_ld_.get(), sync_msgid_, LDAP_MSG_ONE, &timeout, &raw);
    MessagePtr message(raw);
    if (type == 0) return changed;
    if (type < 0) {
      int rc = LDAP_SERVER_DOWN;
      ldap_get_option(sync_ld_.get(), LDAP_OPT_RESULT_CODE, &rc);
      Status st = LdapStatus(sync_ld_.get(), ServerGone(rc) ? rc : LDAP_SERVER_DOWN,
                             settings_.config.uri, "waiting for changes (sync search) under",
                             settings_.config.base_dn);
      sync_ld_.reset();
      if (changed) return true;
      return st;
    }
    ST_ASSIGN_OR_RETURN(bool change, HandleSyncMessage(message.get()));
    changed = changed || change;
    if (!sync_ld_) return true;  // the server ended the session
  }
  return true;
}

Result<bool> ChangeWatcher::HandleSyncMessage(LDAPMessage* message) {
  LDAP* ld = sync_ld_.get();
  switch (ldap_msgtype(message)) {
    case LDAP_RES_SEARCH_ENTRY:
      ReadEntryCookie(ld, message, cookie_);
      // Entries of the initial refresh of a fresh session are the content
      // as it is, not changes.
      return refresh_done_ || resumed_;
    case LDAP_RES_INTERMEDIATE:
      return HandleSyncInfo(message);
    case LDAP_RES_SEARCH_RESULT: {
      int err = LDAP_OTHER;
      LDAPControl** raw_controls = nullptr;
      const int rc =
          ldap_parse_result(ld, message, &err, nullptr, nullptr, nullptr, &raw_controls, 0);
      ControlsPtr controls(raw_controls);
      if (rc != LDAP_SUCCESS) err = rc;
      Status st = LdapStatus(ld, err, settings_.config.uri, "sync search under",
                             settings_.config.base_dn);
      sync_ld_.reset();
      if (err == LDAP_SYNC_REFRESH_REQUIRED) {
        cookie_.clear();  // the server cannot resume from it: start over
      } else if (err == LDAP_UNAVAILABLE_CRITICAL_EXTENSION || err == LDAP_PROTOCOL_ERROR ||
                 err == LDAP_UNWILLING_TO_PERFORM) {
        mode_ = Mode::kPoll;  // advertised but not served for this base
      } else if (err != LDAP_SUCCESS && !ServerGone(err)) {
        return st;
      }
      return true;  // the session ended: whatever happened next is unknown
    }
    default:
      return false;
  }
}

bool ChangeWatcher::HandleSyncInfo(LDAPMessage* message) {
  char* raw_oid = nullptr;
  berval* raw_data = nullptr;
  if (ldap_parse_intermediate(sync_ld_.get(), message, &raw_oid, &raw_data, nullptr, 0) !=
      LDAP_SUCCESS) {
    return false;
  }
  LdapString oid(raw_oid);
  BervalPtr data(raw_data);
  if (!oid || !data || std::string(oid.get()) != LDAP_SYNC_INFO) return false;
  BerPtr ber(ber_init(data.get()));
  if (!ber) return false;
  ber_len_t len = 0;
  switch (ber_peek_tag(ber.get(), &len)) {
    case LDAP_TAG_SYNC_NEW_COOKIE:
      ReadCookie(ber.get(), cookie_);
      return false;
    case LDAP_TAG_SYNC_REFRESH_DELETE:
    case LDAP_TAG_SYNC_REFRESH_PRESENT: {
      if (ber_scanf(ber.get(), "{") == LBER_ERROR) return false;
      ReadCookie(ber.get(), cookie_);
      ber_int_t done = 1;  // refreshDone DEFAULT TRUE
      if (ber_peek_tag(ber.get(), &len) == LDAP_TAG_REFRESHDONE) {
        if (ber_scanf(ber.get(), "b", &done) == LBER_ERROR) done = 0;
      }
      if (done) refresh_done_ = true;
      return false;
    }
    case LDAP_TAG_SYNC_ID_SET:
      if (ber_scanf(ber.get(), "{") != LBER_ERROR) ReadCookie(ber.get(), cookie_);
      // A set of entries deleted (or present, implying deletions).
      return refresh_done_ || resumed_;
    default:
      return false;
  }
}

Result<bool> ChangeWatcher::WaitPoll(Deadline deadline) {
  if (!digest_) {
    ST_ASSIGN_OR_RETURN(digest_, Digest(deadline));
    next_poll_ = clock_.MonoNow() + settings_.config.poll_interval;
    return true;  // no earlier state to compare with
  }
  while (true) {
    if (clock_.MonoNow() >= next_poll_) {
      ST_ASSIGN_OR_RETURN(std::string digest, Digest(deadline));
      next_poll_ = clock_.MonoNow() + settings_.config.poll_interval;
      if (digest != *digest_) {
        digest_ = std::move(digest);
        return true;
      }
    }
    const auto now = clock_.MonoNow();
    if (now >= deadline) return false;
    clock_.SleepFor(std::min(next_poll_, deadline) - now);
  }
}

Result<std::string> ChangeWatcher::Digest(Deadline deadline) {
  std::vector<Entry> entries;
  const SearchRequest request{settings_.config.base_dn, LDAP_SCOPE_SUBTREE, "(objectClass=*)",
                              {"entryCSN", "modifyTimestamp"}};
  ST_RETURN_IF_ERROR(session_.Run(
      "polling for changes",
      [&](LDAP* ld) -> Status {
        ST_ASSIGN_OR_RETURN(entries, PagedSearch(ld, settings_, request));
        return Status::Ok();
      },
      deadline));
  std::vector<std::string> lines;
  lines.reserve(entries.size());
  for (const Entry& e : entries) {
    std::string line = NormalizeDn(e.dn);
    for (const char* attr : {"entryCSN", "modifyTimestamp"}) {
      for (const std::string& v : e.Values(attr)) line += '\0' + v;
    }
    lines.push_back(std::move(line));
  }
  std::sort(lines.begin(), lines.end());
  crypto_generichash_state state;
  crypto_generichash_init(&state, nullptr, 0, crypto_generichash_BYTES);
  for (const std::string& line : lines) {
    const uint64_t size = line.size();
    crypto_generichash_update(&state, reinterpret_cast<const unsigned char*>(&size), sizeof size);
    crypto_generichash_update(&state, reinterpret_cast<const unsigned char*>(line.data()),
                              line.size());
  }
  std::string digest(crypto_generichash_BYTES, '\0');
  crypto_generichash_final(&state, reinterpret_cast<unsigned char*>(digest.data()), digest.size());
  return digest;
}

}  // namespace sparetime::directory::ldap
