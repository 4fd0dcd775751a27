"""Keys as hex strings and the bits they stand for.

A key of K bits is written as K/4 hex digits, the first digit holding the first four bits
(most significant bit first): "a5" is 1010 0101. K is a multiple of 4, so every key is a whole
number of hex digits and every string of the right length is a key.
"""

from __future__ import annotations

import secrets
import string

import torch

from ...errors import GenforgeError

HEX = set(string.hexdigits)


def check_key(key: str, bits: int) -> str:
    """The key in lower case, or one GenforgeError line saying what is wrong with it."""
    if not isinstance(key, str):
        raise GenforgeError(f"a watermark key is a string of hex digits, got {type(key).__name__}")
    text = key.strip().lower()
    if text.startswith("0x"):
        text = text[2:]
    digits = bits // 4
    if not text or not set(text) <= HEX:
        raise GenforgeError(f"watermark key {key!r} is not hex; write {digits} digits 0-9 and a-f "
                        f"for a {bits}-bit watermark")
    if len(text) != digits:
        raise GenforgeError(f"watermark key {key!r} has {len(text)} hex digits; this watermark carries "
                        f"{bits} bits, which is {digits} hex digits")
    return text


def key_to_bits(key: str, bits: int) -> torch.Tensor:
    """The key's bits as a float tensor (bits,) of 0s and 1s, most significant first."""
    text = check_key(key, bits)
    return torch.tensor([(int(d, 16) >> (3 - i)) & 1 for d in text for i in range(4)], dtype=torch.float32)


def bits_to_key(values: torch.Tensor) -> str:
    """Hex for a (bits,) tensor of 0s and 1s (or booleans); the inverse of `key_to_bits`."""
    flat = [int(v) for v in values.reshape(-1).tolist()]
    return "".join(f"{(flat[i] << 3) | (flat[i + 1] << 2) | (flat[i + 2] << 1) | flat[i + 3]:x}"
                   for i in range(0, len(flat), 4))


def random_key(bits: int) -> str:
    """A key drawn from the operating system's randomness (not from torch's seed)."""
    return secrets.token_hex((bits + 7) // 8)[: bits // 4]
