"""Benchmark data sets: generated once per (generator source, parameters), cached on disk.

Generating realistic events costs far more than producing them (a few thousand events/s against
tens of thousands), so each data set is written once to ``benchmarks/out/`` as JSON lines (what
``auditstream scan`` reads) plus a ``.meta`` file with each message's auditID and kind (the
Kafka key, and the malicious auditIDs a latency run waits for). The cache key includes a hash of
the generator's source files, so editing the generator regenerates.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from devtools.traffic import stream as traffic

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "benchmarks" / "out"
GENERATOR_SOURCES = tuple(
    str(path.relative_to(REPO)) for path in sorted((REPO / "devtools" / "traffic").glob("*.py"))
)


@dataclass(frozen=True)
class Dataset:
    name: str
    values: Path
    meta: Path
    count: int

    def messages(self) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) pairs in file order; the key is the auditID."""
        with self.values.open("rb") as values, self.meta.open("rb") as meta:
            for value, line in zip(values, meta, strict=True):
                yield line.split(b"\t", 1)[0], value.rstrip(b"\n")

    def malicious_ids(self) -> set[str]:
        with self.meta.open(encoding="utf-8") as meta:
            return {
                audit_id
                for audit_id, kind in (line.rstrip("\n").split("\t") for line in meta)
                if kind == "malicious"
            }

    def size_bytes(self) -> int:
        return self.values.stat().st_size


def _generator_hash() -> str:
    digest = hashlib.sha256()
    for name in GENERATOR_SOURCES:
        digest.update((REPO / name).read_bytes())
    return digest.hexdigest()[:10]


def _prune_stale(prefix: str, keep: str) -> None:
    """Drop data sets of the same name and size made by an older generator (hundreds of MB)."""
    for path in OUT.glob(f"{prefix}*"):
        if not path.name.startswith(keep):
            path.unlink(missing_ok=True)


def ensure_dataset(
    name: str, count: int, *, seed: int, exec_share: float, malicious_share: float
) -> Dataset:
    """The cached data set with these parameters, generating it first if needed."""
    OUT.mkdir(parents=True, exist_ok=True)
    stem = f"{name}-n{count}-s{seed}-e{exec_share}-m{malicious_share}-{_generator_hash()}"
    dataset = Dataset(name, OUT / f"{stem}.jsonl", OUT / f"{stem}.meta", count)
    if dataset.values.exists() and dataset.meta.exists():
        return dataset
    _prune_stale(f"{name}-n{count}-", stem)
    tmp_values, tmp_meta = dataset.values.with_suffix(".tmp"), dataset.meta.with_suffix(".mtmp")
    stream = traffic.records(
        random.Random(seed), count, exec_share=exec_share, malicious_share_of_exec=malicious_share
    )
    with tmp_values.open("wb") as values, tmp_meta.open("w", encoding="utf-8") as meta:
        for record in stream:
            values.write(record.value + b"\n")
            meta.write(f"{record.audit_id}\t{record.kind}\n")
    tmp_values.replace(dataset.values)
    tmp_meta.replace(dataset.meta)
    return dataset
