"""A Status settles once: the helper that the transports share says who won the race."""

from __future__ import annotations

import pytest
from ophyd.status import StatusBase

from labflow.devices.base import settle_status
from labflow.errors import DeviceError


def test_the_first_settlement_wins_and_a_late_one_is_reported_not_raised():
    status = StatusBase()
    assert settle_status(status, DeviceError("dev: measure failed")) is True
    assert settle_status(status) is False  # a late completion: nothing to add
    failure = status.exception(timeout=5)
    assert isinstance(failure, DeviceError) and str(failure) == "dev: measure failed"


def test_an_error_other_than_already_settled_is_not_swallowed():
    status = StatusBase()
    with pytest.raises(ValueError, match="Expected an Exception"):
        settle_status(status, "not an exception")  # type: ignore[arg-type]
    assert not status.done
