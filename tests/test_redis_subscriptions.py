"""`Subscriptions`: whatever the order of joins, leaves and Redis's answers, Redis ends up holding
what is wanted, and a channel counts as heard only once every SUBSCRIBE sent for it is confirmed.

A fake subscriber records what would go to Redis; the real one runs in tests/test_room_channels.py.
"""

from __future__ import annotations

import asyncio

from websuckets.backends.redis.subscriptions import Subscriptions


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, ...]] = []
        self.held: set[str] = set()

    async def subscribe(self, *channels: str) -> None:
        self.sent.append(("SUBSCRIBE", *sorted(channels)))
        self.held |= set(channels)

    async def unsubscribe(self, *channels: str) -> None:
        self.sent.append(("UNSUBSCRIBE", *sorted(channels)))
        self.held -= set(channels)


async def test_a_wanted_channel_is_heard_once_redis_confirms_it() -> None:
    subscriptions, redis = Subscriptions(), Recorder()
    subscriptions.attach(redis, [])
    waiter = subscriptions.waiter("r:lobby")
    await subscriptions.sync()
    assert redis.sent == [("SUBSCRIBE", "r:lobby")]
    assert not waiter.done()
    subscriptions.confirmed("r:lobby")
    assert waiter.done()
    assert subscriptions.heard("r:lobby")
    assert subscriptions.waiter("r:lobby").done()  # heard already: nothing to wait for


async def test_leave_then_join_again_waits_for_the_new_confirmation_not_the_old_one() -> None:
    """SUBSCRIBE, UNSUBSCRIBE, SUBSCRIBE before any answer: the first confirmation does not count."""
    subscriptions, redis = Subscriptions(), Recorder()
    subscriptions.attach(redis, [])
    subscriptions.waiter("r:lobby")
    await subscriptions.sync()
    assert subscriptions.discard("r:lobby")
    await subscriptions.sync()
    waiter = subscriptions.waiter("r:lobby")
    await subscriptions.sync()
    assert redis.sent == [("SUBSCRIBE", "r:lobby"), ("UNSUBSCRIBE", "r:lobby"), ("SUBSCRIBE", "r:lobby")]
    subscriptions.confirmed("r:lobby")  # the answer to the first SUBSCRIBE
    assert not waiter.done()
    subscriptions.confirmed("r:lobby")
    assert waiter.done()
    assert redis.held == {"r:lobby"}


async def test_concurrent_syncs_leave_redis_holding_what_is_wanted() -> None:
    subscriptions, redis = Subscriptions(), Recorder()
    subscriptions.attach(redis, [])
    for n in range(10):
        subscriptions.waiter(f"r:{n}")
    first = asyncio.create_task(subscriptions.sync())
    for n in range(0, 10, 2):
        subscriptions.discard(f"r:{n}")
    await asyncio.gather(first, subscriptions.sync())
    assert redis.held == subscriptions.wanted == {f"r:{n}" for n in range(1, 10, 2)}


async def test_a_lost_connection_hears_nothing_until_the_next_one_subscribes_to_all_that_is_wanted() -> None:
    subscriptions, redis = Subscriptions(), Recorder()
    subscriptions.attach(redis, ["r:lobby"])
    assert subscriptions.heard("r:lobby")
    subscriptions.detach()
    assert not subscriptions.heard("r:lobby")
    waiter = subscriptions.waiter("r:lobby")
    await subscriptions.sync()  # no connection: nothing sent
    assert redis.sent == []
    subscriptions.attach(Recorder(), subscriptions.wanted)
    assert waiter.done()


async def test_an_unsubscription_nobody_asked_for_is_redis_s_own() -> None:
    """An UNSUBSCRIBE confirmation answers one this process sent (a leave, even one joined again since); any
    other is Redis's own (on a cluster: the channel's slot moved), for the listener to rebuild."""
    subscriptions, redis = Subscriptions(), Recorder()
    subscriptions.attach(redis, ["r:lobby"])
    assert subscriptions.discard("r:lobby")
    await subscriptions.sync()
    subscriptions.waiter("r:lobby")  # joined again before the confirmation
    await subscriptions.sync()
    assert subscriptions.unsubscribed("r:lobby")  # the leave's
    assert not subscriptions.unsubscribed("r:lobby")  # Redis's own
    assert not subscriptions.unsubscribed("all")
