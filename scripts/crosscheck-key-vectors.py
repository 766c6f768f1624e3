#!/usr/bin/env python3
# Cross-checks the key-file vectors of docs/formats.md ("Key file, version 2",
# "Paper recovery kit") without libsodium: key id and paper-kit check bytes
# with hashlib.blake2b, the escrow public key with X25519 from Python's
# cryptography, and the sealed-box vector opened with a hand-written
# HSalsa20/XSalsa20 and cryptography's Poly1305. Needs python3-cryptography.
# Also the HMAC-SHA-256 chunk-id vectors of docs/formats.md ("Chunk id"):
# the HMAC id key (crypto_kdf subkey 4, recomputed as BLAKE2b with salt and
# person) and the ids of fixed inputs with Python's hmac, checked against the
# documented values (tests/imaging/codec_id_hash_test.cc asserts the same).
# Prints the values; tests/imaging/key_file_test.cc and paper_key_test.cc
# assert the same ones.
import hashlib, hmac, struct
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.poly1305 import Poly1305
sk = bytes(range(0x40, 0x60)); m = bytes(range(32))
pk = X25519PrivateKey.from_private_bytes(sk).public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
sealed = bytes.fromhex(
    "3570c9b48cc786cc54b51ea1d7bd0c92926be81752c559b5a26a96d6ff08675f6723011905fc1254e5f26cec98"
    "6ccbf04376f3c7474ea6d988dcb6f3cd74ea6fe230409066ac8dab19113f363c63f3b2")
print("escrow public key", pk.hex())
def kdf_subkey(master, subkey_id, ctx=b"sprtime1"):
    return hashlib.blake2b(b"", key=master, digest_size=32, salt=struct.pack("<Q", subkey_id) + bytes(8),
                           person=ctx + bytes(8)).digest()
def pattern(n):
    p = b"sparetime test vector\n"; return (p * (n // len(p) + 1))[:n]
hmac_key = kdf_subkey(m, 4)
assert kdf_subkey(m, 1).hex() == "46c03483d5b8613fcc73578671190d5bd05ce0fb541ba6f3213dac8018f13452"
assert hmac_key.hex() == "636dc1888e39810aedd5a797fab45fac2fb962d4fc4ef39f318a41a81f0d88ad"
print("HMAC id key", hmac_key.hex())
for name, data, want in [
        ('""', b"", "11a5c0525d113cdfaf2041a050fe4a7b3de724ca6b5a691ca41161d00afc02d3"),
        ('"sparetime"', b"sparetime", "a95c584a33106c5e3c32b8fa7331a74b239e109551927b73fd1066f8937bb77c"),
        ("P(4096)", pattern(4096), "c81b6ec24bf092dd677c8121a0471b3a0b05a034b5afa4484565154962cc7cb5"),
        ("P(1048576)", pattern(1 << 20), "71850578938f8bbdc753b011de3e8b372d189829609e838e30c6e43473399a64")]:
    got = hmac.new(hmac_key, data, hashlib.sha256).hexdigest()
    assert got == want, (name, got)
    print("hmac-sha256 id of", name, got)
print("key id", hashlib.blake2b(b"sparetime key id v1", key=m, digest_size=16).hexdigest())
import base64
for i in range(1, 9):
    chunk = m[4 * (i - 1):4 * i]
    check = hashlib.blake2b(b"sparetime paper v1" + bytes([i]) + chunk, digest_size=1).digest()
    s32 = base64.b32encode(chunk + check).decode()
    print(f"paper line {i}: {s32[:4]}-{s32[4:]}")
# independent open: X25519 + HSalsa20 + XSalsa20-Poly1305
def rotl(v, c): return ((v << c) & 0xffffffff) | (v >> (32 - c))
def qr(x, a, b, c, d):
    x[b] ^= rotl((x[a] + x[d]) & 0xffffffff, 7); x[c] ^= rotl((x[b] + x[a]) & 0xffffffff, 9)
    x[d] ^= rotl((x[c] + x[b]) & 0xffffffff, 13); x[a] ^= rotl((x[d] + x[c]) & 0xffffffff, 18)
def rounds(x):
    for _ in range(10):
        qr(x,0,4,8,12); qr(x,5,9,13,1); qr(x,10,14,2,6); qr(x,15,3,7,11)
        qr(x,0,1,2,3); qr(x,5,6,7,4); qr(x,10,11,8,9); qr(x,15,12,13,14)
C = struct.unpack('<4I', b'expand 32-byte k')
def state(k, n16):
    kw = struct.unpack('<8I', k); nw = struct.unpack('<4I', n16)
    return [C[0],kw[0],kw[1],kw[2],kw[3],C[1],nw[0],nw[1],nw[2],nw[3],C[2],kw[4],kw[5],kw[6],kw[7],C[3]]
def hsalsa(k, n16):
    x = state(k, n16); rounds(x)
    return struct.pack('<8I', *[x[i] for i in (0,5,10,15,6,7,8,9)])
def salsa_stream(k, n8, length):
    out = b''; ctr = 0
    while len(out) < length:
        x0 = state(k, n8 + struct.pack('<Q', ctr)); x = list(x0); rounds(x)
        out += struct.pack('<16I', *[(a + b) & 0xffffffff for a, b in zip(x, x0)]); ctr += 1
    return out[:length]
epk, c = sealed[:32], sealed[32:]
shared = X25519PrivateKey.from_private_bytes(sk).exchange(X25519PublicKey.from_public_bytes(epk))
k = hsalsa(shared, b'\0'*16)
nonce = hashlib.blake2b(epk + pk, digest_size=24).digest()
k2 = hsalsa(k, nonce[:16]); stream = salsa_stream(k2, nonce[16:], 32 + len(c) - 16)
polykey, tag, ct = stream[:32], c[:16], c[16:]
Poly1305.verify_tag(polykey, ct, tag)
plain = bytes(a ^ b for a, b in zip(ct, stream[32:]))
print("escrow seal opens to", plain.hex(), "(master 00..1f:", plain == m, ")")
assert plain == m
