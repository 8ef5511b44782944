"""Which requests may reach the API at all: checks on Host and Origin.

A multipart POST is a "simple" cross-origin request, so without these checks
any web page the user opens could run fills on their backend; and a page
whose name an attacker re-points at 127.0.0.1 (DNS rebinding) could read
the answers. The editors' plugins send no Origin and address the server by
the name it was started with, so neither check gets in their way.
"""
from __future__ import annotations

import ipaddress

from flask import Flask, request

from backend.api.errors import error_response
from backend.jobs import JobError

LOOPBACK_NAMES = {"localhost"}
WILDCARDS = {"0.0.0.0", "::", ""}
# What a browser may send and read when a page's origin is allowed (--allowed-origin).
CORS_HEADERS = {
    "Access-Control-Allow-Methods": "GET, POST, DELETE",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, Accept",
    "Access-Control-Expose-Headers": "X-Model, X-Seed, X-Elapsed-Ms, X-Engine-Ms, X-Region, Location",
}


def host_name(host: str) -> str:
    """'Name:port', '[::1]:port' or a bare name -> the lower-case name, without port, brackets or final dot."""
    host = host.strip().lower()
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


def ip_literal(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def is_loopback(host: str) -> bool:
    name = host_name(host)
    address = ip_literal(name)
    return name in LOOPBACK_NAMES if address is None else address.is_loopback


def origin_key(origin: str) -> str:
    return origin.strip().lower().rstrip("/")


class AccessRules:
    """The names the server answers to and the web origins allowed to call it."""

    def __init__(self, host: str = "127.0.0.1", allowed_hosts=(), allowed_origins=()):
        self.hosts = {host_name(h) for h in (host, *allowed_hosts)} - WILDCARDS
        # Bound to every interface: the machine's own addresses cannot all be known, but an IP
        # literal in Host is never a rebinding (that needs a name the attacker controls).
        self.any_address = host_name(host) in WILDCARDS
        self.origins = {origin_key(o) for o in allowed_origins}

    def host_allowed(self, host: str | None) -> bool:
        if host is None:  # HTTP/1.0 without Host: no browser sends that
            return True
        name = host_name(host)
        address = ip_literal(name)
        if address is not None and (address.is_loopback or self.any_address):
            return True
        return name in LOOPBACK_NAMES or name in self.hosts

    def origin_allowed(self, origin: str | None) -> bool:
        return origin is None or origin_key(origin) in self.origins


def install(app: Flask, rules: AccessRules) -> None:
    """Refuse foreign Host and Origin headers on every route (before the token check); CORS only for allowed origins."""

    @app.before_request
    def _check_host_and_origin():
        host = request.environ.get("HTTP_HOST")
        if not rules.host_allowed(host):
            return error_response(JobError(
                "wrong_host", f"this server does not answer to the name '{host_name(host)}' "
                              f"(start it with --allowed-host {host_name(host) or 'NAME'} to allow it)", 421))
        origin = request.headers.get("Origin")
        if not rules.origin_allowed(origin):
            return error_response(JobError(
                "forbidden_origin", f"requests from web pages at '{origin}' are refused "
                                    "(start the server with --allowed-origin ORIGIN to allow one)", 403))

    @app.after_request
    def _cors(resp):
        origin = request.headers.get("Origin")
        if origin is not None and rules.origin_allowed(origin):
            resp.headers["Access-Control-Allow-Origin"] = origin
            resp.headers.update(CORS_HEADERS)
            resp.vary.add("Origin")
        return resp
