// The LDAP Directory backend (OpenLDAP's libldap): Fetch reads agents,
// policies and the groups the policies name with paged searches; Register
// writes the agent's own entry; WaitForChange is ldap_watch.h.
//
// Invariants: Fetch returns everything or an error (a missing group is left
// out for the model side to warn about, nothing else is); Register writes
// only cn=<escaped host>,ou=agents,<base>, replaces the dynamic attributes,
// adds a public key only when the entry has none (trust on first use; the
// ACLs let an agent add but never replace or delete its key) and refuses,
// naming both keys, when the entry holds a different one; every host name in
// a DN is escaped (EscapeDnValue). Operations are re-run after a reconnect
// when the server went away, so each one is safe to repeat.

#include <memory>
#include <set>

#include "backends.h"
#include "ldap_conn.h"
#include "ldap_search.h"
#include "ldap_watch.h"
#include "values.h"
#include "sparetime/crypto/secret.h"

namespace sparetime::directory {
namespace {

using ldap::LdapSession;
using ldap::LdapSettings;
using ldap::LdapStatus;
using ldap::PagedSearch;
using ldap::SearchRequest;

// True when the stored attribute value is exactly `key`.
bool SameKey(const std::string& stored, const PublicKey& key) {
  Result<PublicKey> decoded = DecodeKey(stored);
  return decoded.ok() && *decoded == key;
}

// An LDAPMod array that owns its strings.
class ModList {
 public:
  // Empty strings are dropped; replace with no values deletes the attribute.
  void Add(int op, const std::string& attribute, const std::vector<std::string>& values) {
    auto item = std::make_unique<Item>();
    item->attribute = attribute;
    for (const std::string& v : values) {
      if (!v.empty()) item->values.push_back(v);
    }
    if (op == LDAP_MOD_ADD && item->values.empty()) return;
    for (std::string& v : item->values) item->bervals.push_back({v.size(), v.data()});
    for (berval& b : item->bervals) item->pointers.push_back(&b);
    item->pointers.push_back(nullptr);
    item->mod.mod_op = op | LDAP_MOD_BVALUES;
    item->mod.mod_type = item->attribute.data();
    item->mod.mod_bvalues = item->pointers.data();
    items_.push_back(std::move(item));
  }
  LDAPMod** get() {
    mods_.clear();
    for (auto& item : items_) mods_.push_back(&item->mod);
    mods_.push_back(nullptr);
    return mods_.data();
  }

 private:
  struct Item {
    std::string attribute;
    std::vector<std::string> values;
    std::vector<berval> bervals;
    std::vector<berval*> pointers;
    LDAPMod mod{};
  };
  std::vector<std::unique_ptr<Item>> items_;
  std::vector<LDAPMod*> mods_;
};

// The attributes an agent keeps current, as (name, values).
std::vector<std::pair<std::string, std::vector<std::string>>> DynamicAttributes(
    const AgentRegistration& self, TimePoint now) {
  std::vector<std::pair<std::string, std::vector<std::string>>> attrs = {
          {"sparetimeAddress", {self.address}},
          {"sparetimePort", {std::to_string(self.port)}},
          {"sparetimeCapacity", {std::to_string(self.capacity)}},
          {"sparetimeFree", {std::to_string(self.free)}},
          {"sparetimeVersion", {self.version}},
          {"sparetimeLastSeen", {FormatGeneralizedTime(now)}},
          {"sparetimeDeviceHeld", self.devices_held}};
  if (self.backups) {
    std::vector<std::string> values;
    for (const DeviceBackupState& d : *self.backups) values.push_back(EncodeDeviceState(d));
    attrs.push_back({"sparetimeBackupState", values});
  }
  if (self.health) attrs.push_back({"sparetimeBackupHealth", {EncodeBackupHealth(*self.health)}});
  return attrs;
}

class LdapDirectory final : public Directory {
 public:
  LdapDirectory(LdapSettings settings, const Clock& clock)
      : settings_(std::move(settings)),
        session_(settings_, clock),
        watcher_(settings_, clock, session_) {}

  std::string Describe() const override {
    return settings_.config.uri + " (" + settings_.config.base_dn + ")";
  }

  Result<DirectoryContents> Fetch() override {
    DirectoryContents contents;
    ST_RETURN_IF_ERROR(session_.Run("reading agents and policies", [&](LDAP* ld) -> Status {
      DirectoryContents read;
      ST_ASSIGN_OR_RETURN(read.agents, SearchContainer(ld, "ou=agents", LDAP_SCOPE_ONELEVEL,
                                                       "(objectClass=sparetimeAgent)"));
      ST_ASSIGN_OR_RETURN(read.policies, SearchContainer(ld, "ou=policies", LDAP_SCOPE_SUBTREE,
                                                         "(objectClass=sparetimePolicy)"));
      ST_ASSIGN_OR_RETURN(read.groups, ReadGroups(ld, read.policies));
      contents = std::move(read);
      return Status::Ok();
    }));
    return contents;
  }

  Status Register(const AgentRegistration& self, TimePoint now) override {
    if (self.name.empty()) return InvalidArgument("cannot register an agent with an empty name");
    const std::string dn = "cn=" + EscapeDnValue(self.name) + "," + AgentsBase();
    return session_.Run("registering " + dn, [&](LDAP* ld) {
      return RegisterOnce(ld, self, now, dn, /*may_retry=*/true);
    });
  }

  Result<bool> WaitForChange(std::chrono::milliseconds max_wait) override {
    return watcher_.Wait(max_wait);
  }

 private:
  std::string AgentsBase() const { return "ou=agents," + settings_.config.base_dn; }
  const std::string& uri() const { return settings_.config.uri; }

