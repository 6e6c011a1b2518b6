"""kafka-python's admin client, asking another broker when one has died.

With one broker of several dead and not yet fenced (the controller fences it seconds later),
kafka-python's admin client sends a request to it and raises where a live broker would answer:

- a controller request (create topics, alter configs) goes to the broker a metadata response
  named as controller — live brokers still name the dead one until it is fenced — and the id is
  cached for the client's life;
- a request to any broker goes to the least-loaded node, which may be the dead one (the first
  bootstrap server, before anything was sent to it);
- a group request goes to the group's coordinator, cached for the client's life, which stays on
  the dead broker until it is fenced and the group's partition of ``__consumer_offsets`` has a
  new leader.

It raises what its send failed with (a refused connection, a node in reconnect backoff, a
timeout: all marked retriable); a group's coordinator that is loading the group, or has just
lost it, answers with an error in the group's description. :class:`Admin` asks again on a
retriable error for up to ``RETRY_S``, forgetting the controller and coordinators it had (the
dead node is backed off, so the next pick is another), much as
:meth:`mailroom.kafka.Consumer._learn_partitions` does for a consumer's first metadata request.
Only the operations the commands use at start and to describe are asked again — topics and
configs read, created or set to the same values, the cluster and groups described, offsets
read — each safe to send twice (a topic created by a first try that lost its answer comes back
as TopicAlreadyExistsError, which ``mailroom.topics.ensure_topics`` takes as created). An
unknown topic is not waited for: asked again, it would only be unknown longer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from kafka import errors as Errors  # noqa: N812 - kafka-python's own name for it
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError, UnknownTopicOrPartitionError

log = logging.getLogger(__name__)

#: How long an operation is asked again: a dead broker's fencing (the brokers' session
#: timeout, ~10 s) and the new leaders of its partitions, with room for a busy machine.
RETRY_S = 30.0
RETRY_WAIT_S = 0.5
#: The operations asked again (each safe to send twice).
RETRIED = (
    "list_topics", "describe_topics", "describe_configs", "describe_cluster", "create_topics",
    "alter_configs", "describe_groups", "list_groups", "list_group_offsets",
    "list_partition_offsets",
)


class Admin(KafkaAdminClient):
    """A KafkaAdminClient whose start-up operations (``RETRIED``) ask another broker when the
    one they went to has died."""

    retry_s: float = RETRY_S

    def _retried(self, what: str, call: Callable[[], Any]) -> Any:
        deadline = time.monotonic() + self.retry_s
        while True:
            try:
                return call()
            except UnknownTopicOrPartitionError:
                raise
            except KafkaError as exc:
                if not exc.retriable or time.monotonic() >= deadline:
                    raise
                log.warning("kafka admin %s failed (%s): asking again, another broker",
                            what, exc)
                self._forget_routes()
                time.sleep(RETRY_WAIT_S)

    def _describe_groups_process_response(self, response: Any) -> Any:
        # A coordinator that is loading the group, or is not its coordinator any more (just
        # moved from a dead broker), answers with an error per group, which kafka-python hands
        # back as the group's description (no members, state ''): raised, it is asked again.
        for group in response.groups:
            error = Errors.for_code(group.error_code)
            if error is not Errors.NoError and error.retriable:
                raise error(f"group {group.group_id}")
        return super()._describe_groups_process_response(response)

    def _forget_routes(self) -> None:
        # The controller and coordinators are looked up afresh (from a live broker, the dead
        # one being in reconnect backoff). kafka-python keeps them in private fields and has
        # no call to forget them.
        self._controller_id = None
        self._manager.cluster._coordinators.clear()  # noqa: SLF001


def _retrying(name: str) -> Callable[..., Any]:
    plain = getattr(KafkaAdminClient, name)

    def method(self: Admin, *args: Any, **kwargs: Any) -> Any:
        return self._retried(name, lambda: plain(self, *args, **kwargs))

    method.__name__ = name
    method.__qualname__ = f"Admin.{name}"
    method.__doc__ = plain.__doc__
    return method


for _name in RETRIED:
    setattr(Admin, _name, _retrying(_name))
