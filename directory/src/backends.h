// The two Directory backends, opened by OpenDirectory() (directory.cc)
// according to the URI scheme.
#ifndef SPARETIME_DIRECTORY_BACKENDS_H_
#define SPARETIME_DIRECTORY_BACKENDS_H_

#include <memory>
#include <string>

#include "sparetime/base/clock.h"
#include "sparetime/base/status.h"
#include "sparetime/directory/directory.h"

namespace sparetime::directory {

// ldap://, ldaps://, ldapi:// (ldap_directory.cc).
Result<std::unique_ptr<Directory>> OpenLdapDirectory(const DirectoryConfig& config,
                                                     const Clock& clock);
// An LDIF file holding the same entries as the LDAP tree (ldif_directory.cc).
Result<std::unique_ptr<Directory>> OpenLdifDirectory(const std::string& path,
                                                     const DirectoryConfig& config,
                                                     const Clock& clock);

}  // namespace sparetime::directory

#endif  // SPARETIME_DIRECTORY_BACKENDS_H_
