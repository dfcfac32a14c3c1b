"""Run the pglab CLI in-process, as the tests of its commands do."""

from sims.cli import main


def run(capsys, *args):
    """(exit code, stdout, stderr) of `pglab ARGS`; a normal return is exit code 0."""
    try:
        main(list(args))
        code = 0
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err
