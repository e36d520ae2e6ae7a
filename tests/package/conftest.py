"""tests/package: checks of the whole package and its documents: the layer order of imports, signatures that read
at the call site, the value and list formatters every room uses, README.md and docs/*.md, the examples."""
