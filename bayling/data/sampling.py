"""Seeded randomness that does not depend on run order, and per-language sampling weights.

Every conversation gets its own `random.Random` seeded from (seed, record id) through BLAKE2b,
never Python's salted `hash()`: the same record comes out the same in any run, shard or order.
Language weights follow temperature sampling, p(lang) ∝ size(lang) ** (1 / T): T = 1 keeps the
natural (resource-size) distribution, larger T flattens it so low-resource languages are not
drowned, T → ∞ is uniform.
"""

from __future__ import annotations

import hashlib
import random
import zlib
from itertools import accumulate
from pathlib import Path
from typing import Iterable
from bayling.errors import ConfigError

__all__ = ["LanguageSampler", "language_weights", "read_lang_sizes", "record_rng", "shard_of"]

# Rough relative amounts of text per language (web-crawl scale), used when no sizes are given.
# Only their order of magnitude matters once the temperature flattens them.
_SIZE_TIERS: dict[float, tuple[str, ...]] = {
    100.0: ("eng_Latn",),
    40.0: ("zho_Hans", "deu_Latn", "fra_Latn", "spa_Latn", "jpn_Jpan", "rus_Cyrl"),
    15.0: ("por_Latn", "ita_Latn", "nld_Latn", "pol_Latn", "kor_Hang", "arb_Arab", "tur_Latn",
           "vie_Latn", "ind_Latn", "ces_Latn", "swe_Latn", "pes_Arab", "zho_Hant", "ukr_Cyrl"),
    5.0: ("hin_Deva", "tha_Thai", "heb_Hebr", "ell_Grek", "hun_Latn", "fin_Latn", "dan_Latn",
          "ron_Latn", "bul_Cyrl", "slk_Latn", "nob_Latn", "cat_Latn", "lit_Latn", "slv_Latn",
          "hrv_Latn", "srp_Cyrl", "lvs_Latn", "est_Latn", "ben_Beng", "zsm_Latn", "tgl_Latn"),
}
_DEFAULT_SIZE = {code: size for size, codes in _SIZE_TIERS.items() for code in codes}
_LOW_RESOURCE_SIZE = 1.0


def record_rng(seed: int, record_id: str) -> random.Random:
    """A generator that depends only on (seed, record_id)."""
    digest = hashlib.blake2b(f"{seed}\x00{record_id}".encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def shard_of(record_id: str, num_shards: int) -> int:
    """Which of `num_shards` shards a record belongs to (stable across runs and machines)."""
    return zlib.crc32(record_id.encode()) % num_shards


def language_weights(codes: Iterable[str], temperature: float = 5.0,
                     sizes: dict[str, float] | None = None) -> dict[str, float]:
    """Normalised sampling weight per language: size ** (1 / temperature)."""
    if temperature <= 0:
        raise ConfigError(f"temperature must be > 0, got {temperature}")
    table = _DEFAULT_SIZE if sizes is None else sizes
    raw = {c: max(table.get(c, _LOW_RESOURCE_SIZE), 1e-9) ** (1.0 / temperature) for c in codes}
    total = sum(raw.values())
    return {c: w / total for c, w in raw.items()}


def read_lang_sizes(path: str | Path) -> dict[str, float]:
    """Sizes from a two-column TSV (language<TAB>size); names are resolved to FLORES codes."""
    from bayling.corpus.core import lang_code

    sizes: dict[str, float] = {}
    with open(path, encoding="utf-8") as f:
        for no, line in enumerate(f, 1):
            if not line.strip() or line.startswith("#"):
                continue
            cells = line.rstrip("\n").split("\t")
            try:
                sizes[lang_code(cells[0].strip())] = float(cells[1])
            except (IndexError, ValueError) as e:
                raise ConfigError(f"{path}:{no}: expected 'language<TAB>size' ({e})") from None
    return sizes


class LanguageSampler:
    """Draw languages by weight with an external rng (cumulative weights computed once)."""

    def __init__(self, weights: dict[str, float]) -> None:
        self.codes = list(weights)
        self._cum = list(accumulate(weights.values()))

    def draw(self, rng: random.Random, exclude: tuple[str, ...] = ()) -> str | None:
        """One language not in `exclude` (None when every language is excluded)."""
        if len(exclude) >= len(self.codes) and all(c in exclude for c in self.codes):
            return None
        for _ in range(64):
            code = rng.choices(self.codes, cum_weights=self._cum)[0]
            if code not in exclude:
                return code
        rest = [c for c in self.codes if c not in exclude]  # weights so skewed that rejection keeps failing
        return rng.choice(rest) if rest else None
