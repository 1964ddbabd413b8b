"""Ports the dev stack and the tests listen on."""

from __future__ import annotations

import socket

import pytest

from services.devstack import embedded
from services.devstack.embedded import EPHEMERAL_RANGE, free_ports


def test_ports_to_listen_on_lie_below_the_range_for_outgoing_connections() -> None:
    """A port chosen inside that range can be taken, before its service binds it, by the local
    end of any connection opened meanwhile: `up`'s API once failed to start that way."""
    low = int(EPHEMERAL_RANGE.read_text().split()[0])
    ports = free_ports(20)
    assert len(set(ports)) == 20
    assert all(low - embedded.LISTENING_SPAN <= port < low for port in ports), (low, ports)
    for port in ports:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_without_room_below_the_range_any_free_port_will_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(embedded, "listening_ports", lambda: range(0))
    ports = free_ports(3)
    assert len(set(ports)) == 3 and all(port > 0 for port in ports)
