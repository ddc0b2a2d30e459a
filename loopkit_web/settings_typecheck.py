"""Settings the type checker loads (django-stubs' mypy plugin imports them).

The test settings with one difference: mypy ends with ``os._exit``, so the test
settings' temporary data folder would never be removed. The data folder is one
fixed directory under the system's temp directory instead, reused by every run.
"""

from __future__ import annotations

import os
import tempfile

os.environ["LOOPKIT_HOME"] = os.path.join(tempfile.gettempdir(), "loopkit-typecheck")

from loopkit_web.settings_test import *  # noqa: F403
