/* Single-core throughput of the primitives on sparetime's data path, measured
 * on real corpus chunks (docs/performance.md, "Machine floors"):
 *   cc -O2 bench/primitives.c -o /tmp/primitives -lsodium -lzstd -lcrypto
 *   /tmp/primitives /var/tmp/sparetime-bench/corpus-2048/disk-v1.img
 * Takes the first 400 non-zero 1 MiB chunks of the image (the imager skips
 * all-zero ones) and times each primitive over all of them. The two chunk-id
 * functions (keyed BLAKE2b, HMAC-SHA-256 as crypto/src/id_hash.cc runs it: a
 * context dup'd once from a keyed template, re-initialised per chunk) are
 * timed 5 times each, interleaved, and reported as median and best.
 * OpenSSL's SHA-256 and libsodium's AES-256-GCM are there for comparison. */
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zstd.h>

enum { kChunk = 1 << 20, kMaxChunks = 400 };

static double Now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static int IsZero(const unsigned char* p, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (p[i]) return 0;
  return 1;
}

int main(int argc, char** argv) {
  if (argc != 2 || sodium_init() < 0) {
    fprintf(stderr, "usage: %s IMAGE (and libsodium must initialise)\n", argv[0]);
    return 2;
  }
  FILE* f = fopen(argv[1], "rb");
  if (!f) {
    perror(argv[1]);
    return 1;
  }
  static unsigned char* chunk[kMaxChunks];
  int n = 0;
  unsigned char* buf = malloc(kChunk);
  while (n < kMaxChunks && fread(buf, 1, kChunk, f) == kChunk) {
    if (!IsZero(buf, kChunk)) {
      chunk[n++] = buf;
      buf = malloc(kChunk);
    }
  }
  fclose(f);
  const double mb = (double)n * kChunk / 1e6;
  printf("%d non-zero chunks (%.0f MB)\n", n, mb);

  unsigned char key[32] = {1}, id[32], nonce[24] = {0}, mac[16];
  unsigned char* out = malloc(kChunk + 64);
  double t = Now();
  for (int i = 0; i < n; ++i) crypto_generichash(id, 32, chunk[i], kChunk, key, 32);
  printf("keyed BLAKE2b-256 (libsodium)   %6.0f MB/s\n", mb / (Now() - t));

  EVP_MAC* hmac = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL);
  EVP_MAC_CTX* keyed = hmac ? EVP_MAC_CTX_new(hmac) : NULL;
  char digest[] = "SHA2-256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                         OSSL_PARAM_END};
  if (!keyed || EVP_MAC_init(keyed, key, 32, params) != 1) {
    fprintf(stderr, "no HMAC-SHA-256 in this libcrypto\n");
    return 1;
  }
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_dup(keyed);
  enum { kRuns = 5 };
  double rate[2][kRuns];
  for (int run = 0; run < kRuns; ++run) {
    t = Now();
    for (int i = 0; i < n; ++i) crypto_generichash(id, 32, chunk[i], kChunk, key, 32);
    rate[0][run] = mb / (Now() - t);
    t = Now();
    for (int i = 0; i < n; ++i) {
      size_t len = 0;
      EVP_MAC_init(ctx, NULL, 0, NULL);
      EVP_MAC_update(ctx, chunk[i], kChunk);
      EVP_MAC_final(ctx, id, &len, sizeof id);
    }
    rate[1][run] = mb / (Now() - t);
  }
  const char* names[2] = {"keyed BLAKE2b-256", "HMAC-SHA-256 (EVP_MAC)"};
  for (int h = 0; h < 2; ++h) {
    for (int a = 0; a < kRuns; ++a)  /* insertion sort, 5 values */
      for (int b = a; b > 0 && rate[h][b] < rate[h][b - 1]; --b) {
        double x = rate[h][b]; rate[h][b] = rate[h][b - 1]; rate[h][b - 1] = x;
      }
    printf("chunk id %-22s median %6.0f MB/s, best %6.0f MB/s (%d runs)\n", names[h],
           rate[h][kRuns / 2], rate[h][kRuns - 1], kRuns);
  }
  printf("chunk id HMAC-SHA-256 / BLAKE2b: %.2fx (medians)\n", rate[1][kRuns / 2] / rate[0][kRuns / 2]);
  EVP_MAC_CTX_free(ctx);
  EVP_MAC_CTX_free(keyed);
  EVP_MAC_free(hmac);
  t = Now();
  for (int i = 0; i < n; ++i) EVP_Digest(chunk[i], kChunk, id, NULL, EVP_sha256(), NULL);
  printf("SHA-256 (OpenSSL)               %6.0f MB/s\n", mb / (Now() - t));
  t = Now();
  for (int i = 0; i < n; ++i) {
    crypto_aead_xchacha20poly1305_ietf_encrypt_detached(out, mac, NULL, chunk[i], kChunk, id, 32,
                                                        NULL, nonce, key);
  }
  printf("XChaCha20-Poly1305 (libsodium)  %6.0f MB/s\n", mb / (Now() - t));
  if (crypto_aead_aes256gcm_is_available()) {
    t = Now();
    for (int i = 0; i < n; ++i) {
      crypto_aead_aes256gcm_encrypt_detached(out, mac, NULL, chunk[i], kChunk, id, 32, NULL,
                                             nonce, key);
    }
    printf("AES-256-GCM (libsodium)         %6.0f MB/s\n", mb / (Now() - t));
  }

  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ZSTD_DCtx* dctx = ZSTD_createDCtx();
  const size_t bound = ZSTD_compressBound(kChunk);
  unsigned char* frame = malloc((size_t)n * bound);
  size_t* frame_len = malloc(sizeof(size_t) * (size_t)n);
  const int levels[] = {1, 2, 3};
  for (int l = 0; l < 3; ++l) {
    size_t total = 0;
    t = Now();
    for (int i = 0; i < n; ++i) {
      frame_len[i] = ZSTD_compressCCtx(cctx, frame + (size_t)i * bound, bound, chunk[i], kChunk,
                                       levels[l]);
      total += frame_len[i];
    }
    const double tc = Now() - t;
    t = Now();
    for (int i = 0; i < n; ++i) {
      ZSTD_decompressDCtx(dctx, out, kChunk, frame + (size_t)i * bound, frame_len[i]);
    }
    printf("zstd level %d: compress %5.0f MB/s, decompress %5.0f MB/s, ratio %.3f\n", levels[l],
           mb / tc, mb / (Now() - t), (double)n * kChunk / (double)total);
  }
  return 0;
}
