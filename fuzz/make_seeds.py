#!/usr/bin/env python3
"""Write the seed corpus of both fuzz targets to fuzz/corpus/<target>/.

Run it again after changing the input layout of a target. The files it
writes are committed, and libFuzzer adds the inputs it finds beside them.
"""

import os
import random
import struct
import zlib

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
BODY_LEN = 43
CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
DAY = 86_400
NOW_2026 = 1_780_272_000
# 9999-12-31T23:59:59Z, the latest instant of google.protobuf.Timestamp.
MAX_SECONDS = 253_402_300_799


def base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, remainder = divmod(number, 62)
        digits.append(ALPHABET[remainder])
    return "".join(reversed(digits))


def token(prefix: str, rng: random.Random) -> str:
    """Build a well-formed token: prefix, 43 base62 characters, CRC32."""
    signed = prefix + "".join(rng.choice(ALPHABET) for _ in range(BODY_LEN))
    return signed + base62(zlib.crc32(signed.encode()), 6)


def write(target: str, name: str, data: bytes) -> None:
    directory = os.path.join(CORPUS, target)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, name), "wb") as file:
        file.write(data)


def token_parse_seeds(rng: random.Random) -> None:
    valid = token("tkn_", rng)
    changed = valid[:20] + ("a" if valid[20] != "a" else "b") + valid[21:]
    seeds = {
        "valid": valid,
        "valid-long-prefix": token("acme_pat_", rng),
        "bearer": f"Bearer {valid}",
        "bearer-lowercase": f"bearer {valid}",
        "bearer-spaces-and-whitespace": f" \t BEARER    {valid} \r\n",
        "bearer-without-space": f"Bearer{valid}",
        "bearer-only": "Bearer ",
        "changed-letter": changed,
        "non-ascii": valid[:10] + "é" + valid[11:],
        "control-character": valid[:10] + "\0" + valid[11:],
        "too-long": "a" * 256,
        "other-prefix": "ghp_" + valid[4:],
    }
    for name, text in seeds.items():
        write("token_parse", name, text.encode())


def header(kind: int, seconds: int, nanos: int, no_expiration: bool, now: int,
           default_seconds: int, max_seconds: int, allow_no_expiration: bool) -> bytes:
    """Encode the `Numbers` header of request_validation as arbitrary 1.x
    reads it: little-endian integers, one byte per bool, and a u32 for the
    enum variant, picked as (tag * variants) >> 32. Lifetimes are stored
    minus one because the target maps a raw value r to r % limit + 1.
    """
    variants = 5
    tag = (kind * 2**32 + variants - 1) // variants
    data = struct.pack(
        "<IqiBqiQQB",
        tag, seconds, nanos, no_expiration, now, 0,
        default_seconds - 1, max_seconds - 1, allow_no_expiration,
    )
    return data.ljust(48, b"\0")


UNSET, TTL, EXPIRES_AT, EXPIRES_AT_FROM_NOW, NO_EXPIRATION = range(5)


def request_validation_seeds() -> None:
    default = header(UNSET, 0, 0, False, NOW_2026, 30 * DAY, 366 * DAY, False)
    headers = {
        "default": default,
        "ttl-30-days": header(TTL, 30 * DAY, 0, False, NOW_2026, 30 * DAY, 366 * DAY, False),
        "ttl-sub-second": header(TTL, 0, 500_000_000, False, NOW_2026, 30 * DAY, 366 * DAY, False),
        "expires-at-max": header(EXPIRES_AT_FROM_NOW, 366 * DAY, 0, False, NOW_2026, 30 * DAY, 366 * DAY, False),
        "expires-at-absolute": header(EXPIRES_AT, NOW_2026 + DAY, 0, False, NOW_2026, 30 * DAY, 366 * DAY, False),
        "no-expiration-allowed": header(NO_EXPIRATION, 0, 0, True, NOW_2026, 30 * DAY, 366 * DAY, True),
        "near-year-9999": header(TTL, DAY, 0, False, MAX_SECONDS - 400 * DAY, 30 * DAY, 366 * DAY, False),
    }
    for name, data in headers.items():
        write("request_validation", name, data + b"deploy bot\xffalice@example.com\xffrepo:read\xfftokens:self")

    texts = {
        "name-unicode": "déploiement 🚀".encode() + b"\xffsvc:billing",
        "name-100-chars": ("é" * 100).encode() + b"\xffu1",
        "name-101-chars": ("é" * 101).encode() + b"\xffu1",
        "name-trimmed": b"  \t report \n\xffu1",
        "name-control": b"a\0b\xffu1",
        "owner-128": b"n\xff" + b"o" * 128,
        "scopes-32": b"n\xffu1" + b"".join(b"\xffs%d" % i for i in range(32)),
        "scopes-33": b"n\xffu1" + b"".join(b"\xffs%d" % i for i in range(33)),
        "scope-64": b"n\xffu1\xff" + b"a" * 64,
        "scope-65": b"n\xffu1\xff" + b"a" * 65,
    }
    for name, text in texts.items():
        write("request_validation", name, default + text)


def main() -> None:
    # A fixed seed keeps the committed files stable across runs.
    rng = random.Random(20260601)
    token_parse_seeds(rng)
    request_validation_seeds()


if __name__ == "__main__":
    main()
