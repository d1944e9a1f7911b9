"""What the fuzz tests share: hypothesis settings, byte damage, running a reader.

``NENGOSEG_FUZZ_EXAMPLES`` scales the number of examples (default 300 per test);
``NENGOSEG_FUZZ_RANDOM=1`` draws new examples on every run instead of a fixed set.
"""

import os
import warnings

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from nengoseg.errors import NengosegError

N_EXAMPLES = int(os.environ.get("NENGOSEG_FUZZ_EXAMPLES", "300"))


def fuzz(n=N_EXAMPLES, suppress=()):
    """Hypothesis settings: ``n`` examples, fixed unless NENGOSEG_FUZZ_RANDOM, no database;
    ``suppress``: health checks to skip besides the function-scoped fixture and slowness."""
    return settings(
        max_examples=n,
        deadline=None,
        database=None,  # write nothing into the repository
        derandomize=not os.environ.get("NENGOSEG_FUZZ_RANDOM"),
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                               *suppress],
    )


def byte_damage(inserts, replacement):
    """Damage to a byte string, as data ``(kind, ...)`` for `corrupt`: truncation, bit flips,
    overwritten bytes, one insertion per strategy of ``inserts``, a ``replacement``
    content, or an empty file."""
    position = st.floats(0, 1, exclude_max=True)
    return st.one_of(
        st.tuples(st.just("truncate"), position),
        st.tuples(st.just("flip"), st.lists(st.tuples(position, st.integers(0, 7)),
                                            min_size=1, max_size=8)),
        st.tuples(st.just("overwrite"), position, st.binary(min_size=1, max_size=16)),
        *[st.tuples(st.just("insert"), position, insert) for insert in inserts],
        st.tuples(st.just("replace"), replacement),
        st.tuples(st.just("empty")),
    )


def _at(position, data):
    """A byte index of ``data``: an int as is (clipped), a float as a fraction of its length."""
    if isinstance(position, float):
        return int(position * len(data))
    return min(position, len(data) - 1)


def corrupt(data, damage):
    """``data`` with ``damage`` (``(kind, ...)``, drawn by a test's ``corruptions``) applied."""
    data = bytearray(data)
    kind = damage[0]
    if kind == "truncate":
        return bytes(data[: int(damage[1] * len(data))])
    if kind == "flip":
        for position, bit in damage[1]:
            data[_at(position, data)] ^= 1 << bit
        return bytes(data)
    if kind == "overwrite":
        at = _at(damage[1], data)
        return bytes(data[:at] + damage[2] + data[at + len(damage[2]):])
    if kind == "insert":
        at = _at(damage[1], data)
        return bytes(data[:at] + damage[2] + data[at:])
    if kind == "replace":
        return damage[1]
    return b""


def outcome(call, folder=None, folder_state=None, ok="loaded", quiet=False):
    """``call()``'s result, or the NengosegError it raised; with ``folder_state``, check that
    nothing in ``folder`` was written. Records the outcome as a hypothesis event.
    ``quiet``: ignore warnings (e.g. load_conversion's about other package versions)."""
    before = folder_state(folder) if folder_state else None
    try:
        with warnings.catch_warnings():
            if quiet:
                warnings.simplefilter("ignore")
            result = call()
    except NengosegError as err:
        result = err
    if folder_state:
        assert folder_state(folder) == before
    if currently_in_test_context():
        event(f"outcome: {type(result).__name__ if isinstance(result, Exception) else ok}")
    return result


def check_one_line_error(result, error_class, *names):
    """``result`` is an ``error_class`` whose message is one line naming each of ``names``."""
    message = str(result)
    assert isinstance(result, error_class), f"{type(result).__name__}: {message}"
    assert "\n" not in message and "\r" not in message, message
    for name in names:
        assert str(name) in message, message
    return message
