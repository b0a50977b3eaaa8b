"""``python bench/email.py [--n 300]``: the email channel benchmark (``email_channel.py``).

This file's name is also the standard library's ``email`` package, which every other script
in bench/ imports: when it is imported under that name it hands the real package over.
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))

if __name__ == "email":
    import importlib

    _saved = sys.path[:]
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
    del sys.modules["email"]
    try:
        # The import system returns what a module leaves in sys.modules under its name.
        sys.modules["email"] = importlib.import_module("email")
    finally:
        sys.path[:] = _saved
elif __name__ == "__main__":
    import runpy

    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
    sys.path.insert(0, os.path.dirname(_HERE))
    runpy.run_path(os.path.join(_HERE, "email_channel.py"), run_name="__main__")
