// Searches for the LDAP directory backend: RFC 2696 simple paged results
// collected into Entry values, and the root DSE's supported controls.
//
// Invariants: a search returns every entry of every page or an error, never
// part of a result; userPassword values are dropped from every entry (the
// backend never holds credentials it read); every message, value array and
// string from libldap is freed by its owner (ldap_conn.h).
#ifndef SPARETIME_DIRECTORY_LDAP_SEARCH_H_
#define SPARETIME_DIRECTORY_LDAP_SEARCH_H_

#include <ldap.h>

#include <string>
#include <vector>

#include "ldap_conn.h"
#include "sparetime/base/status.h"
#include "sparetime/directory/entry.h"

namespace sparetime::directory::ldap {

struct SearchRequest {
  std::string base;
  int scope = LDAP_SCOPE_SUBTREE;
  std::string filter = "(objectClass=*)";
  std::vector<std::string> attributes = {"*"};
};

// Runs `request` in pages of settings.config.page_size entries (the control
// is not critical: a server without paging returns everything at once). A
// missing base is kNotFound; other errors as LdapStatus.
Result<std::vector<Entry>> PagedSearch(LDAP* ld, const LdapSettings& settings,
                                       const SearchRequest& request);

// True when the server's root DSE lists `oid` in supportedControl.
Result<bool> SupportsControl(LDAP* ld, const LdapSettings& settings, const std::string& oid);

}  // namespace sparetime::directory::ldap

#endif  // SPARETIME_DIRECTORY_LDAP_SEARCH_H_
