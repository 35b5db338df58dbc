"""JSON-RPC id multiplexing for many clients on one stdio session, on data."""

from __future__ import annotations

import pytest

from toolhive_apply.proxy.mux import DuplicateRequestError, IdMultiplexer, cancel_notice
from toolhive_apply.proxy.shared_interest import SharedInterest


def request(request_id: int | str, method: str = "tools/call", **params: object) -> dict[str, object]:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}


def response(request_id: object, value: object) -> dict[str, object]:
    return {"jsonrpc": "2.0", "id": request_id, "result": {"value": value}}


def test_clients_using_the_same_ids_get_distinct_server_ids_and_their_own_answers() -> None:
    mux: IdMultiplexer[str] = IdMultiplexer()
    out_a = mux.begin("a", request(1), waiter="wait-a")
    out_b = mux.begin("b", request(1), waiter="wait-b")
    assert out_a["id"] != out_b["id"]
    # the server answers in the opposite order
    routed_b = mux.complete(response(out_b["id"], "for b"))
    routed_a = mux.complete(response(out_a["id"], "for a"))
    assert routed_a is not None and routed_b is not None
    assert (routed_a[0].client, routed_a[0].waiter, routed_a[1]) == ("a", "wait-a", response(1, "for a"))
    assert (routed_b[0].client, routed_b[0].waiter, routed_b[1]) == ("b", "wait-b", response(1, "for b"))
    assert len(mux) == 0


def test_string_and_integer_ids_are_distinct_and_restored_verbatim() -> None:
    mux: IdMultiplexer[str] = IdMultiplexer()
    out_int = mux.begin("a", request(1), "int")
    out_str = mux.begin("a", request("1"), "str")
    routed_str = mux.complete(response(out_str["id"], 0))
    routed_int = mux.complete(response(out_int["id"], 0))
    assert routed_str is not None and routed_int is not None
    assert (routed_str[0].waiter, routed_str[1]["id"]) == ("str", "1")
    assert (routed_int[0].waiter, routed_int[1]["id"]) == ("int", 1)


def test_the_original_message_is_not_modified() -> None:
    mux: IdMultiplexer[None] = IdMultiplexer()
    original = request(5, _meta={"progressToken": "tok"})
    mux.begin("a", original, None)
    assert original == request(5, _meta={"progressToken": "tok"})


def test_a_reused_in_flight_id_is_refused() -> None:
    mux: IdMultiplexer[None] = IdMultiplexer()
    mux.begin("a", request(1), None)
    with pytest.raises(DuplicateRequestError):
        mux.begin("a", request(1), None)
    mux.begin("b", request(1), None)  # another client may use it


def test_progress_tokens_are_rewritten_and_progress_goes_back_to_its_client() -> None:
    mux: IdMultiplexer[None] = IdMultiplexer()
    out_a = mux.begin("a", request(1, _meta={"progressToken": 1}), None)
    out_b = mux.begin("b", request(1, _meta={"progressToken": 1}), None)
    token_a = out_a["params"]["_meta"]["progressToken"]  # type: ignore[index]
    token_b = out_b["params"]["_meta"]["progressToken"]  # type: ignore[index]
    assert token_a != token_b
    progress = {
        "jsonrpc": "2.0",
        "method": "notifications/progress",
        "params": {"progressToken": token_b, "progress": 3},
    }
    routed = mux.route_progress(progress)
    assert routed == ("b", {**progress, "params": {"progressToken": 1, "progress": 3}})
    mux.complete(response(out_b["id"], "done"))
    assert mux.route_progress(progress) is None  # the request is over: late progress has nowhere to go


def test_responses_with_unknown_ids_are_not_routed() -> None:
    mux: IdMultiplexer[None] = IdMultiplexer()
    assert mux.complete(response(42, "x")) is None
    assert mux.complete(response("42", "x")) is None
    assert mux.complete(response(True, "x")) is None


def test_abandoning_tells_which_server_request_to_cancel() -> None:
    mux: IdMultiplexer[None] = IdMultiplexer()
    out = mux.begin("a", request("r1"), None)
    pending = mux.abandon("a", "r1")
    assert pending is not None
    assert cancel_notice(pending, "gone")["params"] == {"requestId": out["id"], "reason": "gone"}
    assert mux.complete(response(out["id"], "late")) is None
    assert mux.abandon("a", "r1") is None


def test_a_closed_session_and_a_lost_server_release_every_pending_request() -> None:
    mux: IdMultiplexer[str] = IdMultiplexer()
    mux.begin("a", request(1), "a1")
    mux.begin("a", request(2), "a2")
    mux.begin("b", request(1), "b1")
    assert sorted(p.waiter for p in mux.abandon_client("a")) == ["a1", "a2"]
    assert [p.waiter for p in mux.drain()] == ["b1"]
    assert len(mux) == 0


def notification(method: str, **params: object) -> dict[str, object]:
    return {"jsonrpc": "2.0", "method": method, "params": params}


def test_shared_log_messages_go_to_the_clients_that_asked_at_their_own_level() -> None:
    interest = SharedInterest()
    assert interest.set_level("a", "warning") and interest.set_level("b", "debug")
    assert not interest.set_level("c", "verbose") and not interest.set_level("c", 3)
    assert interest.recipients(notification("notifications/message", level="info", data="x")) == ["b"]
    assert interest.recipients(notification("notifications/message", level="error", data="x")) == ["a", "b"]
    assert interest.recipients(notification("notifications/message", level="odd", data="x")) == ["a", "b"]
    interest.forget("b")
    assert interest.recipients(notification("notifications/message", level="info")) == []


def test_shared_subscriptions_are_counted_per_uri() -> None:
    interest = SharedInterest()
    assert interest.subscribe("a", "u") is True  # the first: ask the server
    assert interest.subscribe("b", "u") is False
    assert interest.subscribe("a", "v") is True
    assert interest.recipients(notification("notifications/resources/updated", uri="u")) == ["a", "b"]
    assert interest.recipients(notification("notifications/resources/updated", uri="w")) == []
    assert interest.unsubscribe("b", "u") is False  # a still holds it
    assert interest.unsubscribe("c", "v") is False  # c never held it; a does
    assert interest.subscriptions() == ["u", "v"]
    assert interest.forget("a") == ["u", "v"]  # nobody wants them any more: tell the server
    assert interest.subscriptions() == []


def test_other_notifications_are_for_everyone() -> None:
    interest = SharedInterest()
    interest.set_level("a", "debug")
    assert interest.recipients(notification("notifications/tools/list_changed")) is None
    assert interest.recipients(notification("notifications/custom", x=1)) is None
