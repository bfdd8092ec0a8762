"""Network namespaces as separate hosts, for the many-hosts tests.

:func:`hosts_in_namespaces` makes ``count`` Linux network namespaces, each
joined to the test's own namespace by a veth pair on a private /24: the
host's end is ``10.213.<n>.2``, the gateway end (in the test's namespace)
``10.213.<n>.1``. A process started with :meth:`NetHost.argv` has its own
loopback and reaches only its gateway address, so whatever it shares with
the other hosts must go over the network. Everything is removed afterwards.
Needs root and iproute2; :func:`available` says whether they work here.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class NetHost:
    """One namespace: its name, its address, its gateway's address."""

    name: str
    address: str
    gateway: str

    def argv(self, command: Sequence[str]) -> list[str]:
        """``command`` run inside this namespace (``ip netns exec`` execs it:
        the process id is the command's own)."""
        return ["ip", "netns", "exec", self.name, *command]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def available() -> bool:
    """Whether this process may create network namespaces (root, iproute2)."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    name = f"tp-probe-{os.getpid()}"
    try:
        _ip("netns", "add", name)
    except (subprocess.CalledProcessError, OSError):
        return False
    subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)
    return True


@contextmanager
def hosts_in_namespaces(count: int) -> Iterator[list[NetHost]]:
    """``count`` namespaces on private subnets (see the module docstring)."""
    tag = f"{os.getpid() % 100000}"
    first = random.randrange(10, 250 - count)
    hosts: list[NetHost] = []
    with ExitStack() as cleanup:
        for index in range(count):
            name = f"tp-h{tag}-{index}"
            outside, inside = f"tph{tag}o{index}", f"tph{tag}i{index}"
            net = f"10.213.{first + index}"
            _ip("netns", "add", name)
            cleanup.callback(subprocess.run, ["ip", "netns", "del", name],
                             capture_output=True, timeout=30)
            _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            cleanup.callback(subprocess.run, ["ip", "link", "del", outside],
                             capture_output=True, timeout=30)
            _ip("link", "set", inside, "netns", name)
            _ip("addr", "add", f"{net}.1/24", "dev", outside)
            _ip("link", "set", outside, "up")
            _ip("netns", "exec", name, "ip", "addr", "add", f"{net}.2/24", "dev", inside)
            _ip("netns", "exec", name, "ip", "link", "set", inside, "up")
            _ip("netns", "exec", name, "ip", "link", "set", "lo", "up")
            hosts.append(NetHost(name, f"{net}.2", f"{net}.1"))
        yield hosts
