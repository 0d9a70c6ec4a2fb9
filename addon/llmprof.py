"""mitmproxy entry point: `mitmdump -s addon/llmprof.py`.

Only wiring lives here; the addon is `addon.recorder.LLMProf`. The project's
packages are importable when llmprof is installed (`make install`); when it is
not, the repository root is put on the path so a checkout works as it is.
"""

import sys
from pathlib import Path

try:
    from addon.recorder import LLMProf
except ImportError:  # running from a checkout that was not installed
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from addon.recorder import LLMProf

addons = [LLMProf()]
