"""Every malformed stdio message that carries an id gets a JSON-RPC error reply (issue 18). The SDK's stdio
transport drops such lines silently; server/stdio.py answers them before the SDK sees them."""

from __future__ import annotations

import json
import select
import subprocess
import time

import pytest

from tests.conftest import subprocess_env, treedistill_command
from treedistill.server.stdio import refusal

PARSE_ERROR, INVALID_REQUEST = -32700, -32600
MALFORMED = {  # name: (line, the id its reply must carry, the code)
    "lone surrogate": (b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"create_project",'
                       b'"arguments":{"name":"a\\udc00b"}}}', 1, PARSE_ERROR),
    "batch": (b'[{"jsonrpc":"2.0","id":2,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/x"}]', 2,
              INVALID_REQUEST),
    "nested 100,000 deep": (b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":' + b"[" * 100_000
                            + b"]" * 100_000 + b"}", 3, PARSE_ERROR),
    "spec nested 5,000 deep": (b'{"jsonrpc":"2.0","id":"four","method":"tools/call","params":{"name":'
                               b'"create_project","arguments":{"name":"d","question_model":' + b'{"a":' * 5000
                               + b"1" + b"}" * 5000 + b"}}}", "four", PARSE_ERROR),
    "5,000-digit integer": (b'{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"get_progress",'
                            b'"arguments":{"job_id":' + b"9" * 5000 + b"}}}", 5, PARSE_ERROR),
    "cut short": (b'{"jsonrpc":"2.0","id":6,"method":"ping"', 6, PARSE_ERROR),
    "no method": (b'{"jsonrpc":"2.0","id":7}', 7, INVALID_REQUEST),
}


@pytest.mark.parametrize("name", MALFORMED)
def test_each_malformed_message_is_refused_with_its_id(name):
    line, request_id, code = MALFORMED[name]
    (reply,) = refusal(line.decode())
    assert (reply.id, reply.error.code) == (request_id, code)


def test_well_formed_messages_pass_and_notifications_get_no_reply():
    assert refusal('{"jsonrpc":"2.0","id":1,"method":"ping"}') is None
    assert refusal('{"jsonrpc":"2.0","method":"notifications/initialized"}') is None
    assert refusal('{"jsonrpc":"2.0","method":5}') == []  # invalid, but nobody waits for an answer
    (unreadable,) = refusal('{"jsonrpc":"2.0","method":"x","params":' + "[" * 300 + "]" * 300 + "}")
    assert (unreadable.id, unreadable.error.code) == (None, PARSE_ERROR)  # JSON-RPC: a parse error gets id null
    assert refusal('{"jsonrpc":"2.0","id":' + "9" * 5000 + ',"method":"ping"}')[0].id is None  # no usable id


def test_a_real_server_answers_every_malformed_message_and_keeps_serving(env, db_path):
    server = subprocess.Popen([*treedistill_command(), "--db", str(db_path), "serve"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=subprocess_env(env, db_path))

    def send(line: bytes) -> None:
        server.stdin.write(line + b"\n")
        server.stdin.flush()

    def reply(timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if select.select([server.stdout], [], [], 0.1)[0]:
                return json.loads(server.stdout.readline())
        raise AssertionError("no reply")

    try:
        send(json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}).encode())
        assert reply()["id"] == 0
        send(b'{"jsonrpc":"2.0","method":"notifications/initialized"}')
        for name, (line, request_id, code) in MALFORMED.items():
            send(line)
            answer = reply(10.0)
            assert (answer["id"], answer["error"]["code"]) == (request_id, code), name
        send(b'{"jsonrpc":"2.0","id":99,"method":"ping"}')
        assert reply() == {"jsonrpc": "2.0", "id": 99, "result": {}}
    finally:
        server.stdin.close()
        server.wait(30)
