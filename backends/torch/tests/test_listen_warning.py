"""vbtorch listens on loopback by default and knows when a --host is public (it then logs a warning)."""

from vbtorch.server import is_public, parse_args


def test_default_host_is_loopback():
    assert parse_args(["--model", "m"]).host == "127.0.0.1"


def test_is_public():
    for host in ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"]:
        assert not is_public(host), host
    for host in ["0.0.0.0", "::", "", "10.0.0.5", "192.168.1.2", "example.com"]:
        assert is_public(host), host
