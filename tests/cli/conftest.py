"""tests/cli: the programs as a user runs them: console and clone scripts, one-line errors, the report programs, and
outputs that never replace what is not theirs."""
