"""Keyword arguments are the CLI's flags: a value it refuses is a ValueError with its
one-line message, an unknown keyword or a value of the wrong kind a TypeError. Nothing here
sends a packet: every call fails before the first."""

from __future__ import annotations

import typing

import pytest

import estudely
from estudely import types as opts
from conftest import run_cli


def test_a_refused_value_is_a_value_error_with_the_cli_message(estudely_bin):
    with pytest.raises(ValueError) as e:
        estudely.collect(rate=-1)
    assert str(e.value) == (
        "invalid value '-1' for '--rate <Q>': `-1` must be more than 0 and at most 50000"
    )
    cli = run_cli(estudely_bin, "collect", "--rate=-1")
    assert cli.returncode == 2
    assert cli.stderr.splitlines()[0] == f"error: {e.value}"


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda: estudely.collect(bootstrap=["127.77.1.1"], overall_timeout=5),
            "bad address `127.77.1.1`",
        ),
        (
            lambda: estudely.crawl(bind=["127.77.200.9:0", "127.77.200.10:0"]).to_frame(),
            "--bind takes at most one IPv4 and one IPv6 address, got "
            "127.77.200.9:0, 127.77.200.10:0",
        ),
        (lambda: estudely.collect(max_infohashes=-3), "invalid value '-3' for '--max-infohashes <N>'"),
        (lambda: estudely.collect(fetch_memory="lots"), "`lots` is not a size"),
        (lambda: estudely.testnet(base_ip="10.0.0"), "`10.0.0` is not three octets inside 127/8"),
        (lambda: estudely.simulate(nodes=10), "invalid value '10' for '--nodes <N>'"),
        (lambda: estudely.collect(transport="carrier-pigeon"), "invalid value 'carrier-pigeon' for '--transport <TRANSPORT>'"),
        (lambda: estudely.Index("/nonexistent/index.sqlite"), "cannot open SQLite index `/nonexistent/index.sqlite`: no such file"),
        (lambda: estudely.query.ping("127.77.1.1:0"), "bad address `127.77.1.1:0`: port 0 cannot be reached"),
    ],
)
def test_bad_values_raise_value_error(call, message):
    with pytest.raises(ValueError) as e:
        call()
    assert message in str(e.value)
    assert "\n" not in str(e.value), "one line, as the CLI prints it"


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: estudely.collect(nope=1), "collect() got an unexpected keyword argument 'nope'"),
        (lambda: estudely.collect(format="csv"), "collect() got an unexpected keyword argument 'format'"),
        (lambda: estudely.collect(allow_private="yes"), "collect() argument 'allow_private' must be bool, not str"),
        (lambda: estudely.collect(rate=True), "collect() argument 'rate' must be a str or a number, not bool"),
        (lambda: estudely.collect(rate=[1]), "collect() argument 'rate' must be a str or a number, not list"),
        (lambda: estudely.collect(bootstrap={"a": 1}), "collect() argument 'bootstrap' must be a str, a number, a bool or a list of them, not dict"),
        (lambda: estudely.fetch_metadata([("ab" * 20,)]), "each peer must be (infohash, peer_ip, peer_port)"),
        (lambda: estudely.bencode.encode(1.5), "cannot bencode a float"),
    ],
)
def test_wrong_kinds_raise_type_error(call, message):
    with pytest.raises(TypeError) as e:
        call()
    assert message in str(e.value)


def test_none_is_the_default_and_paths_are_taken(tmp_path):
    """`None` leaves a flag at its default; an os.PathLike is a path (here a manifest that
    cannot be written: the CLI's usage error)."""
    with pytest.raises(ValueError) as e:
        estudely.testnet(manifest=tmp_path / "missing-dir" / "t.json", nodes=None)
    assert "cannot write manifest" in str(e.value)


@pytest.mark.parametrize(
    "command, typed, fixed",
    [
        ("collect", opts.CollectOptions, {"format"}),
        ("crawl", opts.CrawlOptions, {"format"}),
        ("metadata", opts.MetadataOptions, {"format"}),
        ("run", opts.RunOptions, set()),
        ("testnet", opts.TestnetOptions, set()),
        ("simulate", opts.SimulateOptions, {"format"}),
        ("query ping", opts.QueryOptions, {"format"}),
    ],
)
def test_typed_options_are_the_cli_flags(command, typed, fixed):
    """The TypedDicts of the type stubs list exactly the CLI's flags (less those the
    package sets itself)."""
    flags = estudely.options(command)
    assert set(flags["name"]) - fixed == set(typing.get_type_hints(typed))
    kinds = dict(zip(flags["name"], flags["kind"]))
    assert kinds.get("allow_private", "switch") == "switch"
    assert kinds.get("bootstrap", "many") == "many"
