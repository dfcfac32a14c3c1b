"""`pglab moments-seq` (docs/design.md §4.12): the JSON keys, a policy file against the family, and
hostile policy files, each one line on stderr with exit code 2."""

import json

import numpy as np
import pytest

from tests.cli_run import run, strict_json

GOOD = {"vocab": 3, "max_len": 2, "eos": 2,
        "logits": {"": [0.1, -0.2, 0.0], "0": [0.3, 0.0, -0.5], "1": [0.0, 0.0, 0.0]},
        "reward": {"checker": "majority_of_ones"}}


def _write(tmp_path, data, name="p.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


def test_json_keys_and_values(capsys, tmp_path):
    code, out, err = run(capsys, "moments-seq", "--policy", _write(tmp_path, GOOD), "--estimator", "rloo",
                         "--agg", "seq-mean-token-sum", "--group", "3", "--mc", "4000", "--seed", "2", "--json")
    assert code == 0, err
    r = strict_json(out)
    assert set(r) >= {"estimator", "aggregation", "group", "params", "responses", "pi", "true_gradient", "exact", "mc"}
    assert set(r["exact"]) >= {"mean", "bias", "cov", "trace_var", "cosine"}
    assert len(r["responses"]) == 7 and abs(sum(r["pi"]) - 1) < 1e-12
    np.testing.assert_allclose(r["exact"]["bias"], 0.0, atol=1e-14)  # RLOO with seq-mean-token-sum: unbiased
    assert r["mc"]["samples"] == 4000


def test_the_family_reports_its_length_gradient(capsys):
    code, out, err = run(capsys, "moments-seq", "--policy", "answer-filler:answers=2,filler=3,correct=1",
                         "--estimator", "grpo", "--agg", "seq-mean-token-mean", "--group", "4", "--json")
    assert code == 0, err
    push = strict_json(out)["exact"]["length_gradient"]
    assert push[1] > 0 > push[0]  # the right answer (1) is shortened, the wrong one lengthened


def _bad(**change):
    d = json.loads(json.dumps(GOOD))
    for k, v in change.items():
        if v is ...:
            d.pop(k)
        else:
            d[k] = v
    return d


HOSTILE = {
    "not json": "{vocab: 3",
    "not an object": [1, 2, 3],
    "unknown key": _bad(temperature=1.0),
    "no vocab": _bad(vocab=...),
    "no logits": _bad(logits=...),
    "no reward": _bad(reward=...),
    "vocab a string": _bad(vocab="3"),
    "vocab a bool": _bad(vocab=True),
    "vocab too large": _bad(vocab=65),
    "max_len zero": _bad(max_len=0),
    "max_len too large": _bad(max_len=17),
    "eos out of range": _bad(eos=3),
    "eos a float": _bad(eos=1.5),
    "too many responses": _bad(vocab=64, max_len=16, eos=None),
    "logits a list": _bad(logits=[[0, 0, 0]]),
    "missing prefix": _bad(logits={"": [0, 0, 0], "0": [0, 0, 0]}),
    "extra prefix": _bad(logits={**GOOD["logits"], "0,1": [0, 0, 0]}),
    "prefix with the end token": _bad(logits={**GOOD["logits"], "2": [0, 0, 0]}),
    "malformed prefix": _bad(logits={"": [0, 0, 0], "0": [0, 0, 0], "x": [0, 0, 0]}),
    "short row": _bad(logits={**GOOD["logits"], "1": [0, 0]}),
    "string logit": _bad(logits={**GOOD["logits"], "1": [0, "a", 0]}),
    "NaN logit": '{"vocab": 3, "max_len": 2, "eos": 2, "logits": {"": [NaN, 0, 0], "0": [0,0,0], "1": [0,0,0]},'
                 ' "reward": {"checker": "majority_of_ones"}}',
    "Infinity logit": '{"vocab": 3, "max_len": 2, "eos": 2, "logits": {"": [Infinity, 0, 0], "0": [0,0,0], '
                      '"1": [0,0,0]}, "reward": {"checker": "majority_of_ones"}}',
    "all -inf row": _bad(logits={**GOOD["logits"], "1": [None, None, None]}),
    "unknown checker": _bad(reward={"checker": "vibes"}),
    "reward a list": _bad(reward=[1, 0]),
    "table missing a response": _bad(reward={"table": {"2": 1.0}}),
    "table with a non-response": _bad(reward={"table": {"0,0,0": 1.0}}),
    "table non-number": _bad(reward={"table": {"2": "one"}}),
    "answer out of range": _bad(reward={"checker": "answer_correct", "answer": 7}),
    "exact_match without target": _bad(reward={"checker": "exact_match"}),
    "length slope not a number": _bad(reward={"checker": "length_correlated", "slope": "big"}),
    "deep nesting": "[" * 100_000 + "]" * 100_000,
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_policy_files_are_one_line_and_exit_2(capsys, tmp_path, kind):
    code, out, err = run(capsys, "moments-seq", "--policy", _write(tmp_path, HOSTILE[kind]), "--estimator",
                         "grpo", "--group", "2", "--json")
    assert code == 2 and out == "", (kind, out, err)
    assert err.startswith("pglab: error: ") and err.count("\n") == 1 and "Traceback" not in err, (kind, err)


@pytest.mark.parametrize("args", [
    ["--policy", "answer-filler:answers=2,correct=5"], ["--policy", "answer-filler:size=3"],
    ["--policy", "answer-filler:answers=x"], ["--policy", "/no/such/file.json"],
    ["--policy", "answer-filler", "--agg", "mean-ish"], ["--policy", "answer-filler", "--feature", "vibes"],
    ["--policy", "answer-filler", "--seed", "3"], ["--policy", "answer-filler", "--mc", "1"],
])
def test_bad_options_are_one_line_and_exit_2(capsys, args):
    code, out, err = run(capsys, "moments-seq", *args, "--estimator", "grpo", "--group", "2", "--json")
    assert code == 2 and err.startswith("pglab: error: ") and err.count("\n") == 1, (args, err)
