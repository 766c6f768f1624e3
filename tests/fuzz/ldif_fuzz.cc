// libFuzzer target: the LDIF parser (directory/src/ldif.h), which reads the
// directory file an admin edits and sparetimed rewrites. Findings: crashes,
// sanitizer reports, and a broken round trip (__builtin_trap): what parses
// must serialize to text that parses to the same records, unchanged records
// byte for byte, and a record changed through SetValues must come back with
// exactly the values set.
#include <cstddef>
#include <cstdint>

#include "fuzz_util.h"
#include "ldif.h"

using namespace sparetime;
using namespace sparetime::directory;

namespace {

void Same(const LdifDocument& a, const LdifDocument& b) {
  if (a.records.size() != b.records.size()) __builtin_trap();
  for (size_t i = 0; i < a.records.size(); ++i) {
    if (a.records[i].dn != b.records[i].dn) __builtin_trap();
    if (a.records[i].attributes != b.records[i].attributes) __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Result<LdifDocument> doc = ParseLdif(fuzz::Text(data, size), "fuzz.ldif");
  if (!doc.ok()) return 0;
  for (const LdifRecord& r : doc->records) (void)r.ToEntry();
  std::string text = SerializeLdif(*doc);
  Result<LdifDocument> again = ParseLdif(text, "fuzz.ldif");
  if (!again.ok()) __builtin_trap();
  Same(*doc, *again);
  if (doc->records.empty()) return 0;
  // Change the first record: its values (taken from the input) must survive
  // formatting, whatever bytes they hold.
  LdifRecord& first = doc->records.front();
  std::vector<std::string> values;
  for (const auto& [name, value] : first.attributes) values.push_back(value);
  first.SetValues("description", values);
  Result<LdifDocument> changed = ParseLdif(SerializeLdif(*doc), "fuzz.ldif");
  if (!changed.ok()) __builtin_trap();
  Same(*doc, *changed);
  return 0;
}
