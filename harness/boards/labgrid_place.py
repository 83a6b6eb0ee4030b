"""A place of a labgrid board farm: reserve it, acquire it, build the labgrid target of its resources, release it.

labgrid's coordinator knows the places (a name, tags, and matches selecting resources that exporters on the lab
hosts export); many users share them through reservations (a queue per filter, ordered by priority and age) and
acquisition (one holder at a time). :class:`FarmPlace` does what ``labgrid-client reserve --wait`` /
``acquire`` / ``release`` / ``cancel-reservation`` do, through labgrid's own client session, and returns a
``labgrid.Target`` holding the place's resources (as ``labgrid-client env`` lists them), to which the board's
drivers bind.
"""

from __future__ import annotations

import contextlib
import io
import os
import time

from labgrid import Target
from labgrid.factory import target_factory
from labgrid.remote.client import Error as LabgridClientError
from labgrid.remote.client import start_session
from labgrid.remote.generated import labgrid_coordinator_pb2 as pb

from harness.errors import DeviceError

DEFAULT_COORDINATOR = "127.0.0.1:20408"
_WAITING = 0  # labgrid.remote.common.ReservationState.waiting
_ALLOCATED_OR_ACQUIRED = (1, 2)


def coordinator_address(configured: str | None) -> str:
    return configured or os.environ.get("LG_COORDINATOR") or DEFAULT_COORDINATOR


class FarmPlace:
    """One labgrid place, held from :meth:`acquire` to :meth:`release` (also on errors: use it as a context)."""

    def __init__(self, place: str, coordinator: str | None = None, *, reserve: bool = True,
                 timeout: float = 600.0):
        self.pattern = place
        self.address = coordinator_address(coordinator)
        self.reserve = reserve
        self.timeout = timeout
        self.session = None
        self.name: str | None = None  # the place's full name, once found
        self.token: str | None = None  # our reservation
        self.acquired = False

    # --- coordinator calls ------------------------------------------------------------------------------------

    def _run(self, coro):
        return self.session.loop.run_until_complete(coro)

    def _connect(self) -> None:
        if self.session is not None:
            return
        try:
            self.session = start_session(self.address)
        except Exception as e:  # noqa: BLE001 - gRPC, connection and labgrid errors alike: no coordinator
            raise DeviceError(
                f"cannot reach the labgrid coordinator at {self.address} ({str(e).splitlines()[0] if str(e) else e!r})"
                "; start it (labgrid-coordinator) or set board.driver.coordinator=HOST:PORT"
            ) from None

    def _place(self):
        try:
            place = self.session.get_place(self.pattern)
        except LabgridClientError as e:
            known = ", ".join(sorted(self.session.places)) or "none"
            raise DeviceError(f"labgrid place {self.pattern!r}: {e} (places at {self.address}: {known})") from None
        self.name = place.name
        return place

    def _reserve(self, deadline: float) -> None:
        req = pb.CreateReservationRequest(
            filters={"main": pb.Reservation.Filter(filter={"name": self.name})}, prio=0.0
        )
        self.token = self._run(self.session.stub.CreateReservation(req)).reservation.token
        while True:
            res = self._run(self.session.stub.PollReservation(pb.PollReservationRequest(token=self.token)))
            state = res.reservation.state
            if state in _ALLOCATED_OR_ACQUIRED:
                return
            if state != _WAITING:
                raise DeviceError(f"labgrid reservation of place {self.name} ended unallocated (state {state})")
            if time.monotonic() > deadline:
                raise DeviceError(f"labgrid place {self.name} was not free within {self.timeout:g} s "
                                  "(other users hold it; raise board.driver.acquire_timeout_s)")
            time.sleep(0.5)

    def acquire(self) -> FarmPlace:
        """Reserve (``reserve``) and acquire the place, waiting up to ``timeout`` while others hold it."""
        if self.acquired:
            return self
        self._connect()
        deadline = time.monotonic() + self.timeout
        try:
            self._place()
            if self.reserve:
                self._reserve(deadline)
            while True:
                try:
                    with contextlib.redirect_stdout(io.StringIO()):  # labgrid's client prints what it does
                        self.session.args = _Args()
                        self._run(self.session._acquire_place(self.name))
                    self.acquired = True
                    return self
                except LabgridClientError as e:
                    if "already acquired" not in str(e) or time.monotonic() > deadline:
                        raise DeviceError(f"cannot acquire labgrid place {self.name}: {e}") from None
                    time.sleep(0.5)  # held by another process (maybe our own user's): wait for it
        except BaseException:
            self.release()
            raise

    def target(self) -> Target:
        """A labgrid Target with the acquired place's resources (named as the place's matches name them)."""
        if not self.acquired:
            raise DeviceError(f"labgrid place {self.pattern} is not acquired")
        t = Target(self.name)
        for (name, cls), entry in self.session.get_target_resources(self._place()).items():
            res = target_factory.make_resource(t, cls, name, entry.args)
            res.extra = entry.extra  # proxy settings: labgrid tunnels through SSH to isolated exporters
            res.avail = entry.avail
        return t

    def release(self) -> None:
        """Release the place and cancel the reservation (never raises: runs on error paths)."""
        if self.session is None:
            return
        try:
            if self.acquired and self.name:
                with contextlib.redirect_stdout(io.StringIO()):
                    self.session.args = _Args()
                    self._run(self.session._release_place(self.name))
        except Exception:  # noqa: BLE001,S110 - the coordinator will see the place free when we disconnect anyway
            pass
        self.acquired = False
        try:
            if self.token:
                self._run(self.session.stub.CancelReservation(pb.CancelReservationRequest(token=self.token)))
        except Exception:  # noqa: BLE001,S110 - reservations expire by themselves
            pass
        self.token = None
        try:
            self._run(self.session.stop())
            self._run(self.session.close())
        except Exception:  # noqa: BLE001,S110
            pass
        self.session = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


class _Args:
    """The options labgrid's client commands read (``labgrid-client acquire`` without flags)."""

    allow_unmatched = False
    kick = False
