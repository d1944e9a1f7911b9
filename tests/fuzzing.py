"""What the config and state-file fuzz tests share: hypothesis settings, byte damage.

``NENGOSEG_FUZZ_EXAMPLES`` scales the number of examples (default 300 per test);
``NENGOSEG_FUZZ_RANDOM=1`` draws new examples on every run instead of a fixed set.
"""

import os

from hypothesis import HealthCheck, settings

N_EXAMPLES = int(os.environ.get("NENGOSEG_FUZZ_EXAMPLES", "300"))


def fuzz(n=N_EXAMPLES):
    return settings(
        max_examples=n,
        deadline=None,
        database=None,  # write nothing into the repository
        derandomize=not os.environ.get("NENGOSEG_FUZZ_RANDOM"),
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


def corrupt(data, damage):
    data = bytearray(data)
    kind = damage[0]
    at = int(damage[1] * len(data)) if len(damage) > 1 and isinstance(damage[1], float) else 0
    if kind == "truncate":
        return bytes(data[:at])
    if kind == "flip":
        for position, bit in damage[1]:
            data[int(position * len(data))] ^= 1 << bit
        return bytes(data)
    if kind == "overwrite":
        return bytes(data[:at] + damage[2] + data[at + len(damage[2]):])
    if kind == "insert":
        return bytes(data[:at] + damage[2] + data[at:])
    if kind == "replace":
        return damage[1]
    return b""
