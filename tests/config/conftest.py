"""tests/config: the typed settings and their flags, YAML recipes and the files given as ``-c``, a run's stored config,
and the refusal of flags that would be ignored."""
