from __future__ import annotations

import gc

from engine.gc_pause import cyclic_gc_paused


def test_nested_pauses_restore_the_collector_only_at_the_outermost_exit() -> None:
    assert gc.isenabled()
    with cyclic_gc_paused():
        with cyclic_gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    try:
        with cyclic_gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
