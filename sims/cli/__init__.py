"""The command line `pglab` (docs/design.md §1): the app and its one list of commands live in
`sims.cli.app`, each command in its own module, the shared option parsers in `sims.cli.options`."""


def main(argv=None) -> None:
    """Console entry point (`pglab`): see `sims.cli.app.main`."""
    from sims.cli.app import main as run

    run(argv)
