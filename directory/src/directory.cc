// OpenDirectory: picks the backend from the URI scheme. ldap://, ldaps://
// and ldapi:// go to the LDAP backend; file:// URIs and absolute paths to the
// LDIF file backend; anything else is refused with the list of what works.
#include "sparetime/directory/directory.h"

#include "backends.h"

namespace sparetime::directory {
namespace {

constexpr char kSchemes[] =
    "use ldap://host[:port], ldaps://host[:port], ldapi://<socket>, file:///path/to/directory.ldif "
    "or an absolute path of an LDIF file";

bool HasScheme(std::string_view uri, std::string_view scheme) {
  return uri.size() >= scheme.size() && EqualsIgnoreCase(uri.substr(0, scheme.size()), scheme);
}

}  // namespace

Result<std::unique_ptr<Directory>> OpenDirectory(const DirectoryConfig& config, const Clock& clock) {
  std::string_view uri = config.uri;
  if (HasScheme(uri, "ldap://") || HasScheme(uri, "ldaps://") || HasScheme(uri, "ldapi://")) {
    return OpenLdapDirectory(config, clock);
  }
  if (HasScheme(uri, "file://")) {
    std::string_view path = uri.substr(7);
    if (HasScheme(path, "localhost/")) path.remove_prefix(9);
    if (path.empty() || path.front() != '/') {
      return InvalidArgument("directory URI \"" + config.uri +
                             "\": a file URI needs an absolute path, e.g. "
                             "file:///etc/sparetime/directory.ldif");
    }
    return OpenLdifDirectory(std::string(path), config, clock);
  }
  if (!uri.empty() && uri.front() == '/') return OpenLdifDirectory(config.uri, config, clock);
  return InvalidArgument("directory URI \"" + config.uri + "\" is not supported: " + kSchemes);
}

}  // namespace sparetime::directory
