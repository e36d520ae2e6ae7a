"""Print a command of README.md as written, for CI (.ci/run) and the README tests.

    python .ci/quickstart.py venv|install|train|fast_tests   # the Quick start's lines, in this order
    python .ci/quickstart.py full_suite                      # the Testing section's command that runs everything

The Quick start's first ```bash block holds exactly these four commands; the Testing section's first ```bash
block starts with the full-suite command (pytest without a marker selection). Anything else is one line
naming README.md and exit 1.
"""
import pathlib
import sys
from typing import Dict, List

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
QUICK_START = ("venv", "install", "train", "fast_tests")
# what each Quick-start command must start with or contain, so that a reordered block fails here, not in CI
SHAPES = {"venv": ("python3", "-m venv .venv"), "install": ("pip install", ""), "train": ("python train.py", ""),
          "fast_tests": ("python -m pytest", '-m "not e2e"')}


class ReadmeError(Exception):
    """README.md does not hold the commands CI runs."""


def first_bash_block(text: str, heading: str) -> List[str]:
    """The command lines (no blank or comment lines) of the first ```bash block of section ``heading``."""
    parts = text.split(f"\n{heading}\n", 1)
    if len(parts) < 2:
        raise ReadmeError(f"README.md: no section {heading!r}")
    section = parts[1].split("\n## ", 1)[0]
    if "```bash\n" not in section:
        raise ReadmeError(f"README.md: section {heading!r} has no ```bash block")
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line.strip() for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def commands(text: str) -> Dict[str, str]:
    """The Quick start's commands by name (``QUICK_START``) and ``full_suite``, from README.md's ``text``."""
    lines = first_bash_block(text, "## Quick start")
    if len(lines) != len(QUICK_START):
        raise ReadmeError(f"README.md: the Quick start block must hold {len(QUICK_START)} commands "
                          f"({', '.join(QUICK_START)}), found {len(lines)}")
    found = dict(zip(QUICK_START, lines))
    for name, (start, inside) in SHAPES.items():
        if not found[name].startswith(start) or inside not in found[name]:
            raise ReadmeError(f"README.md: Quick start command {QUICK_START.index(name) + 1} ({name}) must start "
                              f"with {start!r}{f' and contain {inside!r}' if inside else ''}: {found[name]!r}")
    full = first_bash_block(text, "## Testing")[0]
    if not full.startswith("python -m pytest ") or "-m" in full.split("#", 1)[0].split()[3:]:
        raise ReadmeError(f"README.md: the Testing block must start with the full suite, pytest without -m: {full!r}")
    found["full_suite"] = full
    return found


def main(argv: List[str]) -> int:
    names = QUICK_START + ("full_suite",)
    if len(argv) != 1 or argv[0] not in names:
        print(f"usage: python .ci/quickstart.py {'|'.join(names)}", file=sys.stderr)
        return 2
    try:
        print(commands(README.read_text(encoding="utf-8"))[argv[0]])
    except ReadmeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
