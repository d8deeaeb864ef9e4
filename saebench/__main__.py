"""``python -m saebench``: the same command line as the ``saebench`` script."""

from saebench.cli import main

if __name__ == "__main__":
    main(prog_name="saebench")
