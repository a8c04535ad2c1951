"""What the server pushes to clients: the engine's log at the level a client set (logging/setLevel) and
resources/updated for subscribed resources (resources/subscribe in the handshake era, subscriptions/listen in
2026-07-28), through the SDK client."""

from __future__ import annotations


import anyio
import pytest
from mcp import Client
from mcp_types import LoggingMessageNotificationParams, ResourceUpdatedNotification

from tests.drive import call

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore::UserWarning")]  # the SDK's deprecations

PROJECTS = "treedistill://projects"
TREE = "treedistill://projects/1/tree"


async def test_capabilities_declare_logging_and_subscribe(server):
    async with Client(server, mode="legacy") as legacy:
        assert legacy.server_capabilities.logging is not None
        assert legacy.server_capabilities.resources.subscribe is True
    async with Client(server) as modern:
        assert modern.server_capabilities.resources.subscribe is True  # through subscriptions/listen


async def test_logging_set_level_sends_the_engine_log_at_that_level_and_above(server, llm):
    received: list[LoggingMessageNotificationParams] = []
    job_ended = anyio.Event()

    async def on_log(params: LoggingMessageNotificationParams) -> None:
        received.append(params)
        if "ended" in str(params.data):
            job_ended.set()

    async with Client(server, mode="legacy", logging_callback=on_log) as client:
        assert (await client.set_logging_level("info")).model_dump(exclude_none=True) == {}
        project = await call(client, "create_project", name="Chess")
        started = await call(client, "auto_distill", project_id=project["id"], levels=1, tags_per_level=2,
                             questions_per_tag=1)
        with anyio.fail_after(30):
            await job_ended.wait()
    job = started["job_id"]
    lines = [(params.level, params.logger, params.data) for params in received]
    assert ("info", "treedistill.engine",
            f"job {job} started on project 1: 5 calls planned (2 tags, 2 questions, 2 answers)") in lines
    assert ("info", "treedistill.scheduler", f"job {job} ended completed: 5 calls done, 0 failed") in lines


async def test_a_higher_level_filters_what_is_below_it(server, llm):
    received: list[LoggingMessageNotificationParams] = []
    failed = anyio.Event()

    async def on_log(params: LoggingMessageNotificationParams) -> None:
        received.append(params)
        if params.level == "warning":
            failed.set()

    llm.configure(reject_prompt_rate=1.0, reject_kinds=["answer"])
    async with Client(server, mode="legacy", logging_callback=on_log) as client:
        await client.set_logging_level("warning")
        project = await call(client, "create_project", name="Chess")
        await call(client, "auto_distill", project_id=project["id"], levels=1, tags_per_level=1, questions_per_tag=1)
        with anyio.fail_after(30):
            await failed.wait()  # the job's info lines ("started", retries) came before it, and were filtered
    assert received and {params.level for params in received} == {"warning"}
    assert "failed" in str(received[0].data) and received[0].logger == "treedistill.scheduler"


async def test_no_log_is_sent_before_a_level_is_set(server, llm):
    received: list[LoggingMessageNotificationParams] = []

    async def on_log(params: LoggingMessageNotificationParams) -> None:
        received.append(params)

    async with Client(server, mode="legacy", logging_callback=on_log) as client:
        project = await call(client, "create_project", name="Chess")
        started = await call(client, "auto_distill", project_id=project["id"], levels=1, tags_per_level=1,
                             questions_per_tag=1)
        await call(client, "get_progress", job_id=started["job_id"], wait_seconds=30)
        await client.send_ping()
    assert received == []


async def test_subscribers_hear_of_changes_to_a_project_until_they_unsubscribe(server, llm):
    """Handshake era: resources/subscribe; a tool that changes a project updates its tree and the project list."""
    updated: list[str] = []

    async def on_message(message: object) -> None:
        if isinstance(message, ResourceUpdatedNotification):
            updated.append(str(message.params.uri))

    async with Client(server, mode="legacy", message_handler=on_message) as client:
        await client.subscribe_resource(TREE)  # before the project exists: accepted
        await client.subscribe_resource("test://watched-resource")  # any URI may be subscribed to
        await call(client, "create_project", name="Chess")
        await call(client, "generate_tags", project_id=1, count=2)
        await call(client, "get_tree", project_id=1)  # read-only: changes nothing
        await client.send_ping()
        assert updated == [TREE]

        await client.unsubscribe_resource(TREE)
        await client.subscribe_resource(PROJECTS)
        await call(client, "generate_tags", project_id=1, count=1)
        await client.send_ping()
        assert updated == [TREE, PROJECTS]


async def test_listeners_hear_of_changes_in_the_modern_era(server, llm):
    async with Client(server) as client:
        await call(client, "create_project", name="Chess")
        async with client.listen(resource_subscriptions=[TREE]) as subscription:
            await call(client, "generate_tags", project_id=1, count=2)
            with anyio.fail_after(10):
                event = await subscription.__anext__()
    assert event.uri == TREE
