// LDIF (RFC 2849) content files: parsed into records that remember their
// original text, so that a file can be rewritten with one record changed and
// everything else — other records, comments, blank lines, folding — kept
// byte for byte.
//
// Supported: comments (also folded), continuation lines, "attr: value",
// "attr:: base64", "dn::", "version: 1", "changetype: add" (ignored), CRLF
// line ends, lines of only blanks as separators. Refused with "file:line:"
// errors: URL values ("attr:< ..."), other change records, a record not
// starting with dn:, a DN that appears twice. Pure functions, no I/O.
#ifndef SPARETIME_DIRECTORY_SRC_LDIF_H_
#define SPARETIME_DIRECTORY_SRC_LDIF_H_

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sparetime/base/status.h"
#include "sparetime/directory/entry.h"

namespace sparetime::directory {

struct LdifRecord {
  std::string dn;
  // Attribute names as written, values decoded, in file order.
  std::vector<std::pair<std::string, std::string>> attributes;
  int line = 0;  // line of the dn: (1-based); 0 for a record not read from a file
  // Comments and blank lines before the record, verbatim.
  std::string preamble;
  // The record's own text as read; empty once the record is changed (it is
  // then written from `attributes`).
  std::string raw;

  Entry ToEntry() const;
  // Replaces every value of `name` (any case) by `values`, where the first
  // old value was (or at the end), and marks the record changed.
  void SetValues(std::string_view name, const std::vector<std::string>& values);
};

struct LdifDocument {
  std::vector<LdifRecord> records;
  std::string trailer;  // comments and blank lines after the last record
};

// `path` only names the file in errors ("path:line: what").
Result<LdifDocument> ParseLdif(std::string_view text, const std::string& path);
// Unchanged records verbatim, changed and new ones formatted (values that are
// not safe as plain text base64-encoded), blank lines between records.
std::string SerializeLdif(const LdifDocument& doc);

}  // namespace sparetime::directory

#endif  // SPARETIME_DIRECTORY_SRC_LDIF_H_
