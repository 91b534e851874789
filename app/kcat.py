"""`driftline kcat`: Debian's kcat against the broker, with a librdkafka that speaks to it.

Debian's own librdkafka fails against tansu ("Read underflow"); the one inside the
confluent-kafka wheel works, so kcat runs with that library first on its path, and `-b` filled
in from the settings.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from driftline.settings import Settings


def kcat_env(s: Settings) -> dict[str, str]:
    """Environment in which Debian's kcat uses the confluent-kafka wheel's newer librdkafka.

    Debian's own librdkafka fails against tansu ("Read underflow"); the wheel's works.
    """
    spec = importlib.util.find_spec("confluent_kafka")
    assert spec is not None and spec.origin is not None
    libs = Path(spec.origin).parent.parent / "confluent_kafka.libs"
    found = sorted(libs.glob("librdkafka-*.so.1"))
    if not found:
        raise RuntimeError(f"no librdkafka in {libs}")
    lib_dir = s.home / "kcat-lib"
    lib_dir.mkdir(parents=True, exist_ok=True)
    link = lib_dir / "librdkafka.so.1"
    link.unlink(missing_ok=True)
    link.symlink_to(found[0])
    return os.environ | {"LD_LIBRARY_PATH": str(lib_dir)}


def kcat(s: Settings, kcat_args: Sequence[str]) -> int:
    """Replace this process with kcat; its arguments pass through untouched."""
    kcat = shutil.which("kcat")
    if kcat is None:
        print("kcat is not installed: apt-get install kcat (make install does it)", file=sys.stderr)
        return 1
    extra = list(kcat_args)
    if "-b" not in extra:
        extra = ["-b", s.kafka.brokers, *extra]
    os.execve(kcat, [kcat, *extra], kcat_env(s))
