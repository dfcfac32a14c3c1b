"""`pglab moments-seq` (docs/design.md §4.12): the JSON keys, a policy file against the family, a
batch of prompts (--prompts), and hostile policy and prompts files and options, each one line on
stderr with exit code 2."""

import json

import numpy as np
import pytest

from bandits import sequence as S
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


# ---- a batch of prompts: --prompts FILE ----------------------------------------------------------

SECOND = {"vocab": 2, "max_len": 2, "eos": None,
          "logits": {"": [0.2, -0.1], "0": [0.0, 0.4], "1": [-0.3, 0.0]},
          "reward": {"components": [{"checker": "majority_of_ones"}, {"checker": "exact_match", "target": [0, 0]}]}}
FIRST = {**GOOD, "reward": {"components": [{"checker": "majority_of_ones"}, {"checker": "stops"}]}}


def test_prompts_json_keys_and_values(capsys, tmp_path):
    path = _write(tmp_path, [FIRST, SECOND], "b.json")
    code, out, err = run(capsys, "moments-seq", "--prompts", path, "--estimator", "rloo", "--agg",
                         "seq-mean-token-sum", "--group", "3", "--mc", "4000", "--seed", "1", "--json")
    assert code == 0, err
    r = strict_json(out)
    assert set(r) >= {"estimator", "kind", "scope", "prompts", "objective", "true_gradient", "exact", "mc"}
    assert set(r["exact"]) >= {"mean", "bias", "cov", "trace_var", "cosine", "route"}
    assert r["kind"] == "group" and r["scope"] == "batch" and r["exact"]["route"] == "independent"
    assert [len(p["pi"]) for p in r["prompts"]] == [7, 4] and [p["components"] for p in r["prompts"]] == [2, 2]
    assert [round(p["scale"], 12) for p in r["prompts"]] == [1.0, 1.0]  # RLOO: c_x = 1 on every prompt
    np.testing.assert_allclose(r["exact"]["bias"], 0.0, atol=1e-14)
    assert len(r["mc"]["mean"]) == len(r["true_gradient"]) == 9 + 6


def test_prompts_batch_entry_with_components_and_scope(capsys, tmp_path):
    path = _write(tmp_path, {"prompts": [FIRST, SECOND]}, "b.json")
    outs = {}
    for scope in ("batch", "group"):
        code, out, err = run(capsys, "moments-seq", "--prompts", path, "--estimator", "gdpo", "--agg", "token-mean",
                             "--group", "2", "--scope", scope, "--json")
        assert code == 0, err
        outs[scope] = strict_json(out)
        assert outs[scope]["kind"] == "batch" and outs[scope]["exact"]["route"] == "enumerate"
    assert outs["batch"]["exact"]["mean"] != outs["group"]["exact"]["mean"]


def _member(**change):
    d = json.loads(json.dumps(GOOD))
    d.update(change)
    return d


PROMPTS_HOSTILE = {
    "empty list": [],
    "too many prompts": [GOOD] * 17,
    "not a list": {"vocab": 3},
    "a number": 3,
    "extra key beside prompts": {"prompts": [GOOD], "weights": [1]},
    "bad member names its index": [GOOD, _member(vocab=0)],
    "member not an object": [GOOD, "policy"],
    "duplicate keys": '[{"vocab": 3, "vocab": 3, "max_len": 2, "eos": 2, "logits": {}, "reward": {}}]',
    "bad components": [_member(reward={"components": []})],
    "not json": "[{",
    "too many logits": [_member(vocab=6, max_len=4, eos=5, reward={"checker": "stops"},
                                logits={",".join(map(str, h)): [0] * 6 for h in S.space(6, 4, 5).prefixes})] * 3,
}
PROMPTS_REASON = {"bad member names its index": "prompt 1", "duplicate keys": "duplicate key 'vocab'",
                  "too many logits": "limit of 2,048", "too many prompts": "1 to 16", "empty list": "1 to 16"}


@pytest.mark.parametrize("kind", sorted(PROMPTS_HOSTILE))
def test_hostile_prompts_files_are_one_line_and_exit_2(capsys, tmp_path, kind):
    code, out, err = run(capsys, "moments-seq", "--prompts", _write(tmp_path, PROMPTS_HOSTILE[kind]), "--estimator",
                         "grpo", "--group", "2", "--json")
    assert code == 2 and out == "", (kind, out, err)
    assert err.startswith("pglab: error: ") and err.count("\n") == 1 and "Traceback" not in err, (kind, err)
    assert PROMPTS_REASON.get(kind, "") in err, (kind, err)


@pytest.mark.parametrize("args", [
    ["--estimator", "gdpo", "--policy", "answer-filler"],  # a batch entry without --prompts
    ["--estimator", "grpo", "--policy", "answer-filler", "--prompts", "PROMPTS"],  # both
    ["--estimator", "grpo"],  # neither
    ["--estimator", "grpo", "--policy", "answer-filler", "--scope", "batch"],  # --scope without --prompts
    ["--estimator", "grpo", "--prompts", "PROMPTS", "--scope", "world"],
    ["--estimator", "vibes", "--prompts", "PROMPTS"],
    ["--estimator", "gdpo", "--prompts", "PROMPTS", "--param", "tau=1"],
    ["--estimator", "grpo", "--prompts", "PROMPTS", "--mc", "1"],
    ["--estimator", "grpo", "--prompts", "PROMPTS", "--mc", "1000000", "--group", "1024"],  # chunk memory
    ["--estimator", "grpo", "--policy", "answer-filler:filler=8", "--mc", "1000000", "--group", "1024"],
])
def test_bad_prompt_options_are_one_line_and_exit_2(capsys, tmp_path, args):
    path = _write(tmp_path, [GOOD, GOOD], "b.json")
    args = [path if a == "PROMPTS" else a for a in args]
    if "--group" not in args:
        args += ["--group", "2"]
    code, out, err = run(capsys, "moments-seq", *args, "--json")
    assert code == 2 and err.startswith("pglab: error: ") and err.count("\n") == 1, (args, err)
    if "1000000" in args:
        assert f"{1 << 27:,}" in err, err
