"""The command-line programs. pip installs each as a command (``res2net-train``, ``res2net-predict`` ...,
see ``pyproject.toml``); ``train.py``, ``validate.py`` and ``tools/*.py`` of a clone run the same code."""
