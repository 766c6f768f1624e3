// libFuzzer target: migration images (migration/image_store.h, "SPTMIGR3"
// files from `sparetime checkpoint --to FILE`, and the index a migrating
// peer sends) and the process manifest inside them (image.h,
// DecodeManifest). What decodes must encode to the same bytes (else
// __builtin_trap).
#include <cstddef>
#include <cstdint>

#include "fuzz_util.h"
#include "sparetime/migration/image.h"
#include "sparetime/migration/image_store.h"

using namespace sparetime;
using namespace sparetime::migration;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in = fuzz::Text(data, size);
  Result<StoredImage> stored = DecodeStoredImage(in, "fuzz image");
  if (!stored.ok()) {
    // The manifest alone (a JSON document), against a small page store.
    DecodeManifest(in, 64).status().IgnoreError();
    return 0;
  }
  if (EncodeStoredImage(*stored) != in) __builtin_trap();
  uint64_t pages = 0;
  for (const ChunkRef& c : stored->chunks) pages += c.pages;
  Result<ProcessImage> image = DecodeManifest(stored->manifest, pages);
  if (!image.ok()) return 0;
  if (!EncodeManifest(*image).ok()) __builtin_trap();
  return 0;
}
