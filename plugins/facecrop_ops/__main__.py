import sys

from facecrop_ops.cli import main

sys.exit(main(prog="python -m facecrop_ops"))
