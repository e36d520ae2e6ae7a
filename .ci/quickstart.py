"""Print command N (1 or 2) of README.md's Quick start: the lines of its first ```bash block."""
import pathlib
import sys

text = pathlib.Path(__file__).resolve().parent.parent.joinpath("README.md").read_text()
block = text.split("## Quick start", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
commands = [line for line in block.splitlines() if line.strip() and not line.startswith("#")]
if len(commands) != 2:
    sys.exit(f"README.md: the Quick start block must hold exactly two commands, found {len(commands)}")
print(commands[int(sys.argv[1]) - 1])
