"""Recipe building: exact budgets, domain shares, dedup, clear errors."""
import numpy as np
import pyarrow as pa
import pytest

from proxyrank.config import Recipe
from proxyrank.recipes import RecipeError, build, domain_weights, exact_duplicates


def _pool():
    """Two domains; 'b' has planted exact and reformatted duplicates."""
    ids, domains, texts, lengths = [], [], [], []
    for i in range(50):
        ids.append(f"a{i}"), domains.append("a"), texts.append(f"alpha document {i}"), lengths.append(10)
    for i in range(30):
        text = "beta dup" if i % 3 == 0 else ("BETA, dup!" if i % 3 == 1 else f"beta {i}")
        ids.append(f"b{i}"), domains.append("b"), texts.append(text), lengths.append(20)
    lengths = np.array(lengths)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    tokens = np.concatenate([np.full(n, 1 + (d == "b"), dtype=np.uint16) for n, d in zip(lengths, domains)])
    pool = pa.table({"id": ids, "domain": domains, "text": texts})
    index = pa.table({"id": ids, "domain": domains, "offset": offsets, "length": lengths})
    return pool, index, tokens


def test_exact_duplicates_ignore_case_punctuation_and_spacing():
    assert exact_duplicates(["Hello, world", "hello world!", "hello  WORLD", "other"]).tolist() == \
        [False, True, True, False]


def test_weights():
    avail = {"a": 300, "b": 100}
    assert domain_weights(Recipe(group="g"), avail) == {"a": 0.75, "b": 0.25}
    assert domain_weights(Recipe(group="g", weights="uniform"), avail) == {"a": 0.5, "b": 0.5}
    t = domain_weights(Recipe(group="g", temperature=0.5), {"a": 400, "b": 100})
    assert t["a"] == pytest.approx(2 / 3)
    assert domain_weights(Recipe(group="g", weights={"b": 3.0, "a": 1.0}), avail) == {"a": 0.25, "b": 0.75}


def test_build_fills_budget_exactly_with_target_shares():
    pool, index, tokens = _pool()
    stream, m = build(Recipe(group="g", weights={"a": 1.0, "b": 1.0}, name="r"), pool, index, tokens,
                      eos=0, budget=400, seed=0)
    assert len(stream) == 400 and m["tokens"] == 400
    assert m["target_shares"] == m["domain_shares"] == {"a": 0.5, "b": 0.5}
    assert (stream == 1).sum() + (stream == 2).sum() + (stream == 0).sum() == 400
    assert 180 <= (stream == 1).sum() <= 200  # 200 tokens of domain a, EOS included


def test_build_is_deterministic_and_dedup_removes_planted_copies():
    pool, index, tokens = _pool()
    r = Recipe(group="g", dedup="exact", name="r")
    s1, m1 = build(r, pool, index, tokens, eos=0, budget=300, seed=0)
    s2, m2 = build(r, pool, index, tokens, eos=0, budget=300, seed=0)
    assert np.array_equal(s1, s2) and m1 == m2
    assert m1["removed"]["exact_dedup"]["docs"] == 19  # 20 copies of "beta dup", one kept
    assert m1["duplicate_rate"] == pytest.approx(19 / 80)


def test_recipe_that_cannot_fill_its_budget_names_itself():
    pool, index, tokens = _pool()
    with pytest.raises(RecipeError, match=r"recipe 'big': domain 'b' has .* tokens after curation"):
        build(Recipe(group="g", weights={"b": 1.0}, dedup="exact", name="big"), pool, index, tokens,
              eos=0, budget=500, seed=0)
