// Entry and DirectoryContents: what a directory backend returns before any
// interpretation — entries as DN plus attribute values, exactly as the server
// (or the LDIF file) holds them.
//
// Invariants: attribute names are stored lower-cased (LDAP attribute names
// are case-insensitive); values keep their order and bytes. A backend fills
// DirectoryContents completely or returns an error — never a partial read.
#ifndef SPARETIME_DIRECTORY_ENTRY_H_
#define SPARETIME_DIRECTORY_ENTRY_H_

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace sparetime::directory {

struct Entry {
  std::string dn;
  // lower-cased attribute name -> values.
  std::map<std::string, std::vector<std::string>> attributes;

  // Values of `name` (any case); empty when absent.
  const std::vector<std::string>& Values(std::string_view name) const;
  // Adds a value to `name` (lower-cases the name).
  void Add(std::string_view name, std::string value);
  // True when the entry lists `object_class` (case-insensitive).
  bool HasObjectClass(std::string_view object_class) const;
};

// Everything sparetime reads from a directory, one consistent read.
struct DirectoryContents {
  std::vector<Entry> agents;    // objectClass=sparetimeAgent under the agents base
  std::vector<Entry> policies;  // objectClass=sparetimePolicy under the policies base
  std::vector<Entry> groups;    // groupOfNames named by a policy's sparetimeAppliesToGroup
};

// Case-insensitive ASCII comparison, for attribute names, DNs and host names.
bool EqualsIgnoreCase(std::string_view a, std::string_view b);
// DN normalised for comparison: RDN components trimmed, attribute types and
// values lower-cased ("CN=Alpha, ou=Agents" -> "cn=alpha,ou=agents").
std::string NormalizeDn(std::string_view dn);

}  // namespace sparetime::directory

#endif  // SPARETIME_DIRECTORY_ENTRY_H_
