"""Run the pglab CLI in-process, as the tests of its commands do, and read its JSON strictly."""

import json

from sims.cli.app import main


def _reject_constant(name):
    raise ValueError(f"non-strict JSON constant {name}")


def strict_json(text: str):
    """json.loads that refuses NaN, Infinity and -Infinity (what allow_nan=False never writes)."""
    return json.loads(text, parse_constant=_reject_constant)


def run(capsys, *args):
    """(exit code, stdout, stderr) of `pglab ARGS`; a normal return is exit code 0."""
    try:
        main(list(args))
        code = 0
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err