  Result<std::vector<Entry>> SearchContainer(LDAP* ld, const std::string& rdn, int scope,
                                             const std::string& filter) {
    const std::string base = rdn + "," + settings_.config.base_dn;
    Result<std::vector<Entry>> found = PagedSearch(ld, settings_, {base, scope, filter, {"*"}});
    if (found.ok() || found.error().code() != ErrorCode::kNotFound) return found;
    return NotFound(found.error().message() + ": create " + base +
                    " (conf/ldap/example-dit.ldif shows the tree), or check base_dn and that "
                    "the bind identity may read it");
  }

  // The groupOfNames entries the policies name, each once; a group that does
  // not exist (or is not a valid DN) is left out.
  Result<std::vector<Entry>> ReadGroups(LDAP* ld, const std::vector<Entry>& policies) {
    std::vector<Entry> groups;
    std::set<std::string> seen;
    for (const Entry& policy : policies) {
      for (const std::string& dn : policy.Values("sparetimeAppliesToGroup")) {
        if (!seen.insert(NormalizeDn(dn)).second) continue;
        Result<std::vector<Entry>> group =
            PagedSearch(ld, settings_, {dn, LDAP_SCOPE_BASE, "(objectClass=*)", {"*"}});
        if (!group.ok()) {
          const ErrorCode code = group.error().code();
          if (code == ErrorCode::kNotFound || code == ErrorCode::kInvalidArgument) continue;
          return group.error();
        }
        for (Entry& e : *group) groups.push_back(std::move(e));
      }
    }
    return groups;
  }

  Status RegisterOnce(LDAP* ld, const AgentRegistration& self, TimePoint now,
                      const std::string& dn, bool may_retry) {
    Result<std::vector<Entry>> found = PagedSearch(
        ld, settings_, {dn, LDAP_SCOPE_BASE, "(objectClass=*)", {"sparetimePublicKey"}});
    if (!found.ok() && found.error().code() != ErrorCode::kNotFound) return found.error();
    if (!found.ok() || found->empty()) return AddAgent(ld, self, now, dn, may_retry);

    const std::vector<std::string>& keys = found->front().Values("sparetimePublicKey");
    const std::string mine = EncodeKey(self.public_key);
    if (!keys.empty() && !SameKey(keys.front(), self.public_key)) {
      return AuthFailed("agent entry " + dn + " on " + uri() + " holds public key " +
                        keys.front() + " but this agent's key is " + mine +
                        ": an agent never replaces its key; if the host was reinstalled, an "
                        "admin must change sparetimePublicKey of " + dn + " (docs/ldap.md)");
    }
    ModList mods;
    for (const auto& [name, values] : DynamicAttributes(self, now)) {
      mods.Add(LDAP_MOD_REPLACE, name, values);
    }
    if (keys.empty()) mods.Add(LDAP_MOD_ADD, "sparetimePublicKey", {mine});  // trust on first use
    const int rc = ldap_modify_ext_s(ld, dn.c_str(), mods.get(), nullptr, nullptr);
    if (rc == LDAP_SUCCESS) return Status::Ok();
    if (keys.empty() && may_retry &&
        (rc == LDAP_TYPE_OR_VALUE_EXISTS || rc == LDAP_CONSTRAINT_VIOLATION)) {
      // Someone set a key between our read and our write: compare with it.
      return RegisterOnce(ld, self, now, dn, /*may_retry=*/false);
    }
    Status st = LdapStatus(ld, rc, uri(), "modify of agent entry", dn);
    if (rc != LDAP_INSUFFICIENT_ACCESS) return st;
    return PermissionDenied(st.message() + ": an agent may write only the dynamic attributes of "
                            "its own entry; bind_dn must be " + dn + " (docs/ldap.md, access "
                            "control)");
  }

  Status AddAgent(LDAP* ld, const AgentRegistration& self, TimePoint now, const std::string& dn,
                  bool may_retry) {
    ModList attrs;
    attrs.Add(LDAP_MOD_ADD, "objectClass", {"sparetimeAgent"});
    attrs.Add(LDAP_MOD_ADD, "cn", {self.name});
    attrs.Add(LDAP_MOD_ADD, "sparetimePublicKey", {EncodeKey(self.public_key)});
    attrs.Add(LDAP_MOD_ADD, "sparetimeSite", {self.site});
    for (const auto& [name, values] : DynamicAttributes(self, now)) {
      attrs.Add(LDAP_MOD_ADD, name, values);
    }
    const int rc = ldap_add_ext_s(ld, dn.c_str(), attrs.get(), nullptr, nullptr);
    if (rc == LDAP_SUCCESS) return Status::Ok();
    if (rc == LDAP_ALREADY_EXISTS && may_retry) {
      return RegisterOnce(ld, self, now, dn, /*may_retry=*/false);  // created meanwhile
    }
    Status st = LdapStatus(ld, rc, uri(), "adding agent entry", dn);
    if (rc != LDAP_INSUFFICIENT_ACCESS) return st;
    return PermissionDenied(st.message() + ": the host is not enrolled and this identity may "
                            "not create agent entries; an admin must enrol it first by creating " +
                            dn + " (objectClass sparetimeAgent) with a userPassword for the "
                            "agent to bind with (docs/ldap.md)");
  }

  LdapSettings settings_;
  LdapSession session_;
  ldap::ChangeWatcher watcher_;
};

}  // namespace

Result<std::unique_ptr<Directory>> OpenLdapDirectory(const DirectoryConfig& config,
                                                     const Clock& clock) {
  ST_RETURN_IF_ERROR(InitCrypto());
  ST_ASSIGN_OR_RETURN(LdapSettings settings, ldap::CheckSettings(config));
  return std::unique_ptr<Directory>(std::make_unique<LdapDirectory>(std::move(settings), clock));
}

}  // namespace sparetime::directory
