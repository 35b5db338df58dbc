"""Registry fetches under their policy, over real HTTP(S) servers on 127.0.0.1 (issue #22.8).

Redirects that leave https or the source's host are refused (and nothing reaches their target), private
addresses need `allow_private_ip` (checked again after each redirect), one deadline ends a drip-feeding server,
credentials in a URL work and never appear in an error, and a 100,000-deep document is a clean RegistryError.
"""

from __future__ import annotations

import base64
import json
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, run_cli, write_manifest
from tests.support.loopback import Handler, TlsFiles, drip, drip_headers, make_tls, serving
from toolhive_apply.registry import sources, transport
from toolhive_apply.registry.formats import RegistryError, parse_catalogue
from toolhive_apply.registry.sources import FetchPolicy
from toolhive_apply.registry.transport import address_refusal
from toolhive_apply.urls import mask_url

UPSTREAM = json.loads((ROOT / "examples" / "registry" / "registry.json").read_text())
BODY = json.dumps(UPSTREAM).encode()
LOOPBACK = FetchPolicy(allow_private_ip=True)
USER, PASSWORD, TOKEN = "reg-user", "pw-9f3c1d7e2b", "tok-51a8e0c4d6"


def document(handler: Handler) -> None:
    handler.answer(200, BODY, {"Content-Type": "application/json"})


def needs_basic_auth(handler: Handler) -> None:
    expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    if handler.headers.get("Authorization") == expected and f"token={TOKEN}" in handler.path:
        document(handler)
    else:
        handler.answer(401, b"{}")


