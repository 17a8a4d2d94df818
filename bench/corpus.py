"""Synthetic archival passages and queries: English words with a Zipf-like frequency, so full-text search
sees both very common words (many matches to rank) and rare ones, as in real notes."""

from __future__ import annotations

import numpy as np

_WORDS = """
meeting project deadline budget report client customer invoice payment contract order delivery
shipment warehouse supplier price discount quote proposal launch release feature bug issue ticket
server database backup outage deploy migration network password account login email message call
phone calendar schedule appointment doctor dentist hospital medicine allergy diet exercise running
swimming yoga cycling hiking mountain beach river lake forest garden flower tree vegetable tomato
coffee tea breakfast lunch dinner recipe pasta pizza salad soup bread cheese chocolate birthday
anniversary wedding holiday vacation flight hotel train ticket passport visa museum concert movie
book novel author poem painting music guitar piano violin song album podcast newspaper article
school university course lecture exam homework teacher student library research paper thesis
experiment laboratory chemistry physics biology history geography language spanish french german
japanese travel city village country capital island bridge tower street market shop mall bakery
family mother father sister brother daughter son cousin grandmother grandfather friend neighbor
colleague manager team office remote hybrid promotion salary review feedback goal plan strategy
cat dog puppy kitten bird fish horse rabbit hamster parrot turtle veterinarian walk park playground
car bicycle bus subway taxi parking garage repair insurance mortgage rent apartment house kitchen
bedroom bathroom furniture sofa table chair lamp window door roof heating cooling electricity
water internet television computer laptop tablet keyboard monitor printer camera photo video
weather rain snow sunny cloudy storm wind temperature winter spring summer autumn morning evening
weekend monday tuesday wednesday thursday friday saturday sunday january february march april
favorite likes dislikes prefers remembers forgot promised decided bought sold visited called wrote
important urgent quick careful difficult easy expensive cheap new old broken fixed finished started
""".split()

NAMES = "Ada Tom Maria Chen Priya Omar Lena Jonas Sofia Kenji Amara Diego".split()
TAGS = ["work", "personal", "health", "travel", "family", "pets", "finance", "ideas"]


def _zipf(size: int, exponent: float = 1.1) -> np.ndarray:
    weights = 1.0 / np.arange(1, size + 1) ** exponent
    return weights / weights.sum()


class Corpus:
    """Deterministic for a given seed."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = np.random.default_rng(seed)
        self.words = np.array(_WORDS)
        self.weights = _zipf(len(_WORDS))

    def _words(self, count: int) -> list[str]:
        return [str(w) for w in self.rng.choice(self.words, size=count, p=self.weights)]

    def passage(self, i: int) -> str:
        name = NAMES[int(self.rng.integers(len(NAMES)))]
        body = " ".join(self._words(int(self.rng.integers(12, 28))))
        return f"Note {i}: {name} said {body}."

    def passages(self, count: int, start: int = 0) -> list[str]:
        return [self.passage(start + i) for i in range(count)]

    def tags(self) -> list[str]:
        # Most archival passages are untagged; a tenth carry one tag.
        if self.rng.random() < 0.1:
            return [TAGS[int(self.rng.integers(len(TAGS)))]]
        return []

    def queries(self, count: int) -> list[str]:
        """Keyword-style queries, as models write them; every word can match (websearch_to_tsquery ANDs them)."""
        out = []
        for _ in range(count):
            words = self._words(int(self.rng.integers(1, 4)))
            if self.rng.random() < 0.5:
                words.insert(0, NAMES[int(self.rng.integers(len(NAMES)))])
            out.append(" ".join(words))
        return out

    def unit_vectors(self, count: int, dim: int) -> np.ndarray:
        """Random directions: stand-ins for embeddings too slow to compute for every passage."""
        vectors = self.rng.standard_normal((count, dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors
