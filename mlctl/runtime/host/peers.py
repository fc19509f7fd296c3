"""Who is at the other end of a public connection: its address, whether it is this machine (loopback), whether
it is a trusted proxy, and so the client address the access log names (X-Forwarded-For only from a proxy)."""

from __future__ import annotations

import ipaddress

from .listen import ListenSettings

MAX_FORWARDED = 512  # characters of X-Forwarded-For read: the rightmost hops are the ones that matter


class Peer:
    """One connection's peer (made once per connection: the request path reads its fields)."""

    __slots__ = ("address", "local", "proxy")

    def __init__(self, address: str, local: bool, proxy: bool):
        self.address, self.local, self.proxy = address, local, proxy

    def client(self, forwarded: bytes | None, settings: ListenSettings) -> str:
        """Pure: the client address for the log: the peer's, or, when the peer is a trusted proxy, the
        rightmost X-Forwarded-For entry that is not a trusted proxy (entries a client wrote itself sit to
        its left and are not believed). Not an address: the peer's."""
        if not self.proxy or not forwarded:
            return self.address
        hops = forwarded[-MAX_FORWARDED:].decode("latin-1").split(",")
        for hop in reversed(hops):
            hop = hop.strip()
            try:
                ipaddress.ip_address(hop)
            except ValueError:
                return self.address
            if not settings.is_trusted_proxy(hop):
                return hop
        return self.address


LOOPBACK = Peer("", True, False)  # a unix socket or a transport without a peer address (tests): this machine


def peer_of(transport, settings: ListenSettings | None) -> Peer:
    """The Peer of a new connection's transport."""
    name = transport.get_extra_info("peername")
    if not name or not isinstance(name, tuple):
        return LOOPBACK
    address = name[0]
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return Peer(address, False, False)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:  # a dual-stack socket's IPv4 client
        ip = ip.ipv4_mapped
        address = str(ip)
    return Peer(address, ip.is_loopback, settings is not None and settings.is_trusted_proxy(address))
