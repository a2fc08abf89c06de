"""`python -m slimvec ...`: the `slimvec` command, for environments where its script is not on PATH."""

from slimvec.cli import app

if __name__ == "__main__":
    app(prog_name="slimvec")
