// Paged searches and root DSE reads; see ldap_search.h for the invariants.
#include "ldap_search.h"

#include <algorithm>

namespace sparetime::directory::ldap {
namespace {

// A server that keeps handing out cookies would otherwise page forever.
constexpr int kMaxPages = 100000;

Entry ToEntry(LDAP* ld, LDAPMessage* message) {
  Entry entry;
  LdapString dn(ldap_get_dn(ld, message));
  if (dn) entry.dn = dn.get();
  BerElement* raw_ber = nullptr;
  LdapString name(ldap_first_attribute(ld, message, &raw_ber));
  BerIteratorPtr ber(raw_ber);
  for (; name; name.reset(ldap_next_attribute(ld, message, ber.get()))) {
    if (EqualsIgnoreCase(name.get(), "userPassword")) continue;
    ValuesPtr values(ldap_get_values_len(ld, message, name.get()));
    if (!values) continue;
    for (berval** v = values.get(); *v != nullptr; ++v) {
      entry.Add(name.get(), std::string((*v)->bv_val, (*v)->bv_len));
    }
  }
  return entry;
}

// One search request (with `controls`); on success `result` holds the
// entries and the final result message.
Status SearchOnce(LDAP* ld, const LdapSettings& s, const SearchRequest& request,
                  LDAPControl** controls, MessagePtr& result) {
  std::vector<char*> attrs;
  for (const std::string& a : request.attributes) attrs.push_back(const_cast<char*>(a.c_str()));
  attrs.push_back(nullptr);
  timeval timeout = ToTimeval(s.config.operation_timeout);
  LDAPMessage* raw = nullptr;
  int rc = ldap_search_ext_s(ld, request.base.c_str(), request.scope, request.filter.c_str(),
                             attrs.data(), 0, controls, nullptr, &timeout, LDAP_NO_LIMIT, &raw);
  result.reset(raw);
  if (rc == LDAP_SUCCESS) return Status::Ok();
  return LdapStatus(ld, rc, s.config.uri, "search " + request.filter + " under", request.base);
}

}  // namespace

Result<std::vector<Entry>> PagedSearch(LDAP* ld, const LdapSettings& s,
                                       const SearchRequest& request) {
  std::vector<Entry> entries;
  std::string cookie;
  for (int page = 0; page < kMaxPages; ++page) {
    berval cookie_bv{static_cast<ber_len_t>(cookie.size()), cookie.data()};
    LDAPControl* raw_control = nullptr;
    int rc = ldap_create_page_control(ld, s.config.page_size, &cookie_bv, 0, &raw_control);
    if (rc != LDAP_SUCCESS) {
      return LdapStatus(ld, rc, s.config.uri, "building the paged-results control for",
                        request.base);
    }
    ControlPtr page_control(raw_control);
    LDAPControl* controls[] = {page_control.get(), nullptr};
    MessagePtr result;
    ST_RETURN_IF_ERROR(SearchOnce(ld, s, request, controls, result));
    for (LDAPMessage* e = ldap_first_entry(ld, result.get()); e != nullptr;
         e = ldap_next_entry(ld, e)) {
      entries.push_back(ToEntry(ld, e));
    }
    int err = LDAP_SUCCESS;
    LDAPControl** raw_controls = nullptr;
    rc = ldap_parse_result(ld, result.get(), &err, nullptr, nullptr, nullptr, &raw_controls, 0);
    ControlsPtr response_controls(raw_controls);
    if (rc != LDAP_SUCCESS) {
      return LdapStatus(ld, rc, s.config.uri, "reading the result of a search under",
                        request.base);
    }
    LDAPControl* response =
        response_controls
            ? ldap_control_find(LDAP_CONTROL_PAGEDRESULTS, response_controls.get(), nullptr)
            : nullptr;
    if (response == nullptr) return entries;  // the server did not page
    ber_int_t estimate = 0;
    berval next{0, nullptr};
    rc = ldap_parse_pageresponse_control(ld, response, &estimate, &next);
    if (rc != LDAP_SUCCESS) {
      return LdapStatus(ld, rc, s.config.uri, "reading the paged-results control of a search under",
                        request.base);
    }
    cookie.assign(next.bv_val == nullptr ? "" : next.bv_val, next.bv_len);
    ber_memfree(next.bv_val);
    if (cookie.empty()) return entries;
  }
  return Internal(s.config.uri + ": search under " + request.base + " returned more than " +
                  std::to_string(kMaxPages) + " pages; giving up");
}

Result<bool> SupportsControl(LDAP* ld, const LdapSettings& s, const std::string& oid) {
  SearchRequest root_dse{"", LDAP_SCOPE_BASE, "(objectClass=*)", {"supportedControl"}};
  MessagePtr result;
  ST_RETURN_IF_ERROR(SearchOnce(ld, s, root_dse, nullptr, result));
  LDAPMessage* e = ldap_first_entry(ld, result.get());
  if (e == nullptr) return false;
  const Entry root = ToEntry(ld, e);
  const std::vector<std::string>& controls = root.Values("supportedControl");
  return std::find(controls.begin(), controls.end(), oid) != controls.end();
}

}  // namespace sparetime::directory::ldap
