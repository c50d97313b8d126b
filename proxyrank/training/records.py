"""Resume records: a finished run's result, filed under a fingerprint of all that determined it.

A record is trusted only when its stored key equals the run's key (params, data digests, code and
library versions), its fingerprint matches, and its result has the fields and types train_run
writes: a stale, planted or damaged record is ignored and the run trains again.
Records and outputs hold what the inputs determine; wall times go to data/timings/ (timings.py).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path

from proxyrank.training.batches import loss_keys
from proxyrank.training.params import RunSpec, TrainParams


def run_key(spec: RunSpec, t: TrainParams, digests: dict[str, str], stamp: dict[str, str]) -> dict:
    """Everything that determines a run's result, in the form a resume record stores it (JSON)."""
    from proxyrank.training.presets import PRESETS

    key = {"spec": dataclasses.asdict(spec), "train": dataclasses.asdict(t),
           "preset": dataclasses.asdict(PRESETS[spec.preset]), "data": digests, "code": stamp}
    return json.loads(json.dumps(key, sort_keys=True))


def fingerprint(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]


def json_is(value, kind: type) -> bool:
    """JSON type check that keeps bools apart from numbers (True is an int to Python)."""
    if kind is bool or isinstance(value, bool):
        return kind is bool and isinstance(value, bool)
    return isinstance(value, (int, float) if kind is float else kind)


RESULT_FIELDS = {"run_id": str, "n_params": int, "steps": int, "tokens_trained": int, "device": str,
                 "world_size": int, "train_flops": int, "diverged": bool, "curve": list}

# What train_run measures rather than computes: it differs between machines, between a run that was
# killed and resumed and one that was not, and between two tries on one machine. Kept out of run
# records and outputs, so their hashes follow from the inputs alone (timings.py says where it goes).
TIMING_KEYS = ("wall_s", "resumed_from_step", "tokens_per_s", "tflops_per_s", "mfu")


def split_timing(result: dict) -> tuple[dict, dict]:
    """(the result without its timing keys, the timing keys it had)."""
    return ({k: v for k, v in result.items() if k not in TIMING_KEYS},
            {k: result[k] for k in TIMING_KEYS if k in result})


def _non_finite(obj, where: str = "result") -> str | None:
    """Where a NaN or infinity sits in a record (Python's JSON reads them); None if nowhere."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return where
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    return next((w for k, v in items if (w := _non_finite(v, f"{where}.{k}"))), None)


def record_problem(record, spec: RunSpec, key: dict, domains: list[str]) -> str | None:
    """Why a resume record cannot stand for the run `key` describes; None when it can."""
    if not isinstance(record, dict) or set(record) != {"fingerprint", "key", "result"}:
        return "not a resume record (a mapping of fingerprint, key and result)"
    stored = record["key"] if isinstance(record["key"], dict) else {}
    differ = [part for part in key if stored.get(part) != key[part]]
    if differ or record["fingerprint"] != fingerprint(key):
        return f"made for another run (its stored {', '.join(differ) or 'fingerprint'} do not match)"
    result = record["result"]
    if not isinstance(result, dict):
        return "its result is not a mapping"
    expected = {**dataclasses.asdict(spec), "run_id": spec.run_id}
    wrong = [f for f, kind in RESULT_FIELDS.items() if not json_is(result.get(f), kind)]
    wrong += [f for f, v in expected.items() if f not in wrong and not (json_is(result.get(f), type(v))
                                                                         and result[f] == v)]
    # a diverged run's losses are NaN, stored as null; any other run's are numbers
    losses = loss_keys(domains)
    wrong += [k for k in losses if not (json_is(result.get(k), float) or (k in result and result[k] is None
                                                                          and result.get("diverged") is True))]
    if wrong:
        return f"its result has a wrong or missing {', '.join(wrong)}"
    bad = _non_finite(result)
    return f"non-finite number at {bad}" if bad else None


def resumed(path: Path, spec: RunSpec, key: dict, domains: list[str], rank: int) -> dict | None:
    """The stored result of a finished run, or None (then it is trained again, and rank 0 says why)."""
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        problem = f"not readable JSON ({e})"
    else:
        problem = record_problem(record, spec, key, domains)
    if problem is None:
        return split_timing(record["result"])[0]  # a record an older version wrote may carry them
    if rank == 0:
        print(f"resume: {path} ignored: {problem}; training again", flush=True)
    return None
