"""The instructors' tools behind the ``course-lib`` command, one module per subcommand.

Each module exposes ``add_parser(subparsers) -> argparse.ArgumentParser`` (which sets
``func=run``) and ``run(args) -> int``.
"""
