import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
# Fresh outputs and workspace hold NaN (docs/runtime.md), as in the lit
# tests: code that reads memory it never wrote fails a comparison. Set
# before any session is made (the runtime reads it once); subprocesses
# inherit it.
os.environ.setdefault("MOE_RUNTIME_POISON", "1")
FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "test", "fixtures")