@pytest.fixture(autouse=True)
def private_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def trust(tls: TlsFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    """Registry TLS is verified against the system store, which OpenSSL lets SSL_CERT_FILE replace."""
    monkeypatch.setenv("SSL_CERT_FILE", str(tls.ca))


@pytest.fixture
def plain() -> Iterator[Any]:
    with serving({"/registry.json": document, "/auth.json": needs_basic_auth}) as server:
        yield server


def fetch(url: str, policy: FetchPolicy = LOOPBACK, timeout: float = 10.0, kind: str = "url") -> Any:
    return sources.load_remote(f"{kind}:{url}", "r", ttl=0, timeout=timeout, policy=policy).document


# -- redirects --------------------------------------------------------------------------------------------------
@pytest.mark.usefixtures("trust")
def test_a_redirect_from_https_to_http_is_refused_and_nothing_reaches_the_target(tls: TlsFiles, plain: Any) -> None:
    target = plain.url("/registry.json")
    redirecting = serving({"/registry.json": lambda h: h.redirect(target)}, tls)
    with redirecting as secure, pytest.raises(RegistryError, match=r"from https to http://127\.0\.0\.1") as caught:
        fetch(secure.url("/registry.json"))
    assert "leave TLS" in caught.value.message
    assert plain.received == []


@pytest.mark.usefixtures("trust")
def test_https_to_https_on_the_same_host_is_followed(tls: TlsFiles) -> None:
    with serving({"/old.json": lambda h: h.redirect("/registry.json", 301), "/registry.json": document}, tls) as secure:
        assert fetch(secure.url("/old.json")) == UPSTREAM


@pytest.mark.usefixtures("trust")
def test_a_redirect_to_ftp_or_another_scheme_is_refused(tls: TlsFiles) -> None:
    redirecting = serving({"/registry.json": lambda h: h.redirect("ftp://127.0.0.1/registry.json")}, tls)
    with redirecting as secure, pytest.raises(RegistryError, match=r"refused a redirect to ftp://127\.0\.0\.1/"):
        fetch(secure.url("/registry.json"))


def test_a_redirect_to_another_host_is_refused_unless_the_registry_lists_it(plain: Any) -> None:
    elsewhere = plain.url("/registry.json", host="localhost")
    with serving({"/registry.json": lambda h: h.redirect(elsewhere)}) as source:
        with pytest.raises(RegistryError, match=r"refused a redirect to another host \(http://localhost:") as caught:
            fetch(source.url("/registry.json"))
        assert caught.value.hint is not None and "redirect_hosts" in caught.value.hint
        assert plain.received == []
        assert fetch(source.url("/registry.json"), FetchPolicy(True, frozenset({"localhost"}))) == UPSTREAM
    assert len(plain.received) == 1


def test_credentials_go_to_the_sources_origin_only_never_after_a_redirect_elsewhere(plain: Any) -> None:
    elsewhere = plain.url("/registry.json", host="localhost")
    routes = {
        "/same.json": lambda h: h.redirect("/auth.json?token=" + TOKEN),
        "/other.json": lambda h: h.redirect(elsewhere),
    }
    routes["/auth.json"] = needs_basic_auth
    with serving(routes) as source:
        base = source.url().replace("http://", f"http://{USER}:{PASSWORD}@")
        assert fetch(f"{base}/same.json?token={TOKEN}") == UPSTREAM  # same origin: Basic auth kept
        fetch(f"{base}/other.json", FetchPolicy(True, frozenset({"localhost"})))
    (arrived,) = plain.received
    assert "Authorization" not in arrived.headers


# -- private addresses ------------------------------------------------------------------------------------------
def test_a_loopback_source_needs_allow_private_ip(plain: Any) -> None:
    for kind, path in (("url", "/registry.json"), ("api", "/api")):
        with pytest.raises(RegistryError, match=r"refused to connect: 127\.0\.0\.1 is a loopback address") as caught:
            fetch(plain.url(path), FetchPolicy(), kind=kind)
        assert caught.value.hint is not None and "allow_private_ip: true" in caught.value.hint
    with pytest.raises(RegistryError, match=r"refused to connect to localhost: 127\.0\.0\.1 is a loopback"):
        fetch(plain.url("/registry.json", host="localhost"), FetchPolicy())
    assert plain.received == []


def test_every_redirect_is_checked_against_the_address_policy_again(
    plain: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only loopback exists in a test; 127.0.0.1 is made to count as public, so the hop to 127.0.0.2 is the
    private one. The policy function is the production one for every other address."""
    real = transport.address_refusal
    monkeypatch.setattr(transport, "address_refusal", lambda a: None if a == "127.0.0.1" else real(a))
    target = f"http://127.0.0.2:{plain.port}/registry.json"  # nothing listens on 127.0.0.2: nothing may connect
    with serving({"/registry.json": lambda h: h.redirect(target)}) as public:
        policy = FetchPolicy(False, frozenset({"127.0.0.2"}))
        with pytest.raises(RegistryError, match=r"refused to connect: 127\.0\.0\.2 is a loopback address"):
            fetch(public.url("/registry.json"), policy)
        assert len(public.received) == 1


def test_the_connection_goes_to_the_address_that_was_checked(plain: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """One lookup per hop, and the socket connects to its answer: a rebinding DNS server gets no second say."""
    lookups: list[str] = []
    real = socket.getaddrinfo

    def counting(host: Any, *args: Any, **kwargs: Any) -> Any:
        lookups.append(str(host))
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", counting)
    assert fetch(plain.url("/registry.json", host="localhost")) == UPSTREAM
    assert lookups == ["localhost"]


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("169.254.169.254", "a link-local address"),  # cloud metadata: judged by the policy, never connected to
        ("fe80::1", "a link-local address"),
        ("10.1.2.3", "a private address"),
        ("192.168.0.10", "a private address"),
        ("fc00::1", "a private address"),
        ("100.64.0.1", "a non-public address"),
        ("127.0.0.1", "a loopback address"),
        ("::1", "a loopback address"),
        ("::ffff:127.0.0.1", "a loopback address"),
        ("::ffff:169.254.169.254", "a link-local address"),
        ("2002:a9fe:a9fe::1", "a link-local address"),  # 6to4 wrapping the metadata address
        ("64:ff9b::a9fe:a9fe", "a link-local address"),  # NAT64 wrapping it
        ("0.0.0.0", "the unspecified address"),
        ("224.0.0.1", "a multicast address"),
        ("8.8.8.8", None),
        ("2606:4700::1111", None),
    ],
)
def test_the_address_policy_refuses_every_non_public_kind(address: str, reason: str | None) -> None:
    assert address_refusal(address) == reason


# -- one deadline -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("route", [drip(BODY), drip_headers()], ids=["body", "headers"])
def test_a_server_dripping_bytes_hits_the_one_overall_deadline(route: Any) -> None:
    with serving({"/registry.json": route}) as slow, pytest.raises(RegistryError) as caught:
        fetch(slow.url("/registry.json"), timeout=1.5)
    assert caught.value.message.endswith("unreachable (timed out: no complete answer within 1.5 s)")


def test_the_deadline_covers_every_page_of_an_api_source() -> None:
    page = json.dumps({"servers": [{"server": UPSTREAM["data"]["servers"][0]}], "metadata": {"nextCursor": "n"}})
    dripping = serving({"/api/v0.1/servers": drip(page.encode(), every=0.05, limit=10_000)})
    with dripping as slow, pytest.raises(RegistryError, match=r"timed out: no complete answer within 1 s"):
        fetch(slow.url("/api"), timeout=1, kind="api")


# -- credentials in URLs ----------------------------------------------------------------------------------------
def test_user_and_password_in_the_url_are_sent_as_basic_auth(plain: Any) -> None:
    base = plain.url().replace("http://", f"http://{USER}:{PASSWORD}@")
    assert fetch(f"{base}/auth.json?token={TOKEN}") == UPSTREAM


def test_an_api_url_keeps_its_query_and_credentials_on_every_page() -> None:
    servers = UPSTREAM["data"]["servers"]

    def pages(handler: Handler) -> None:
        if f"token={TOKEN}" not in handler.path or "Authorization" not in handler.headers:
            handler.answer(401, b"{}")
        elif "cursor=2" in handler.path:
            handler.answer(200, json.dumps({"servers": [{"server": servers[1]}], "metadata": {}}).encode())
        else:
            handler.answer(
                200, json.dumps({"servers": [{"server": servers[0]}], "metadata": {"nextCursor": "2"}}).encode()
            )

    with serving({"/api/v0.1/servers": pages}) as api:
        base = api.url().replace("http://", f"http://{USER}:{PASSWORD}@")
        found = parse_catalogue("r", fetch(f"{base}/api?token={TOKEN}", kind="api"))
        assert len(found.servers) == 2 and len(api.received) == 2


def _secret_free(error: RegistryError) -> str:
    text = f"{error} {error.message} {error.hint or ''} {error!r}"
    for secret in (PASSWORD, TOKEN, USER):
        assert secret not in text
    return text


def test_credentials_in_the_url_are_masked_in_every_error(tls: TlsFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    routes = {
        "/500.json": lambda h: h.answer(500, b"boom"),
        "/bad.json": lambda h: h.answer(200, b"{not json"),
        "/deep.json": lambda h: h.answer(200, deep),
        "/away.json": lambda h: h.redirect(f"http://localhost:1/x?token={TOKEN}"),
        "/slow.json": drip(BODY),
    }
    monkeypatch.setattr(sources, "MAX_BYTES", 150_000)
    with serving({**routes, "/big.json": lambda h: h.answer(200, b" " * 200_000)}) as server:
        base = server.url().replace("http://", f"http://{USER}:{PASSWORD}@")
        cases = [*(f"{base}{path}" for path in [*routes, "/big.json"]), f"http://{USER}:{PASSWORD}@127.0.0.1:1/x"]
        for url in cases:
            for policy in (LOOPBACK, FetchPolicy()):
                with pytest.raises(RegistryError) as caught:
                    fetch(f"{url}?token={TOKEN}", policy, timeout=1.5)
                assert mask_url(f"{url}?token={TOKEN}") in _secret_free(caught.value)


def test_a_fallback_to_the_cache_warns_without_the_credentials(plain: Any) -> None:
    url = plain.url("/auth.json").replace("http://", f"http://{USER}:{PASSWORD}@") + f"?token={TOKEN}"
    fetch(url)
    plain.shutdown()
    plain.server_close()
    fetched = sources.load_remote(f"url:{url}", "r", ttl=0, timeout=1, policy=LOOPBACK)
    assert fetched.document == UPSTREAM and fetched.warning is not None
    assert "using the cached copy" in fetched.warning and "***@127.0.0.1" in fetched.warning
    assert PASSWORD not in fetched.warning and TOKEN not in fetched.warning


# -- documents and the cache ------------------------------------------------------------------------------------
def test_a_100000_deep_document_is_a_clean_registry_error(tmp_path: Path) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    serving_deep = serving({"/deep.json": lambda h: h.answer(200, deep)})
    with serving_deep as server, pytest.raises(RegistryError, match="nested more than 64 levels deep"):
        fetch(server.url("/deep.json"))
    (tmp_path / "deep.json").write_bytes(b'{"a":' * 100_000 + b"1" + b"}" * 100_000)
    with pytest.raises(RegistryError, match="nested more than 64 levels deep"):
        sources.load_file(tmp_path / "deep.json", "r")
    (tmp_path / "just-too-deep.json").write_text("[" * 65 + "]" * 65)
    with pytest.raises(RegistryError, match="nested more than 64 levels deep"):
        sources.load_file(tmp_path / "just-too-deep.json", "r")
    (tmp_path / "deep-enough.json").write_text("[" * 64 + "]" * 64)
    assert sources.load_file(tmp_path / "deep-enough.json", "r").document is not None


def test_a_copy_cached_from_a_private_address_is_not_used_once_the_registry_forbids_it(plain: Any) -> None:
    url = plain.url("/registry.json")
    assert sources.load_remote(f"url:{url}", "r", ttl=3600, policy=LOOPBACK).document == UPSTREAM
    with pytest.raises(RegistryError, match="loopback"):
        sources.load_remote(f"url:{url}", "r", ttl=3600, policy=FetchPolicy())
    assert len(plain.received) == 1


def test_cache_files_are_private_to_the_user(plain: Any) -> None:
    fetch(plain.url("/registry.json"))
    data_path, meta_path = sources._cache_paths(f"url:{plain.url('/registry.json')}")
    for path in (data_path, meta_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(data_path.parent.stat().st_mode) == 0o700


def test_a_damaged_cache_is_no_cache(plain: Any) -> None:
    url = plain.url("/registry.json")
    fetch(url)
    data_path, _ = sources._cache_paths(f"url:{url}")
    data_path.write_text("[" * 100_000)
    assert sources.load_remote(f"url:{url}", "r", ttl=3600, policy=LOOPBACK).document == UPSTREAM


# -- what the CLI prints and records ----------------------------------------------------------------------------
@pytest.mark.docker
def test_plan_labels_and_exports_hold_the_registry_url_only_masked(
    docker_api: Any, tmp_path: Path, stack: str, plain: Any
) -> None:
    url = plain.url("/auth.json").replace("http://", f"http://{USER}:{PASSWORD}@") + f"?token={TOKEN}"
    registry = {"name": "private", "url": url, "allow_private_ip": True}
    path = write_manifest(tmp_path, stack, [], registries=[registry])
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    outputs = [run_cli("plan", str(path), "-v", env=env), run_cli("apply", str(path), "--yes", env=env)]
    assert outputs[1].code == 0, outputs[1]
    labels = [
        c["Labels"] for c in docker_api.containers(all=True, filters={"label": [f"toolhive-apply.stack={stack}"]})
    ]
    assert labels and all(mask_url(url) in json.dumps(found) for found in labels)
    outputs += [
        run_cli("export", "registries", "--stack", stack, env=env),
        run_cli("export", "--as-manifest", "--stack", stack, env=env),
        run_cli("plan", str(path), "--detailed-exitcode", env=env),
    ]
    assert outputs[2].code == 1 and "never recorded" in outputs[2].stderr
    assert outputs[3].code == 0 and json.loads(outputs[3].stdout)["registries"] == [{**registry, "url": mask_url(url)}]
    assert outputs[4].code == 0, outputs[4]
    for text in [*(o.stdout + o.stderr for o in outputs), json.dumps(labels)]:
        assert PASSWORD not in text and TOKEN not in text
